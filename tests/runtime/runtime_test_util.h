// Shared helpers of the runtime tests.
#pragma once
#include <gtest/gtest.h>

#include <condition_variable>
#include <mutex>
#include <string>

#include "acl/acl.h"
#include "aclnn/aclnn_base.h"
#include "runtime/internal.h"

// Each test starts and ends with the runtime finalised (tests also run in one process).
class RuntimeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(aclInit(nullptr), ACL_SUCCESS) << aclGetRecentErrMsg();
    aclGetRecentErrMsg();  // start with no pending message
  }
  void TearDown() override { aclFinalize(); }
};

// A gate a stream task can block on, so a test controls when queued work may proceed.
class Gate {
 public:
  void open() {
    std::lock_guard<std::mutex> l(m_);
    open_ = true;
    cv_.notify_all();
  }
  void wait() {
    std::unique_lock<std::mutex> l(m_);
    cv_.wait(l, [&] { return open_; });
  }

 private:
  std::mutex m_;
  std::condition_variable cv_;
  bool open_ = false;
};

// The pending message (consumes it).
inline std::string last_message() { return aclGetRecentErrMsg(); }

inline bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }
