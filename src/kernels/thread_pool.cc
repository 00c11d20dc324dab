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
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_.store(true);
  }
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

void ThreadPool::work(Job& j) {
  for (int64_t i = j.next.fetch_add(1); i < j.n; i = j.next.fetch_add(1)) {
    j.fn(j.ctx, i);
    j.done.fetch_add(1, std::memory_order_release);
  }
}

void ThreadPool::run(Task fn, void* ctx, int64_t n) {
  if (n <= 0) return;
  if (workers_.empty() || n == 1) {
    for (int64_t i = 0; i < n; ++i) fn(ctx, i);
    return;
  }
  std::lock_guard<std::mutex> serial(run_mu_);
  Job j;
  j.fn = fn;
  j.ctx = ctx;
  j.n = n;
  job_.store(&j);
  bool wake = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    generation_.fetch_add(1);
    wake = sleepers_ > 0;
  }
  if (wake) cv_.notify_all();
  work(j);
  // Wait only for tasks other threads are running right now.
  wait_until([&] { return j.done.load(std::memory_order_acquire) >= n; });
  // Withdraw the job, then wait for any worker that may still hold it (j lives on this stack).
  // A worker counts itself in inside_ before it reads job_, and this thread clears job_ before
  // it reads inside_ (both sequentially consistent): either the worker sees no job, or this
  // thread sees the worker and waits for it.
  job_.store(nullptr);
  wait_until([&] { return inside_.load() == 0; });
}

void ThreadPool::worker_loop() {
  uint64_t seen = 0;
  for (;;) {
    auto next = [&] { return stop_.load(std::memory_order_acquire) || generation_.load(std::memory_order_acquire) != seen; };
    if (!wait_until(next, kAwakeFor)) {
      std::unique_lock<std::mutex> lock(mu_);
      ++sleepers_;
      cv_.wait(lock, next);
      --sleepers_;
    }
    if (stop_.load()) return;
    seen = generation_.load(std::memory_order_acquire);
    inside_.fetch_add(1);
    if (Job* j = job_.load()) work(*j);  // a job already done: work() finds no task
    inside_.fetch_sub(1, std::memory_order_release);
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
