// fuse_embed_layer_norm: BERT's embedding block, the word / token-type / position Gathers summed
// by Adds and then LayerNormalization, becomes one EmbeddingLayerNorm that gathers, sums and
// normalises each output row in one pass (kernels/kiln/kernels/embed_layer_norm.h).
//
//   e_t = Gather(table_t [V_t, H] constant float32, ids_t) {axis 0}     t = 0 .. T-1
//   x   = Add(...Add(e_0, e_1)..., e_{T-1})          any tree of Adds over the e_t
//   z   = LayerNormalization(x, scale, B?) {axis = last, epsilon}
//   =>  z = EmbeddingLayerNorm(scale, B?, table_0, ids_0, table_1, ids_1?, ...)
//           {epsilon, row_first = [..], row_step = [..]}
//
// Terms keep the Add tree's left-to-right order (the sum rounds as the unfused graph). ids_0 has
// the output's leading shape [.., S] (the word ids); every other ids_t has that shape or
// broadcasts along the last axis only ([1, S], [S]). An ids_t that is a Slice of a constant row
// of affine values (the exporter's position_ids / token_type_ids buffers: arange and zeros),
// possibly behind an Expand, is dropped: row = row_first[t] + row_step[t] * s for position s.
// Every Add / Gather output must have one consumer and not be a graph output, and the LayerNorm's
// Mean / InvStdDev outputs must be unused. Anything else is left alone.
#include <optional>

#include "compiler/passes/passes.h"
#include "compiler/passes/rewrite.h"

namespace kiln::passes {
namespace {

struct Term {
  ir::Value* table = nullptr;
  ir::Value* ids = nullptr;  // null: affine rows
  int64_t first = 0, step = 0;
};

bool single_use(const ir::Graph& g, const ir::Value* v) {
  return v && !g.is_graph_output(v) && g.consumers(v).size() == 1;
}

// Leading dims of `ids` right-aligned against `lead`: the same shape, or ones except a last dim
// equal to lead's (a row broadcast over the leading axes).
bool ids_shape_ok(const ir::Shape& ids, const ir::Shape& lead, bool full_only) {
  if (ids == lead) return true;
  if (full_only || ids.empty() || ids.size() > lead.size() || ids.back() != lead.back())
    return false;
  for (size_t i = 0; i + 1 < ids.size(); ++i)
    if (ids[i] != ir::Dim(1)) return false;
  return true;
}

// ids = [Expand of] Slice(C, start, end, axis = last, step 1) with C a constant whose elements
// are c0 + d * j: the rows are first + d * s. nullopt otherwise.
std::optional<std::pair<int64_t, int64_t>> affine_rows(const ir::Value* ids) {
  const ir::Node* n = ids ? ids->producer : nullptr;
  if (n && n->op == ir::Op::kExpand) n = n->input(0) ? n->input(0)->producer : nullptr;
  if (!n || n->op != ir::Op::kSlice) return std::nullopt;
  const ir::Value* c = n->input(0);
  if (!c || !c->constant || !c->shape || c->shape->empty()) return std::nullopt;
  const ir::Tensor& t = *c->constant;
  if (t.dtype != ir::DType::kInt64 && t.dtype != ir::DType::kInt32) return std::nullopt;
  const int64_t rank = static_cast<int64_t>(t.dims.size()), len = t.numel();
  if (len < 1 || t.dims.back() != len) return std::nullopt;  // one row: ones before the last dim
  auto scalar = [](const ir::Value* v) -> std::optional<int64_t> {
    if (!v || !v->constant || v->constant->numel() != 1) return std::nullopt;
    return v->constant->int_at(0);
  };
  auto start = scalar(n->input(1));
  if (!start || *start < 0 || *start >= len) return std::nullopt;
  if (n->input(3)) {
    auto axis = scalar(n->input(3));
    if (!axis || (*axis != -1 && *axis != rank - 1)) return std::nullopt;
  } else if (rank != 1) {
    return std::nullopt;
  }
  if (n->input(4)) {
    auto step = scalar(n->input(4));
    if (!step || *step != 1) return std::nullopt;
  }
  // c0 + d * j without overflow (the ids of an ONNX file can be anything): not affine otherwise.
  const int64_t c0 = t.int_at(0);
  int64_t d = 0;
  if (len > 1 && __builtin_sub_overflow(t.int_at(1), c0, &d)) return std::nullopt;
  auto row = [&](int64_t j) -> std::optional<int64_t> {
    int64_t r;
    if (__builtin_mul_overflow(d, j, &r) || __builtin_add_overflow(c0, r, &r)) return std::nullopt;
    return r;
  };
  for (int64_t j = 0; j < len; ++j)
    if (row(j) != t.int_at(j)) return std::nullopt;
  return std::make_pair(*row(*start), d);
}

// Collects the Gather leaves of the Add tree under v, left to right; false if anything else.
bool collect(const ir::Graph& g, ir::Value* v, std::vector<ir::Node*>* gathers) {
  if (!single_use(g, v) || !v->producer) return false;
  ir::Node* n = v->producer;
  if (n->op == ir::Op::kAdd)
    return collect(g, n->input(0), gathers) && collect(g, n->input(1), gathers);
  if (n->op != ir::Op::kGather) return false;
  gathers->push_back(n);
  return true;
}

bool try_fuse(ir::Graph& g, ir::Node* ln) {
  ir::Value* x = ln->input(0);
  if (!x || !x->shape || x->shape->size() < 2 || x->dtype != ir::DType::kFloat32) return false;
  const ir::Shape& xs = *x->shape;
  const int64_t axis = ln->attr_int("axis", -1);
  if (axis != -1 && axis != static_cast<int64_t>(xs.size()) - 1) return false;
  if (!xs.back().is_constant()) return false;
  const int64_t h = xs.back().coef;
  for (size_t o = 1; o < ln->outputs.size(); ++o)
    if (ln->outputs[o] &&
        (g.is_graph_output(ln->outputs[o]) || !g.consumers(ln->outputs[o]).empty()))
      return false;
  auto is_row = [h](const ir::Value* p) {
    return p && p->constant && p->dtype == ir::DType::kFloat32 && p->constant->numel() == h &&
           p->shape && p->shape->size() == 1;
  };
  if (!is_row(ln->input(1)) || (ln->input(2) && !is_row(ln->input(2)))) return false;
  if (!x->producer || x->producer->op != ir::Op::kAdd)
    return false;  // a lone Gather is not worth it
  std::vector<ir::Node*> gathers;
  if (!collect(g, x, &gathers)) return false;
  const ir::Shape lead(xs.begin(), xs.end() - 1);
  std::vector<Term> terms;
  for (size_t t = 0; t < gathers.size(); ++t) {
    const ir::Node* gn = gathers[t];
    ir::Value* table = gn->input(0);
    ir::Value* ids = gn->input(1);
    const int64_t gaxis = gn->attr_int("axis", 0);
    if (gaxis != 0 && gaxis != -2) return false;
    if (!table || !table->constant || table->dtype != ir::DType::kFloat32 ||
        table->constant->dims.size() != 2 || table->constant->dims[1] != h)
      return false;
    if (!ids || !ids->shape || (ids->dtype != ir::DType::kInt64 && ids->dtype != ir::DType::kInt32))
      return false;
    if (!ids_shape_ok(*ids->shape, lead, t == 0)) return false;
    Term term{table, ids, 0, 0};
    if (t > 0)
      if (auto rows = affine_rows(ids)) term = Term{table, nullptr, rows->first, rows->second};
    terms.push_back(term);
  }
  using In = ir::EmbeddingLayerNormIn;
  std::vector<ir::Value*> inputs(In::table(terms.size()));
  inputs[In::kScale] = ln->input(1);
  inputs[In::kBias] = ln->input(2);
  std::vector<int64_t> first, step;
  for (size_t t = 0; t < terms.size(); ++t) {
    inputs[In::table(t)] = terms[t].table;
    inputs[In::ids(t)] = terms[t].ids;
    first.push_back(terms[t].first);
    step.push_back(terms[t].step);
  }
  ir::Value* out = take_output(g, ln, 0);
  ir::Node* n =
      g.add_node(ir::Op::kEmbeddingLayerNorm,
                 fused_node_name(g, x->producer->name, "EmbeddingLayerNorm"), inputs, {out});
  n->attrs["epsilon"] = ln->attr_float("epsilon", 1e-5f);
  n->attrs["row_first"] = first;
  n->attrs["row_step"] = step;
  return true;
}

}  // namespace

Status fuse_embed_layer_norm(ir::Graph& g) {
  std::vector<ir::Node*> lns;
  for (const auto& n : g.nodes())
    if (n->op == ir::Op::kLayerNormalization) lns.push_back(n.get());
  for (ir::Node* ln : lns) try_fuse(g, ln);
  return g.topo_sort();
}

}  // namespace kiln::passes
