// fuse_attention: the exporters' multi-head self-attention -> Attention.
//
//   s  = MatMul(qh * cq, kt * ck)  [B, nh, S, S]    (cq, ck: optional constant scalars)
//   s  = s / c | s * c | s + m       (constant scalars and additive masks m broadcastable to
//                                     [B, nh, S, S], any order and number: relative position
//                                     bias + padding mask, finfo.min or -inf)
//   p  = Softmax(s, axis = last)
//   p  = Where(IsNaN(p), 0, p)       (optional: SDPA's guard for rows whose keys are all -inf)
//   y  = Reshape(Transpose(MatMul(p, vh), perm 0,2,1,3), [B, S, H])
//   =>  y = Attention(q, k, v, mask?) {num_heads = nh, scale, qkv_packed = 0, empty_rows_zero}
//
// The kernel reads Q, K and V as [B, S, H] rows. Where qh / vh are the head split of such a
// tensor (Transpose(Reshape(x [B, S, H] -> [B, S, nh, hd]), perm 0,2,1,3)) and kt its key
// transpose (perm 0,2,3,1; perm 0,1,3,2 of qh's form; or the dynamo exporter's
// Reshape([B*nh, S, hd]) -> Transpose(0,2,1) -> Reshape([B, nh, hd, S])), x is read in place.
// Any other [B, nh, S, hd] operand (rotary embeddings applied per head, a packed QKV projection
// split by Slice) is copied back to rows by an inserted Transpose + Reshape: O(S * H) against the
// O(S^2 * H) the fusion saves.
//
// The masks are summed into one (each times the scales applied after its Add). Intermediates of
// the matched chain must have one consumer and not be graph outputs; otherwise nothing changes.
#include <cmath>
#include <optional>
#include <utility>

#include "compiler/passes/passes.h"
#include "compiler/passes/rewrite.h"

namespace kiln::passes {
namespace {

// An Attention operand: `src` permuted by `perm` (none: as is), then merged to [B, S, H] if it
// is [B, S, nh, hd].
struct Rows {
  ir::Value* src = nullptr;
  std::vector<int64_t> perm;
};

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
  // Records the head count and size on first use; later operands must agree.
  bool heads(const ir::Dim& nh, const ir::Dim& hd) {
    if (!nh.is_constant() || !hd.is_constant() || nh.coef <= 0 || hd.coef <= 0) return false;
    if (num_heads_ == 0) num_heads_ = nh.coef, head_size_ = hd.coef;
    return nh.coef == num_heads_ && hd.coef == head_size_;
  }
  static bool float_rank(const ir::Value* v, size_t rank) {
    return v && v->shape && v->shape->size() == rank && v->dtype == ir::DType::kFloat32;
  }

  // v with Mul / Div by constant scalars stripped off; their product goes into *scale.
  const ir::Value* unscaled(const ir::Value* v, double* scale) const {
    for (;;) {
      ir::Node* n = inner(v, ir::Op::kMul);
      if (!n) n = inner(v, ir::Op::kDiv);
      if (!n) return v;
      int side = -1;
      for (int i = 0; i < 2 && side < 0; ++i) {
        const auto c = constant_scalar(n->input(1 - i));
        const bool div = n->op == ir::Op::kDiv;
        if (c && (!div || (i == 0 && *c != 0)) && n->input(i) && n->input(i)->shape && v->shape &&
            *n->input(i)->shape == *v->shape) {
          *scale *= div ? 1.0 / *c : *c;
          side = i;
        }
      }
      if (side < 0) return v;
      v = n->input(side);
    }
  }

  // x = Reshape(src [B, S, H] -> [B, S, nh, hd]) with one consumer: src.
  ir::Value* head_split(const ir::Value* x) {
    ir::Node* r = inner(x, ir::Op::kReshape);
    const ir::Value* src = r ? r->input(0) : nullptr;
    if (!float_rank(src, 3) || !float_rank(x, 4)) return nullptr;
    const ir::Shape &in = *src->shape, &out = *x->shape;
    if (in[0] != out[0] || in[1] != out[1] || !in[2].is_constant() || !heads(out[2], out[3]) ||
        in[2].coef != num_heads_ * head_size_)
      return nullptr;
    return r->input(0);
  }
  // x [B, nh, S, hd] as rows.
  std::optional<Rows> head_rows(const ir::Value* x) {
    if (!float_rank(x, 4)) return std::nullopt;
    if (ir::Node* t = inner(x, ir::Op::kTranspose); perm_is(t, {0, 2, 1, 3}))
      if (ir::Value* src = head_split(t->input(0))) return Rows{src, {}};
    if (!heads((*x->shape)[1], (*x->shape)[3])) return std::nullopt;
    if (ir::Node* t = producer_op(x, ir::Op::kTranspose); perm_is(t, {0, 2, 1, 3}))
      return Rows{t->input(0), {}};  // [B, S, nh, hd] already
    return Rows{const_cast<ir::Value*>(x), {0, 2, 1, 3}};
  }
  // kt [B, nh, hd, S] (K^T per head) as rows of K.
  std::optional<Rows> key_rows(const ir::Value* kt) {
    if (!float_rank(kt, 4)) return std::nullopt;
    ir::Node* t = inner(kt, ir::Op::kTranspose);
    if (perm_is(t, {0, 2, 3, 1}))
      if (ir::Value* src = head_split(t->input(0))) return Rows{src, {}};
    if (perm_is(t, {0, 1, 3, 2})) return head_rows(t->input(0));
    // The dynamo exporter's K^T: Reshape(Transpose(Reshape(kh, [B*nh, S, hd]), 0,2,1)).
    if (ir::Node* r2 = inner(kt, ir::Op::kReshape)) {
      ir::Node* t3 = inner(r2->input(0), ir::Op::kTranspose);
      ir::Node* r1 = perm_is(t3, {0, 2, 1}) ? inner(t3->input(0), ir::Op::kReshape) : nullptr;
      const ir::Value* kh = r1 ? r1->input(0) : nullptr;
      if (float_rank(kh, 4) && float_rank(r1->outputs[0], 3)) {
        const ir::Shape &h = *kh->shape, &f = *r1->outputs[0]->shape, &o = *kt->shape;
        if (f[0] == h[0] * h[1] && f[1] == h[2] && f[2] == h[3] && o[0] == h[0] && o[1] == h[1] &&
            o[2] == h[3] && o[3] == h[2])
          return head_rows(kh);
      }
    }
    if (!heads((*kt->shape)[1], (*kt->shape)[2])) return std::nullopt;
    return Rows{const_cast<ir::Value*>(kt), {0, 3, 1, 2}};
  }
  // The shape `r` has once materialised.
  static ir::Shape rows_shape(const Rows& r) {
    ir::Shape s = *r.src->shape;
    if (!r.perm.empty()) {
      ir::Shape p;
      for (int64_t a : r.perm) p.push_back(s[a]);
      s = p;
    }
    if (s.size() == 4) s = {s[0], s[1], s[2] * s[3]};
    return s;
  }
  ir::Value* materialise(const Rows& r, const std::string& name);

  ir::Graph& g_;
  int64_t num_heads_ = 0, head_size_ = 0;
};

ir::Value* Matcher::materialise(const Rows& r, const std::string& name) {
  ir::Value* v = r.src;
  if (!r.perm.empty()) {
    ir::Value* t = g_.add_value(g_.unique_name(name + "_rows"), v->dtype);
    ir::Node* n = g_.add_node(ir::Op::kTranspose, g_.unique_name(name + "/ToRows"), {v}, {t});
    n->attrs["perm"] = r.perm;
    v = t;
  }
  if (rows_shape(r).size() == 3 && (r.perm.empty() ? r.src->shape->size() : r.perm.size()) == 4) {
    ir::Value* shape = g_.add_constant(g_.unique_name(name + "/rows_shape"),
                                       int64_vector({0, 0, num_heads_ * head_size_}));
    ir::Value* m = g_.add_value(g_.unique_name(name + "_merged"), v->dtype);
    g_.add_node(ir::Op::kReshape, g_.unique_name(name + "/MergeHeads"), {v, shape}, {m});
    v = m;
  }
  return v;
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
  if (!float_rank(x, 4)) return false;
  const int64_t dflt = g_.opset > 0 && g_.opset < 13 ? 1 : -1;
  const int64_t axis = softmax->attr_int("axis", dflt);
  if (axis != -1 && axis != 3) return false;
  const ir::Shape scores_shape = *x->shape;

  // Walk back from the Softmax input to the Q K^T MatMul through scales and mask Adds; `scale`
  // is the product of the scales seen so far, which also multiply every mask found later.
  double scale = 1.0;
  std::vector<std::pair<ir::Value*, double>> masks;
  const ir::Value* s = x;
  ir::Node* qk = nullptr;
  while (!qk) {
    if ((qk = inner(s, ir::Op::kMatMul))) break;
    const ir::Value* before = unscaled(s, &scale);
    if (before != s) {
      s = before;
      continue;
    }
    ir::Node* add = inner(s, ir::Op::kAdd);
    if (!add) return false;
    int side = -1;  // the input that continues the chain towards the MatMul
    for (int i = 0; i < 2 && side < 0; ++i) {
      const ir::Value* a = add->input(i);
      const ir::Value* o = add->input(1 - i);
      if (float_rank(a, 4) && *a->shape == scores_shape && o && o->shape &&
          o->dtype == ir::DType::kFloat32 && broadcasts_to(*o->shape, scores_shape) &&
          scores_from_matmul(a))
        side = i;
    }
    if (side < 0) return false;
    masks.emplace_back(add->input(1 - side), scale);
    s = add->input(side);
  }
  if (!qk->outputs[0]->shape || *qk->outputs[0]->shape != scores_shape) return false;
  const std::optional<Rows> q = head_rows(unscaled(qk->input(0), &scale));
  const std::optional<Rows> k = q ? key_rows(unscaled(qk->input(1), &scale)) : std::nullopt;
  if (!k) return false;

  // Forward from the Softmax: [Where(IsNaN(p), 0, p)] -> MatMul(p, vh) -> Transpose(0,2,1,3)
  // -> Reshape [B, S, H].
  auto only = [&](const ir::Value* v, ir::Op op) -> ir::Node* {
    auto c = g_.consumers(v);
    if (c.size() != 1 || c[0]->op != op || g_.is_graph_output(v)) return nullptr;
    return c[0];
  };
  const ir::Value* p = softmax->outputs[0];
  bool empty_rows_zero = false;
  if (auto c = g_.consumers(p); c.size() == 2 && !g_.is_graph_output(p)) {
    ir::Node* isnan = c[0]->op == ir::Op::kIsNaN ? c[0] : c[1];
    ir::Node* where = isnan == c[0] ? c[1] : c[0];
    if (isnan->op != ir::Op::kIsNaN || where->op != ir::Op::kWhere ||
        only(isnan->outputs[0], ir::Op::kWhere) != where || where->input(0) != isnan->outputs[0] ||
        where->input(2) != p || constant_scalar(where->input(1)) != 0.0 ||
        !where->outputs[0]->shape || *where->outputs[0]->shape != scores_shape)
      return false;
    p = where->outputs[0];
    empty_rows_zero = true;
  }
  ir::Node* pv = only(p, ir::Op::kMatMul);
  if (!pv || pv->input(0) != p) return false;
  const std::optional<Rows> v = head_rows(pv->input(1));
  ir::Node* tr = v ? only(pv->outputs[0], ir::Op::kTranspose) : nullptr;
  if (!perm_is(tr, {0, 2, 1, 3})) return false;
  ir::Node* merge = only(tr->outputs[0], ir::Op::kReshape);
  if (!merge || !merge->outputs[0]->shape) return false;
  const ir::Shape rows{scores_shape[0], scores_shape[2], ir::Dim(num_heads_ * head_size_)};
  if (scores_shape[1] != ir::Dim(num_heads_) || scores_shape[3] != scores_shape[2] ||
      rows_shape(*q) != rows || rows_shape(*k) != rows || rows_shape(*v) != rows ||
      *merge->outputs[0]->shape != rows)
    return false;

  const std::string name = fused_node_name(g_, softmax->name, "Attention");
  ir::Value* mask = nullptr;
  for (auto [m, factor] : masks) {  // sum of the masks, each scaled as the graph scales it
    if (factor != 1.0) {
      ir::Value* c = g_.add_constant(g_.unique_name(name + "/mask_scale"),
                                     scalar_tensor(ir::DType::kFloat32, factor));
      ir::Value* scaled = g_.add_value(g_.unique_name(name + "/scaled_mask"), m->dtype);
      g_.add_node(ir::Op::kMul, g_.unique_name(name + "/MaskScale"), {m, c}, {scaled});
      m = scaled;
    }
    if (mask) {
      ir::Value* sum = g_.add_value(g_.unique_name(name + "/mask"), m->dtype);
      g_.add_node(ir::Op::kAdd, g_.unique_name(name + "/MaskSum"), {mask, m}, {sum});
      m = sum;
    }
    mask = m;
  }
  using In = ir::AttentionIn;
  std::vector<ir::Value*> inputs(mask ? In::kCount : In::kMask);
  inputs[In::kQuery] = materialise(*q, name + "/q");
  inputs[In::kKey] = materialise(*k, name + "/k");
  inputs[In::kValue] = materialise(*v, name + "/v");
  if (mask) inputs[In::kMask] = mask;
  ir::Value* out = take_output(g_, merge, 0);
  ir::Node* attn = g_.add_node(ir::Op::kAttention, name, inputs, {out});
  attn->attrs["num_heads"] = num_heads_;
  attn->attrs["scale"] = static_cast<float>(scale);
  attn->attrs["qkv_packed"] = int64_t{0};
  attn->attrs["empty_rows_zero"] = int64_t{empty_rows_zero};
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
