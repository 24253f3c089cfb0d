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

// x * 0.5 * (1 + erf(x / sqrt(2))) in the exporter's orders -> Gelu(approximate="none").
Status fuse_gelu(ir::Graph& g);

}  // namespace kiln::passes
