// Einsum -> Transpose / Unsqueeze / ReduceSum / MatMul / Mul / Squeeze; see einsum.h.
//
// Two inputs A and B, after summing the labels only one of them has and the output lacks:
// - no label contracted (both inputs, not the output): both are laid out in output order with
//   size-1 dims for the labels they lack, and multiplied (numpy broadcasting);
// - else one MatMul [P..., M, K] x [P..., K, N]: K is a contracted label, M / N the last output
//   label only A / only B has (a size-1 dim if none), P the other labels: A's other output
//   labels, B's, the shared output labels, the other contracted ones (summed after the MatMul).
//   Labels an input lacks at the front of P are left to MatMul's broadcasting, so "bsh,hd->bsd"
//   stays MatMul(x, W) with W untouched, which fuse_dense turns into a Dense.
#include "compiler/frontend/onnx/einsum.h"

#include <algorithm>
#include <unordered_set>

#include "compiler/ir/einsum.h"

namespace kiln::frontend {
namespace {

using Labels = std::vector<int>;
constexpr int kUnit = -1;  // a new size-1 dim

bool has(const Labels& l, int x) {
  return std::find(l.begin(), l.end(), x) != l.end();
}

int64_t position(const Labels& l, int x) {
  return std::find(l.begin(), l.end(), x) - l.begin();
}

ir::Tensor int64_vector(const std::vector<int64_t>& v) {
  ir::Tensor t;
  t.dtype = ir::DType::kInt64;
  t.dims = {static_cast<int64_t>(v.size())};
  t.bytes.resize(v.size() * sizeof(int64_t));
  std::copy(v.begin(), v.end(), t.data<int64_t>());
  return t;
}

class EinsumLowering {
 public:
  EinsumLowering(ir::Graph& g, ir::Node& n)
      : g_(g), n_(n), equation_(n.attr_string("equation", "")) {}

  // Appends the replacement nodes; false (and no nodes) when the equation is not lowered and
  // every input is a constant.
  Result<bool> run() {
    const size_t inputs = n_.inputs.size();
    std::vector<size_t> ranks;
    for (const ir::Value* v : n_.inputs) {
      if (!v || !v->shape) return Status::error(n_.describe() + ": an input has no shape");
      ranks.push_back(v->shape->size());
    }
    auto parsed = ir::parse_einsum(equation_, ranks);
    if (!parsed)
      return Status::error(n_.describe() + ": equation '" + equation_ +
                           "': " + parsed.status().message());
    const ir::EinsumLabels& eq = parsed.value();
    std::string why;
    if (inputs != 1 && inputs != 2) why = std::to_string(inputs) + " inputs";
    for (size_t i = 0; i < eq.inputs.size() && why.empty(); ++i)
      for (int l : eq.inputs[i])
        if (std::count(eq.inputs[i].begin(), eq.inputs[i].end(), l) > 1) {
          why = "label '" + ir::einsum_label_name(l) + "' repeats in input " + std::to_string(i) +
                " (a diagonal)";
          break;
        }
    if (!why.empty()) {
      bool constant = true;
      for (const ir::Value* v : n_.inputs) constant &= v->constant != nullptr;
      if (constant) return false;
      return Status::error(n_.describe() + ": equation '" + equation_ + "' is not supported (" +
                           why +
                           "); kiln lowers Einsum with one or two inputs and no label repeated "
                           "within a term");
    }
    out_ = eq.output;
    std::vector<ir::Value*> x(n_.inputs.begin(), n_.inputs.end());
    std::vector<Labels> l = eq.inputs;
    for (size_t i = 0; i < inputs; ++i) {  // sum what only this input has and the output lacks
      Labels sum;
      for (int lab : l[i])
        if (!has(out_, lab) && (inputs == 1 || !has(l[1 - i], lab))) sum.push_back(lab);
      x[i] = reduce_sum(x[i], l[i], sum);
    }
    ir::Value* y = inputs == 1 ? arrange(x[0], l[0], out_) : contract(x[0], l[0], x[1], l[1]);
    finish(y);
    return true;
  }

 private:
  ir::Value* add(ir::Op op, std::vector<ir::Value*> inputs,
                 std::map<std::string, ir::Attribute> attrs = {}) {
    const std::string base = n_.name + "/" + ir::op_name(op);
    ir::Value* o = g_.add_value(g_.unique_name(base), inputs[0]->dtype);
    last_ = g_.add_node(op, g_.unique_name(base), std::move(inputs), {o});
    last_->attrs = std::move(attrs);
    return o;
  }
  ir::Value* axes(const std::vector<int64_t>& a) {
    return g_.add_constant(g_.unique_name(n_.name + "/axes"), int64_vector(a));
  }

  // x (labels `have`) laid out as `want`: a Transpose of the labels both hold, then size-1 dims
  // where want has kUnit. `have` becomes `want`.
  ir::Value* arrange(ir::Value* x, Labels& have, const Labels& want) {
    std::vector<int64_t> perm, units;
    for (size_t i = 0; i < want.size(); ++i) {
      if (want[i] == kUnit)
        units.push_back(static_cast<int64_t>(i));
      else
        perm.push_back(position(have, want[i]));
    }
    bool identity = true;
    for (size_t i = 0; i < perm.size(); ++i) identity &= perm[i] == static_cast<int64_t>(i);
    if (!identity) x = add(ir::Op::kTranspose, {x}, {{"perm", perm}});
    if (!units.empty()) x = add(ir::Op::kUnsqueeze, {x, axes(units)});
    have = want;
    return x;
  }
  ir::Value* reduce_sum(ir::Value* x, Labels& have, const Labels& sum) {
    if (sum.empty()) return x;
    std::vector<int64_t> a;
    for (int lab : sum) a.push_back(position(have, lab));
    for (int lab : sum) have.erase(have.begin() + position(have, lab));
    return add(ir::Op::kReduceSum, {x}, {{"axes", a}, {"keepdims", int64_t{0}}});
  }

  ir::Value* contract(ir::Value* a, Labels& la, ir::Value* b, Labels& lb) {
    Labels contracted, batch, left, right;
    for (int lab : la)
      if (has(lb, lab) && !has(out_, lab)) contracted.push_back(lab);
    for (int lab : out_) (has(la, lab) ? has(lb, lab) ? batch : left : right).push_back(lab);
    if (contracted.empty()) {  // an outer / elementwise product: broadcast Mul
      for (auto [x, l] : {std::pair<ir::Value**, Labels*>{&a, &la}, {&b, &lb}}) {
        Labels want;
        for (int lab : out_)
          if (!want.empty() || has(*l, lab)) want.push_back(has(*l, lab) ? lab : kUnit);
        *x = arrange(*x, *l, want);
      }
      return add(ir::Op::kMul, {a, b});
    }
    const int k = contracted.back();
    const Labels extra_k(contracted.begin(), contracted.end() - 1);
    const int m = left.empty() ? kUnit : left.back(), n = right.empty() ? kUnit : right.back();
    const Labels extra_l(left.begin(), left.end() - (left.empty() ? 0 : 1));
    const Labels extra_r(right.begin(), right.end() - (right.empty() ? 0 : 1));
    Labels want_a = extra_l, want_b = extra_r, prefix = extra_l;
    if (!extra_l.empty()) want_a.insert(want_a.end(), extra_r.size(), kUnit);
    prefix.insert(prefix.end(), extra_r.begin(), extra_r.end());
    for (Labels* w : {&want_a, &want_b, &prefix}) {
      w->insert(w->end(), batch.begin(), batch.end());
      w->insert(w->end(), extra_k.begin(), extra_k.end());
    }
    want_a.insert(want_a.end(), {m, k});
    want_b.insert(want_b.end(), {k, n});
    a = arrange(a, la, want_a);
    b = arrange(b, lb, want_b);
    ir::Value* y = add(ir::Op::kMatMul, {a, b});
    Labels ly = prefix;
    ly.insert(ly.end(), {m, n});
    std::vector<int64_t> units;
    for (size_t i = 0; i < ly.size(); ++i)
      if (ly[i] == kUnit) units.push_back(static_cast<int64_t>(i));
    if (!units.empty()) {
      y = add(ir::Op::kSqueeze, {y, axes(units)});
      ly.erase(std::remove(ly.begin(), ly.end(), kUnit), ly.end());
    }
    y = reduce_sum(y, ly, extra_k);
    return arrange(y, ly, out_);
  }

  // The last node writes the Einsum's output value (its name may be a graph output's).
  void finish(ir::Value* y) {
    if (!last_ || y->producer != last_) add(ir::Op::kIdentity, {y});  // "ij->ij"
    ir::Value* result = n_.outputs[0];
    last_->outputs[0] = result;
    result->producer = last_;
  }

  ir::Graph& g_;
  ir::Node& n_;
  std::string equation_;
  Labels out_;
  ir::Node* last_ = nullptr;
};

}  // namespace

Status lower_einsums(ir::Graph& g) {
  std::vector<ir::Node*> einsums;
  for (const auto& n : g.nodes())
    if (n->op == ir::Op::kEinsum) einsums.push_back(n.get());
  std::unordered_set<const ir::Node*> lowered;
  for (ir::Node* n : einsums) {
    KILN_ASSIGN_OR_RETURN(bool done, EinsumLowering(g, *n).run());
    if (done) lowered.insert(n);
  }
  g.remove_nodes_if([&](const ir::Node* n) { return lowered.count(n) != 0; });
  return Status::ok();
}

}  // namespace kiln::frontend
