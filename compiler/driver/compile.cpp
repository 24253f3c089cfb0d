// The compile driver; see compile.h.
#include "compiler/driver/compile.h"

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <optional>

#include "compiler/codegen/emit_artifact.h"
#include "compiler/frontend/onnx/import.h"
#include "compiler/passes/pipeline.h"
#include "compiler/quantize/calibration.h"
#include "compiler/quantize/quant_report.h"
#include "compiler/quantize/quantize.h"
#include "compiler/quantize/smooth.h"
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

// What model.json's "quantization" says about an INT8 artifact (see compiler/quantize).
codegen::QuantizationMetadata int8_metadata(const quantize::QuantizeReport& r,
                                            const quantize::SmoothReport* smooth, double alpha) {
  codegen::QuantizationMetadata m;
  m.mode = "int8-dynamic";
  m.weights = "per-channel symmetric int8";
  m.activations =
      "per-row (per-token) asymmetric int8 computed at run time from each row's min/max, int32 "
      "accumulation, dequantized to float32 before bias/GELU/residual";
  if (smooth && !smooth->smoothed.empty())
    m.activations += "; per-input-channel smoothing (SmoothQuant, alpha " + fmt_alpha(alpha) +
                     ", calibrated at compile time) on " + std::to_string(smooth->smoothed.size()) +
                     " Dense";
  m.excluded = r.excluded;
  return m;
}

// Input ranges of every Dense on the calibration inputs, then smoothing (quantize/smooth.h).
Result<quantize::SmoothReport> smooth(ir::Graph& g, const CompileOptions& o) {
  std::map<std::string, ir::Tensor> given;
  if (o.calibration) {
    KILN_ASSIGN_OR_RETURN(given, o.calibration(g));
  }
  KILN_ASSIGN_OR_RETURN(quantize::CalibrationInputs in,
                        quantize::calibration_inputs(g, given, o.calibration_seq, 1));
  KILN_ASSIGN_OR_RETURN(auto ranges, quantize::dense_input_ranges(g, in.tensors));
  return quantize::smooth_int8_activations(g, ranges, o.smooth_alpha);
}

}  // namespace

Result<CompileReport> compile(const CompileOptions& o) {
  if (o.quantize != "none" && o.quantize != "int8")
    return Status::error("unknown quantize mode '" + o.quantize + "' (expected int8 or none)");
  if (o.quantize == "none" && !o.quantize_exclude.empty())
    return Status::error("quantize_exclude needs quantize int8");
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
    auto report = quantize::quantize_int8(g, {o.quantize_exclude});
    if (!report) return Status::error(o.model + ": quantize: " + report.status().message());
    r.warnings.insert(r.warnings.end(), report->warnings.begin(), report->warnings.end());
    r.quantized_layers = report->quantized.size();
    r.quantized_tables = report->embeddings.size();
    r.quantize_excluded = report->excluded;
    std::optional<quantize::SmoothReport> smoothed;
    if (o.smooth && r.quantized_layers > 0) {
      auto tc = Clock::now();
      auto s = smooth(g, o);
      if (s) {
        smoothed = *s;
        r.smoothed_layers = s->smoothed.size();
        r.calibrated = true;
      } else if (o.calibration) {  // the user's inputs: their error
        return Status::error(o.model + ": INT8 calibration: " + s.status().message());
      } else {  // generated inputs a graph cannot run (e.g. an integer input used as a divisor)
        r.warnings.push_back("INT8 calibration on generated inputs failed (" +
                             s.status().message() +
                             "): no activation smoothing; give inputs with --calibrate");
      }
      r.calibration_seconds = seconds_since(tc);
    }
    if (r.quantized_layers + r.quantized_tables > 0)
      quantization = int8_metadata(*report, smoothed ? &*smoothed : nullptr, o.smooth_alpha);
    stage("quantize_int8", g);
  }
  for (const ir::Value* v : g.outputs) r.model_outputs.push_back(v->name);
  if (o.expose_dense_outputs)
    for (const auto& n : g.nodes())
      if (n->op == ir::Op::kDense && !g.is_graph_output(n->outputs[0]))
        g.outputs.push_back(n->outputs[0]);
  r.passes_seconds = seconds_since(t1);

  auto t2 = Clock::now();
  codegen::CodegenOptions cg;
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
  r.codegen_seconds = seconds_since(t2);

  for (const auto& n : g.nodes()) r.ops[ir::op_name(n->op)]++;
  r.symbols = g.symbols;
  return r;
}

}  // namespace kiln
