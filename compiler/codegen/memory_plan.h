// Arena planning for intermediate tensors (docs/architecture.md, "Storage"). The plan is made at
// the symbols' maxima with the scale symbol ("batch" if the graph has it) set to 1; at run time
// with scale value b the arena is b * bytes and a tensor lives at b * offset, which is exact as
// long as every intermediate is at most linear in the scale symbol (checked here).
#pragma once

#include <string>
#include <vector>

#include "compiler/codegen/lowering.h"
#include "compiler/ir/graph.h"

namespace kiln::codegen {

constexpr int64_t kArenaAlignment = 64;

// One arena buffer: its size as a monomial in the symbols and the node range [first, last]
// (indices into the node order) during which it must stay intact.
struct BufferRequest {
  std::string name;
  ir::Dim bytes;
  int first = 0, last = 0;
};

struct MemoryPlan {
  int64_t bytes = 0;             // arena bytes at scale 1
  int scale_symbol = -1;         // index into symbols, -1 = none
  std::vector<int64_t> offsets;  // per request, multiples of the alignment
};

// The scale symbol: "batch" if present, else -1.
int scale_symbol_index(const std::vector<ir::Symbol>& symbols);

// Greedy by size, best fit: requests sorted by size (largest first) are placed in the smallest
// gap between already-placed buffers whose lifetimes overlap theirs.
Result<MemoryPlan> plan_buffers(const std::vector<BufferRequest>& requests,
                                const std::vector<ir::Symbol>& symbols,
                                int64_t alignment = kArenaAlignment);

// Liveness over lowered.nodes for every arena tensor (views already share their source's tensor
// id, so a read through a view extends the source's life), then plan_buffers; writes
// TensorInfo::offset. Returns the plan.
Result<MemoryPlan> plan_memory(const std::vector<ir::Symbol>& symbols, Lowering& lowered);

}  // namespace kiln::codegen
