#include "core/fault.h"

#include <atomic>

namespace addlora::detail {
namespace {
std::atomic<int64_t> g_countdown{-1};
}

void set_countdown(int64_t nth) { g_countdown.store(nth < 0 ? -1 : nth); }

bool allocation_fails() {
  int64_t n = g_countdown.load(std::memory_order_relaxed);
  while (n >= 0) {
    if (g_countdown.compare_exchange_weak(n, n - 1)) return n == 0;
  }
  return false;
}

}  // namespace addlora::detail

extern "C" void addlora_test_fail_allocation(int64_t nth) { addlora::detail::set_countdown(nth); }
