// aclGetRecentErrMsg: per thread, obtain-and-clear, never null.
#include <string>
#include <thread>

#include "runtime_test_util.h"

TEST(ErrorMessage, EmptyNotNullWhenNone) {
  aclGetRecentErrMsg();
  const char* m = aclGetRecentErrMsg();
  ASSERT_NE(m, nullptr);
  EXPECT_STREQ(m, "");
}

TEST(ErrorMessage, ObtainedOnceThenCleared) {
  EXPECT_EQ(aclrtSetDevice(0), ACL_ERROR_UNINITIALIZE);
  const std::string first = aclGetRecentErrMsg();
  EXPECT_TRUE(contains(first, "aclrtSetDevice")) << first;
  EXPECT_TRUE(contains(first, "not initialized")) << first;
  EXPECT_STREQ(aclGetRecentErrMsg(), "");
}

TEST(ErrorMessage, LatestFailureWins) {
  EXPECT_EQ(aclFinalize(), ACL_ERROR_REPEAT_FINALIZE);
  EXPECT_EQ(aclrtMemset(nullptr, 1, 0, 1), ACL_ERROR_UNINITIALIZE);
  EXPECT_TRUE(contains(aclGetRecentErrMsg(), "aclrtMemset"));
}

TEST(ErrorMessage, PerThread) {
  addlora_rt::set_error("message of the main thread %d", 42);
  std::string seen_in_other = "unset", own_in_other;
  std::thread other([&] {
    seen_in_other = aclGetRecentErrMsg();  // thread B does not see thread A's message
    addlora_rt::set_error("message of the other thread");
    own_in_other = aclGetRecentErrMsg();
  });
  other.join();
  EXPECT_EQ(seen_in_other, "");
  EXPECT_EQ(own_in_other, "message of the other thread");
  EXPECT_EQ(std::string(aclGetRecentErrMsg()), "message of the main thread 42");
}

TEST(ErrorMessage, LongMessagesAreKeptWholeAndClearErrorWorks) {
  const std::string long_part(2000, 'x');
  addlora_rt::set_error("start %s end", long_part.c_str());
  const std::string m = aclGetRecentErrMsg();
  EXPECT_EQ(m.size(), 2000u + 10u);
  EXPECT_EQ(m.substr(m.size() - 3), "end");
  addlora_rt::set_error("to be cleared");
  addlora_rt::clear_error();
  EXPECT_STREQ(aclGetRecentErrMsg(), "");
}

TEST(ErrorMessage, PointerStaysValidUntilTheNextCall) {
  addlora_rt::set_error("first");
  const char* p = aclGetRecentErrMsg();
  addlora_rt::set_error("second");  // a new error does not disturb the string handed out
  EXPECT_STREQ(p, "first");
  EXPECT_STREQ(aclGetRecentErrMsg(), "second");
}
