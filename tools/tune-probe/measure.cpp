// Timing for kiln-tune-probe (measure.h). Method: one set of operands per task (A and the weight
// random in [-1, 1] from a fixed seed, the weight packed as the compiler packs it), one C per
// candidate; every candidate runs twice to warm up, then in rounds that run each candidate once,
// the starting candidate rotating so none always runs first (right after another's cache
// traffic), until max_rounds or min_time_ms with >= 5 rounds. Per candidate: median, min, max of
// steady_clock times and spread = (p90 - p10) / median.
#include "measure.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <memory>
#include <new>

#include "kiln/kernels/gemm/pack.h"
#include "kiln/kernels/gemm/s8_dispatch.h"

namespace kiln::tune_probe {
namespace {

namespace gemm = kiln::kernels::gemm;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

// Largest |C - C_ref| / max(1, |C_ref|) a candidate may show against the default: the FP32
// variants differ in summation order (FMA, tile width), the INT8 ones compute the same int32 sums
// and differ only in the float epilogue.
constexpr double kMaxRelDiffF32 = 1e-3;
constexpr double kMaxRelDiffS8 = 1e-4;

// 64-byte aligned bytes (model.params aligns every tensor so).
class Buffer {
 public:
  explicit Buffer(size_t bytes) {
    const size_t rounded = (std::max<size_t>(bytes, 1) + 63) / 64 * 64;
    p_ = std::aligned_alloc(64, rounded);
    if (!p_) throw std::bad_alloc();
  }
  ~Buffer() { std::free(p_); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  float* f() const { return static_cast<float*>(p_); }
  void* get() const { return p_; }

 private:
  void* p_ = nullptr;
};

// Fills with uniform values in [-1, 1) (xorshift: fast enough for 64 M floats).
void fill_random(float* x, int64_t n, uint32_t seed) {
  uint32_t s = seed * 2654435761u + 1;
  for (int64_t i = 0; i < n; ++i) {
    s ^= s << 13;
    s ^= s >> 17;
    s ^= s << 5;
    x[i] = static_cast<float>(s >> 8) * (2.0f / 16777216.0f) - 1.0f;
  }
}

json schedule_json(const gemm::Schedule& s) {
  return {{"mr", s.mr},           {"panels", s.panels},    {"mc", s.mc}, {"kc", s.kc}, {"nc", s.nc},
          {"threads", s.threads}, {"prefetch", s.prefetch}};
}

template <class Table>
json table_json(const Table& t) {
  json rows = json::array();
  for (const auto& r : t)
    rows.push_back({{"name", r.name},
                    {"kernel", r.kernel},
                    {"tile", r.tile},
                    {"needs", r.needs},
                    {"supported", r.supported()},
                    {"schedule", schedule_json(r.schedule)}});
  return rows;
}

template <class Table>
std::string built_names(const Table& t) {
  std::string s;
  for (const auto& r : t) s += std::string(s.empty() ? "" : ", ") + r.name;
  return s;
}

// A candidate resolved against the op's table: its row and the schedule it runs with.
template <class Row>
struct Resolved {
  const Row* row = nullptr;
  gemm::Schedule schedule;
  std::string error;
};

template <class Table>
Resolved<typename Table::Row> resolve(const Table& t, const CandidateRequest& c) {
  Resolved<typename Table::Row> r;
  if (!c.error.empty()) {
    r.error = c.error;
    return r;
  }
  const auto* row = t.find(c.variant.c_str());
  const std::string name = c.variant.size() <= 64 ? c.variant : c.variant.substr(0, 64) + "...";
  if (!row) {
    r.error = "variant '" + name + "' is not built into this probe (built: " + built_names(t) + ")";
    return r;
  }
  if (!row->supported()) {
    r.error = "variant '" + name + "' is not supported by this CPU (needs " + row->needs + ")";
    return r;
  }
  r.row = row;
  r.schedule = row->schedule;
  if (c.has_mr) r.schedule.mr = c.mr;
  if (c.has_panels) r.schedule.panels = c.panels;
  if (c.has_mc) r.schedule.mc = c.mc;
  if (c.has_kc) r.schedule.kc = c.kc;
  if (c.has_nc) r.schedule.nc = c.nc;
  if (c.has_threads) r.schedule.threads = c.threads;
  if (c.has_prefetch) r.schedule.prefetch = c.prefetch;
  return r;
}

// Operands shared by a task's candidates.
struct Operands {
  const TaskRequest& t;
  Buffer a, bias, residual, ln_scale, ln_bias;
  gemm::Epilogue ep;

  explicit Operands(const TaskRequest& task)
      : t(task),
        a(4 * task.M * task.K),
        bias(4 * task.N),
        residual(task.residual ? 4 * task.M * task.N : 4),
        ln_scale(4 * task.N),
        ln_bias(4 * task.N) {
    fill_random(a.f(), t.M * t.K, 1);
    fill_random(bias.f(), t.N, 3);
    if (t.residual) fill_random(residual.f(), t.M * t.N, 4);
    fill_random(ln_scale.f(), t.N, 5);
    fill_random(ln_bias.f(), t.N, 6);
    ep.bias = t.bias ? bias.f() : nullptr;
    ep.gelu = t.gelu;
    ep.residual = t.residual ? residual.f() : nullptr;
    ep.ldr = t.N;
    ep.layer_norm = t.layer_norm;
    ep.ln_scale = ln_scale.f();
    ep.ln_bias = ln_bias.f();
    ep.ln_epsilon = 1e-12f;  // BERT's
  }
};

// The random weight (K x N) packed for the op.
struct F32Weight {
  Buffer packed;
  explicit F32Weight(const TaskRequest& t) : packed(4 * gemm::packed_b_floats(t.K, t.N)) {
    Buffer w(4 * t.K * t.N);
    fill_random(w.f(), t.K * t.N, 2);
    gemm::pack_b_f32(w.f(), t.K, t.N, false, packed.f());
  }
};

struct S8Weight {
  Buffer blob, workspace;
  gemm::PackedS8 view;
  explicit S8Weight(const TaskRequest& t)
      : blob(gemm::packed_b_s8_bytes(t.K, t.N, t.weight_group)),
        workspace(gemm::gemm_s8_workspace_bytes(t.M, t.K)) {
    Buffer w(4 * t.K * t.N);
    fill_random(w.f(), t.K * t.N, 2);
    if (!gemm::quantize_pack_b_s8(w.f(), t.K, t.N, false, blob.get(), t.weight_group))
      throw std::length_error("K is too large for the INT8 GEMM");
    view = gemm::packed_s8_view(blob.get(), t.K, t.N, nullptr, t.weight_group);
  }
};

double max_rel_diff(const float* c, const float* ref, int64_t n) {
  double worst = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double d =
        std::fabs(double(c[i]) - double(ref[i])) / std::max(1.0, std::fabs(double(ref[i])));
    if (!(d <= worst)) worst = d;  // NaN sticks
    if (std::isnan(worst)) break;
  }
  return worst;
}

// Value at quantile q of sorted v (linear interpolation).
double quantile(const std::vector<int64_t>& v, double q) {
  const double pos = q * (v.size() - 1);
  const size_t lo = static_cast<size_t>(pos);
  const size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (pos - lo) * (v[hi] - v[lo]);
}

// Runs the candidates. `run(row, schedule, C)` computes one GEMM into C; `reference(C)` the
// default variant's with its default schedule (used when candidate 0 cannot run).
template <class Table, class Run, class Reference>
json run_candidates(const Table& table, const TaskRequest& t, double tolerance,
                    const TimingOptions& o, Run run, Reference reference) {
  using Row = typename Table::Row;
  std::vector<Resolved<Row>> cands;
  for (const CandidateRequest& c : t.candidates) cands.push_back(resolve(table, c));
  std::vector<size_t> valid;
  for (size_t i = 0; i < cands.size(); ++i)
    if (cands[i].row) valid.push_back(i);
  const int64_t mn = t.M * t.N;
  std::vector<std::unique_ptr<Buffer>> c(cands.size());
  for (size_t i : valid) c[i] = std::make_unique<Buffer>(4 * mn);
  // Warm-up (twice each), which also leaves each candidate's result in its C.
  for (int w = 0; w < 2; ++w)
    for (size_t i : valid) run(*cands[i].row, cands[i].schedule, c[i]->f());
  std::unique_ptr<Buffer> own_ref;
  const float* ref = nullptr;
  if (cands[0].row) {
    ref = c[0]->f();
  } else if (!valid.empty()) {
    own_ref = std::make_unique<Buffer>(4 * mn);
    reference(own_ref->f());
    ref = own_ref->f();
  }
  std::vector<double> diff(cands.size(), 0);
  for (size_t i : valid) {
    if (c[i]->f() == ref) continue;
    diff[i] = max_rel_diff(c[i]->f(), ref, mn);
    if (!(diff[i] <= tolerance)) {
      char msg[160];
      std::snprintf(msg, sizeof(msg), "result differs from the default schedule by %.3g (limit %g)",
                    diff[i], tolerance);
      cands[i].error = msg;
    }
  }
  valid.erase(
      std::remove_if(valid.begin(), valid.end(), [&](size_t i) { return !cands[i].error.empty(); }),
      valid.end());
  std::vector<std::vector<int64_t>> times(cands.size());
  const auto start = Clock::now();
  const double min_ns = o.min_time_ms * 1e6;
  for (int round = 0; !valid.empty(); ++round) {
    const double elapsed = std::chrono::duration<double, std::nano>(Clock::now() - start).count();
    if (round >= o.max_rounds || (round >= 5 && elapsed >= min_ns)) break;
    for (size_t k = 0; k < valid.size(); ++k) {
      const size_t i = valid[(round + k) % valid.size()];
      const auto t0 = Clock::now();
      run(*cands[i].row, cands[i].schedule, c[i]->f());
      const auto t1 = Clock::now();
      times[i].push_back(std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count());
    }
  }
  json out = json::array();
  for (size_t i = 0; i < cands.size(); ++i) {
    if (!cands[i].error.empty() || times[i].empty()) {
      out.push_back({{"error", cands[i].error.empty() ? "not run" : cands[i].error}});
      continue;
    }
    std::vector<int64_t>& v = times[i];
    std::sort(v.begin(), v.end());
    const double median = quantile(v, 0.5);
    out.push_back({{"variant", cands[i].row->name},
                   {"schedule", schedule_json(cands[i].schedule)},
                   {"median_ns", static_cast<int64_t>(std::llround(median))},
                   {"min_ns", v.front()},
                   {"max_ns", v.back()},
                   {"spread", median > 0 ? (quantile(v, 0.9) - quantile(v, 0.1)) / median : 0.0},
                   {"runs", v.size()},
                   {"max_rel_diff", diff[i]}});
  }
  return out;
}

json measure(const TaskRequest& t, const kiln_backend* be, const TimingOptions& o) {
  const Operands ops(t);
  if (t.op == Op::kDenseF32) {
    const F32Weight w(t);
    auto run = [&](const gemm::Variant& v, const gemm::Schedule& s, float* C) {
      gemm::gemm_f32_packed_with(v.kernels(), s, be, t.M, t.N, t.K, ops.a.f(), t.K, w.packed.f(), C,
                                 t.N, ops.ep);
    };
    const gemm::Variant& def = gemm::gemm_f32_variant();
    return run_candidates(gemm::gemm_f32_table(), t, kMaxRelDiffF32, o, run,
                          [&](float* C) { run(def, def.schedule, C); });
  }
  const S8Weight w(t);
  auto run = [&](const gemm::S8Variant& v, const gemm::Schedule& s, float* C) {
    gemm::gemm_s8_packed_with(v.kernels(), s, be, t.M, t.N, t.K, ops.a.f(), t.K, w.view, C, t.N,
                              ops.ep, w.workspace.get());
  };
  const gemm::S8Variant& def = gemm::gemm_s8_variant();
  return run_candidates(gemm::gemm_s8_table(), t, kMaxRelDiffS8, o, run,
                        [&](float* C) { run(def, def.schedule, C); });
}

}  // namespace

json variants_json() {
  return {{"dense_f32", table_json(gemm::gemm_f32_table())},
          {"dense_s8", table_json(gemm::gemm_s8_table())}};
}

json defaults_json() {
  return {{"dense_f32", gemm::gemm_f32_variant().name}, {"dense_s8", gemm::gemm_s8_variant().name}};
}

json measure_task(const TaskRequest& task, const kiln_backend* be, const TimingOptions& options) {
  json out = {{"id", task.id}, {"op", op_name(task.op)}};
  if (task.weight_group) out["weight_group"] = task.weight_group;
  if (!task.error.empty()) {
    out["error"] = task.error;
    return out;
  }
  try {
    out["candidates"] = measure(task, be, options);
  } catch (const std::bad_alloc&) {
    out["error"] = "out of memory for this task (M=" + std::to_string(task.M) +
                   " N=" + std::to_string(task.N) + " K=" + std::to_string(task.K) + ")";
  } catch (const std::exception& e) {
    out["error"] = e.what();
  }
  return out;
}

}  // namespace kiln::tune_probe
