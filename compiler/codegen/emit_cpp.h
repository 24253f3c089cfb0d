// C++ source generation: one `extern "C" int kiln_node_<i>(const kiln_call*)` per lowered node,
// with constant dims baked in and symbolic dims as expressions of c->sym[], calling the
// header-only kernels. Large graphs are split into several translation units so that they can be
// compiled in parallel.
#pragma once

#include <string>
#include <vector>

#include "compiler/codegen/lowering.h"
#include "compiler/codegen/tuning_plan.h"
#include "compiler/ir/graph.h"

namespace kiln::codegen {

// Returns `parts` (>= 1) source files; the first one also defines kiln_model_abi_version,
// kiln_model_target, kiln_model_kernel_variant and, with a tuning plan, kiln_model_tuning. Node
// i of lowered.nodes is exported as "kiln_node_<i>".
Result<std::vector<std::string>> emit_sources(const ir::Graph& g, const Lowering& lowered,
                                              const std::string& target_name, int parts,
                                              const TuningPlan* tuning = nullptr);

std::string kernel_symbol(size_t node_index);

}  // namespace kiln::codegen
