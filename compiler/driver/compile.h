// The compile driver: ONNX file -> artifact directory, in the library so that every front end
// (the `kiln` CLI's compile and quant-report, and through the CLI the Python API) runs the same
// steps: import, the pass pipeline, optional INT8 quantization, code generation and the build.
// It prints nothing; warnings and what was done come back in the report.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "compiler/ir/graph.h"
#include "compiler/passes/pipeline.h"
#include "compiler/quantize/mixed_precision.h"
#include "compiler/quantize/quantize.h"
#include "compiler/target/target.h"

namespace kiln {

struct CompileOptions {
  std::string model;       // the ONNX file
  std::string output_dir;  // created if missing
  std::string target = "native";
  int64_t max_seq = 0;                        // 0: min(512, the model's max positions)
  int jobs = 2;                               // parallel C++ compiler processes
  std::string quantize = "none";              // none | int8
  std::vector<std::string> quantize_exclude;  // glob patterns over node / weight names
  // INT8: smooth activation outlier channels into the weights (quantize/smooth.h), with input
  // ranges measured by running the FP32 graph on calibration inputs: those `calibration` returns
  // for the fused graph (e.g. from --calibrate FILE), the rest generated (quantize/calibration.h,
  // batch 1, seq calibration_seq).
  bool smooth = true;
  // INT8: Dense weight scales per group of this many input channels, 0 = one per output channel
  // (quantize.h's QuantizeOptions::weight_group).
  int64_t int8_weight_group = kernels::gemm::kS8WeightGroup;
  double smooth_alpha = 0.5;
  int64_t calibration_seq = 128;
  std::function<Result<std::map<std::string, ir::Tensor>>(const ir::Graph&)> calibration;
  // INT8: > 0 keeps the fewest layers in FP32 for the mean per-vector output cosine to INT8's
  // emulation on the calibration inputs to reach this (quantize/mixed_precision.h).
  double min_cosine = 0;
  // kiln tune's log (compiler/tune/tuning_log.h): its tuned schedules are built into model.so,
  // used on the CPU it was measured on. Empty: the default schedules.
  std::string tuning_log;
  // kiln tune: stop after quantization and hand the graph to `graph_only` (no artifact).
  std::function<Status(const ir::Graph&)> graph_only;
  // quant-report: every Dense output becomes an extra graph output after the original ones.
  bool expose_dense_outputs = false;
  // Called with the graph after import ("import"), after each pass and after quantization.
  std::function<void(const std::string& stage, const ir::Graph&)> after_stage;
};

struct CompileReport {
  target::Target target;
  size_t onnx_nodes = 0;                     // nodes as imported
  std::map<std::string, int> ops;            // op -> node count after the pipeline
  std::vector<passes::FusionCount> fusions;  // what each fusion that fired made
  std::vector<ir::Symbol> symbols;           // with their compiled maxima
  std::vector<std::string> model_outputs;  // the model's own outputs (before quant-report's extra)
  size_t quantized_layers = 0, quantized_tables = 0;
  bool calibrated = false;     // INT8: the calibration run succeeded (else a warning)
  size_t smoothed_layers = 0;  // INT8 Dense with activation smoothing
  size_t grouped_layers = 0;   // INT8 Dense with weight scales per group along K
  std::map<std::string, std::string> smoothed_weights;  // their nodes -> the model's weight names
  double calibration_seconds = 0;  // calibration and mixed precision (within passes_seconds)
  std::optional<quantize::MixedPrecisionReport> mixed_precision;  // with min_cosine
  std::vector<std::string> quantize_excluded;
  std::vector<std::string> quantize_shared;  // embedding tables kept FP32 as shared (quantize.h)
  std::vector<std::string> warnings;         // unfused fast paths, quantizer notes, tuning
  size_t tuned_nodes = 0, dense_nodes = 0;   // --tuning-log: Dense nodes with tuned schedules
  std::string tuning_cpu;                    // --tuning-log: the CPU it was measured on
  double import_seconds = 0, passes_seconds = 0, codegen_seconds = 0;
};

Result<CompileReport> compile(const CompileOptions& options);

}  // namespace kiln
