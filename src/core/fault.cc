#include "core/fault.h"

#include "model/fault.h"

namespace addlora::detail {
namespace {
model::FaultCountdown g_library;
}

void set_countdown(int64_t nth) { g_library.arm(nth); }
bool allocation_fails() { return g_library.fires(); }

}  // namespace addlora::detail

extern "C" void addlora_test_fail_allocation(int64_t nth) { addlora::detail::set_countdown(nth); }
