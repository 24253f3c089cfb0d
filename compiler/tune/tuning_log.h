// The tuning log (`kiln tune -o tuning.json`, read by `kiln compile --tuning-log`): what the probe
// measured for each distinct Dense GEMM of a model on one CPU, and the schedule chosen. Versioned
// JSON, keyed by the CPU's identity (kernels/kiln/kernels/cpu_identity.h) and by (op, M, N, K).
// Format: docs/architecture.md, "Tuning".
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "compiler/ir/status.h"

namespace kiln::tune {

constexpr const char* kTuningLogFormat = "kiln-tuning";
constexpr int kTuningLogVersion = 1;

// One point of the schedule space: a GEMM micro-kernel variant and kernels/gemm/types.h's
// Schedule (threads 0 = all of the runtime's; prefetch 1 = the next column tile's B into L2).
struct ScheduleChoice {
  std::string variant;
  int mr = 0, panels = 0;
  int64_t mc = 0, kc = 0, nc = 0;
  int threads = 0;
  int prefetch = 1;

  bool operator==(const ScheduleChoice& o) const {
    return variant == o.variant && mr == o.mr && panels == o.panels && mc == o.mc && kc == o.kc &&
           nc == o.nc && threads == o.threads && prefetch == o.prefetch;
  }
  std::string str() const;  // "avx512 mr14 p2 mc112 kc0 nc0 t0" (+ " pf0" without prefetch)
};

// The schedule as JSON: the probe's candidate format, the log's and model.json's.
nlohmann::ordered_json schedule_json(const ScheduleChoice& s);

struct Timing {
  ScheduleChoice schedule;
  double median_ns = 0, min_ns = 0, spread = 0;  // spread: (p90 - p10) / median
};

// A distinct GEMM of the model (tuned once): op "dense_f32" | "dense_s8",
// C[M, N] = A[M, K] W[K, N] + epilogue.
struct Task {
  std::string op;
  int64_t M = 0, N = 0, K = 0;
  bool gelu = false, residual = false, layer_norm = false;
  // dense_s8: rows of K per weight scale (kernels/gemm/s8_pack.h), 0 = one per output channel.
  // The grouped kernel runs other passes than the per-channel one, so it is its own task.
  int64_t weight_group = 0;
  std::vector<std::string> nodes;  // the model's Dense nodes with this shape
  double flops() const { return 2.0 * M * N * K; }
  std::string str() const;  // "dense_f32 128x2304x768"
};

// A task and what the probe measured for it.
struct Entry : Task {
  Timing default_timing, best;  // best == default when nothing beat it
  bool tuned = false;           // best is not the default schedule
  int measured = 0;             // candidates timed
  double gain() const {
    return best.median_ns > 0 ? default_timing.median_ns / best.median_ns - 1 : 0;
  }
};

struct TuningLog {
  int version = kTuningLogVersion;
  std::string kiln_version;
  nlohmann::json cpu;  // the probe's "cpu" object (arch, key, name, family/model/stepping, MIDR)
  nlohmann::json cache;
  std::string target;              // --target it was tuned for
  std::string runner;              // "local", "ssh://pi@pi5:22", ...
  bool timings_meaningful = true;  // false under qemu
  int threads = 0;
  std::vector<int> cpus;
  std::string model, model_sha256, quantize;
  std::vector<int64_t> seq, batch;
  double budget_seconds = 0, seconds = 0;
  std::vector<Entry> entries;

  std::string cpu_key() const;
  std::string cpu_name() const;
  std::string arch() const;
};

nlohmann::ordered_json to_json(const TuningLog& log);
// Checks everything codegen relies on; errors name `source` and the entry at fault.
Result<TuningLog> tuning_log_from_json(const nlohmann::json& j, const std::string& source);
Result<TuningLog> read_tuning_log(const std::string& path);
Status write_tuning_log(const TuningLog& log, const std::string& path);

// What codegen emits for one Dense (kernels/gemm/tuned.h TunedSchedule rows): the log's entries
// for (op, N, K), sorted by M; a call with M uses the first row whose max_m >= M. Each row's
// max_m is the geometric midpoint to the next entry's M (the last one: unbounded, -1 here).
// Empty when no entry for (op, N, K) was tuned (the default schedule is then used everywhere).
struct TunedRow {
  int64_t max_m = -1;
  ScheduleChoice schedule;
};
std::vector<TunedRow> tuned_rows(const TuningLog& log, const std::string& op, int64_t N, int64_t K,
                                 int64_t weight_group = 0);

}  // namespace kiln::tune
