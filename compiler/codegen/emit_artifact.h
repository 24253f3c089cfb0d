// Writes a complete artifact (docs/architecture.md, "Artifact format"): model.json,
// model.params, model.cpp (+ model_<k>.cpp parts for large graphs) and model.so.
#pragma once

#include <string>
#include <vector>

#include "compiler/codegen/tuning_plan.h"
#include "compiler/ir/graph.h"
#include "compiler/passes/pipeline.h"
#include "compiler/target/target.h"

namespace kiln::codegen {

constexpr const char* kCompilerVersion = KILN_VERSION;  // VERSION, via CMake
constexpr int kFormatVersion = 1;

// model.json "quantization" (written when mode is not empty; see compiler/quantize).
// One layer INT8 could store: a Dense weight or an embedding table.
struct LayerPrecision {
  std::string name;       // node name, "<node> (<table>)" for a fused embedding table
  std::string weight;     // the weight's or table's name in the model
  std::string precision;  // "int8" | "fp32"
  std::string note;       // "smoothed", "--quantize-exclude", "--min-cosine" or empty
  // INT8 Dense: weight scales per group of this many input channels (0: per output channel).
  int64_t weight_group = 0;
};

struct QuantizationMetadata {
  std::string mode;  // "int8-dynamic"
  std::string weights, activations;
  std::vector<std::string> excluded;  // node names left in FP32 by --quantize-exclude
  std::vector<LayerPrecision> layers;
  // --min-cosine (0: not asked): the target and the emulated mean / worst per-vector cosines on
  // the calibration inputs, as compiled and with every layer INT8.
  double min_cosine = 0, cosine = 0, worst_cosine = 0, int8_cosine = 0;
};

struct CodegenOptions {
  std::string output_dir;
  target::Target target;
  std::string source_path, source_sha256;  // recorded in model.json "source"
  bool keep_source = true;                 // keep model.cpp in output_dir
  int jobs = 2;                            // parallel compiler processes
  QuantizationMetadata quantization;
  std::vector<passes::FusionCount> fusions;  // recorded in model.json "compiler" for inspect
  const TuningPlan* tuning = nullptr;        // kiln compile --tuning-log; model.json "tuning"
};

// The graph must satisfy the pass pipeline's output contract.
Status emit_artifact(const ir::Graph& g, const CodegenOptions& opts);

}  // namespace kiln::codegen
