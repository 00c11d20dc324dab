// Runs the functions of the C11 and C++11 header-check objects (see CMakeLists.txt).
#include <gtest/gtest.h>

extern "C" int addlora_header_check_c(void);
int addlora_header_check_cxx11();

TEST(Headers, CompileAsC11AndValuesMatch) { EXPECT_EQ(addlora_header_check_c(), 1); }
TEST(Headers, CompileAsCxx11AndWorkQualified) { EXPECT_EQ(addlora_header_check_cxx11(), 1); }
