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
    stop_ = true;
  }
  cv_.notify_all();
  for (auto& t : workers_) t.join();
}

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
  {
    std::lock_guard<std::mutex> lock(mu_);
    job_ = &j;
    ++generation_;
  }
  cv_.notify_all();
  work(j);
  // Wait only for tasks other threads are running right now.
  while (j.done.load(std::memory_order_acquire) < n) std::this_thread::yield();
  {
    std::lock_guard<std::mutex> lock(mu_);
    job_ = nullptr;
  }
  // A worker that took the job before it was withdrawn may still be in work() (having found
  // no task); j lives on this stack, so wait for it to leave.
  while (inside_.load(std::memory_order_acquire) > 0) std::this_thread::yield();
}

void ThreadPool::worker_loop() {
  uint64_t seen = 0;
  for (;;) {
    Job* j = nullptr;
    {
      std::unique_lock<std::mutex> lock(mu_);
      // Spin briefly first (unlocked) in case the next job follows closely: decode calls
      // issue several short phases back to back.
      if (generation_ == seen && !stop_) {
        lock.unlock();
        const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(50);
        while (std::chrono::steady_clock::now() < until) {
          std::this_thread::yield();
          if (lock.try_lock()) {
            if (generation_ != seen || stop_) break;
            lock.unlock();
          }
        }
        if (!lock.owns_lock()) lock.lock();
      }
      cv_.wait(lock, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
      j = job_;
      if (j) inside_.fetch_add(1, std::memory_order_acq_rel);  // under mu_: run() waits for us
    }
    if (j) {
      work(*j);
      inside_.fetch_sub(1, std::memory_order_acq_rel);
    }
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
