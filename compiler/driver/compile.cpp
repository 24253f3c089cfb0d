// The compile driver; see compile.h.
#include "compiler/driver/compile.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <optional>

#include "compiler/codegen/emit_artifact.h"
#include "compiler/frontend/onnx/import.h"
#include "compiler/passes/pipeline.h"
#include "compiler/quantize/calibration.h"
#include "compiler/quantize/emulate.h"
#include "compiler/quantize/quant_report.h"
#include "compiler/quantize/quantize.h"
#include "compiler/quantize/smooth.h"
#include "compiler/quantize/weight_groups.h"
#include "compiler/tune/search.h"
#include "compiler/tune/space.h"
#include "compiler/tune/tuning_log.h"
#include "compiler/util/sha256.h"

namespace kiln {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

std::string fmt_alpha(double alpha) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", alpha);
  return buf;
}

// Every layer INT8 can store (Dense weights, embedding tables) in graph order with its precision
// and why, for model.json and `kiln inspect`.
std::vector<codegen::LayerPrecision> layer_precisions(const ir::Graph& g, const CompileReport& r) {
  auto listed = [](const std::vector<std::string>& names, const std::string& name) {
    return std::find(names.begin(), names.end(), name) != names.end();
  };
  std::vector<std::string> kept;
  if (r.mixed_precision)
    for (const auto& k : r.mixed_precision->kept_fp32) kept.push_back(k.name);
  std::vector<codegen::LayerPrecision> layers;
  auto add = [&](const ir::Node& n, size_t input, const std::string& name) {
    const bool dense = n.op == ir::Op::kDense;
    auto original = r.smoothed_weights.find(n.name);  // a smoothed Dense reads W * s
    const std::string weight =
        original != r.smoothed_weights.end() ? original->second : n.input(input)->name;
    codegen::LayerPrecision l{name, weight, "int8", ""};
    if (quantize::is_quantized_input(n, input)) {
      if (dense && n.input(ir::DenseIn::kActSmooth)) l.note = "smoothed";
      if (dense) l.weight_group = quantize::weight_group(n);
    } else if (listed(r.quantize_excluded, name)) {
      l.precision = "fp32", l.note = "--quantize-exclude";
    } else if (listed(r.quantize_shared, name)) {
      l.precision = "fp32", l.note = "rows shared by every input";
    } else if (listed(kept, name)) {
      l.precision = "fp32", l.note = "--min-cosine";
    } else {
      return;  // not a candidate (e.g. a Gather on a small or non-float table)
    }
    layers.push_back(std::move(l));
  };
  for (const auto& node : g.nodes()) {
    const ir::Node& n = *node;
    if (quantize::is_dense_f32(n)) add(n, ir::DenseIn::kWeight, n.name);
    if (n.op == ir::Op::kGather && n.input(0)) add(n, 0, n.name);
    if (n.op == ir::Op::kEmbeddingLayerNorm)
      for (size_t t = 0; ir::EmbeddingLayerNormIn::table(t) < n.inputs.size(); ++t) {
        const size_t i = ir::EmbeddingLayerNormIn::table(t);
        if (n.inputs[i]) add(n, i, n.name + " (" + n.inputs[i]->name + ")");
      }
  }
  return layers;
}

// What model.json's "quantization" says about an INT8 artifact (see compiler/quantize).
codegen::QuantizationMetadata int8_metadata(const ir::Graph& g, const CompileReport& r,
                                            double alpha, double min_cosine) {
  codegen::QuantizationMetadata m;
  m.mode = "int8-dynamic";
  m.layers = layer_precisions(g, r);
  int64_t group = 0;
  for (const codegen::LayerPrecision& l : m.layers) group = std::max(group, l.weight_group);
  m.weights = group ? "symmetric int8, one scale per output channel and group of " +
                          std::to_string(group) +
                          " input channels (per channel when K <= " + std::to_string(group) + ")"
                    : "per-channel symmetric int8";
  m.activations =
      "per-row (per-token) asymmetric int8 computed at run time from each row's min/max, int32 "
      "accumulation, dequantized to float32 before bias/GELU/residual";
  if (r.smoothed_layers > 0)
    m.activations += "; per-input-channel smoothing (SmoothQuant, alpha " + fmt_alpha(alpha) +
                     ", calibrated at compile time) on " + std::to_string(r.smoothed_layers) +
                     " Dense";
  m.excluded = r.quantize_excluded;
  if (r.mixed_precision) {
    m.min_cosine = min_cosine;
    m.cosine = r.mixed_precision->chosen.mean_cosine;
    m.worst_cosine = r.mixed_precision->chosen.worst_cosine;
    m.int8_cosine = r.mixed_precision->int8.mean_cosine;
  }
  return m;
}

// The calibration inputs: the caller's (o.calibration), the rest generated
// (quantize/calibration.h).
Result<std::map<std::string, ir::Tensor>> calibration_inputs(const ir::Graph& g,
                                                             const CompileOptions& o) {
  std::map<std::string, ir::Tensor> given;
  if (o.calibration) {
    KILN_ASSIGN_OR_RETURN(given, o.calibration(g));
  }
  KILN_ASSIGN_OR_RETURN(quantize::CalibrationInputs in,
                        quantize::calibration_inputs(g, given, o.calibration_seq, 1));
  return std::move(in.tensors);
}

// INT8 marks, then on calibration inputs smoothing and mixed precision (compiler/quantize). A
// calibration run that fails on generated inputs only costs the smoothing (a warning); one that
// fails on the caller's inputs, or under min_cosine, is an error.
Status quantize_int8(ir::Graph& g, const CompileOptions& o, CompileReport* r) {
  auto report = quantize::quantize_int8(g, {o.quantize_exclude, o.int8_weight_group});
  if (!report) return Status::error(o.model + ": quantize: " + report.status().message());
  r->warnings.insert(r->warnings.end(), report->warnings.begin(), report->warnings.end());
  r->quantize_excluded = report->excluded;
  r->quantize_shared = report->shared;
  const size_t marked = report->quantized.size() + report->embeddings.size();
  std::optional<quantize::SmoothReport> smoothed;
  bool groups_chosen = false;
  if ((o.smooth && !report->quantized.empty()) || (o.min_cosine > 0 && marked > 0)) {
    auto tc = Clock::now();
    auto inputs = calibration_inputs(g, o);
    Result<std::map<std::string, std::vector<float>>> ranges =
        inputs ? quantize::dense_input_ranges(g, *inputs) : inputs.status();
    if (!ranges && (o.calibration || o.min_cosine > 0))
      return Status::error(o.model + ": INT8 calibration: " + ranges.status().message());
    if (!ranges) {  // generated inputs a graph cannot run (e.g. an integer input as a divisor)
      r->warnings.push_back("INT8 calibration on generated inputs failed (" +
                            ranges.status().message() +
                            "): no activation smoothing; give inputs with --calibrate");
    } else {
      r->calibrated = true;
      if (o.smooth) {
        KILN_ASSIGN_OR_RETURN(smoothed,
                              quantize::smooth_int8_activations(g, *ranges, o.smooth_alpha));
      }
      // On the weights as smoothing left them, and before mixed precision emulates the layers.
      r->grouped_layers = quantize::keep_weight_groups_that_pay(g).grouped.size();
      groups_chosen = true;
      if (o.min_cosine > 0) {
        auto mp = quantize::keep_fp32_for_cosine(g, *inputs, smoothed ? &*smoothed : nullptr,
                                                 {o.min_cosine, std::max(1, o.jobs)});
        if (!mp) return Status::error(o.model + ": --min-cosine: " + mp.status().message());
        r->mixed_precision = std::move(*mp);
      }
    }
    r->calibration_seconds = seconds_since(tc);
  }
  if (!groups_chosen) r->grouped_layers = quantize::keep_weight_groups_that_pay(g).grouped.size();
  for (const auto& n : g.nodes()) {
    if (n->op == ir::Op::kDense) r->quantized_layers += quantize::is_quantized(*n);
    if (n->op == ir::Op::kGather) r->quantized_tables += quantize::is_quantized(*n);
    if (n->op == ir::Op::kEmbeddingLayerNorm)
      for (int64_t t : n->attr_ints("quantize_tables")) r->quantized_tables += t != 0;
  }
  r->smoothed_layers = smoothed ? smoothed->smoothed.size() : 0;
  if (smoothed)
    for (const auto& [node, w] : smoothed->original_weight) r->smoothed_weights[node] = w->name;
  return Status::ok();
}

// The log's entry for GEMM (N, K) as another kernel than (op, group), or null when the log has
// none or has this kernel too: kiln tune then ran with other INT8 options (--quantize,
// --quantize-exclude, --min-cosine, --int8-weight-group) than this compile.
const tune::Entry* other_kernel(const tune::TuningLog& log, const std::string& op, int64_t N,
                                int64_t K, int64_t group) {
  const tune::Entry* other = nullptr;
  for (const tune::Entry& e : log.entries) {
    if (e.N != N || e.K != K) continue;
    if (e.op == op && e.weight_group == group) return nullptr;  // measured, the default kept
    other = &e;
  }
  return other;
}

std::string kernel_str(const std::string& op, int64_t group) {
  return op + (group ? " with weight groups of " + std::to_string(group) : "");
}

// --tuning-log: the log's rows for each Dense of g. The log must come from a CPU of the target's
// architecture and name only variants the target's model.so has (x86-64-v3: no AVX-512).
Result<codegen::TuningPlan> tuning_plan(const ir::Graph& g, const std::string& path,
                                        CompileReport& r) {
  KILN_ASSIGN_OR_RETURN(tune::TuningLog log, tune::read_tuning_log(path));
  if (log.arch() != r.target.arch)
    return Status::error(path + ": tuned on " + log.arch() + " (" + log.cpu_name() +
                         "), but target '" + r.target.name + "' is " + r.target.arch);
  codegen::TuningPlan plan;
  plan.cpu_key = log.cpu_key();
  plan.cpu_name = log.cpu_name();
  plan.log_file = "tuning.json";  // copied into the artifact (and so into --bundle)
  KILN_ASSIGN_OR_RETURN(plan.log_sha256, util::sha256_file(path));
  plan.runner = log.runner;
  plan.threads = log.threads;
  if (!log.timings_meaningful)
    r.warnings.push_back(path + " was measured under emulation (" + log.runner +
                         "): its timings mean nothing, its schedules are only valid");
  std::vector<std::string> mismatched;  // Dense nodes whose (N, K) the log has as another kernel
  for (const auto& n : g.nodes()) {
    if (n->op != ir::Op::kDense) continue;
    ++r.dense_nodes;
    const ir::Value* w = n->inputs[ir::DenseIn::kWeight];
    if (!w || !w->constant || w->constant->dims.size() != 2) continue;
    const int64_t N = w->constant->dims[1], K = w->constant->dims[0];
    const std::string op = tune::gemm_op(*n);
    const int64_t group = quantize::weight_group(*n);
    auto rows = tune::tuned_rows(log, op, N, K, group);
    if (rows.empty()) {
      if (const tune::Entry* other = other_kernel(log, op, N, K, group))
        mismatched.push_back("'" + n->name + "' is " + kernel_str(op, group) + ", the log has " +
                             kernel_str(other->op, other->weight_group));
      continue;
    }
    for (const tune::TunedRow& row : rows)
      if (!target::builds_avx512(r.target) && tune::is_avx512_variant(row.schedule.variant))
        return Status::error(path + ": node '" + n->name + "' is tuned with variant '" +
                             row.schedule.variant + "', which target '" + r.target.name +
                             "' does not build (no AVX-512): tune with --target " + r.target.name);
    plan.nodes[n.get()] = std::move(rows);
  }
  if (!mismatched.empty())
    r.warnings.push_back(path + ": " + std::to_string(mismatched.size()) +
                         " Dense node(s) keep the default schedule: the log measured their GEMM "
                         "as another kernel (" +
                         mismatched.front() + (mismatched.size() > 1 ? ", ..." : "") +
                         "): give kiln tune the INT8 options given to kiln compile");
  r.tuned_nodes = plan.nodes.size();
  r.tuning_cpu = plan.cpu_name + " (" + plan.cpu_key + ")";
  if (log.target != r.target.name)
    r.warnings.push_back(path + " was tuned for target '" + log.target + "', compiling for '" +
                         r.target.name + "'");
  return plan;
}

}  // namespace

Result<CompileReport> compile(const CompileOptions& o) {
  if (o.quantize != "none" && o.quantize != "int8")
    return Status::error("unknown quantize mode '" + o.quantize + "' (expected int8 or none)");
  if (o.quantize == "none" && !o.quantize_exclude.empty())
    return Status::error("quantize_exclude needs quantize int8");
  if (o.quantize == "none" && o.min_cosine > 0)
    return Status::error("min_cosine needs quantize int8");
  CompileReport r;
  KILN_ASSIGN_OR_RETURN(r.target, target::target_from_name(o.target));
  auto stage = [&](const std::string& name, const ir::Graph& g) {
    if (o.after_stage) o.after_stage(name, g);
  };

  auto t0 = Clock::now();
  frontend::ImportOptions import_opts;
  import_opts.max_seq = o.max_seq;
  KILN_ASSIGN_OR_RETURN(std::unique_ptr<ir::Graph> graph,
                        frontend::import_onnx(o.model, import_opts));
  ir::Graph& g = *graph;
  r.onnx_nodes = g.nodes().size();
  stage("import", g);
  r.import_seconds = seconds_since(t0);

  auto t1 = Clock::now();
  passes::PipelineOptions pipeline;
  pipeline.after_pass = stage;
  auto pipeline_report = passes::run_pipeline(g, pipeline);
  if (!pipeline_report) return Status::error(o.model + ": " + pipeline_report.status().message());
  r.fusions = pipeline_report->fusions;
  r.warnings = passes::unfused_warnings(g);
  codegen::QuantizationMetadata quantization;
  if (o.quantize == "int8") {
    KILN_RETURN_IF_ERROR(quantize_int8(g, o, &r));
    if (r.quantized_layers + r.quantized_tables > 0)
      quantization = int8_metadata(g, r, o.smooth_alpha, o.min_cosine);
    stage("quantize_int8", g);
  }
  for (const ir::Value* v : g.outputs) r.model_outputs.push_back(v->name);
  if (o.expose_dense_outputs)
    for (const auto& n : g.nodes())
      if (n->op == ir::Op::kDense && !g.is_graph_output(n->outputs[0]))
        g.outputs.push_back(n->outputs[0]);
  r.passes_seconds = seconds_since(t1);

  if (o.graph_only) {
    KILN_RETURN_IF_ERROR(o.graph_only(g));
    return r;
  }
  std::optional<codegen::TuningPlan> tuning;
  if (!o.tuning_log.empty()) {
    KILN_ASSIGN_OR_RETURN(tuning, tuning_plan(g, o.tuning_log, r));
  }

  auto t2 = Clock::now();
  codegen::CodegenOptions cg;
  cg.tuning = tuning ? &*tuning : nullptr;
  cg.output_dir = o.output_dir;
  cg.target = r.target;
  cg.source_path = std::filesystem::path(o.model).filename().string();
  KILN_ASSIGN_OR_RETURN(cg.source_sha256, util::sha256_file(o.model));
  cg.jobs = o.jobs;
  cg.quantization = quantization;
  cg.fusions = r.fusions;
  std::error_code ec;
  std::filesystem::create_directories(o.output_dir, ec);
  if (ec) return Status::error(o.output_dir + ": cannot create directory: " + ec.message());
  KILN_RETURN_IF_ERROR(codegen::emit_artifact(g, cg));
  if (tuning) {
    const std::filesystem::path copy = std::filesystem::path(o.output_dir) / tuning->log_file;
    std::error_code same;  // compiled into the directory the log is in: nothing to copy
    if (!std::filesystem::equivalent(o.tuning_log, copy, same))
      std::filesystem::copy_file(o.tuning_log, copy,
                                 std::filesystem::copy_options::overwrite_existing, ec);
    if (ec) return Status::error(copy.string() + ": cannot copy the tuning log: " + ec.message());
  }
  r.codegen_seconds = seconds_since(t2);

  for (const auto& n : g.nodes()) r.ops[ir::op_name(n->op)]++;
  r.symbols = g.symbols;
  return r;
}

}  // namespace kiln
