// kiln's INT8 emulated on the host, to measure what quantization costs before anything is compiled
// (`kiln quant-report`, --min-cosine's mixed precision). A pipeline-output graph runs in the
// reference evaluator with every value kept; chosen Dense nodes multiply as kiln's INT8 GEMM does
// (activation rows quantized as kernels/kiln/kernels/gemm/s8_quantize.h does, after act_smooth;
// weights as s8_pack.h's quantize_b_s8 with the node's weight_group (quantize.h); integer dot
// products exact per group (host_gemm.h), then the same epilogue) and chosen embedding tables
// are read back from gather_s8.h's int8 rows. Single-threaded per run; runs are independent
// (const), so callers may run several at once.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "compiler/ir/graph.h"
#include "compiler/quantize/host_gemm.h"

namespace kiln::quantize {

using Values = std::unordered_map<const ir::Value*, std::shared_ptr<const ir::Tensor>>;

// Which stored weights a run emulates in INT8: (node, input index) of a Dense's weight
// (DenseIn::kWeight), an embedding Gather's table (0) or an EmbeddingLayerNorm table.
using Int8Choice = std::function<bool(const ir::Node&, size_t input)>;

// x W for one Dense, summed in double: FP32, or kiln's INT8 GEMM. x is multiplied by act_smooth
// (when given) per input channel first, in float, as the quantizer does.
struct DenseGemm {
  int64_t m = 0, k = 0, n = 0;
  int64_t group = 0;           // effective_s8_weight_group: 0 per channel
  std::vector<float> x;        // [M, K] the GEMM's left operand (x * act_smooth)
  std::vector<float> xq;       // [M, K] q - z as floats
  std::vector<float> x_scale;  // [M]
  std::vector<float> w_scale;  // [G, N], G = s8_weight_groups(K, group)
  PackedPanels w;              // FP32
  PackedPanels wq;             // int8 values as floats
  double weight_error = 0, activation_error = 0;

  // weight_group: the Dense's (quantize.h), what lowering packs W with. quantized = false: the
  // FP32 product only (fp32()), nothing quantized.
  DenseGemm(const ir::Tensor& x, const ir::Tensor& w, const ir::Tensor* act_smooth,
            int64_t weight_group, bool quantized = true);
  std::vector<double> fp32() const;
  std::vector<double> int8() const;
};

// Whether n is a Dense with a constant 2-D float32 weight (what the emulation multiplies itself).
bool is_dense_f32(const ir::Node& n);

class Int8Emulator {
 public:
  // `symbols` from passes::bind_input_symbols. With int8_tables, every embedding table marked
  // int8 in `g` (quantize.h) is quantized once here so that runs can read it back; without, runs
  // read every table in FP32 (a BERT-base word table is 94 MB to copy for nothing).
  Int8Emulator(const ir::Graph& g, std::vector<int64_t> symbols, bool int8_tables);

  // Evaluates nodes [start, end) of the graph into *vals. With `base` (every value of an earlier
  // run), a node none of whose inputs was recomputed here and none of whose weights is chosen
  // keeps its base value. Errors name the node.
  Status run(const Values* base, size_t start, const Int8Choice& int8, Values* vals) const;

  // One node on given inputs (outputs' dims from shape inference and the symbols).
  Result<std::vector<ir::Tensor>> evaluate(const ir::Node& n, std::vector<const ir::Tensor*> in,
                                           const Int8Choice& int8) const;

 private:
  const ir::Graph& g_;
  std::vector<int64_t> sym_;
  std::unordered_map<const ir::Value*, ir::Tensor> int8_tables_;  // table -> dequantized int8
};

// Cosine of two float tensors over all their elements (1 when both are zero).
double cosine(const ir::Tensor& a, const ir::Tensor& b);

}  // namespace kiln::quantize
