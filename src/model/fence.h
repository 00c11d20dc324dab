// Buffers kept between uses and lent out in part (kept_buffer.h): under AddressSanitizer the
// bytes past the part lent are poisoned, so an overrun is reported as it would be in a buffer
// of the exact size.
#pragma once
#include <cstdint>
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#endif

namespace addlora::model {

// Of the `size` bytes at data, [0, used) become usable and [used, size) poisoned (data may be
// null when size is 0).  Without AddressSanitizer: nothing.
inline void fence_tail(void* data, uint64_t used, uint64_t size) {
#if defined(__SANITIZE_ADDRESS__)
  if (!data) return;
  ASAN_UNPOISON_MEMORY_REGION(data, size);
  ASAN_POISON_MEMORY_REGION(static_cast<char*>(data) + used, size - used);
#else
  (void)data, (void)used, (void)size;
#endif
}

}  // namespace addlora::model
