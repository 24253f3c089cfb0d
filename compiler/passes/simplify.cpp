// simplify: removes nodes that compute nothing and rewrites Split as Slices; see passes.h.
#include <unordered_set>

#include "compiler/ir/shape_inference.h"
#include "compiler/passes/passes.h"
#include "compiler/passes/rewrite.h"

namespace kiln::passes {
namespace {

bool same_type(const ir::Value* a, const ir::Value* b) {
  return a && b && a->dtype == b->dtype && a->shape && b->shape && *a->shape == *b->shape;
}

// The input a node passes through unchanged, or nullptr.
ir::Value* pass_through(const ir::Node& n) {
  ir::Value* x = n.input(0);
  ir::Value* y = n.outputs.empty() ? nullptr : n.outputs[0];
  if (!x || !y) return nullptr;
  const ir::Op op = n.op;
  const ir::OpKind kind = ir::op_kind(op);
  if (kind == ir::OpKind::kPassThrough) return x;
  if (kind == ir::OpKind::kView || op == ir::Op::kCast || op == ir::Op::kExpand)
    return same_type(x, y) ? x : nullptr;
  auto neutral = [&](double unit, bool commutes) -> ir::Value* {
    for (int side = 0; side < (commutes ? 2 : 1); ++side) {
      ir::Value* v = n.input(side);
      ir::Value* c = n.input(1 - side);
      auto s = constant_scalar(c);
      if (s && *s == unit && same_type(v, y)) return v;
    }
    return nullptr;
  };
  if (op == ir::Op::kMul) return neutral(1.0, true);
  if (op == ir::Op::kAdd) return neutral(0.0, true);
  if (op == ir::Op::kDiv) return neutral(1.0, false);
  if (op == ir::Op::kSub) return neutral(0.0, false);
  return nullptr;
}

Status split_to_slices(ir::Graph& g, ir::Node* split) {
  ir::Value* x = split->input(0);
  if (!x->shape) return Status::error(split->describe() + ": input has no shape");
  int64_t rank = static_cast<int64_t>(x->shape->size());
  int64_t axis = split->attr_int("axis", 0);
  if (axis < 0) axis += rank;
  int64_t offset = 0;
  ir::Value* axes = g.add_constant(g.unique_name(split->name + "/axes"), int64_vector({axis}));
  for (size_t i = 0; i < split->outputs.size(); ++i) {
    ir::Value* o = split->outputs[i];
    if (!o) continue;
    if (!o->shape || !(*o->shape)[axis].is_constant())
      return Status::error(split->describe() + ": output '" + o->name +
                           "' has a symbolic size along the split axis");
    int64_t size = (*o->shape)[axis].coef;
    ir::Value* starts =
        g.add_constant(g.unique_name(split->name + "/starts"), int64_vector({offset}));
    ir::Value* ends =
        g.add_constant(g.unique_name(split->name + "/ends"), int64_vector({offset + size}));
    ir::Value* out = take_output(g, split, i);
    g.add_node(ir::Op::kSlice, split->name + "/slice" + std::to_string(i), {x, starts, ends, axes},
               {out});
    offset += size;
  }
  return Status::ok();
}

}  // namespace

Status simplify(ir::Graph& g) {
  std::unordered_set<const ir::Node*> removed;
  std::vector<ir::Node*> splits;
  for (const auto& n : g.nodes()) {
    if (n->op == ir::Op::kSplit) {
      splits.push_back(n.get());
      continue;
    }
    ir::Value* x = pass_through(*n);
    if (x && replace_value(g, n->outputs[0], x)) removed.insert(n.get());
  }
  for (ir::Node* s : splits) {
    KILN_RETURN_IF_ERROR(split_to_slices(g, s));
    removed.insert(s);
  }
  g.remove_nodes_if([&](const ir::Node* n) { return removed.count(n) != 0; });
  return Status::ok();
}

}  // namespace kiln::passes
