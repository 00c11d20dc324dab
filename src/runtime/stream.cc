#include "runtime/stream.h"

#include <exception>

namespace addlora_rt {

Stream::Stream() {
  worker_ = std::thread([this] { loop(); });
  worker_id_ = worker_.get_id();
}

Stream::~Stream() {
  {
    std::lock_guard<std::mutex> lock(m_);
    stopping_ = true;  // the worker drains the queue before it honours this
  }
  work_cv_.notify_all();
  worker_.join();
}

void Stream::push(std::function<void()> task) {
  {
    std::lock_guard<std::mutex> lock(m_);
    queue_.push_back(std::move(task));
    ++pushed_;
  }
  work_cv_.notify_one();
}

void Stream::wait_idle() {
  std::unique_lock<std::mutex> lock(m_);
  const uint64_t target = pushed_;
  done_cv_.wait(lock, [&] { return finished_ >= target; });
}

bool Stream::wait_idle_for(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(m_);
  const uint64_t target = pushed_;
  return done_cv_.wait_for(lock, timeout, [&] { return finished_ >= target; });
}

bool Stream::claim() {
  std::lock_guard<std::mutex> lock(m_);
  if (claimed_ || stopping_ || !queue_.empty() || finished_ != pushed_) return false;
  claimed_ = true;
  ++pushed_;
  return true;
}

void Stream::finish_claimed(const std::string& failure) {
  bool held_back;  // tasks pushed meanwhile wait for us; waking the worker otherwise costs a syscall
  {
    std::lock_guard<std::mutex> lock(m_);
    if (!failure.empty() && failure_.empty()) failure_ = failure;
    claimed_ = false;
    ++finished_;
    held_back = !queue_.empty();
  }
  done_cv_.notify_all();
  if (held_back) work_cv_.notify_one();
}

std::string Stream::run_task(std::function<void()>& task) noexcept {
  // Tasks "must not fail"; if one throws anyway, the stream survives and the next
  // aclrtSynchronizeStream reports it.
  std::string failed;
  try {
    task();
  } catch (const std::exception& e) {
    try { failed = e.what(); } catch (...) {}
    if (failed.empty()) failed = "task failed";
  } catch (...) {
    failed = "task failed";  // short: no allocation
  }
  task = nullptr;  // release captures (e.g. a consumed executor) before reporting done
  return failed;
}

std::string Stream::take_failure() {
  std::lock_guard<std::mutex> lock(m_);
  std::string f;
  f.swap(failure_);
  return f;
}

void Stream::loop() {
  std::unique_lock<std::mutex> lock(m_);
  for (;;) {
    work_cv_.wait(lock, [&] { return !claimed_ && (stopping_ || !queue_.empty()); });
    if (queue_.empty()) return;  // stopping, and everything queued has run
    std::function<void()> task = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    const std::string failed = run_task(task);
    lock.lock();
    if (!failed.empty() && failure_.empty()) failure_ = failed;
    ++finished_;
    done_cv_.notify_all();
  }
}

}  // namespace addlora_rt
