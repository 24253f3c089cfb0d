// Target presets.
#include "compiler/target/target.h"

#include <gtest/gtest.h>

namespace kiln::target {
namespace {

TEST(Target, Presets) {
  auto rpi5 = target_from_name("rpi5");
  ASSERT_TRUE(rpi5.is_ok());
  EXPECT_EQ(rpi5->arch, "aarch64");
  EXPECT_EQ(rpi5->cpu, "cortex-a76");
  EXPECT_EQ(rpi5->cxx_flags, std::vector<std::string>{"-mcpu=cortex-a76"});
  EXPECT_EQ(rpi5->features, (std::vector<std::string>{"asimd", "asimddp", "fphp", "asimdhp"}));
  auto v3 = target_from_name("x86-64-v3");
  ASSERT_TRUE(v3.is_ok());
  EXPECT_EQ(v3->features, (std::vector<std::string>{"avx2", "fma"}));
  // x86-64-v3 pins the GEMM dispatch to AVX2; the others may pick AVX-512 when the CPU has it.
  EXPECT_EQ(v3->defines, std::vector<std::string>{"KILN_GEMM_NO_AVX512"});
  EXPECT_TRUE(target_from_name("x86-64-v4")->defines.empty());
  auto native = target_from_name("native");
  ASSERT_TRUE(native.is_ok());
  EXPECT_EQ(native->cxx_flags, std::vector<std::string>{"-march=native"});
  EXPECT_TRUE(native->defines.empty());
  EXPECT_FALSE(native->cpu.empty());
}

TEST(Target, UnknownNameListsValidOnes) {
  auto t = target_from_name("pi4");
  ASSERT_FALSE(t.is_ok());
  EXPECT_NE(t.status().message().find("rpi4"), std::string::npos);
  EXPECT_NE(t.status().message().find("x86-64-v4"), std::string::npos);
}

}  // namespace
}  // namespace kiln::target
