// SIMD target choice: the best table this CPU supports, ADDLORA_SIMD_TARGET when set and
// available, or the one a test forced (work.h).
#include <atomic>
#include <cstdio>
#include <cstdlib>
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
