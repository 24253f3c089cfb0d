// Which CPU this is, as a tuning log names it: model.so compares a tuned schedule's key with
// cpu_identity().key before using it, and kiln-tune-probe reports the whole record. Header-only,
// libc only (model.so and the static probe both compile it in), computed once per process.
//
// key = what a tuning log matches on: the core design and the ISA features the kernels test.
//   x86_64:  "x86_64/<cpuid vendor>/<display family>/<display model>/<features>"
//   aarch64: "aarch64/<MIDR implementer>/<MIDR part>/<features>"   e.g. "aarch64/0x41/0xd0b/..."
// Stepping, variant and revision are recorded but not matched: they change errata, not the
// schedules that win. aarch64's MIDR comes from cpu0's sysfs register file, else MIDR_EL1 read
// with `mrs` (trapped and emulated by Linux when HWCAP has CPUID; qemu-user models its -cpu's
// MIDR), else /proc/cpuinfo; none of them is required (a field left at 0 just makes a key no log
// matches). On a big.LITTLE board cpu0 is usually a little core: tune with the probe pinned to the
// cores the model will run on, and read the key from its answer.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <cstring>

#if defined(__x86_64__)
#include <cpuid.h>
#endif
#if defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#endif

namespace kiln::kernels {

struct CpuIdentity {
  char arch[16];    // "x86_64" | "aarch64"
  char vendor[16];  // x86: cpuid vendor ("AuthenticAMD", "GenuineIntel"); aarch64: "0x41"
  int family, model, stepping;                    // x86 display values; aarch64: 0
  unsigned implementer, part, variant, revision;  // aarch64 MIDR_EL1 fields; x86: 0
  char features[200];  // kernel-relevant ISA features, sorted, comma-separated
  char key[320];       // what tuning logs match on (above)
  char name[96];       // for people: x86 brand string, aarch64 core name ("Cortex-A76")
};

namespace detail {

// Appends `s` (and a comma before it unless first) to a features list.
inline void cpu_add_feature(char* list, size_t size, bool present, const char* s) {
  if (!present) return;
  const size_t n = std::strlen(list);
  std::snprintf(list + n, size - n, "%s%s", n ? "," : "", s);
}

inline void cpu_trim_copy(char* out, size_t size, const char* in) {
  while (*in == ' ') ++in;
  std::snprintf(out, size, "%s", in);
  for (size_t n = std::strlen(out); n > 0 && (out[n - 1] == ' ' || out[n - 1] == '\n'); --n)
    out[n - 1] = '\0';
}

#if defined(__x86_64__)
inline void detect_x86(CpuIdentity& id) {
  std::snprintf(id.arch, sizeof(id.arch), "x86_64");
  unsigned a = 0, b = 0, c = 0, d = 0;
  const unsigned max_leaf = __get_cpuid_max(0, nullptr);
  if (__get_cpuid(0, &a, &b, &c, &d)) {
    char v[13] = {};
    std::memcpy(v, &b, 4);
    std::memcpy(v + 4, &d, 4);
    std::memcpy(v + 8, &c, 4);
    std::snprintf(id.vendor, sizeof(id.vendor), "%s", v);
  }
  if (max_leaf >= 1 && __get_cpuid(1, &a, &b, &c, &d)) {
    const int base_family = (a >> 8) & 0xF, base_model = (a >> 4) & 0xF;
    id.stepping = a & 0xF;
    id.family = base_family == 0xF ? base_family + static_cast<int>((a >> 20) & 0xFF) : base_family;
    id.model = base_family == 0x6 || base_family == 0xF
                   ? static_cast<int>(((a >> 16) & 0xF) << 4) + base_model
                   : base_model;
  }
  if (static_cast<unsigned>(__get_cpuid_max(0x80000000, nullptr)) >= 0x80000004u) {
    unsigned brand[12] = {};
    for (unsigned i = 0; i < 3; ++i)
      __get_cpuid(0x80000002 + i, &brand[4 * i], &brand[4 * i + 1], &brand[4 * i + 2],
                  &brand[4 * i + 3]);
    char text[49] = {};
    std::memcpy(text, brand, 48);
    cpu_trim_copy(id.name, sizeof(id.name), text);
  }
  // __builtin_cpu_supports also checks that the OS saves the wider registers (XGETBV).
  __builtin_cpu_init();
  char* f = id.features;
  const size_t fs = sizeof(id.features);
  cpu_add_feature(f, fs, __builtin_cpu_supports("avx2"), "avx2");
  cpu_add_feature(f, fs, __builtin_cpu_supports("avx512bw"), "avx512bw");
  cpu_add_feature(f, fs, __builtin_cpu_supports("avx512f"), "avx512f");
  cpu_add_feature(f, fs, __builtin_cpu_supports("avx512vnni"), "avx512vnni");
  // AVX-VNNI from cpuid (leaf 7, subleaf 1, EAX bit 4): clang's __builtin_cpu_supports does not
  // know "avxvnni". The VEX form needs only the AVX state, which avx2 already implies.
  unsigned eax71 = 0;
  if (max_leaf >= 7) {
    __cpuid_count(7, 1, a, b, c, d);
    eax71 = a;
  }
  cpu_add_feature(f, fs, __builtin_cpu_supports("avx2") && (eax71 & (1u << 4)), "avxvnni");
  cpu_add_feature(f, fs, __builtin_cpu_supports("fma"), "fma");
  std::snprintf(id.key, sizeof(id.key), "x86_64/%s/%d/%d/%s", id.vendor, id.family, id.model,
                id.features);
  if (!id.name[0])
    std::snprintf(id.name, sizeof(id.name), "%s %d/%d", id.vendor, id.family, id.model);
}
#endif

// Arm Ltd (implementer 0x41) cores, by MIDR part number.
inline const char* arm_core_name(unsigned implementer, unsigned part) {
  if (implementer != 0x41) return nullptr;
  static const struct {
    unsigned part;
    const char* name;
  } kParts[] = {
      {0xd03, "Cortex-A53"},  {0xd04, "Cortex-A35"},  {0xd05, "Cortex-A55"},
      {0xd07, "Cortex-A57"},  {0xd08, "Cortex-A72"},  {0xd09, "Cortex-A73"},
      {0xd0a, "Cortex-A75"},  {0xd0b, "Cortex-A76"},  {0xd0c, "Neoverse-N1"},
      {0xd0d, "Cortex-A77"},  {0xd40, "Neoverse-V1"}, {0xd41, "Cortex-A78"},
      {0xd44, "Cortex-X1"},   {0xd46, "Cortex-A510"}, {0xd47, "Cortex-A710"},
      {0xd48, "Cortex-X2"},   {0xd49, "Neoverse-N2"}, {0xd4b, "Cortex-A78C"},
      {0xd4f, "Neoverse-V2"}, {0xd80, "Cortex-A520"}, {0xd81, "Cortex-A720"},
      {0xd82, "Cortex-X4"},   {0xd8e, "Neoverse-N3"},
  };
  for (const auto& p : kParts)
    if (p.part == part) return p.name;
  return nullptr;
}

inline void set_midr(CpuIdentity& id, unsigned long long midr) {
  id.implementer = (midr >> 24) & 0xFF;
  id.variant = (midr >> 20) & 0xF;
  id.part = (midr >> 4) & 0xFFF;
  id.revision = midr & 0xF;
}

// "CPU implementer : 0x41" style lines of /proc/cpuinfo, first processor only.
inline bool read_cpuinfo_midr(CpuIdentity& id) {
  std::FILE* f = std::fopen("/proc/cpuinfo", "r");
  if (!f) return false;
  char line[256];
  int found = 0;
  while (std::fgets(line, sizeof(line), f)) {
    const char* colon = std::strchr(line, ':');
    if (!colon) continue;
    const unsigned long v = std::strtoul(colon + 1, nullptr, 0);
    if (std::strncmp(line, "CPU implementer", 15) == 0 && !(found & 1))
      id.implementer = v, found |= 1;
    else if (std::strncmp(line, "CPU variant", 11) == 0 && !(found & 2))
      id.variant = v, found |= 2;
    else if (std::strncmp(line, "CPU part", 8) == 0 && !(found & 4))
      id.part = v, found |= 4;
    else if (std::strncmp(line, "CPU revision", 12) == 0 && !(found & 8))
      id.revision = v, found |= 8;
  }
  std::fclose(f);
  return (found & 5) == 5;
}

#if defined(__aarch64__)
inline void detect_aarch64(CpuIdentity& id) {
  std::snprintf(id.arch, sizeof(id.arch), "aarch64");
  bool have_midr = false;
  if (std::FILE* f = std::fopen("/sys/devices/system/cpu/cpu0/regs/identification/midr_el1", "r")) {
    char text[64] = {};
    if (std::fgets(text, sizeof(text), f)) {
      char* end = nullptr;
      const unsigned long long midr = std::strtoull(text, &end, 16);
      if (end != text && midr != 0) set_midr(id, midr), have_midr = true;
    }
    std::fclose(f);
  }
  unsigned long hwcap = 0;
#if defined(__linux__)
  hwcap = getauxval(AT_HWCAP);
#endif
  constexpr unsigned long kAsimd = 1ul << 1, kAsimdhp = 1ul << 10, kCpuid = 1ul << 11,
                          kAsimddp = 1ul << 20;  // asm/hwcap.h
  if (!have_midr && (hwcap & kCpuid)) {
    unsigned long long midr = 0;
    __asm__ volatile("mrs %0, MIDR_EL1" : "=r"(midr));
    if (midr != 0) set_midr(id, midr), have_midr = true;
  }
  if (!have_midr) read_cpuinfo_midr(id);
  char* f = id.features;
  const size_t fs = sizeof(id.features);
  cpu_add_feature(f, fs, hwcap & kAsimd, "asimd");
  cpu_add_feature(f, fs, hwcap & kAsimddp, "asimddp");
  cpu_add_feature(f, fs, hwcap & kAsimdhp, "asimdhp");
  std::snprintf(id.vendor, sizeof(id.vendor), "0x%02x", id.implementer);
  std::snprintf(id.key, sizeof(id.key), "aarch64/0x%02x/0x%03x/%s", id.implementer, id.part,
                id.features);
  if (const char* n = arm_core_name(id.implementer, id.part))
    std::snprintf(id.name, sizeof(id.name), "%s", n);
  else
    std::snprintf(id.name, sizeof(id.name), "0x%02x/0x%03x", id.implementer, id.part);
}
#endif

inline CpuIdentity detect_cpu_identity() {
  CpuIdentity id;
  std::memset(&id, 0, sizeof(id));
#if defined(__x86_64__)
  detect_x86(id);
#elif defined(__aarch64__)
  detect_aarch64(id);
#else
  std::snprintf(id.arch, sizeof(id.arch), "unknown");
  std::snprintf(id.key, sizeof(id.key), "unknown");
  std::snprintf(id.name, sizeof(id.name), "unknown");
#endif
  return id;
}

}  // namespace detail

inline const CpuIdentity& cpu_identity() {
  static const CpuIdentity id = detail::detect_cpu_identity();
  return id;
}

// True when a tuning log's key names this CPU.
inline bool cpu_identity_matches(const char* key) {
  return key && std::strcmp(key, cpu_identity().key) == 0;
}

}  // namespace kiln::kernels
