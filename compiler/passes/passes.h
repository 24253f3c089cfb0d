// kiln's graph passes. Each takes a graph whose shapes are inferred (ir::infer_shapes) and
// rewrites it in place; shapes may be stale afterwards (run_pipeline re-infers between passes).
// One pass per file: compiler/passes/<name>.cpp, tested in tests/compiler/passes/<name>_test.cpp.
#pragma once

#include "compiler/ir/graph.h"

namespace kiln::passes {

// Removes Identity, Dropout, no-op Cast, Reshape/Expand/Flatten to the same shape, Mul/Div by 1
// and Add/Sub of 0 (when they do not broadcast); turns Split into Slices.
Status simplify(ir::Graph& g);

// Evaluates nodes whose inputs are all constant; turns values whose sym_value is fully known into
// constants, and the producers of symbolic int64 sym_values into SymbolicTensor nodes.
Status fold_constants(ir::Graph& g);

// Removes nodes none of whose outputs reach a graph output.
Status eliminate_dead_code(ir::Graph& g);

// Merges identical small constants and nodes with the same op, attributes and inputs.
Status eliminate_common_subexpressions(ir::Graph& g);

// The exporter's ReduceMean/Sub/Pow/ReduceMean/Add/Sqrt/Div[/Mul/Add] -> LayerNormalization.
Status fuse_layer_norm(ir::Graph& g);

// x * 0.5 * (1 + erf(x / sqrt(2))) in the exporter's orders -> Gelu (the exact form; GeluTanh is
// its own op).
Status fuse_gelu(ir::Graph& g);

// The exporter's self-attention (Reshape/Transpose of q, k, v, Q K^T, scale, mask Add, Softmax,
// times V, Transpose/Reshape back) -> Attention(q, k, v, mask?) {num_heads, scale, qkv_packed=0}.
Status fuse_attention(ir::Graph& g);

// Attention whose q, k, v are projections of one x (MatMul + bias Add, or Dense) -> one projection
// with concatenated [K, 3N] weights and Attention(qkv, -, -, mask?) {qkv_packed = 1}.
Status fuse_qkv(ir::Graph& g);

// MatMul(x, W const [K, N]) / Gemm(A, B const, C const?) [+ bias] [-> Gelu] [+ residual] -> Dense:
// y = gelu?(x W + bias) + residual (the weight GEMMs, run by the packed micro-kernels).
Status fuse_dense(ir::Graph& g);

// Dense(x, W, bias?, residual?) -> LayerNormalization over the last axis (BERT's post-LN
// sublayer output) -> Dense(x, W, bias?, residual?, ln_scale, ln_bias?) {ln_epsilon}.
Status fuse_dense_layer_norm(ir::Graph& g);

// The exporter's embedding Gathers (word, token type, position) summed by Adds, then
// LayerNormalization -> EmbeddingLayerNorm(scale, bias?, table_0, ids_0, table_1, ids_1?, ...)
// {epsilon, row_first, row_step}: gather, sum and normalise each row in one pass.
Status fuse_embed_layer_norm(ir::Graph& g);

}  // namespace kiln::passes
