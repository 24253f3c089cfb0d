// Liveness + greedy best-fit arena planning; see memory_plan.h.
#include "compiler/codegen/memory_plan.h"

#include <algorithm>
#include <numeric>

namespace kiln::codegen {

int scale_symbol_index(const std::vector<ir::Symbol>& symbols) {
  for (size_t i = 0; i < symbols.size(); ++i)
    if (symbols[i].name == "batch") return static_cast<int>(i);
  return -1;
}

Result<MemoryPlan> plan_buffers(const std::vector<BufferRequest>& requests,
                                const std::vector<ir::Symbol>& symbols, int64_t alignment) {
  MemoryPlan plan;
  plan.scale_symbol = scale_symbol_index(symbols);
  std::vector<std::string> names;
  int64_t at_max[ir::kMaxSymbols] = {};
  for (size_t i = 0; i < symbols.size() && i < ir::kMaxSymbols; ++i) {
    names.push_back(symbols[i].name);
    at_max[i] = static_cast<int>(i) == plan.scale_symbol ? 1 : symbols[i].max;
  }
  std::vector<int64_t> size(requests.size());
  for (size_t r = 0; r < requests.size(); ++r) {
    const ir::Dim& b = requests[r].bytes;
    for (int s = 0; s < ir::kMaxSymbols; ++s) {
      if (b.pow[s] == 0) continue;
      const std::string sym = s < static_cast<int>(names.size()) ? names[s] : "?";
      if (s == plan.scale_symbol && b.pow[s] > 1)
        return Status::error("memory plan: tensor '" + requests[r].name + "' (" + b.str(names) +
                             " bytes) grows faster than linearly in the scale symbol '" + sym +
                             "'; the arena cannot be scaled at run time");
      if (s != plan.scale_symbol && (s >= static_cast<int>(symbols.size()) || symbols[s].max <= 0))
        return Status::error(
            "memory plan: tensor '" + requests[r].name + "' (" + b.str(names) +
            " bytes) depends on symbol '" + sym +
            "', which has no maximum; give it one (e.g. a maximum sequence length)");
    }
    size[r] = (b.eval(at_max) + alignment - 1) / alignment * alignment;
  }

  std::vector<size_t> order(requests.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return size[a] > size[b]; });
  plan.offsets.assign(requests.size(), -1);
  std::vector<size_t> placed;
  for (size_t r : order) {
    // Placed buffers alive at the same time, by offset.
    std::vector<std::pair<int64_t, int64_t>> busy;  // [begin, end)
    for (size_t p : placed)
      if (requests[p].first <= requests[r].last && requests[r].first <= requests[p].last)
        busy.push_back({plan.offsets[p], plan.offsets[p] + size[p]});
    std::sort(busy.begin(), busy.end());
    int64_t best = -1, best_gap = INT64_MAX, cursor = 0;
    for (const auto& [b, e] : busy) {
      const int64_t gap = b - cursor;
      if (gap >= size[r] && gap < best_gap) {
        best = cursor;
        best_gap = gap;
      }
      cursor = std::max(cursor, e);
    }
    plan.offsets[r] = best >= 0 ? best : cursor;
    plan.bytes = std::max(plan.bytes, plan.offsets[r] + size[r]);
    placed.push_back(r);
  }
  return plan;
}

Result<MemoryPlan> plan_memory(const std::vector<ir::Symbol>& symbols, Lowering& L) {
  std::vector<int> first(L.tensors.size(), -1), last(L.tensors.size(), -1);
  for (size_t k = 0; k < L.nodes.size(); ++k) {
    for (int t : L.nodes[k].output_tensors)
      if (first[t] < 0) first[t] = last[t] = static_cast<int>(k);
    for (int t : L.nodes[k].input_tensors) last[t] = std::max(last[t], static_cast<int>(k));
  }
  std::vector<BufferRequest> requests;
  std::vector<int> tensor_of_request;
  for (size_t t = 0; t < L.tensors.size(); ++t) {
    const TensorInfo& info = L.tensors[t];
    if (info.storage != Storage::kArena) continue;
    ir::Dim bytes(static_cast<int64_t>(ir::dtype_size(info.dtype)));
    for (const ir::Dim& d : info.shape) bytes = bytes * d;
    requests.push_back({info.name, bytes, std::max(first[t], 0), std::max(last[t], first[t])});
    tensor_of_request.push_back(static_cast<int>(t));
  }
  KILN_ASSIGN_OR_RETURN(auto plan, plan_buffers(requests, symbols));
  for (size_t r = 0; r < requests.size(); ++r)
    L.tensors[tensor_of_request[r]].offset = plan.offsets[r];
  return plan;
}

}  // namespace kiln::codegen
