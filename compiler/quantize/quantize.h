// INT8 dynamic quantization, compiler side (docs/architecture.md, "INT8 quantization").
//
// quantize_int8 runs after passes::run_pipeline. It marks nodes with the attribute
// `quantize` = "int8"; lowering and codegen read the mark:
//   - every Dense (weight-side MatMul/Gemm): W becomes symmetric int8 with one scale per output
//     channel and group of `weight_group` input channels (attribute `weight_group`, set when K
//     is larger than the group; gemm/s8_pack.h), activations are quantized per row at run time
//     by the INT8 GEMM;
//   - every Gather on a constant float32 [V, H] table along axis 0 (embeddings): the table is
//     stored int8 with one symmetric scale per row and dequantized on gather (gather_s8.h);
//     the same for each such table of an EmbeddingLayerNorm (attribute `quantize_tables`, one
//     0/1 per table; `quantize` = "int8" when any is 1; excluded by node or table name).
// Attention, Softmax, LayerNormalization and every other op stay FP32, and so do embedding tables
// whose rows every input shares: an EmbeddingLayerNorm table read by position (no ids) and any
// table of at most kSharedTableRows rows (token types). Their rounding error is added to every
// token alike and does not average out in pooled embeddings: on tests/quant's models they carried
// most of what INT8 still lost (emulated mean per-token cosine 0.999960 -> 0.999986 on the outlier
// model, 0.999950 -> 0.999969 on the control), for ~1-3 % of an INT8 BERT's size.
//
// Exclusions: a node is left in FP32 when its node name or its weight/table name matches one of
// the glob patterns (`*` = any run of characters, `?` = one character, everything else literal,
// the whole name must match; e.g. "*/pooler/*", "*attention/output*").
#pragma once

#include <string>
#include <vector>

#include "compiler/ir/graph.h"
#include "kiln/kernels/gemm/s8_pack.h"

namespace kiln::quantize {

constexpr int64_t kSharedTableRows = 64;

struct QuantizeOptions {
  std::vector<std::string> exclude;  // glob patterns over node and weight names
  // Dense weight scales per group of this many input channels (0: one per output channel); must
  // be kernels::gemm::valid_s8_weight_group.
  int64_t weight_group = kernels::gemm::kS8WeightGroup;
};

struct QuantizeReport {
  std::vector<std::string> quantized;   // Dense node names marked int8, graph order
  std::vector<std::string> embeddings;  // embedding tables stored int8: Gather node names,
                                        // "<EmbeddingLayerNorm node> (<table>)" for fused ones
  std::vector<std::string> excluded;    // node names left in FP32 by an exclude pattern (for a
                                        // fused embedding table: "<node> (<table>)")
  std::vector<std::string> shared;      // embedding tables left in FP32 as shared (above)
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

// The group along K of a marked Dense's weight scales (gemm/s8_pack.h): 0 for one scale per
// output channel (also when the group would cover all of K).
inline int64_t weight_group(const ir::Node& n) {
  return n.attr_int("weight_group", 0);
}

// Whether input `i` of a marked node is stored int8: a Dense's W, an embedding Gather's table,
// or an EmbeddingLayerNorm table t whose entry t in `quantize_tables` is 1.
inline bool is_quantized_input(const ir::Node& n, size_t i) {
  if (!is_quantized(n)) return false;
  using Embed = ir::EmbeddingLayerNormIn;
  if (n.op == ir::Op::kDense) return i == ir::DenseIn::kWeight;
  if (n.op == ir::Op::kGather) return i == 0;
  if (n.op != ir::Op::kEmbeddingLayerNorm || i < Embed::kFirstTable) return false;
  const size_t t = (i - Embed::kFirstTable) / 2;
  const std::vector<int64_t> tables = n.attr_ints("quantize_tables");
  return i == Embed::table(t) && t < tables.size() && tables[t] != 0;
}

// Marks the graph's Dense and embedding Gather nodes (see above). The graph must be a pass
// pipeline output. Never fails on a model without quantizable layers: that is a warning.
Result<QuantizeReport> quantize_int8(ir::Graph& g, const QuantizeOptions& opts);

}  // namespace kiln::quantize
