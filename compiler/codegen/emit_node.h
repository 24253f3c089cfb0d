// Per-op C++ emission: the body of one `kiln_node_<i>` for one lowered node, calling the
// header-only kernels with the node's dims baked in. Which emitter an op gets is decided by its
// registry kind (compiler/ir/ops.h), then by the op.
#pragma once

#include <sstream>

#include "compiler/codegen/lowering.h"
#include "compiler/tune/tuning_log.h"

namespace kiln::codegen {

// Appends the node function to `out`, and the static constants it reads to `statics`. A Dense
// with `tuned` rows (kiln compile --tuning-log) calls kernels/gemm/tuned.h with them.
Status emit_node(const ir::Graph& g, const LoweredNode& node, size_t index,
                 std::ostringstream& statics, std::ostringstream& out,
                 const std::vector<tune::TunedRow>* tuned = nullptr);

// Whether codegen can emit `op` (the registry test checks every runtime op).
bool has_emitter(ir::Op op);

}  // namespace kiln::codegen
