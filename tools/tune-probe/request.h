// kiln-tune-probe's request, parsed and checked before anything is allocated or timed (the
// protocol is in probe.h and docs/architecture.md, "Tuning probe"). Parsing knows nothing about
// kernels: variant names are resolved against the GEMM tables by the timing side (measure.h).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace kiln::tune_probe {

constexpr const char* kProtocol = "kiln-tune-probe/1";

// Limits that keep a hostile or mistaken request from exhausting the board.
constexpr int64_t kMaxDim = 65536;                        // M, N, K
constexpr int64_t kMaxOperandBytes = int64_t{256} << 20;  // A (M x K) or W (K x N) floats
constexpr int64_t kMaxTaskBytes = int64_t{1} << 30;       // everything one task allocates
constexpr int kMaxTasks = 256;
constexpr int kMaxCandidates = 256;
constexpr int kMaxThreads = 1024;

enum class Op { kDenseF32, kDenseS8 };
const char* op_name(Op op);

// One candidate as asked. Fields left out take the variant's default schedule (has_* false).
struct CandidateRequest {
  std::string variant;
  bool has_mr = false, has_panels = false, has_mc = false, has_kc = false, has_nc = false,
       has_threads = false, has_prefetch = false;
  int mr = 0, panels = 0, threads = 0, prefetch = 1;
  int64_t mc = 0, kc = 0, nc = 0;
  std::string error;  // non-empty: this candidate is not run, the answer carries the message
};

struct TaskRequest {
  std::string id;
  Op op = Op::kDenseF32;
  int64_t M = 0, N = 0, K = 0;
  bool bias = true, gelu = false, residual = false, layer_norm = false;
  int64_t weight_group = 0;  // dense_s8: K rows per weight scale (gemm/s8_pack.h), 0 per channel
  std::vector<CandidateRequest> candidates;
  std::string error;  // non-empty: the whole task is not run
};

struct Request {
  int threads = 0;        // 0: the CPUs the process may run on
  std::vector<int> cpus;  // empty: no pinning
  double min_time_ms = 300;
  int max_rounds = 200;
  std::vector<TaskRequest> tasks;
};

// Parses `text`. Returns the empty string, or why the request as a whole cannot be served
// (malformed JSON, wrong protocol, a bad top-level field); errors in a task or candidate are
// stored in it instead and the rest still runs.
std::string parse_request(const std::string& text, Request* out);

// Bytes a task allocates for `candidates` candidates (operands, packed weight, one C each).
int64_t task_bytes(const TaskRequest& t);

}  // namespace kiln::tune_probe
