// eliminate_common_subexpressions: one copy of each identical small constant and of each
// computation (same op, attributes, inputs); see passes.h.
#include <map>
#include <sstream>
#include <unordered_map>
#include <unordered_set>

#include "compiler/ir/printer.h"
#include "compiler/passes/passes.h"
#include "compiler/passes/rewrite.h"

namespace kiln::passes {
namespace {

// Constants above this many bytes are weights; comparing them is not worth it.
constexpr size_t kMaxDedupBytes = 1 << 16;

std::string constant_key(const ir::Tensor& t) {
  std::ostringstream s;
  s << static_cast<int>(t.dtype) << ":";
  for (int64_t d : t.dims) s << d << ",";
  s << ":";
  s.write(reinterpret_cast<const char*>(t.bytes.data()),
          static_cast<std::streamsize>(t.bytes.size()));
  return s.str();
}

}  // namespace

Status eliminate_common_subexpressions(ir::Graph& g) {
  KILN_RETURN_IF_ERROR(g.topo_sort());
  // Constants first, so nodes reading equal constants become equal.
  std::unordered_map<std::string, ir::Value*> constants;
  std::vector<ir::Value*> all;
  for (const auto& v : g.values()) all.push_back(v.get());
  for (ir::Value* v : all) {
    if (!v->constant || v->constant->bytes.size() > kMaxDedupBytes) continue;
    auto [it, inserted] = constants.emplace(constant_key(*v->constant), v);
    if (!inserted && !g.is_graph_output(v)) g.replace_all_uses(v, it->second);
  }
  auto names = g.symbol_names();
  std::unordered_map<std::string, ir::Node*> seen;
  std::unordered_set<const ir::Node*> removed;
  for (const auto& n : g.nodes()) {
    std::ostringstream key;
    key << static_cast<int>(n->op) << "|";
    for (const auto& [k, a] : n->attrs) key << k << "=" << attribute_str(a) << ";";
    key << "|";
    for (const ir::Value* in : n->inputs) key << static_cast<const void*>(in) << ",";
    key << "|" << n->outputs.size();
    if (n->inputs.empty())  // SymbolicTensor: identical when its elements are
      for (const ir::Value* o : n->outputs)
        if (o) key << "|" << value_type_str(*o, names);
    auto [it, inserted] = seen.emplace(key.str(), n.get());
    if (inserted) continue;
    ir::Node* first = it->second;
    bool ok = true;
    for (size_t i = 0; i < n->outputs.size() && ok; ++i)
      ok = !n->outputs[i] || (first->outputs[i] && !g.is_graph_output(n->outputs[i]));
    if (!ok) continue;
    for (size_t i = 0; i < n->outputs.size(); ++i)
      if (n->outputs[i]) g.replace_all_uses(n->outputs[i], first->outputs[i]);
    removed.insert(n.get());
  }
  g.remove_nodes_if([&](const ir::Node* n) { return removed.count(n) != 0; });
  return Status::ok();
}

}  // namespace kiln::passes
