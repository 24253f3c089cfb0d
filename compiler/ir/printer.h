// Human-readable dump of a graph (for `kiln compile --dump-ir` and test failure messages).
#pragma once

#include <string>

#include "compiler/ir/graph.h"

namespace kiln::ir {

// One line per symbol, graph input, output and node:
//   %out: float32[batch, seq, 768] = MatMul(%x: float32[batch, seq, 768], %w: const float32[768,
//   768]) {...}
// Constants are summarised (dtype, shape and the first few elements).
std::string print_graph(const Graph& g);

// "{axis=1, perm=[0, 2, 1, 3]}"-style text of one attribute value; also a stable key for CSE.
std::string attribute_str(const Attribute& a);

// "float32[batch, seq] sym=[batch, seq]" (or "?" parts when unknown).
std::string value_type_str(const Value& v, const std::vector<std::string>& symbol_names);

}  // namespace kiln::ir
