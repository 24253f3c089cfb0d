// eliminate_dead_code: keeps only nodes that contribute to a graph output; see passes.h.
#include <unordered_set>

#include "compiler/passes/passes.h"

namespace kiln::passes {

Status eliminate_dead_code(ir::Graph& g) {
  KILN_RETURN_IF_ERROR(g.topo_sort());
  std::unordered_set<const ir::Value*> live(g.outputs.begin(), g.outputs.end());
  std::unordered_set<const ir::Node*> keep;
  const auto& nodes = g.nodes();
  for (auto it = nodes.rbegin(); it != nodes.rend(); ++it) {
    const ir::Node* n = it->get();
    bool used = false;
    for (const ir::Value* o : n->outputs) used |= o && live.count(o);
    if (!used) continue;
    keep.insert(n);
    for (const ir::Value* in : n->inputs)
      if (in) live.insert(in);
  }
  g.remove_nodes_if([&](const ir::Node* n) { return !keep.count(n); });
  return Status::ok();
}

}  // namespace kiln::passes
