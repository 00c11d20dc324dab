// A stream: an ordered task queue executed by one worker thread of its own, or by the
// caller when the stream is idle (claim/finish_claimed: an operator launched on an idle stream
// runs at once on the launching thread, sparing the hop to the worker -- order is kept, since
// the worker starts nothing while a claimed task runs).  Private to src/runtime (libascendcl).
#pragma once
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

namespace addlora_rt {

class Stream {
 public:
  Stream();  // starts the worker; throws std::system_error if no thread can be created
  // Runs every task still queued, then stops and joins the worker.  Must not be called
  // from the worker itself.
  ~Stream();
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  // Appends a task.  Throws only std::bad_alloc.
  void push(std::function<void()> task);
  // If nothing is queued or running, marks the stream busy with one task the caller runs
  // itself and returns true; the caller must then call finish_claimed(), on the same thread.
  // Waiters (wait_idle) count the claimed task as pushed.  Never throws.
  bool claim();
  // Ends a claimed task; `failure` ("" if none) is reported like a worker task's.
  void finish_claimed(const std::string& failure);
  // Runs `task` as the worker does: "" on success, else what it threw (never throws).
  static std::string run_task(std::function<void()>& task) noexcept;
  // Blocks until every task pushed before the call has run.
  void wait_idle();
  // The same, giving up after `timeout`; true if every such task has run.
  bool wait_idle_for(std::chrono::milliseconds timeout);
  // The first failure (a task that threw) since the last call, or "" if none; resets it.
  std::string take_failure();
  bool on_worker_thread() const { return std::this_thread::get_id() == worker_id_; }

 private:
  void loop();

  std::mutex m_;
  std::condition_variable work_cv_;  // worker waits for tasks / stop
  std::condition_variable done_cv_;  // wait_idle waits for progress
  std::deque<std::function<void()>> queue_;
  uint64_t pushed_ = 0, finished_ = 0;
  bool stopping_ = false;
  bool claimed_ = false;  // a caller runs a task now: the worker must not start the next one
  std::string failure_;
  std::thread worker_;
  std::thread::id worker_id_;
};

}  // namespace addlora_rt
