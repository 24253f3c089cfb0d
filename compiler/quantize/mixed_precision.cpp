// Automatic mixed precision: which INT8 weights to keep in FP32 (mixed_precision.h).
#include "compiler/quantize/mixed_precision.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <mutex>
#include <set>
#include <thread>

#include "compiler/passes/evaluate.h"
#include "compiler/quantize/emulate.h"
#include "compiler/quantize/quantize.h"

namespace kiln::quantize {
namespace {

using ir::Node;
using ir::Tensor;
using ir::Value;

// One stored weight that may be INT8: input `input` of `node`.
struct Candidate {
  Node* node = nullptr;
  size_t input = 0;
  size_t position = 0;  // of node in graph order (its run starts there)
  std::string name, weight;
};

std::vector<Candidate> candidates(ir::Graph& g, const SmoothReport* smoothing) {
  std::vector<Candidate> c;
  const auto& nodes = g.nodes();
  for (size_t p = 0; p < nodes.size(); ++p) {
    Node& n = *nodes[p];
    for (size_t i = 0; i < n.inputs.size(); ++i) {
      if (!is_quantized_input(n, i)) continue;
      std::string weight = n.inputs[i]->name;
      if (smoothing && smoothing->original_weight.count(n.name))
        weight = smoothing->original_weight.at(n.name)->name;
      c.push_back({&n, i, p,
                   n.op == ir::Op::kEmbeddingLayerNorm ? n.name + " (" + weight + ")" : n.name,
                   weight});
    }
  }
  return c;
}

// Per-vector cosines of every float output of a run against the FP32 run.
Fidelity fidelity(const std::vector<const Value*>& outputs, const Values& base, const Values& run) {
  Fidelity f;
  for (const Value* v : outputs) {
    auto it = run.find(v);
    if (it == run.end()) continue;  // not recomputed: identical
    const Tensor &a = *it->second, &b = *base.at(v);
    const int64_t h =
        a.dims.empty() || a.dims.back() == 0 ? std::max<int64_t>(a.numel(), 1) : a.dims.back();
    const int64_t rows = a.numel() / h;
    const float *x = a.data<float>(), *y = b.data<float>();
    double sum = 0;
    for (int64_t r = 0; r < rows; ++r) {
      double xy = 0, xx = 0, yy = 0;
      for (int64_t j = r * h; j < (r + 1) * h; ++j)
        xy += double(x[j]) * y[j], xx += double(x[j]) * x[j], yy += double(y[j]) * y[j];
      const double c = xx > 0 && yy > 0 ? xy / std::sqrt(xx * yy) : (xx == yy ? 1.0 : 0.0);
      sum += c;
      f.worst_cosine = std::min(f.worst_cosine, c);
    }
    if (rows > 0) f.mean_cosine = std::min(f.mean_cosine, sum / double(rows));
  }
  return f;
}

// Candidate i's loss alone, for every i, on `threads` threads.
Result<std::vector<double>> alone_cosines(const Int8Emulator& ex, const std::vector<Candidate>& c,
                                          const std::vector<const Value*>& outputs,
                                          const Values& base, int threads) {
  std::vector<double> cos(c.size(), 1.0);
  std::atomic<size_t> next{0};
  std::mutex mu;
  Status failed = Status::ok();
  auto work = [&] {
    for (size_t i; (i = next++) < c.size();) {
      const Candidate& k = c[i];
      Values run;
      Status s = ex.run(
          &base, k.position,
          [&](const Node& n, size_t input) { return &n == k.node && input == k.input; }, &run);
      if (!s.ok()) {
        std::lock_guard<std::mutex> lock(mu);
        if (failed.ok()) failed = s;
        next = c.size();
        return;
      }
      cos[i] = fidelity(outputs, base, run).mean_cosine;
    }
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < std::min<int>(threads, static_cast<int>(c.size())); ++t)
    pool.emplace_back(work);
  work();
  for (std::thread& t : pool) t.join();
  if (!failed.ok()) return failed;
  return cos;
}

// Drops the INT8 mark of candidate c (and its smoothing).
void keep_fp32(const Candidate& c, SmoothReport* smoothing) {
  Node& n = *c.node;
  if (n.op == ir::Op::kEmbeddingLayerNorm) {
    std::vector<int64_t> tables = n.attr_ints("quantize_tables");
    tables[(c.input - ir::EmbeddingLayerNormIn::kFirstTable) / 2] = 0;
    if (std::any_of(tables.begin(), tables.end(), [](int64_t t) { return t != 0; })) {
      n.attrs["quantize_tables"] = tables;
      return;
    }
    n.attrs.erase("quantize_tables");
  }
  n.attrs.erase("quantize");
  n.attrs.erase("weight_group");  // an FP32 GEMM has no weight scales
  if (n.op == ir::Op::kDense && smoothing) remove_smoothing(n, *smoothing);
}

}  // namespace

Result<MixedPrecisionReport> keep_fp32_for_cosine(ir::Graph& g,
                                                  const std::map<std::string, Tensor>& inputs,
                                                  SmoothReport* smoothing,
                                                  const MixedPrecisionOptions& options) {
  if (!(options.min_cosine > 0 && options.min_cosine <= 1))
    return Status::error("the minimum cosine must be in (0, 1], got " +
                         std::to_string(options.min_cosine));
  std::vector<const Value*> outputs;
  for (const Value* v : g.outputs)
    if (v->dtype == ir::DType::kFloat32) outputs.push_back(v);
  if (outputs.empty())
    return Status::error("mixed precision compares float32 outputs; the model has none");
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> sym, passes::bind_input_symbols(g, inputs));
  const Int8Emulator ex(g, sym, /*int8_tables=*/true);
  MixedPrecisionReport r;
  const std::vector<Candidate> c = candidates(g, smoothing);
  r.candidates = c.size();

  Values base;
  for (const Value* v : g.inputs) base[v] = std::make_shared<const Tensor>(inputs.at(v->name));
  KILN_RETURN_IF_ERROR(ex.run(
      nullptr, 0, [](const Node&, size_t) { return false; }, &base));
  // Every candidate INT8 except the first `keep` of `order`.
  std::vector<size_t> order(c.size());
  for (size_t i = 0; i < c.size(); ++i) order[i] = i;
  auto with_fp32 = [&](size_t keep) -> Result<Fidelity> {
    std::set<std::pair<const Node*, size_t>> fp32;
    for (size_t i = 0; i < keep; ++i) fp32.insert({c[order[i]].node, c[order[i]].input});
    auto int8 = [&](const Node& n, size_t input) {
      return is_quantized_input(n, input) && !fp32.count({&n, input});
    };
    Values run;
    KILN_RETURN_IF_ERROR(ex.run(&base, 0, int8, &run));
    ++r.runs;
    return fidelity(outputs, base, run);
  };
  r.runs = 1;
  KILN_ASSIGN_OR_RETURN(r.int8, with_fp32(0));
  r.chosen = r.int8;
  if (r.int8.mean_cosine >= options.min_cosine || c.empty()) return r;

  KILN_ASSIGN_OR_RETURN(std::vector<double> alone,
                        alone_cosines(ex, c, outputs, base, std::max(1, options.threads)));
  r.runs += static_cast<int>(c.size());
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return alone[a] < alone[b]; });
  // Fewest kept: keeping all (k = size) is exact, so the search starts with that as the answer.
  size_t lo = 1, hi = c.size();
  r.chosen = Fidelity{};
  while (lo < hi) {
    const size_t mid = lo + (hi - lo) / 2;
    KILN_ASSIGN_OR_RETURN(Fidelity f, with_fp32(mid));
    if (f.mean_cosine >= options.min_cosine)
      hi = mid, r.chosen = f;
    else
      lo = mid + 1;
  }
  for (size_t i = 0; i < hi; ++i) {
    keep_fp32(c[order[i]], smoothing);
    r.kept_fp32.push_back({c[order[i]].name, c[order[i]].weight, alone[order[i]]});
  }
  return r;
}

}  // namespace kiln::quantize
