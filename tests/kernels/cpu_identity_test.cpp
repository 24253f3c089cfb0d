// cpu_identity.h: the record a tuning log is keyed by. Natively, and under qemu as a Cortex-A72
// and a Cortex-A76 (KILN_EXPECT_CPU_NAME / KILN_EXPECT_CPU_KEY set by CMake for those runs).
#include "kiln/kernels/cpu_identity.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

namespace kiln::kernels {
namespace {

TEST(CpuIdentity, KeyIsBuiltFromTheFields) {
  const CpuIdentity& id = cpu_identity();
  EXPECT_EQ(&id, &cpu_identity());  // computed once
  EXPECT_TRUE(cpu_identity_matches(id.key));
  EXPECT_FALSE(cpu_identity_matches("x86_64/Nobody/1/2/"));
  EXPECT_FALSE(cpu_identity_matches(nullptr));
  EXPECT_NE(id.name[0], '\0');
  const std::string key = id.key;
#if defined(__x86_64__)
  EXPECT_STREQ(id.arch, "x86_64");
  EXPECT_NE(id.vendor[0], '\0');
  EXPECT_GT(id.family, 0);
  EXPECT_EQ(key, "x86_64/" + std::string(id.vendor) + "/" + std::to_string(id.family) + "/" +
                     std::to_string(id.model) + "/" + id.features);
  EXPECT_EQ(std::string(id.features).find("avx2") != std::string::npos,
            bool(__builtin_cpu_supports("avx2")));
  EXPECT_EQ(id.part, 0u);
#elif defined(__aarch64__)
  EXPECT_STREQ(id.arch, "aarch64");
  char part[64];
  std::snprintf(part, sizeof(part), "aarch64/0x%02x/0x%03x/", id.implementer, id.part);
  EXPECT_EQ(key.rfind(part, 0), 0u) << key;
  EXPECT_EQ(std::string(id.features).rfind("asimd", 0), 0u) << id.features;
  EXPECT_EQ(id.family, 0);
#endif
  // Features are sorted.
  std::string prev;
  const std::string features = id.features;
  for (size_t b = 0; b < features.size();) {
    size_t e = features.find(',', b);
    if (e == std::string::npos) e = features.size();
    const std::string f = features.substr(b, e - b);
    EXPECT_LT(prev, f);
    prev = f;
    b = e + 1;
  }
}

// Under qemu-aarch64 with QEMU_CPU set by the ctest entry: the modelled core's MIDR.
TEST(CpuIdentity, MatchesTheExpectedCore) {
  const char* name = std::getenv("KILN_EXPECT_CPU_NAME");
  const char* key = std::getenv("KILN_EXPECT_CPU_KEY");
  if (!name || !key) GTEST_SKIP() << "KILN_EXPECT_CPU_NAME / KILN_EXPECT_CPU_KEY not set";
  EXPECT_STREQ(cpu_identity().name, name);
  EXPECT_STREQ(cpu_identity().key, key);
}

TEST(CpuIdentity, ArmCoreNames) {
  EXPECT_STREQ(detail::arm_core_name(0x41, 0xd08), "Cortex-A72");
  EXPECT_STREQ(detail::arm_core_name(0x41, 0xd0b), "Cortex-A76");
  EXPECT_STREQ(detail::arm_core_name(0x41, 0xd05), "Cortex-A55");
  EXPECT_EQ(detail::arm_core_name(0x61, 0xd0b), nullptr);
  CpuIdentity id{};
  detail::set_midr(id, 0x414fd0b1);
  EXPECT_EQ(id.implementer, 0x41u);
  EXPECT_EQ(id.variant, 4u);
  EXPECT_EQ(id.part, 0xd0bu);
  EXPECT_EQ(id.revision, 1u);
}

}  // namespace
}  // namespace kiln::kernels
