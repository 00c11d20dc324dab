// libaddlora's fault site (the mechanism: model/fault.h).  Every allocation the library makes
// on its own behalf (plans, executors, workspaces) asks allocation_fails() first.
#pragma once
#include <cstdint>

namespace addlora::detail {
// True when this allocation must fail (consumes one step of the injected countdown).
bool allocation_fails();
void set_countdown(int64_t nth);
}  // namespace addlora::detail

// Test hook: the `nth` next library allocation (0 = the very next) fails; -1 disables.
extern "C" __attribute__((visibility("default"))) void addlora_test_fail_allocation(int64_t nth);
