// One AddLora problem for the operator tests: shape, attributes, index pattern, memory
// layout (strided / NZ / in place), built into sentinel-guarded TestTensors with random
// data.  Shared by the C++ API and the aclnn suites.
#pragma once
#include <cstdint>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "addlora/addlora.h"
#include "reference/testdata.h"

namespace optest {

using addlora::DType;
using addlora::Layout;

enum class Pattern { same, distinct, none, mixed };

struct CaseSpec {
  DType dtype = DType::f16;      // y, x, weights, out
  DType w_dtype = DType::f16;    // weights (Rules::general may mix)
  DType y_dtype = DType::f16;    // y and out
  DType index_dtype = DType::i32;
  int64_t B = 1, H1 = 16, H2 = 16, H3 = 16, R = 16, W = 1, L = 1;
  bool has_a = true;
  int64_t layer = 0, y_offset = 0, y_slice = -1;
  double scale_factor = 1;       // times balanced_scale (may be negative)
  Pattern pattern = Pattern::mixed;
  bool strided = false;          // strided views with gaps and offsets everywhere
  bool in_place = false;         // out is y
  Layout a_layout = Layout::nd, b_layout = Layout::nd;
  uint64_t seed = 1;

  // Same dtype for every float tensor.
  CaseSpec& all(DType t) { dtype = w_dtype = y_dtype = t; return *this; }
  std::string name() const;  // a gtest-safe identifier
};

// gtest prints a case by its name.
inline void PrintTo(const CaseSpec& c, std::ostream* os) { *os << c.name(); }

// The tensors of one case.  out is absent when in place.
struct CaseData {
  CaseSpec spec;
  std::vector<int64_t> index_values;
  std::unique_ptr<addlora::ref::TestTensor> y, x, wa, wb, idx, out;
  addlora::Arguments args() const;  // host views
  double scale = 1;
};

std::unique_ptr<CaseData> make_case(const CaseSpec& spec);

// Snapshot of every image, and the checks after a run: out's gaps/guards untouched (y's when
// in place), every input byte untouched (y too when out of place).  "" = fine.
struct Snapshot {
  std::vector<std::vector<uint8_t>> images;
};
Snapshot snapshot(const CaseData& d);
std::string memory_changes(const CaseData& d, const Snapshot& s);

}  // namespace optest
