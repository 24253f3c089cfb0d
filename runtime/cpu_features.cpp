// CPU feature detection. x86-64: cpuid leaves 1 and 7 plus XGETBV, so AVX/AVX-512 count only when
// the OS saves their registers. aarch64: the kernel's HWCAP/HWCAP2 bits.
#include "runtime/cpu_features.h"

#include <cstdint>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#elif defined(__aarch64__)
#include <sys/auxv.h>
#endif

namespace kiln::rt {
namespace {

struct Feature {
  const char* name;
  bool present;
};

#if defined(__x86_64__) || defined(__i386__)
std::vector<Feature> detect() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  unsigned max_leaf = __get_cpuid_max(0, nullptr);
  unsigned ecx1 = 0, edx1 = 0, ebx7 = 0, ecx7 = 0, edx7 = 0, eax71 = 0;
  if (max_leaf >= 1 && __get_cpuid(1, &a, &b, &c, &d)) {
    ecx1 = c;
    edx1 = d;
  }
  if (max_leaf >= 7) {
    __cpuid_count(7, 0, a, b, c, d);
    ebx7 = b;
    ecx7 = c;
    edx7 = d;
    __cpuid_count(7, 1, a, b, c, d);
    eax71 = a;
  }
  uint64_t xcr0 = 0;
  if (ecx1 & (1u << 27)) {  // OSXSAVE
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    xcr0 = (static_cast<uint64_t>(hi) << 32) | lo;
  }
  const bool avx_os = (xcr0 & 0x6) == 0x6;
  const bool avx512_os = avx_os && (xcr0 & 0xE0) == 0xE0;
  auto bit = [](unsigned r, int i) { return ((r >> i) & 1u) != 0; };
  return {
      {"sse2", bit(edx1, 26)},
      {"sse3", bit(ecx1, 0)},
      {"ssse3", bit(ecx1, 9)},
      {"sse4.1", bit(ecx1, 19)},
      {"sse4.2", bit(ecx1, 20)},
      {"popcnt", bit(ecx1, 23)},
      {"avx", avx_os && bit(ecx1, 28)},
      {"f16c", avx_os && bit(ecx1, 29)},
      {"fma", avx_os && bit(ecx1, 12)},
      {"bmi", bit(ebx7, 3)},
      {"avx2", avx_os && bit(ebx7, 5)},
      {"bmi2", bit(ebx7, 8)},
      {"avx512f", avx512_os && bit(ebx7, 16)},
      {"avx512dq", avx512_os && bit(ebx7, 17)},
      {"avx512ifma", avx512_os && bit(ebx7, 21)},
      {"avx512cd", avx512_os && bit(ebx7, 28)},
      {"avx512bw", avx512_os && bit(ebx7, 30)},
      {"avx512vl", avx512_os && bit(ebx7, 31)},
      {"avx512vbmi", avx512_os && bit(ecx7, 1)},
      {"avx512vnni", avx512_os && bit(ecx7, 11)},
      {"avx512fp16", avx512_os && bit(edx7, 23)},
      {"avxvnni", avx_os && bit(eax71, 4)},
      {"avx512bf16", avx512_os && bit(eax71, 5)},
  };
}
#elif defined(__aarch64__)
std::vector<Feature> detect() {
  const unsigned long hw = getauxval(AT_HWCAP);
  const unsigned long hw2 = getauxval(AT_HWCAP2);
  // Bit numbers from the kernel's arch/arm64/include/uapi/asm/hwcap.h.
  auto bit = [](unsigned long r, int i) { return ((r >> i) & 1ul) != 0; };
  return {
      {"fp", bit(hw, 0)},       {"asimd", bit(hw, 1)},     {"aes", bit(hw, 3)},
      {"pmull", bit(hw, 4)},    {"sha1", bit(hw, 5)},      {"sha2", bit(hw, 6)},
      {"crc32", bit(hw, 7)},    {"atomics", bit(hw, 8)},   {"fphp", bit(hw, 9)},
      {"asimdhp", bit(hw, 10)}, {"asimdrdm", bit(hw, 12)}, {"lrcpc", bit(hw, 15)},
      {"asimddp", bit(hw, 20)}, {"sve", bit(hw, 22)},      {"asimdfhm", bit(hw, 23)},
      {"sve2", bit(hw2, 1)},    {"i8mm", bit(hw2, 13)},    {"bf16", bit(hw2, 14)},
  };
}
#else
std::vector<Feature> detect() {
  return {};
}
#endif

const std::vector<Feature>& features() {
  static const std::vector<Feature> f = detect();
  return f;
}

}  // namespace

const char* host_arch() {
#if defined(__x86_64__)
  return "x86_64";
#elif defined(__aarch64__)
  return "aarch64";
#elif defined(__arm__)
  return "arm";
#elif defined(__i386__)
  return "x86";
#else
  return "unknown";
#endif
}

FeatureState host_feature(const std::string& name) {
  for (const Feature& f : features())
    if (name == f.name) return f.present ? FeatureState::kPresent : FeatureState::kAbsent;
  return FeatureState::kUnknown;
}

std::vector<std::string> host_features() {
  std::vector<std::string> r;
  for (const Feature& f : features())
    if (f.present) r.push_back(f.name);
  return r;
}

}  // namespace kiln::rt
