// See thread_pool.h.
#include "kernels/thread_pool.h"

#include <chrono>
#include <cstdlib>

#include "kernels/kernels.h"

namespace addlora::kernels {

ThreadPool::ThreadPool(int threads) {
  for (int i = 1; i < threads; ++i) workers_.emplace_back([this] { worker_loop(); });
}

ThreadPool::~ThreadPool() {
  stop_.store(true);
  { std::lock_guard<std::mutex> lock(mu_); }  // as run() announces a job
  cv_.notify_all();
  for (auto& t : workers_) t.join();
}

namespace {

// One step of a busy wait: a pause lets the sibling hardware thread run.
inline void relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

// Waits until ready() or `limit` has passed (none by default): pauses for the first kPauseFor (the next phase of
// a call, or the last running task, usually comes within microseconds, and a system call per
// check would cost more than the wait), then yields the core at each check, so a long wait
// does not keep it from other threads.  Returns ready().
template <class Ready>
bool wait_until(Ready ready, std::chrono::steady_clock::duration limit = std::chrono::steady_clock::duration::max()) {
  constexpr auto kPauseFor = std::chrono::microseconds(5);
  const auto t0 = std::chrono::steady_clock::now();
  for (uint32_t i = 1;; ++i) {
    if (ready()) return true;
    if ((i & 63) == 0) {  // the clock costs more than a pause: read it now and then
      const auto waited = std::chrono::steady_clock::now() - t0;
      if (waited >= limit) return ready();
      if (waited >= kPauseFor) std::this_thread::yield();
    }
    relax();
  }
}

// How long an idle worker stays awake for the next job (decode calls issue short phases back
// to back, and a worker asleep takes microseconds to wake).
constexpr auto kAwakeFor = std::chrono::microseconds(50);

}  // namespace

void ThreadPool::work() {
  for (;;) {
    uint64_t cur = job_.next.load(std::memory_order_acquire);
    do {
      if ((cur & 0xffffffffu) >= (cur >> 32)) return;  // every task of the job is claimed
    } while (!job_.next.compare_exchange_weak(cur, cur + 1, std::memory_order_acq_rel, std::memory_order_acquire));
    job_.fn.load(std::memory_order_relaxed)(job_.ctx.load(std::memory_order_relaxed), static_cast<int64_t>(cur & 0xffffffffu));
    done_.fetch_add(1, std::memory_order_release);
  }
}

void ThreadPool::run(Task fn, void* ctx, int64_t n) {
  if (n <= 0) return;
  // `next` packs the count and the index in 32 bits each; no call makes 2^31 tasks anyway.
  if (workers_.empty() || n == 1 || n > INT32_MAX) {
    for (int64_t i = 0; i < n; ++i) fn(ctx, i);
    return;
  }
  std::lock_guard<std::mutex> serial(run_mu_);
  job_.fn.store(fn, std::memory_order_relaxed);
  job_.ctx.store(ctx, std::memory_order_relaxed);
  done_.store(0, std::memory_order_relaxed);
  job_.next.store(static_cast<uint64_t>(n) << 32, std::memory_order_release);  // publishes fn, ctx
  job_.generation.fetch_add(1);
  if (sleepers_.load() > 0) {
    { std::lock_guard<std::mutex> lock(mu_); }  // a sleeper counted is inside cv_.wait or sees the job
    cv_.notify_all();
  }
  work();
  // Wait only for tasks other threads are running right now.
  wait_until([&] { return done_.load(std::memory_order_acquire) >= n; });
}

void ThreadPool::worker_loop() {
  uint64_t seen = 0;
  for (;;) {
    auto next = [&] { return stop_.load() || job_.generation.load() != seen; };
    if (!wait_until(next, kAwakeFor)) {
      std::unique_lock<std::mutex> lock(mu_);
      sleepers_.fetch_add(1);
      cv_.wait(lock, next);
      sleepers_.fetch_sub(1);
    }
    if (stop_.load()) return;
    seen = job_.generation.load();
    work();  // a job already done: no task left to claim
  }
}

SharedPool& shared_pool() {
  static SharedPool* p = [] {
    auto* sp = new SharedPool;
    int n = static_cast<int>(std::thread::hardware_concurrency());
    if (const char* env = std::getenv("ADDLORA_NUM_THREADS")) {
      const int v = std::atoi(env);
      if (v > 0) n = v;
    }
    sp->pool = std::make_unique<ThreadPool>(n < 1 ? 1 : n);
    return sp;
  }();
  return *p;
}

void set_num_threads(int n) {
  SharedPool& sp = shared_pool();
  std::unique_lock<std::shared_mutex> lock(sp.mu);
  sp.pool.reset();  // the old workers go before the new ones start
  sp.pool = std::make_unique<ThreadPool>(n < 1 ? 1 : n);
}

int num_threads() {
  SharedPool& sp = shared_pool();
  std::shared_lock<std::shared_mutex> lock(sp.mu);
  return sp.pool->threads();
}

}  // namespace addlora::kernels
