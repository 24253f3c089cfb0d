// Reference evaluation of one node on constant tensors, used by constant folding (and by tests to
// run a whole graph on concrete inputs). Plain loops, double accumulation; not for speed.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "compiler/ir/graph.h"

namespace kiln::passes {

// Whether the evaluator has a hook for `op` (the registry test checks every op).
bool has_evaluator(ir::Op op);

// `inputs[i]` is nullptr for an omitted optional input. Output dtypes and dims come from shape
// inference (`n.outputs[i]->dtype` and `out_dims[i]`), so views need no recomputation here.
Result<std::vector<ir::Tensor>> evaluate_node(const ir::Node& n,
                                              const std::vector<const ir::Tensor*>& inputs,
                                              const std::vector<std::vector<int64_t>>& out_dims);

// Dense's epilogue on y = x W ([m, cols], double): + bias (input 2), GELU (attr gelu), + residual
// (input 3), then LayerNorm with inputs 4/5 over the float-rounded row; writes `out` (its dtype,
// dims set by the caller). The evaluator's Dense and quantize/quant_report.cpp (INT8 emulation).
void dense_epilogue(const ir::Node& n, const std::vector<const ir::Tensor*>& inputs, int64_t m,
                    int64_t cols, const std::vector<double>& y, ir::Tensor* out);

// The symbol values (batch, seq, ...) that concrete graph inputs give: a dim that is exactly one
// symbol binds it (unbound symbols are 1). Errors name the input: missing, wrong rank, a dim
// inconsistent with the others, wrong dtype.
Result<std::vector<int64_t>> bind_input_symbols(const ir::Graph& g,
                                                const std::map<std::string, ir::Tensor>& inputs);

}  // namespace kiln::passes
