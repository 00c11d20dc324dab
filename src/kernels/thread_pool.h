// Persistent worker pool for the kernels' task loops.
//
// Why not pthreadpool: pthreadpool_parallelize_* returns only after every worker thread has
// woken and checked in, even when the caller already ran all tasks itself.  On a machine whose
// cores are shared with other processes (the usual case for a library inside a server, and
// this project's 2-core build machine) one descheduled worker then stalls a 20 us call for
// milliseconds -- measured: 1-thread 17 us vs 2-thread 28-44 ms for R=16, B=1.  Here the caller
// claims tasks too and waits only for tasks that are actually running; a worker that wakes
// late finds the job finished and goes back to sleep.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <thread>
#include <vector>

namespace addlora::kernels {

class ThreadPool {
 public:
  using Task = void (*)(void* ctx, int64_t i);
  explicit ThreadPool(int threads);  // threads including the caller (>= 1)
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;
  int threads() const { return static_cast<int>(workers_.size()) + 1; }
  // Runs fn(ctx, i) for i in [0, n) on the caller and the workers; returns when all are done.
  // Calls from several threads at once are serialised.
  void run(Task fn, void* ctx, int64_t n);

 private:
  struct Job {
    Task fn;
    void* ctx;
    int64_t n;
    std::atomic<int64_t> next{0};
    std::atomic<int64_t> done{0};
  };
  static void work(Job& j);
  void worker_loop();

  std::mutex run_mu_;  // one job at a time
  // A worker waits for the next generation spinning, then yielding, then asleep on cv_; mu_
  // orders a worker going to sleep against run() announcing a job (no lost wake-up).
  std::mutex mu_;
  std::condition_variable cv_;
  int sleepers_ = 0;  // guarded by mu_
  std::atomic<Job*> job_{nullptr};
  std::atomic<uint64_t> generation_{0};
  std::atomic<bool> stop_{false};
  std::atomic<int> inside_{0};  // workers that may be using job_
  std::vector<std::thread> workers_;
};

// The library's one pool.  execute() holds `mu` shared while it uses `pool`; set_num_threads
// (kernels.h) replaces the pool under it exclusively.  Default size: ADDLORA_NUM_THREADS, else
// the hardware threads.  Never destroyed: safe for calls during static destruction.
struct SharedPool {
  std::shared_mutex mu;
  std::unique_ptr<ThreadPool> pool;
};
SharedPool& shared_pool();

}  // namespace addlora::kernels
