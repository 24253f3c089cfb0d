// `kiln tune`'s search (docs/architecture.md, "Tuning"): the model's distinct Dense GEMMs at the
// requested batch / seq, each tuned once; per GEMM the analytic model's most promising schedules
// (space.h) are timed side by side by the probe, and the best replaces the default only when it
// is clearly faster, so tuning never makes a GEMM slower.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "compiler/ir/graph.h"
#include "compiler/tune/space.h"
#include "compiler/tune/tuning_log.h"

namespace kiln::tune {

// The tuning op of a Dense node: "dense_s8" when compiler/quantize marked it INT8, else
// "dense_f32".
std::string gemm_op(const ir::Node& dense);

// The distinct (op, M, N, K) of g's Dense nodes for every (batch, seq) pair; symbols other than
// batch take the seq value (within their compiled maxima), as calibration does.
Result<std::vector<Task>> dense_tasks(const ir::Graph& g, const std::vector<int64_t>& batches,
                                      const std::vector<int64_t>& seqs);

struct Progress {
  size_t done = 0, total = 0;
  double best_gain = 0;  // the largest accepted gain so far (0.07 = 7 % faster)
  std::string best_task;
  double elapsed_seconds = 0, eta_seconds = 0;
};

struct SearchOptions {
  SpaceOptions space;
  double budget_seconds = 300;
  int threads = 0;        // 0: the probe's (every CPU it may use)
  std::vector<int> cpus;  // pin the probe to these cores (empty: no pinning)
  // A schedule replaces the default only if its median is this much lower and its fastest run is
  // lower too (the probe times candidates in interleaved rounds, so both see the same noise).
  double min_gain = 0.02;
  std::function<void(const Progress&)> on_progress;
  // Every timed candidate (verbose output): the task, its schedule, its timing or error.
  std::function<void(const Task&, const ScheduleChoice&, const Result<Timing>&)> on_candidate;
};

using ProbeFn = std::function<Result<nlohmann::json>(const nlohmann::json& request)>;

// The probe request for one task (also what tests send).
nlohmann::json probe_request(const std::vector<Task>& tasks,
                             const std::vector<std::vector<ScheduleChoice>>& candidates,
                             const SearchOptions& o, double min_time_ms);

// Tunes every task; the log's CPU, cache and threads come from `info` (the probe's identify
// answer). Entries of tasks the budget left no time for keep the default (tuned = false).
Result<TuningLog> search(const std::vector<Task>& tasks, const ProbeInfo& info,
                         const SearchOptions& o, const ProbeFn& run);

}  // namespace kiln::tune
