// fuse_attention: the exporter's multi-head self-attention -> Attention.
//
//   qh = Transpose(Reshape(q [B, S, H], [B, S, nh, hd]), perm 0,2,1,3)      (same for v)
//   kt = Transpose(Reshape(k), perm 0,2,3,1)
//      | Transpose(Transpose(Reshape(k), perm 0,2,1,3), perm 0,1,3,2)
//   s  = MatMul(qh, kt)  [B, nh, S, S]
//   s  = s / c | s * c    (constant scalars, any number, before and/or after the mask Add)
//   s  = s + mask         (optional, mask broadcastable to [B, nh, S, S], float32)
//   p  = Softmax(s, axis = last)
//   y  = Reshape(Transpose(MatMul(p, vh), perm 0,2,1,3), [B, S, H])
//   =>  y = Attention(q, k, v, mask?) {num_heads = nh, scale, qkv_packed = 0}
//
// A scale applied after the mask Add scales the mask too: the mask then goes through a Mul by
// that factor (a [B, 1, 1, S] vector, or folded when the mask is constant). Every intermediate
// must have exactly one consumer and not be a graph output; otherwise nothing changes.
#include <cmath>

#include "compiler/passes/passes.h"
#include "compiler/passes/rewrite.h"

namespace kiln::passes {
namespace {

class Matcher {
 public:
  explicit Matcher(ir::Graph& g) : g_(g) {}

  bool try_fuse(ir::Node* softmax);

 private:
  // v's producer if it is `op`, v has one consumer and is not a graph output.
  ir::Node* inner(const ir::Value* v, ir::Op op) const {
    ir::Node* n = producer_op(v, op);
    if (!n || g_.consumers(v).size() != 1 || g_.is_graph_output(v)) return nullptr;
    return n;
  }
  static bool perm_is(const ir::Node* t, std::vector<int64_t> perm) {
    return t && t->attr_ints("perm") == perm;
  }
  static bool constant_dim(const ir::Dim& d, int64_t* v) {
    if (!d.is_constant()) return false;
    *v = d.coef;
    return true;
  }
  // x = Reshape(src [B, S, H] -> [B, S, nh, hd]) through an intermediate of one consumer:
  // returns src and checks nh / hd.
  ir::Value* head_split(const ir::Value* x) const {
    ir::Node* r = inner(x, ir::Op::kReshape);
    if (!r || !r->input(0) || !r->input(0)->shape || !x->shape) return nullptr;
    const ir::Shape& in = *r->input(0)->shape;
    const ir::Shape& out = *x->shape;
    int64_t h = 0, nh = 0, hd = 0;
    if (in.size() != 3 || out.size() != 4 || in[0] != out[0] || in[1] != out[1] ||
        !constant_dim(in[2], &h) || !constant_dim(out[2], &nh) || !constant_dim(out[3], &hd) ||
        nh * hd != h)
      return nullptr;
    if (num_heads_ == 0) num_heads_ = nh, head_size_ = hd;
    if (nh != num_heads_ || hd != head_size_) return nullptr;
    return r->input(0);
  }
  // v = Transpose(Reshape(src), perm 0,2,1,3): src.
  ir::Value* heads_first(const ir::Value* v) const {
    ir::Node* t = inner(v, ir::Op::kTranspose);
    if (!perm_is(t, {0, 2, 1, 3})) return nullptr;
    return head_split(t->input(0));
  }
  // K^T in either spelling: src.
  ir::Value* keys_transposed(const ir::Value* v) const {
    ir::Node* t = inner(v, ir::Op::kTranspose);
    if (perm_is(t, {0, 2, 3, 1})) return head_split(t->input(0));
    if (perm_is(t, {0, 1, 3, 2})) return heads_first(t->input(0));
    return nullptr;
  }

  ir::Graph& g_;
  mutable int64_t num_heads_ = 0, head_size_ = 0;
};

// v comes from a MatMul through Div / Mul by constant scalars and Adds (a few levels deep).
bool leads_to_matmul(const ir::Value* v, int depth = 0) {
  const ir::Node* n = v ? v->producer : nullptr;
  if (!n || depth > 6) return false;
  if (n->op == ir::Op::kMatMul) return true;
  if (n->op == ir::Op::kDiv)
    return constant_scalar(n->input(1)) && leads_to_matmul(n->input(0), depth + 1);
  if (n->op == ir::Op::kMul || n->op == ir::Op::kAdd) {
    for (int i = 0; i < 2; ++i)
      if ((n->op == ir::Op::kAdd || constant_scalar(n->input(1 - i))) &&
          leads_to_matmul(n->input(i), depth + 1))
        return true;
  }
  return false;
}

bool broadcasts_to(const ir::Shape& m, const ir::Shape& s) {
  if (m.size() > s.size()) return false;
  for (size_t i = 0; i < m.size(); ++i) {
    const ir::Dim& d = m[m.size() - 1 - i];
    if (!(d.is_constant() && d.coef == 1) && d != s[s.size() - 1 - i]) return false;
  }
  return true;
}

bool Matcher::try_fuse(ir::Node* softmax) {
  const ir::Value* x = softmax->input(0);
  if (!x || !x->shape || x->shape->size() != 4 || x->dtype != ir::DType::kFloat32) return false;
  const int64_t dflt = g_.opset > 0 && g_.opset < 13 ? 1 : -1;
  const int64_t axis = softmax->attr_int("axis", dflt);
  if (axis != -1 && axis != 3) return false;
  const ir::Shape scores_shape = *x->shape;

  // Walk back from the Softmax input to the Q K^T MatMul through scales and one mask Add.
  double scale = 1.0, mask_scale = 1.0;
  ir::Value* mask = nullptr;
  const ir::Value* s = x;
  ir::Node* qk = nullptr;
  while (!qk) {
    ir::Node* n = nullptr;
    for (ir::Op op : {ir::Op::kMatMul, ir::Op::kDiv, ir::Op::kMul, ir::Op::kAdd})
      if ((n = inner(s, op))) break;
    if (!n) return false;
    if (n->op == ir::Op::kMatMul) {
      qk = n;
      break;
    }
    int side = -1;  // the input that continues the chain towards the MatMul
    for (int i = 0; i < 2 && side < 0; ++i) {
      const ir::Value* a = n->input(i);
      const ir::Value* o = n->input(1 - i);
      if (!a || !o || !a->shape || *a->shape != scores_shape || !o->shape ||
          o->dtype != ir::DType::kFloat32 || !leads_to_matmul(a))
        continue;
      if (n->op == ir::Op::kAdd
              ? !mask && broadcasts_to(*o->shape, scores_shape)
              : (n->op == ir::Op::kMul || i == 0) && constant_scalar(o).has_value())
        side = i;
    }
    if (side < 0) return false;
    ir::Value* other = n->input(1 - side);
    if (n->op == ir::Op::kAdd) {
      mask = other;
    } else {
      const double c = *constant_scalar(other);
      if (n->op == ir::Op::kDiv && c == 0) return false;
      const double f = n->op == ir::Op::kDiv ? 1.0 / c : c;
      scale *= f;
      if (!mask) mask_scale *= f;  // applied after the mask Add (we walk backwards)
    }
    s = n->input(side);
  }
  if (!qk->outputs[0]->shape || *qk->outputs[0]->shape != scores_shape) return false;
  ir::Value* q = heads_first(qk->input(0));
  ir::Value* k = q ? keys_transposed(qk->input(1)) : nullptr;
  if (!k) return false;

  // Forward from the Softmax: MatMul(p, vh) -> Transpose(0,2,1,3) -> Reshape [B, S, H].
  const ir::Value* p = softmax->outputs[0];
  auto only = [&](const ir::Value* v, ir::Op op) -> ir::Node* {
    auto c = g_.consumers(v);
    if (c.size() != 1 || c[0]->op != op || g_.is_graph_output(v)) return nullptr;
    return c[0];
  };
  ir::Node* pv = only(p, ir::Op::kMatMul);
  if (!pv || pv->input(0) != p) return false;
  ir::Value* v = heads_first(pv->input(1));
  ir::Node* tr = v ? only(pv->outputs[0], ir::Op::kTranspose) : nullptr;
  if (!perm_is(tr, {0, 2, 1, 3})) return false;
  ir::Node* merge = only(tr->outputs[0], ir::Op::kReshape);
  if (!merge || !merge->outputs[0]->shape) return false;
  const ir::Shape& qs = *q->shape;
  if (*k->shape != qs || *v->shape != qs || *merge->outputs[0]->shape != qs) return false;
  if (q->dtype != ir::DType::kFloat32 || k->dtype != q->dtype || v->dtype != q->dtype) return false;
  if (scores_shape[0] != qs[0] || scores_shape[1] != ir::Dim(num_heads_) ||
      scores_shape[2] != qs[1] || scores_shape[3] != qs[1])
    return false;

  const std::string name = fused_node_name(g_, softmax->name, "Attention");
  if (mask && mask_scale != 1.0) {  // the scale applied after the mask Add, on the mask alone
    ir::Value* c = g_.add_constant(g_.unique_name(name + "/mask_scale"),
                                   scalar_tensor(ir::DType::kFloat32, mask_scale));
    ir::Value* scaled = g_.add_value(g_.unique_name(name + "/scaled_mask"), ir::DType::kFloat32);
    g_.add_node(ir::Op::kMul, g_.unique_name(name + "/MaskScale"), {mask, c}, {scaled});
    mask = scaled;
  }
  ir::Value* out = take_output(g_, merge, 0);
  using In = ir::AttentionIn;
  std::vector<ir::Value*> inputs(mask ? In::kCount : In::kMask);
  inputs[In::kQuery] = q;
  inputs[In::kKey] = k;
  inputs[In::kValue] = v;
  if (mask) inputs[In::kMask] = mask;
  ir::Node* attn = g_.add_node(ir::Op::kAttention, name, inputs, {out});
  attn->attrs["num_heads"] = num_heads_;
  attn->attrs["scale"] = static_cast<float>(scale);
  attn->attrs["qkv_packed"] = int64_t{0};
  return true;
}

}  // namespace

Status fuse_attention(ir::Graph& g) {
  std::vector<ir::Node*> softmaxes;
  for (const auto& n : g.nodes())
    if (n->op == ir::Op::kSoftmax) softmaxes.push_back(n.get());
  bool fused = false;
  for (ir::Node* s : softmaxes) fused |= Matcher(g).try_fuse(s);
  // Drop the replaced chains now: their Reshapes still read q, k, v, and fuse_qkv needs those to
  // have the Attention as their only consumer.
  if (fused) KILN_RETURN_IF_ERROR(eliminate_dead_code(g));
  return g.topo_sort();
}

}  // namespace kiln::passes
