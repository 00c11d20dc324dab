// Allocation-failure injection: the one mechanism of the whole library, so tests can prove
// that running out of memory gives a status code, leaves no half-written output and leaks
// nothing.  Header-only and at the bottom layer because the two libraries that allocate on a
// client's behalf (libaddlora: plans, executors, workspaces; libascendcl: aclrtMalloc and
// aclrtMallocHost) link neither each other nor a common library.  Each owns one FaultCountdown
// and arms it through its own exported test hook (core/fault.h, runtime/internal.h), so a
// test counts the allocations of one library without the other's shifting its steps.
#pragma once
#include <atomic>
#include <cstdint>

namespace addlora::model {

class FaultCountdown {
 public:
  // The `nth` next allocation asking fires() (0 = the very next) fails; < 0 disarms.
  void arm(int64_t nth) { n_.store(nth < 0 ? -1 : nth); }

  // True when this allocation must fail; consumes one step while armed.
  bool fires() {
    int64_t n = n_.load(std::memory_order_relaxed);
    while (n >= 0) {
      if (n_.compare_exchange_weak(n, n - 1)) return n == 0;
    }
    return false;
  }

 private:
  std::atomic<int64_t> n_{-1};
};

}  // namespace addlora::model
