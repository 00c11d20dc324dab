// Chooses the kernel for the running CPU.  (Initial version: portable only; the SIMD
// kernels and the thread pool replace this.)
#include <atomic>

#include "kernels/kernels.h"

namespace addlora::kernels {

uint64_t workspace_bytes_portable(const detail::Problem& p);

uint64_t workspace_bytes(const detail::Problem& p) { return workspace_bytes_portable(p); }
void execute(const detail::Problem& p, void* workspace) { execute_portable(p, workspace); }

namespace {
std::atomic<int> g_threads{1};
}
void set_num_threads(int n) { g_threads = n < 1 ? 1 : n; }
int num_threads() { return g_threads; }
const char* simd_target() { return "SCALAR"; }

}  // namespace addlora::kernels
