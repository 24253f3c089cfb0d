// INT8 dynamic quantization, compiler side (docs/architecture.md, "INT8 quantization").
//
// quantize_int8 runs after passes::run_pipeline. It marks nodes with the attribute
// `quantize` = "int8"; lowering and codegen read the mark:
//   - every Dense (weight-side MatMul/Gemm): W becomes per-output-channel symmetric int8
//     (gemm/s8_pack.h), activations are quantized per row at run time by the INT8 GEMM;
//   - every Gather on a constant float32 [V, H] table along axis 0 (embeddings): the table is
//     stored int8 with one symmetric scale per row and dequantized on gather (gather_s8.h).
// Attention, Softmax, LayerNormalization and every other op stay FP32.
//
// Exclusions: a node is left in FP32 when its node name or its weight/table name matches one of
// the glob patterns (`*` = any run of characters, `?` = one character, everything else literal,
// the whole name must match; e.g. "*/pooler/*", "*attention/output*").
#pragma once

#include <string>
#include <vector>

#include "compiler/ir/graph.h"

namespace kiln::quantize {

struct QuantizeOptions {
  std::vector<std::string> exclude;  // glob patterns over node and weight names
};

struct QuantizeReport {
  std::vector<std::string> quantized;   // Dense node names marked int8, graph order
  std::vector<std::string> embeddings;  // Gather node names whose table is stored int8
  std::vector<std::string> excluded;    // node names left in FP32 by an exclude pattern
  std::vector<std::string> warnings;    // for the user (unused patterns, nothing to quantize)
};

// The value of the `quantize` attribute this pass sets.
constexpr const char* kInt8 = "int8";

// Whether `text` matches the glob `pattern` (whole string; `*`, `?`).
bool glob_match(const std::string& pattern, const std::string& text);

// Whether codegen should store this node's weight / table as int8 (inline: codegen reads the
// mark without linking the pass).
inline bool is_quantized(const ir::Node& n) {
  return n.attr_string("quantize", "") == kInt8;
}

// Marks the graph's Dense and embedding Gather nodes (see above). The graph must be a pass
// pipeline output. Never fails on a model without quantizable layers: that is a warning.
Result<QuantizeReport> quantize_int8(ir::Graph& g, const QuantizeOptions& opts);

}  // namespace kiln::quantize
