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
  // A job's announcement and its task claims share one cache line, so a waking worker gets the
  // job and claims its first task in one transfer.  `next` packs (task count << 32 | next
  // index): a claim is one compare-exchange that reads the count with the index, and fn and ctx
  // are read only after a claim, while the job cannot end (its claimed task is not done), so
  // they belong to the claimed task's job even when the claimer last looked at an earlier job.
  // Nothing of a job lives on the caller's stack, and a worker touches only the pool's memory
  // until it has claimed a task, so run() may return as soon as the tasks are done.
  struct alignas(64) Announce {
    std::atomic<uint64_t> generation{0};  // bumped once per job: wakes the workers
    std::atomic<uint64_t> next{0};
    std::atomic<Task> fn{nullptr};
    std::atomic<void*> ctx{nullptr};
  };
  void work();  // claims and runs tasks until none is left
  void worker_loop();

  std::mutex run_mu_;  // one job at a time
  Announce job_;
  alignas(64) std::atomic<int64_t> done_{0};  // tasks of the current job finished
  // A worker waits for the next generation spinning, then yielding, then asleep on cv_.
  // Going to sleep it counts itself in sleepers_ and then reads the generation; run() bumps
  // the generation and then reads sleepers_ (all sequentially consistent), so either the worker
  // sees the job or run() sees the sleeper and notifies (under mu_: no lost wake-up).
  alignas(64) std::mutex mu_;
  std::condition_variable cv_;
  std::atomic<int> sleepers_{0};
  std::atomic<bool> stop_{false};
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
