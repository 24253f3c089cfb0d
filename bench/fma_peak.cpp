// kiln_fma_peak: prints this core's FP32 FMA peak (GFLOP/s, 1 thread) for every vector width the
// CPU runs; bench/compare.py divides kiln's achieved GFLOP/s by it.
//   kiln_fma_peak          one line per ISA
//   kiln_fma_peak --json   {"avx512": GFLOP/s, "avx2": ..., "best": ..., "isa": name of best}
#include <cstdio>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "fma_peak.h"

int main(int argc, char** argv) {
  const bool as_json = argc > 1 && std::strcmp(argv[1], "--json") == 0;
  if (argc > 1 && !as_json) {
    std::fprintf(stderr, "usage: kiln_fma_peak [--json]\n");
    return 2;
  }
  std::vector<std::pair<const char*, double>> peaks;  // ISA, GFLOP/s (0 = not on this CPU)
#if defined(__x86_64__)
  peaks.emplace_back("avx512", kiln::bench::fma_peak_avx512() * 1e-9);
  peaks.emplace_back("avx2", kiln::bench::fma_peak_avx2() * 1e-9);
#elif defined(__aarch64__)
  peaks.emplace_back("neon", kiln::bench::fma_peak_neon() * 1e-9);
#endif
  std::pair<const char*, double> best{"none", 0.0};
  for (const auto& p : peaks)
    if (p.second > best.second) best = p;
  if (as_json) {
    std::string s = "{";
    for (const auto& p : peaks)
      s += "\"" + std::string(p.first) + "\": " + std::to_string(p.second) + ", ";
    s += "\"best\": " + std::to_string(best.second) + ", \"isa\": \"" + best.first + "\"}";
    std::printf("%s\n", s.c_str());
    return 0;
  }
  std::printf("FP32 FMA peak, 1 thread, best of 5 (thread CPU time):\n");
  for (const auto& p : peaks) {
    if (p.second > 0)
      std::printf("  %-7s %8.1f GFLOP/s\n", p.first, p.second);
    else
      std::printf("  %-7s not supported by this CPU\n", p.first);
  }
  return 0;
}
