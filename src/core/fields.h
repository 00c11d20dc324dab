// The tensor inputs and outputs of Arguments by position: the order of aclnnAddLora's
// parameters (y, x, weightB, indices, weightA; out), which is also the index clients pass to
// aclSetInputTensorAddr / Plan::set_input_data.  The one home of this table.
#pragma once
#include <cstddef>

#include "addlora/addlora.h"

namespace addlora::detail {

struct Field {
  const char* name;                   // as in messages and in the aclnn signature
  TensorView Arguments::*member;
};

inline constexpr Field kInputs[] = {{"y", &Arguments::y},
                                    {"x", &Arguments::x},
                                    {"weightB", &Arguments::weight_b},
                                    {"indices", &Arguments::indices},
                                    {"weightA", &Arguments::weight_a}};
inline constexpr size_t kNumInputs = sizeof kInputs / sizeof kInputs[0];
static_assert(kNumInputs == kInputWeightA + 1, "InputIndex and kInputs disagree");

inline constexpr Field kOutputs[] = {{"out", &Arguments::out}};
inline constexpr size_t kNumOutputs = sizeof kOutputs / sizeof kOutputs[0];

}  // namespace addlora::detail
