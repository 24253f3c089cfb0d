// fold_constants: evaluates constant subgraphs and resolves shape arithmetic; see passes.h.
#include <unordered_set>

#include "compiler/ir/shape_inference.h"
#include "compiler/passes/evaluate.h"
#include "compiler/passes/passes.h"
#include "compiler/passes/rewrite.h"

namespace kiln::passes {
namespace {

bool all_inputs_constant(const ir::Node& n) {
  for (const ir::Value* in : n.inputs)
    if (in && !in->constant) return false;
  return true;
}

bool sym_is_constant(const std::vector<ir::Dim>& s) {
  for (const ir::Dim& d : s)
    if (!d.is_constant()) return false;
  return true;
}

// The constant tensor a value's fully-known sym_value stands for.
ir::Tensor tensor_from_sym(const ir::Value& v) {
  ir::Tensor t;
  t.dtype = v.dtype;
  t.dims = ir::constant_dims(*v.shape);
  t.bytes.resize(v.sym_value->size() * ir::dtype_size(v.dtype));
  for (size_t i = 0; i < v.sym_value->size(); ++i) {
    int64_t x = (*v.sym_value)[i].coef;
    if (v.dtype == ir::DType::kInt64)
      t.data<int64_t>()[i] = x;
    else if (v.dtype == ir::DType::kInt32)
      t.data<int32_t>()[i] = static_cast<int32_t>(x);
    else
      t.data<uint8_t>()[i] = x != 0;
  }
  return t;
}

// Largest tensor constant folding makes: above any BERT-family weight (XLM-R large's word
// embeddings are 0.95 GiB), far below what a 100-byte ConstantOfShape can ask for.
constexpr int64_t kMaxFoldedBytes = int64_t{1} << 30;

Status fold_node(ir::Node& n, bool* folded) {
  std::vector<const ir::Tensor*> inputs;
  for (const ir::Value* in : n.inputs) inputs.push_back(in ? in->constant.get() : nullptr);
  std::vector<std::vector<int64_t>> dims;
  for (const ir::Value* o : n.outputs) {
    if (!o || !o->shape || !ir::shape_is_constant(*o->shape)) return Status::ok();
    dims.push_back(ir::constant_dims(*o->shape));
    int64_t bytes = static_cast<int64_t>(ir::dtype_size(o->dtype));
    for (int64_t d : dims.back())
      if (__builtin_mul_overflow(bytes, d, &bytes) || bytes > kMaxFoldedBytes)
        return Status::error(n.describe() + ": constant output '" + o->name + "' of shape " +
                             ir::shape_str(*o->shape, {}) + " would take more than " +
                             std::to_string(kMaxFoldedBytes >> 20) +
                             " MiB (the most constant folding makes)");
  }
  KILN_ASSIGN_OR_RETURN(auto r, evaluate_node(n, inputs, dims));
  for (size_t i = 0; i < n.outputs.size(); ++i) set_constant(n.outputs[i], std::move(r[i]));
  *folded = true;
  return Status::ok();
}

}  // namespace

Status fold_constants(ir::Graph& g) {
  KILN_RETURN_IF_ERROR(g.topo_sort());
  std::unordered_set<const ir::Node*> removed;
  for (const auto& np : g.nodes()) {
    ir::Node& n = *np;
    if (n.op == ir::Op::kSymbolicTensor) continue;
    if (all_inputs_constant(n)) {
      bool folded = false;
      KILN_RETURN_IF_ERROR(fold_node(n, &folded));
      if (folded) {
        removed.insert(&n);
        continue;
      }
    }
    if (n.outputs.size() != 1 || !n.outputs[0]) continue;
    ir::Value* o = n.outputs[0];
    if (!o->sym_value || !o->shape || !ir::shape_is_constant(*o->shape)) continue;
    if (sym_is_constant(*o->sym_value)) {
      set_constant(o, tensor_from_sym(*o));
      removed.insert(&n);
    } else if (o->dtype == ir::DType::kInt64) {
      // The shape arithmetic behind a symbolic value is replaced by its result, computed by the
      // runtime from the symbol values.
      n.op = ir::Op::kSymbolicTensor;
      n.inputs.clear();
      n.attrs.clear();
    }
  }
  g.remove_nodes_if([&](const ir::Node* n) { return removed.count(n) != 0; });
  return Status::ok();
}

}  // namespace kiln::passes
