// What `kiln tune`'s analytic model (compiler/tune/space.h) picks for a board it cannot measure:
// the top-ranked schedules per GEMM of BERT-base and MiniLM at seq 128 on a Cortex-A72 (Pi 4) and
// a Cortex-A76 (Pi 5), 4 threads, from their cache sizes and kiln's aarch64 variant rows. An
// ESTIMATE: the model only ranks; on a board `kiln tune --runner ssh://...` measures instead.
//   kiln_tune_analytic [--threads 4]
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "compiler/tune/space.h"

using namespace kiln::tune;

namespace {

ProbeInfo board(const char* name, unsigned part, int64_t l1d, int64_t l2, bool dotprod,
                int threads) {
  ProbeInfo p;
  // MIDR implementer 0x41 (Arm) and part: the llvm-mca rates of compiler/tune/mca_rates.inc
  p.cpu = {
      {"arch", "aarch64"}, {"name", name}, {"key", name}, {"implementer", 0x41}, {"part", part}};
  p.l1d = l1d;
  p.l2 = l2;
  p.threads = threads;
  // kernels/kiln/kernels/gemm/f32_variants.inc and s8_variants.inc, aarch64 rows.
  p.variants["dense_f32"] = {{"neon_a76", dotprod, {"neon_a76", 6, 1, 240, 512, 0, 0}},
                             {"neon", true, {"neon", 6, 1, 120, 256, 0, 0}}};
  p.variants["dense_s8"] = {{"neondot", dotprod, {"neondot", 6, 1, 240, 0, 0, 0}},
                            {"neon", true, {"neon", 6, 1, 120, 0, 0, 0}}};
  return p;
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 4;
  if (argc == 3 && std::strcmp(argv[1], "--threads") == 0) threads = std::atoi(argv[2]);
  // Cortex-A72: 32 KiB L1d, 1 MiB L2 shared by the 4 cores; Cortex-A76 (BCM2712): 64 KiB L1d,
  // 512 KiB private L2 (+ 2 MiB shared L3, which the model does not use).
  const ProbeInfo boards[] = {
      board("Cortex-A72 (Pi 4)", 0xd08, 32 << 10, 1 << 20, false, threads),
      board("Cortex-A76 (Pi 5)", 0xd0b, 64 << 10, 512 << 10, true, threads)};
  struct Shape {
    const char* model;
    int64_t M, N, K;
  };
  const Shape shapes[] = {{"bert-base", 128, 2304, 768}, {"bert-base", 128, 768, 768},
                          {"bert-base", 128, 3072, 768}, {"bert-base", 128, 768, 3072},
                          {"minilm", 128, 1152, 384},    {"minilm", 128, 1536, 384},
                          {"minilm", 128, 384, 1536},    {"minilm", 16, 384, 384}};
  SpaceOptions o;
  o.max_candidates = 4;
  for (const ProbeInfo& p : boards)
    for (const char* op : {"dense_f32", "dense_s8"})
      for (const Shape& s : shapes) {
        Task t;
        t.op = op;
        t.M = s.M;
        t.N = s.N;
        t.K = s.K;
        auto c = candidates(t, p, o);
        if (!c) return std::fprintf(stderr, "%s\n", c.status().message().c_str()), 1;
        const double def = predicted_seconds(t, (*c)[0], p);
        ScheduleChoice best = (*c)[0];
        for (const ScheduleChoice& x : *c)
          if (predicted_seconds(t, x, p) < predicted_seconds(t, best, p)) best = x;
        std::printf("%-18s %-9s %-9s %4lldx%4lldx%4lld  default %-34s  pick %-34s  model %.2fx\n",
                    p.cpu["name"].get<std::string>().c_str(), op, s.model,
                    static_cast<long long>(s.M), static_cast<long long>(s.N),
                    static_cast<long long>(s.K), (*c)[0].str().c_str(), best.str().c_str(),
                    def / predicted_seconds(t, best, p));
      }
  return 0;
}
