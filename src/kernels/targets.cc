// SIMD target choice: the best table this CPU supports, ADDLORA_SIMD_TARGET when set and
// available, or the one a test forced (work.h); and the CPU vendor that tuning choices key on.
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include <strings.h>

#include "kernels/kernels.h"
#include "kernels/work.h"

namespace addlora::kernels {
namespace {

using internal::TargetKernels;

std::atomic<const TargetKernels*> g_forced{nullptr};

const TargetKernels* by_name(const char* name) {
  for (const TargetKernels* t : internal::supported_targets())
    if (strcasecmp(t->name, name) == 0) return t;
  // EMU128 and SCALAR both mean "the portable baseline target".
  if (strcasecmp(name, "EMU128") == 0 || strcasecmp(name, "SCALAR") == 0)
    return internal::supported_targets().back();
  return nullptr;
}

const TargetKernels* automatic_target() {
  static const TargetKernels* chosen = [] {
    const auto all = internal::supported_targets();
    const char* env = std::getenv("ADDLORA_SIMD_TARGET");
    if (env && *env) {
      if (const TargetKernels* t = by_name(env)) return t;
      std::fprintf(stderr, "addlora: ADDLORA_SIMD_TARGET=%s is not available here; using %s\n", env,
                   all.front()->name);
    }
    return all.front();
  }();
  return chosen;
}

}  // namespace

const char* simd_target() { return internal::current_target()->name; }

namespace internal {

const TargetKernels* current_target() {
  const TargetKernels* f = g_forced.load();
  return f ? f : automatic_target();
}

bool force_simd_target(const char* name) {
  if (!name || !*name) { g_forced = nullptr; return true; }
  const TargetKernels* t = by_name(name);
  if (!t) return false;
  g_forced = t;
  return true;
}

bool amd_cpu() {
#if defined(__x86_64__) || defined(__i386__)
  static const bool amd = [] {
    __builtin_cpu_init();
    return __builtin_cpu_is("amd") != 0;
  }();
  return amd;
#else
  return false;
#endif
}

namespace {
std::atomic<int> g_forced_feed{-1};  // -1: the CPU's choice; 0: the buffer; 1: in place
}  // namespace
bool row_lane_reads_b_in_place() {
  const int f = g_forced_feed.load(std::memory_order_relaxed);
  return f < 0 ? amd_cpu() : f == 1;
}
void force_row_lane_feed(std::optional<bool> in_place) { g_forced_feed = in_place ? (*in_place ? 1 : 0) : -1; }

namespace {
std::atomic<uint64_t> g_outer_shrink_tasks{0};
}  // namespace
uint64_t outer_shrink_tasks() { return g_outer_shrink_tasks.load(); }
void count_outer_shrink_task() { g_outer_shrink_tasks.fetch_add(1, std::memory_order_relaxed); }

std::vector<std::string> available_simd_targets() {
  std::vector<std::string> names;
  for (const TargetKernels* t : supported_targets()) names.emplace_back(t->name);
  return names;
}

}  // namespace internal
}  // namespace addlora::kernels
