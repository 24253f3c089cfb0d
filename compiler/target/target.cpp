// Target presets and host feature detection.
#include "compiler/target/target.h"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>

#if defined(__x86_64__)
#include <cpuid.h>
#endif

namespace kiln::target {

const std::vector<std::string>& target_names() {
  static const std::vector<std::string> kNames = {"native",  "x86-64-v3", "x86-64-v4",
                                                  "aarch64", "rpi4",      "rpi5"};
  return kNames;
}

namespace {

#if defined(__x86_64__)
std::vector<std::string> x86_features() {
  unsigned a, b, c, d;
  std::vector<std::string> f;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  const bool fma = c & bit_FMA;
  const bool osxsave = c & bit_OSXSAVE;
  uint64_t xcr0 = 0;
  if (osxsave) {
    unsigned lo, hi;
    __asm__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    xcr0 = (static_cast<uint64_t>(hi) << 32) | lo;
  }
  const bool ymm = (xcr0 & 0x6) == 0x6, zmm = (xcr0 & 0xe6) == 0xe6;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return f;
  if (ymm && (b & bit_AVX2)) f.push_back("avx2");
  if (ymm && fma) f.push_back("fma");
  if (zmm) {
    if (b & bit_AVX512F) f.push_back("avx512f");
    if (b & bit_AVX512BW) f.push_back("avx512bw");
    if (b & bit_AVX512VL) f.push_back("avx512vl");
    if (b & bit_AVX512DQ) f.push_back("avx512dq");
    if (c & bit_AVX512VNNI) f.push_back("avx512vnni");
  }
  return f;
}
#endif

#if defined(__aarch64__)
// aarch64 feature names as in /proc/cpuinfo "Features".
std::vector<std::string> arm_features() {
  std::vector<std::string> f;
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("Features", 0) != 0) continue;
    std::istringstream words(line.substr(line.find(':') + 1));
    std::string w;
    while (words >> w)
      if (w == "asimd" || w == "asimddp" || w == "fphp" || w == "asimdhp") f.push_back(w);
    break;
  }
  return f;
}
#endif

// gcc's name for -march=native (e.g. "znver4"), or "native" if it cannot be asked.
std::string native_cpu_name(const std::string& cxx) {
  std::string cmd = cxx + " -march=native -Q --help=target 2>/dev/null";
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return "native";
  char buf[512];
  std::string cpu = "native";
  while (fgets(buf, sizeof(buf), p)) {
    std::istringstream line(buf);
    std::string key, value;
    line >> key >> value;
    if (key == "-march=" && !value.empty()) cpu = value;
  }
  pclose(p);
  return cpu;
}

}  // namespace

std::vector<std::string> host_features() {
#if defined(__x86_64__)
  return x86_features();
#elif defined(__aarch64__)
  return arm_features();
#else
  return {};
#endif
}

bool builds_avx512(const Target& t) {
  return t.arch == "x86_64" &&
         std::find(t.defines.begin(), t.defines.end(), "KILN_GEMM_NO_AVX512") == t.defines.end();
}

Result<Target> target_from_name(const std::string& name) {
  Target t;
  t.name = name;
  if (name == "native") {
#if defined(__x86_64__)
    t.arch = "x86_64";
#elif defined(__aarch64__)
    t.arch = "aarch64";
#else
    return Status::error("target 'native': unsupported host architecture");
#endif
    t.cxx = "g++";
    t.cxx_flags = {"-march=native"};
    t.features = host_features();
    t.cpu = native_cpu_name(t.cxx);
  } else if (name == "x86-64-v3" || name == "x86-64-v4") {
    t.arch = "x86_64";
    t.cpu = name;
    t.cxx = "g++";
    t.cxx_flags = {"-march=" + name};
    t.features = name == "x86-64-v3"
                     ? std::vector<std::string>{"avx2", "fma"}
                     : std::vector<std::string>{"avx512f", "avx512bw", "avx512vl", "avx512dq"};
    if (name == "x86-64-v3") t.defines = {"KILN_GEMM_NO_AVX512"};
  } else if (name == "aarch64" || name == "rpi4" || name == "rpi5") {
    t.arch = "aarch64";
#if defined(__aarch64__)
    t.cxx = "g++";
#else
    t.cxx = "aarch64-linux-gnu-g++";
#endif
    if (name == "aarch64") {
      t.cpu = "generic";
      t.cxx_flags = {"-march=armv8-a"};
      t.features = {"asimd"};
    } else if (name == "rpi4") {
      t.cpu = "cortex-a72";
      t.cxx_flags = {"-mcpu=cortex-a72"};
      t.features = {"asimd"};
    } else {
      t.cpu = "cortex-a76";
      t.cxx_flags = {"-mcpu=cortex-a76"};
      t.features = {"asimd", "asimddp", "fphp", "asimdhp"};
    }
  } else {
    std::string valid;
    for (const auto& n : target_names()) valid += (valid.empty() ? "" : ", ") + n;
    return Status::error("unknown target '" + name + "' (valid targets: " + valid + ")");
  }
  return t;
}

}  // namespace kiln::target
