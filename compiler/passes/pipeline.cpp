// The pass pipeline and its output contract; see pipeline.h and docs/architecture.md.
#include "compiler/passes/pipeline.h"

#include "compiler/ir/shape_inference.h"
#include "compiler/passes/passes.h"

namespace kiln::passes {

Status check_pipeline_output(const ir::Graph& g) {
  auto fail = [](const ir::Node& n, const std::string& m) {
    return Status::error("pipeline output contract: " + n.describe() + ": " + m);
  };
  for (const auto& v : g.values())
    if (!v->shape)
      return Status::error("pipeline output contract: value '" + v->name + "' has no shape");
  for (const auto& n : g.nodes()) {
    const ir::OpInfo& info = ir::op_info(n->op);
    if (!info.runtime) return fail(*n, "op is not in the runtime op set");
    if (n->op == ir::Op::kCast && n->input(0) &&
        ir::dtype_from_onnx(n->attr_int("to", 0)) == n->input(0)->dtype)
      return fail(*n, "no-op Cast");
    bool all_constant = !n->inputs.empty();
    for (const ir::Value* in : n->inputs) all_constant &= !in || in->constant != nullptr;
    if (all_constant) return fail(*n, "all inputs are constant (not folded)");
    for (size_t i = 0; i < n->inputs.size(); ++i) {
      const ir::Value* in = n->input(i);
      if (ir::is_shape_operand(n->op, i) && in && !in->constant && !in->sym_value)
        return fail(*n, "shape operand '" + in->name + "' is neither constant nor symbolic");
    }
    bool used = false;
    for (const ir::Value* o : n->outputs)
      used |= o && (g.is_graph_output(o) || !g.consumers(o).empty());
    if (!used) return fail(*n, "dead node");
  }
  return Status::ok();
}

Status run_pipeline(ir::Graph& g, const PipelineOptions& opts) {
  using Pass = Status (*)(ir::Graph&);
  struct Step {
    const char* name;
    Pass pass;
  };
  const Step steps[] = {
      {"simplify", simplify},
      {"fold_constants", fold_constants},
      {"eliminate_dead_code", eliminate_dead_code},
      {"eliminate_common_subexpressions", eliminate_common_subexpressions},
      {"fold_constants", fold_constants},
      {"fuse_layer_norm", fuse_layer_norm},
      {"fuse_gelu", fuse_gelu},
      // The fusions below check single consumers: drop the LayerNorm/GELU leftovers first.
      {"eliminate_dead_code", eliminate_dead_code},
      // Attention first: it needs the projections' outputs as plain values; fuse_qkv then merges
      // the three projections while they are still MatMul + Add, and fuse_dense makes that one
      // Dense (with the output projection's residual Add, which Attention's output feeds).
      {"fuse_attention", fuse_attention},
      {"fuse_qkv", fuse_qkv},
      {"fuse_dense", fuse_dense},
      // After fuse_dense: the LayerNorm goes into the Dense that absorbed the residual Add.
      {"fuse_dense_layer_norm", fuse_dense_layer_norm},
      {"fuse_embed_layer_norm", fuse_embed_layer_norm},
      {"eliminate_dead_code", eliminate_dead_code},
      {"simplify", simplify},
      {"fold_constants", fold_constants},
      {"eliminate_common_subexpressions", eliminate_common_subexpressions},
      {"eliminate_dead_code", eliminate_dead_code},
  };
  KILN_RETURN_IF_ERROR(ir::infer_shapes(g));
  for (const Step& s : steps) {
    if (auto st = s.pass(g); !st) return Status::error(std::string(s.name) + ": " + st.message());
    // Passes leave shapes of rewritten values stale; re-infer so the next pass sees them.
    if (auto st = ir::infer_shapes(g); !st)
      return Status::error("shape inference after " + std::string(s.name) + ": " + st.message());
    if (opts.after_pass) opts.after_pass(s.name, g);
  }
  return check_pipeline_output(g);
}

}  // namespace kiln::passes
