#include "kernels/scratch.h"

#include <cstdlib>
#include <memory>
#include <new>

namespace addlora::kernels::internal {

void* thread_scratch(size_t bytes) {
  struct Free {
    void operator()(void* p) const { std::free(p); }
  };
  thread_local std::unique_ptr<void, Free> buf;
  thread_local size_t have = 0;
  if (have < bytes) {
    buf.reset();  // the old block first: never two at once
    have = 0;
    const size_t rounded = (bytes + 63) / 64 * 64;
    buf.reset(std::aligned_alloc(64, rounded));
    if (buf) have = rounded;
  }
  return buf.get();
}

}  // namespace addlora::kernels::internal
