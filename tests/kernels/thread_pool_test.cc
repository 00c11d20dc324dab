// The kernels' thread pool on its own: every task of every job runs exactly once, run() returns
// only after all of them, with workers that are spinning, asleep, or late from an earlier job,
// and with several callers.  Labelled "concurrency": also run under ThreadSanitizer.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "kernels/thread_pool.h"

namespace {

struct Counts {
  std::vector<std::atomic<int>> hits;
  explicit Counts(size_t n) : hits(n) {}
};

void count_task(void* ctx, int64_t i) { static_cast<Counts*>(ctx)->hits[static_cast<size_t>(i)].fetch_add(1); }

// Runs `jobs` jobs of 1..max_n tasks on `pool`; each job's tasks must each have run once when
// run() returns.  `pause_every`: sleep between some jobs so workers go to sleep (the pool keeps
// them awake about 50 us).
int run_jobs(addlora::kernels::ThreadPool& pool, int jobs, int max_n, int pause_every) {
  int bad = 0;
  for (int j = 0; j < jobs; ++j) {
    const int n = 1 + j % max_n;
    Counts c(static_cast<size_t>(n));
    pool.run(count_task, &c, n);
    for (int i = 0; i < n; ++i) bad += c.hits[static_cast<size_t>(i)].load() != 1;
    if (pause_every && j % pause_every == 0) std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  return bad;
}

TEST(ThreadPool, EveryTaskOnceBackToBack) {
  for (int threads : {2, 3, 5}) {
    addlora::kernels::ThreadPool pool(threads);
    EXPECT_EQ(run_jobs(pool, 20000, 9, 0), 0) << threads << " threads";
  }
}

TEST(ThreadPool, EveryTaskOnceWithSleepingWorkers) {
  addlora::kernels::ThreadPool pool(3);
  EXPECT_EQ(run_jobs(pool, 600, 7, 3), 0);
}

TEST(ThreadPool, EveryTaskOnceWithConcurrentCallers) {
  addlora::kernels::ThreadPool pool(3);
  std::atomic<int> bad{0};
  std::vector<std::thread> callers;
  for (int t = 0; t < 3; ++t) callers.emplace_back([&] { bad += run_jobs(pool, 5000, 6, 0); });
  for (auto& t : callers) t.join();
  EXPECT_EQ(bad.load(), 0);
}

// Tasks of uneven length: run() must wait for the slow ones that other threads run.
TEST(ThreadPool, WaitsForRunningTasks) {
  addlora::kernels::ThreadPool pool(2);
  struct Slow {
    std::atomic<int> finished{0};
  };
  for (int j = 0; j < 200; ++j) {
    Slow s;
    pool.run([](void* ctx, int64_t i) {
      if (i % 2) std::this_thread::sleep_for(std::chrono::microseconds(50));
      static_cast<Slow*>(ctx)->finished.fetch_add(1);
    }, &s, 4);
    ASSERT_EQ(s.finished.load(), 4) << "job " << j;
  }
}

// Back-to-back jobs of equal task counts alternate two functions, each with its own kind of
// context: a worker still looking at one job when the next is announced must never pair one
// job's function with the other's context, nor run a task of either twice.
struct Tagged {
  int kind;
  std::vector<std::atomic<int>> hits;
  Tagged(int k, size_t n) : kind(k), hits(n) {}
};
std::atomic<int> g_mismatched{0};
void task_kind0(void* ctx, int64_t i) {
  auto* t = static_cast<Tagged*>(ctx);
  if (t->kind != 0) ++g_mismatched;
  t->hits[static_cast<size_t>(i)].fetch_add(1);
}
void task_kind1(void* ctx, int64_t i) {
  auto* t = static_cast<Tagged*>(ctx);
  if (t->kind != 1) ++g_mismatched;
  t->hits[static_cast<size_t>(i)].fetch_add(1);
}

TEST(ThreadPool, EqualJobsBackToBackNeverMixFunctionAndContext) {
  addlora::kernels::ThreadPool pool(3);
  g_mismatched = 0;
  int bad = 0;
  for (int j = 0; j < 30000; ++j) {
    const int kind = j % 2, n = 2 + (j / 200) % 3;  // the same count for 200 jobs in a row
    Tagged t(kind, static_cast<size_t>(n));
    pool.run(kind ? task_kind1 : task_kind0, &t, n);
    for (int i = 0; i < n; ++i) bad += t.hits[static_cast<size_t>(i)].load() != 1;
  }
  EXPECT_EQ(bad, 0);
  EXPECT_EQ(g_mismatched.load(), 0);
}

// Every task of a job waits until all of them have started, so the job completes only if every
// worker joins it, woken from spinning or from sleep (a lost wake-up shows as a timeout).
TEST(ThreadPool, EveryWorkerJoinsAfterSleeping) {
  constexpr int kThreads = 3;
  addlora::kernels::ThreadPool pool(kThreads);
  struct Rendezvous {
    std::atomic<int> started{0};
    std::atomic<int> timed_out{0};
  };
  for (int j = 0; j < 40; ++j) {
    Rendezvous r;
    pool.run([](void* ctx, int64_t) {
      auto* rv = static_cast<Rendezvous*>(ctx);
      rv->started.fetch_add(1);
      const auto t0 = std::chrono::steady_clock::now();
      while (rv->started.load() < kThreads) {
        if (std::chrono::steady_clock::now() - t0 > std::chrono::seconds(5)) {
          rv->timed_out.fetch_add(1);
          return;
        }
        std::this_thread::yield();
      }
    }, &r, kThreads);
    EXPECT_EQ(r.timed_out.load(), 0) << "job " << j;
    if (j % 2) std::this_thread::sleep_for(std::chrono::milliseconds(1));  // the workers go to sleep
  }
}

// A pool destroyed right after a job, with workers spinning or asleep, joins them.
TEST(ThreadPool, DestroyedWhileWorkersWait) {
  for (int k = 0; k < 50; ++k) {
    addlora::kernels::ThreadPool pool(3);
    Counts c(4);
    pool.run(count_task, &c, 4);
    if (k % 2) std::this_thread::sleep_for(std::chrono::microseconds(300));
    for (int i = 0; i < 4; ++i) EXPECT_EQ(c.hits[static_cast<size_t>(i)].load(), 1);
  }
}

}  // namespace
