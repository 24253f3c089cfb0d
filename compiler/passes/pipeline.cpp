// The pass pipeline and its output contract; see pipeline.h and docs/architecture.md.
#include "compiler/passes/pipeline.h"

#include "compiler/ir/shape_inference.h"
#include "compiler/passes/passes.h"
#include "compiler/passes/rewrite.h"

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

namespace {

template <class Pred>
int count_nodes(const ir::Graph& g, Pred pred) {
  int n = 0;
  for (const auto& node : g.nodes()) n += pred(*node);
  return n;
}
int count_op(const ir::Graph& g, ir::Op op) {
  return count_nodes(g, [op](const ir::Node& n) { return n.op == op; });
}
int count_packed_attention(const ir::Graph& g) {
  return count_nodes(g, [](const ir::Node& n) {
    return n.op == ir::Op::kAttention && n.attr_int("qkv_packed", 0) != 0;
  });
}
int count_dense_layer_norm(const ir::Graph& g) {
  return count_nodes(g, [](const ir::Node& n) {
    return n.op == ir::Op::kDense && n.input(ir::DenseIn::kLnScale) != nullptr;
  });
}

}  // namespace

std::vector<std::string> unfused_warnings(const ir::Graph& g) {
  std::vector<std::string> w;
  for (const auto& n : g.nodes()) {
    if (n->op == ir::Op::kMatMul)
      for (const ir::Value* in : n->inputs)
        if (in && in->constant && in->shape && in->shape->size() >= 2)
          w.push_back(n->describe() + ": MatMul by the constant weight '" + in->name +
                      "' stayed unfused: it runs as a generic MatMul, not a packed Dense GEMM "
                      "(and is not quantized by --quantize int8)");
    if (n->op == ir::Op::kSoftmax && scores_from_matmul(n->input(0)))
      w.push_back(n->describe() +
                  ": softmax over MatMul scores stayed unfused (not an Attention): the scores "
                  "are materialised and the attention runs as separate ops");
  }
  return w;
}

Result<PipelineReport> run_pipeline(ir::Graph& g, const PipelineOptions& opts) {
  using Pass = Status (*)(ir::Graph&);
  using Count = int (*)(const ir::Graph&);
  struct Step {
    const char* name;
    Pass pass;
    const char* fused_op = nullptr;  // fusions: what the report calls their result
    Count count = nullptr;           // and how it counts them
  };
  const Step steps[] = {
      {"simplify", simplify},
      {"fold_constants", fold_constants},
      {"eliminate_dead_code", eliminate_dead_code},
      {"eliminate_common_subexpressions", eliminate_common_subexpressions},
      {"fold_constants", fold_constants},
      {"fuse_layer_norm", fuse_layer_norm, "LayerNormalization",
       [](const ir::Graph& x) { return count_op(x, ir::Op::kLayerNormalization); }},
      {"fuse_gelu", fuse_gelu, "Gelu",
       [](const ir::Graph& x) {
         return count_op(x, ir::Op::kGelu) + count_op(x, ir::Op::kGeluTanh);
       }},
      // The fusions below check single consumers: drop the LayerNorm/GELU leftovers first.
      {"eliminate_dead_code", eliminate_dead_code},
      // Attention first: it needs the projections' outputs as plain values; fuse_qkv then merges
      // the three projections while they are still MatMul + Add, and fuse_dense makes that one
      // Dense (with the output projection's residual Add, which Attention's output feeds).
      {"fuse_attention", fuse_attention, "Attention",
       [](const ir::Graph& x) { return count_op(x, ir::Op::kAttention); }},
      {"fuse_qkv", fuse_qkv, "packed QKV", count_packed_attention},
      {"fuse_dense", fuse_dense, "Dense",
       [](const ir::Graph& x) { return count_op(x, ir::Op::kDense); }},
      // After fuse_dense: the LayerNorm goes into the Dense that absorbed the residual Add.
      {"fuse_dense_layer_norm", fuse_dense_layer_norm, "Dense+LayerNorm", count_dense_layer_norm},
      {"fuse_embed_layer_norm", fuse_embed_layer_norm, "EmbeddingLayerNorm",
       [](const ir::Graph& x) { return count_op(x, ir::Op::kEmbeddingLayerNorm); }},
      {"eliminate_dead_code", eliminate_dead_code},
      {"simplify", simplify},
      {"fold_constants", fold_constants},
      {"eliminate_common_subexpressions", eliminate_common_subexpressions},
      {"eliminate_dead_code", eliminate_dead_code},
  };
  KILN_RETURN_IF_ERROR(ir::infer_shapes(g));
  PipelineReport report;
  for (const Step& s : steps) {
    const int nodes_before = static_cast<int>(g.nodes().size());
    const int fused_before = s.count ? s.count(g) : 0;
    if (auto st = s.pass(g); !st) return Status::error(std::string(s.name) + ": " + st.message());
    if (s.count) {
      // Dead leftovers are the replaced nodes: drop them now to count them.
      KILN_RETURN_IF_ERROR(eliminate_dead_code(g));
      const int fused = s.count(g) - fused_before;
      if (fused > 0)
        report.fusions.push_back(
            {s.fused_op, fused, nodes_before - static_cast<int>(g.nodes().size()) + fused});
    }
    // Passes leave shapes of rewritten values stale; re-infer so the next pass sees them.
    if (auto st = ir::infer_shapes(g); !st)
      return Status::error("shape inference after " + std::string(s.name) + ": " + st.message());
    if (opts.after_pass) opts.after_pass(s.name, g);
  }
  KILN_RETURN_IF_ERROR(check_pipeline_output(g));
  return report;
}

}  // namespace kiln::passes
