// Runs the functions of the C11 and C++11 header-check objects (see CMakeLists.txt).
#include <string>

#include "runtime_test_util.h"

extern "C" int addlora_header_check_c(void);
extern "C" int addlora_c_client_out_of_range_enums(void);
int addlora_header_check_cxx11();

TEST(Headers, CompileAsC11AndValuesMatch) { EXPECT_EQ(addlora_header_check_c(), 1); }
TEST(Headers, CompileAsCxx11AndWorkQualified) { EXPECT_EQ(addlora_header_check_cxx11(), 1); }

TEST_F(RuntimeTest, OutOfRangeEnumsFromCAreErrors) {
  EXPECT_EQ(addlora_c_client_out_of_range_enums(), 1);
  EXPECT_TRUE(contains(aclGetRecentErrMsg(), "kind 100"));
}
