// Shape, dtype and sym_value inference for every op kiln imports (see shape_inference.h).
#include "compiler/ir/shape_inference.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <map>

#include "compiler/ir/einsum.h"

namespace kiln::ir {
namespace {

// Slice ends at or beyond this are "to the end" (exporters write INT64_MAX or INT32_MAX-ish).
constexpr int64_t kSliceToEnd = int64_t{1} << 31;

using SymValue = std::vector<Dim>;

class NodeInference {
 public:
  NodeInference(Graph& g, Node& n) : g_(g), n_(n), names_(g.symbol_names()) {}
  Status run();
  using Hook = Status (NodeInference::*)();
  static Hook hook(Op op);  // nullptr: the op has no shape inference

 private:
  Status err(const std::string& msg) const { return Status::error(n_.describe() + ": " + msg); }
  std::string str(const Shape& s) const { return shape_str(s, names_); }
  std::string str(const Dim& d) const { return d.str(names_); }

  Value* in(size_t i) const { return n_.input(i); }
  Value* out(size_t i) const { return i < n_.outputs.size() ? n_.outputs[i] : nullptr; }
  Status need_inputs(size_t count) const;
  const Shape& shape(size_t i) const { return *in(i)->shape; }
  const SymValue* sym(size_t i) const {
    Value* v = in(i);
    return v && v->sym_value ? &*v->sym_value : nullptr;
  }
  // Elements of a shape-like input (constant or sym_value); error naming the input otherwise.
  Result<SymValue> operand(size_t i, const char* what) const;
  Result<std::vector<int64_t>> const_operand(size_t i, const char* what) const;
  Result<int64_t> axis(int64_t a, size_t rank) const;
  Result<std::vector<int64_t>> axes_from_attr_or_input(size_t input_index) const;
  Result<Shape> broadcast(const Shape& a, const Shape& b) const;
  void set(size_t i, DType t, Shape s, std::optional<SymValue> sv = std::nullopt);
  void clamp_symbol(const Dim& end, int64_t size);
  // Elementwise sym_value over inputs that all have sym_values and constant shapes.
  std::optional<SymValue> sym_elementwise(
      const Shape& out_shape,
      const std::function<std::optional<Dim>(const std::vector<Dim>&)>& fn) const;

  Status check_dtype(const Value* v) const;
  Status binary();
  Status unary();
  Status pass_through();
  Status predicate();
  Status gather_elements();
  Status gather_nd();
  Status pad();
  Status cumsum();
  Status tile();
  Status trilu();
  Status scatter_nd();
  Status einsum();
  Status check_indices(size_t i) const;
  Status clip();
  Status constant();
  Status symbolic_tensor();
  Status where();
  Status gather();
  Status matmul();
  Status gemm();
  Status dense();
  Status embedding_layer_norm();
  Status attention();
  Status reshape();
  Status flatten();
  Status transpose();
  Status squeeze();
  Status unsqueeze();
  Status slice();
  Result<Dim> slice_dim(const Dim& d, Dim s, Dim e, int64_t step);
  Status concat();
  Status expand();
  Status range();
  Status reduce();
  std::optional<SymValue> sym_reduce(const std::vector<bool>& red) const;
  Status shape_op();
  Status constant_of_shape();
  Status cast();
  Status split();
  Status layer_norm();
  Status softmax();

  Graph& g_;
  Node& n_;
  std::vector<std::string> names_;
};

Status NodeInference::need_inputs(size_t count) const {
  for (size_t i = 0; i < count; ++i) {
    if (!in(i)) return err("input " + std::to_string(i) + " is missing");
    if (!in(i)->shape) return err("input '" + in(i)->name + "' has no shape");
  }
  if (n_.outputs.empty() || !out(0)) return err("has no output");
  return Status::ok();
}

Result<SymValue> NodeInference::operand(size_t i, const char* what) const {
  Value* v = in(i);
  if (!v) return err(std::string(what) + " input is missing");
  if (v->sym_value) return *v->sym_value;
  if (v->constant) {
    SymValue r;
    for (int64_t k = 0; k < v->constant->numel(); ++k) r.push_back(Dim(v->constant->int_at(k)));
    return r;
  }
  return err(std::string(what) + " '" + v->name +
             "' is neither a constant nor a known shape computation");
}

Result<std::vector<int64_t>> NodeInference::const_operand(size_t i, const char* what) const {
  KILN_ASSIGN_OR_RETURN(auto r, operand(i, what));
  std::vector<int64_t> out_v;
  for (const Dim& d : r) {
    if (!d.is_constant())
      return err(std::string(what) + " '" + in(i)->name + "' is symbolic (" + str(d) +
                 "), a constant is required");
    out_v.push_back(d.coef);
  }
  return out_v;
}

Result<int64_t> NodeInference::axis(int64_t a, size_t rank) const {
  int64_t r = static_cast<int64_t>(rank);
  if (a < -r || a >= r)
    return err("axis " + std::to_string(a) + " out of range for rank " + std::to_string(rank));
  return a < 0 ? a + r : a;
}

Result<std::vector<int64_t>> NodeInference::axes_from_attr_or_input(size_t input_index) const {
  if (n_.has_attr("axes")) return n_.attr_ints("axes");
  if (in(input_index)) return const_operand(input_index, "axes");
  return std::vector<int64_t>{};
}

Result<Shape> NodeInference::broadcast(const Shape& a, const Shape& b) const {
  size_t r = std::max(a.size(), b.size());
  Shape s(r);
  for (size_t i = 0; i < r; ++i) {
    Dim da = i < r - a.size() ? Dim(1) : a[i - (r - a.size())];
    Dim db = i < r - b.size() ? Dim(1) : b[i - (r - b.size())];
    if (da == db || db == Dim(1)) {
      s[i] = da;
    } else if (da == Dim(1)) {
      s[i] = db;
    } else {
      return err("cannot broadcast shapes " + str(a) + " and " + str(b));
    }
  }
  return s;
}

void NodeInference::set(size_t i, DType t, Shape s, std::optional<SymValue> sv) {
  Value* v = out(i);
  if (!v) return;
  v->dtype = t;
  v->shape = std::move(s);
  if (sv && (t == DType::kInt64 || t == DType::kInt32 || t == DType::kBool))
    v->sym_value = std::move(sv);
}

void NodeInference::clamp_symbol(const Dim& end, int64_t size) {
  if (end.coef != 1) return;
  int which = -1;
  for (int k = 0; k < kMaxSymbols; ++k) {
    if (end.pow[k] == 0) continue;
    if (end.pow[k] != 1 || which >= 0) return;
    which = k;
  }
  if (which < 0 || which >= static_cast<int>(g_.symbols.size())) return;
  int64_t& mx = g_.symbols[which].max;
  if (mx == 0 || mx > size) mx = size;
}

std::optional<SymValue> NodeInference::sym_elementwise(
    const Shape& out_shape,
    const std::function<std::optional<Dim>(const std::vector<Dim>&)>& fn) const {
  if (!shape_is_constant(out_shape)) return std::nullopt;
  std::vector<int64_t> od = constant_dims(out_shape);
  int64_t numel = 1;
  for (int64_t d : od) numel *= d;
  if (numel > 64) return std::nullopt;
  std::vector<std::vector<int64_t>> strides;
  for (Value* v : n_.inputs) {
    if (!v || !v->sym_value || !shape_is_constant(*v->shape)) return std::nullopt;
    std::vector<int64_t> d = constant_dims(*v->shape);
    std::vector<int64_t> st(od.size(), 0);
    int64_t acc = 1;
    for (size_t k = d.size(); k-- > 0;) {
      size_t o = k + od.size() - d.size();
      st[o] = d[k] == 1 ? 0 : acc;
      acc *= d[k];
    }
    strides.push_back(st);
  }
  SymValue r;
  for (int64_t i = 0; i < numel; ++i) {
    std::vector<Dim> args;
    for (size_t j = 0; j < n_.inputs.size(); ++j) {
      int64_t rem = i, idx = 0;
      for (size_t k = od.size(); k-- > 0;) {
        idx += (rem % od[k]) * strides[j][k];
        rem /= od[k];
      }
      args.push_back((*n_.inputs[j]->sym_value)[idx]);
    }
    auto e = fn(args);
    if (!e) return std::nullopt;
    r.push_back(*e);
  }
  return r;
}

// Symbolic dims are positive (sizes), which decides comparisons against constants <= 0.
std::optional<Dim> sym_equal(const Dim& a, const Dim& b) {
  if (a == b) return Dim(1);
  if (a.is_constant() && b.is_constant()) return Dim(0);
  const Dim& s = a.is_constant() ? b : a;
  const Dim& c = a.is_constant() ? a : b;
  if (c.is_constant() && s.coef > 0 && c.coef <= 0) return Dim(0);
  return std::nullopt;
}

std::optional<Dim> sym_add(const Dim& a, const Dim& b, int sign) {
  if (b == Dim(0)) return a;
  if (a == Dim(0) && sign > 0) return b;
  if (!a.same_symbols(b)) return std::nullopt;
  Dim r = a;
  r.coef = a.coef + sign * b.coef;
  if (r.coef == 0) return Dim(0);
  return r;
}

// Bounds of a dim's value: symbols are sizes >= 1, so k * seq^p (p > 0) is >= k for k > 0 and
// <= k for k < 0. nullopt: unbounded on that side.
struct Bounds {
  std::optional<int64_t> lo, hi;
};
Bounds dim_bounds(const Dim& d) {
  if (d.is_constant()) return {d.coef, d.coef};
  for (int8_t p : d.pow)
    if (p < 0) return {};
  if (d.coef > 0) return {d.coef, std::nullopt};
  return {std::nullopt, d.coef};
}

// Bounds of x - y.
Bounds difference_bounds(const Dim& x, const Dim& y) {
  if (auto d = sym_add(x, y, -1); d && d->is_constant()) return {d->coef, d->coef};
  const Bounds bx = dim_bounds(x), by = dim_bounds(y);
  Bounds r;
  if (bx.lo && by.hi) r.lo = *bx.lo - *by.hi;
  if (bx.hi && by.lo) r.hi = *bx.hi - *by.lo;
  return r;
}

// Comparisons and Min / Max of symbolic dims where the bounds decide them (seq >= 1, Max(seq, 1)).
std::optional<Dim> sym_order(Op op, const Dim& x, const Dim& y) {
  const Bounds d = difference_bounds(x, y);
  const bool ge = d.lo && *d.lo >= 0, gt = d.lo && *d.lo > 0;
  const bool le = d.hi && *d.hi <= 0, lt = d.hi && *d.hi < 0;
  switch (op) {
    case Op::kGreater:
      return gt ? Dim(1) : le ? std::optional<Dim>(Dim(0)) : std::nullopt;
    case Op::kGreaterOrEqual:
      return ge ? Dim(1) : lt ? std::optional<Dim>(Dim(0)) : std::nullopt;
    case Op::kLess:
      return lt ? Dim(1) : ge ? std::optional<Dim>(Dim(0)) : std::nullopt;
    case Op::kLessOrEqual:
      return le ? Dim(1) : gt ? std::optional<Dim>(Dim(0)) : std::nullopt;
    case Op::kMax:
      return ge ? x : le ? std::optional<Dim>(y) : std::nullopt;
    case Op::kMin:
      return le ? x : ge ? std::optional<Dim>(y) : std::nullopt;
    default:
      return std::nullopt;
  }
}

// The dtype an elementwise op's registry entry accepts.
Status NodeInference::check_dtype(const Value* v) const {
  const OpInfo& info = op_info(n_.op);
  const bool is_float =
      v->dtype == DType::kFloat32 || v->dtype == DType::kFloat64 || v->dtype == DType::kFloat16;
  const bool is_bool = v->dtype == DType::kBool;
  const uint8_t cls = is_float ? kFloatTypes : is_bool ? kBoolType : kIntTypes;
  if (info.dtypes & cls) return Status::ok();
  return err("input '" + v->name + "' has dtype " + dtype_name(v->dtype) + ", which " + info.name +
             " does not accept");
}

// Element-wise sym_value of a binary / compare op: symbolic where the algebra allows, else the
// registry's integer reference on constants.
std::optional<Dim> sym_binary(Op op, const Dim& x, const Dim& y) {
  switch (op) {
    case Op::kAdd:
      return sym_add(x, y, 1);
    case Op::kSub:
      return sym_add(x, y, -1);
    case Op::kMul:
      return x * y;
    case Op::kDiv:
      if (!x.is_constant() || !y.is_constant()) return x.divide(y);
      break;
    case Op::kEqual:
      return sym_equal(x, y);
    case Op::kGreater:
    case Op::kGreaterOrEqual:
    case Op::kLess:
    case Op::kLessOrEqual:
    case Op::kMin:
    case Op::kMax:
      return sym_order(op, x, y);
    default:
      break;
  }
  if (!x.is_constant() || !y.is_constant()) return std::nullopt;
  const Scalar& f = op_info(op).scalar;
  if (f.i2) {
    auto r = f.i2(x.coef, y.coef);
    return r ? std::optional<Dim>(Dim(*r)) : std::nullopt;
  }
  if (f.f2)
    return Dim(
        static_cast<int64_t>(f.f2(static_cast<double>(x.coef), static_cast<double>(y.coef))));
  return std::nullopt;
}

Status NodeInference::binary() {
  KILN_RETURN_IF_ERROR(need_inputs(2));
  KILN_RETURN_IF_ERROR(check_dtype(in(0)));
  // Pow's exponent may have another dtype; everything else needs equal dtypes.
  if (n_.op != Op::kPow && in(0)->dtype != in(1)->dtype)
    return err("inputs '" + in(0)->name + "' (" + dtype_name(in(0)->dtype) + ") and '" +
               in(1)->name + "' (" + dtype_name(in(1)->dtype) + ") have different dtypes");
  KILN_ASSIGN_OR_RETURN(auto s, broadcast(shape(0), shape(1)));
  const bool compare = op_kind(n_.op) == OpKind::kCompare;
  const DType t = compare ? DType::kBool : in(0)->dtype;
  std::optional<SymValue> sv;
  if (t == DType::kInt64 || t == DType::kInt32 || t == DType::kBool)
    sv = sym_elementwise(s,
                         [&](const std::vector<Dim>& a) { return sym_binary(n_.op, a[0], a[1]); });
  set(0, t, s, sv);
  return Status::ok();
}

Status NodeInference::unary() {
  KILN_RETURN_IF_ERROR(need_inputs(1));
  KILN_RETURN_IF_ERROR(check_dtype(in(0)));
  const Scalar& f = op_info(n_.op).scalar;
  std::optional<SymValue> sv;
  if (f.i1)
    sv = sym_elementwise(shape(0), [&](const std::vector<Dim>& a) -> std::optional<Dim> {
      if (n_.op == Op::kNeg) {  // -seq stays symbolic
        Dim r = a[0];
        r.coef = -r.coef;
        return r;
      }
      if (!a[0].is_constant()) return std::nullopt;
      auto r = f.i1(a[0].coef);
      return r ? std::optional<Dim>(Dim(*r)) : std::nullopt;
    });
  set(0, in(0)->dtype, shape(0), sv);
  return Status::ok();
}

Status NodeInference::predicate() {
  KILN_RETURN_IF_ERROR(need_inputs(1));
  KILN_RETURN_IF_ERROR(check_dtype(in(0)));
  set(0, DType::kBool, shape(0));
  return Status::ok();
}

// Clip(x, min?, max?): x's shape; the bounds are scalars of x's dtype.
Status NodeInference::clip() {
  KILN_RETURN_IF_ERROR(need_inputs(1));
  for (size_t i = 1; i < 3; ++i) {
    const Value* b = in(i);
    if (!b) continue;
    if (!b->shape || shape_numel(*b->shape) != Dim(1))
      return err(std::string(i == 1 ? "min" : "max") + " '" + b->name + "' is not a scalar" +
                 (b->shape ? " (shape " + str(*b->shape) + ")" : ""));
    if (b->dtype != in(0)->dtype)
      return err(std::string(i == 1 ? "min" : "max") + " '" + b->name + "' has dtype " +
                 dtype_name(b->dtype) + ", input '" + in(0)->name + "' has " +
                 dtype_name(in(0)->dtype));
  }
  auto sv = sym_elementwise(shape(0), [&](const std::vector<Dim>& a) -> std::optional<Dim> {
    Dim r = a[0];
    if (in(1)) {
      auto m = sym_order(Op::kMax, r, (*sym(1))[0]);
      if (!m) return std::nullopt;
      r = *m;
    }
    if (in(2)) {
      auto m = sym_order(Op::kMin, r, (*sym(2))[0]);
      if (!m) return std::nullopt;
      r = *m;
    }
    return r;
  });
  set(0, in(0)->dtype, shape(0), sv);
  return Status::ok();
}

Status NodeInference::pass_through() {
  KILN_RETURN_IF_ERROR(need_inputs(1));
  set(0, in(0)->dtype, shape(0), in(0)->sym_value);
  set(1, DType::kBool, shape(0));  // Dropout's mask
  return Status::ok();
}

Status NodeInference::where() {
  KILN_RETURN_IF_ERROR(need_inputs(3));
  if (in(0)->dtype != DType::kBool) return err("condition '" + in(0)->name + "' is not bool");
  if (in(1)->dtype != in(2)->dtype)
    return err("inputs '" + in(1)->name + "' and '" + in(2)->name + "' have different dtypes");
  KILN_ASSIGN_OR_RETURN(auto xy, broadcast(shape(0), shape(1)));
  KILN_ASSIGN_OR_RETURN(auto s, broadcast(xy, shape(2)));
  auto sv = sym_elementwise(s, [](const std::vector<Dim>& a) -> std::optional<Dim> {
    if (!a[0].is_constant()) return std::nullopt;
    return a[0].coef ? a[1] : a[2];
  });
  set(0, in(1)->dtype, s, sv);
  return Status::ok();
}

// Follows index-preserving ops back to a Range(0, limit): its limit bounds the indices.
const Value* range_limit_through_views(const Value* v) {
  for (int depth = 0; v && v->producer && depth < 8; ++depth) {
    const Node* p = v->producer;
    if (p->op == Op::kRange) return p->input(1);
    if (p->op != Op::kUnsqueeze && p->op != Op::kExpand && p->op != Op::kReshape &&
        p->op != Op::kCast && p->op != Op::kSqueeze)
      return nullptr;
    v = p->input(0);
  }
  return nullptr;
}

Status NodeInference::gather() {
  KILN_RETURN_IF_ERROR(need_inputs(2));
  const Shape& d = shape(0);
  KILN_ASSIGN_OR_RETURN(auto ax, axis(n_.attr_int("axis", 0), d.size()));
  if (in(1)->dtype != DType::kInt64 && in(1)->dtype != DType::kInt32)
    return err("indices '" + in(1)->name + "' have dtype " + dtype_name(in(1)->dtype));
  Shape s(d.begin(), d.begin() + ax);
  s.insert(s.end(), shape(1).begin(), shape(1).end());
  s.insert(s.end(), d.begin() + ax + 1, d.end());
  std::optional<SymValue> sv;
  if (sym(0) && d.size() == 1 && sym(1)) {
    SymValue r;
    int64_t n = static_cast<int64_t>(sym(0)->size());
    for (const Dim& i : *sym(1)) {
      if (!i.is_constant()) return err("symbolic index into a shape");
      int64_t k = i.coef < 0 ? i.coef + n : i.coef;
      if (k < 0 || k >= n)
        return err("index " + std::to_string(i.coef) + " out of range for '" + in(0)->name +
                   "' of shape " + str(d));
      r.push_back((*sym(0))[k]);
    }
    sv = r;
  }
  // Gather(table[P, ...], Range(0, seq)) implies seq <= P.
  if (d[ax].is_constant())
    if (const Value* lim = range_limit_through_views(in(1)))
      if (lim->sym_value && lim->sym_value->size() == 1)
        clamp_symbol((*lim->sym_value)[0], d[ax].coef);
  set(0, in(0)->dtype, s, sv);
  return Status::ok();
}

Status NodeInference::check_indices(size_t i) const {
  if (in(i)->dtype != DType::kInt64 && in(i)->dtype != DType::kInt32)
    return err("indices '" + in(i)->name + "' have dtype " + dtype_name(in(i)->dtype) +
               ", int64 or int32 is required");
  return Status::ok();
}

// GatherElements(data, indices) {axis}: indices' shape, data's dtype.
Status NodeInference::gather_elements() {
  KILN_RETURN_IF_ERROR(need_inputs(2));
  KILN_RETURN_IF_ERROR(check_indices(1));
  const Shape &d = shape(0), &i = shape(1);
  if (d.size() != i.size())
    return err("indices '" + in(1)->name + "' of shape " + str(i) + " and data '" + in(0)->name +
               "' of shape " + str(d) + " have different ranks");
  KILN_ASSIGN_OR_RETURN(auto ax, axis(n_.attr_int("axis", 0), d.size()));
  (void)ax;
  set(0, in(0)->dtype, i);
  return Status::ok();
}

// GatherND(data, indices) {batch_dims}: indices [B..., R..., k] -> [B..., R..., data dims after
// batch_dims + k].
Status NodeInference::gather_nd() {
  KILN_RETURN_IF_ERROR(need_inputs(2));
  KILN_RETURN_IF_ERROR(check_indices(1));
  const Shape &d = shape(0), &i = shape(1);
  const int64_t b = n_.attr_int("batch_dims", 0);
  if (i.empty() || !i.back().is_constant())
    return err("indices '" + in(1)->name + "' of shape " + str(i) +
               " need a constant last dimension");
  const int64_t k = i.back().coef;
  if (b < 0 || b >= static_cast<int64_t>(i.size()) || b + k > static_cast<int64_t>(d.size()))
    return err("batch_dims " + std::to_string(b) + " with indices of shape " + str(i) +
               " does not fit data of shape " + str(d));
  for (int64_t k2 = 0; k2 < b; ++k2)
    if (d[k2] != i[k2])
      return err("batch dim " + std::to_string(k2) + " of data " + str(d) + " and indices " +
                 str(i) + " differ");
  Shape s(i.begin(), i.end() - 1);
  s.insert(s.end(), d.begin() + b + k, d.end());
  set(0, in(0)->dtype, s);
  return Status::ok();
}

// Pad(x, pads, constant_value?, axes?) {mode}: each padded dim grows by its begin + end pads.
Status NodeInference::pad() {
  KILN_RETURN_IF_ERROR(need_inputs(1));
  const Shape& x = shape(0);
  const std::string mode = n_.attr_string("mode", "constant");
  if (mode != "constant" && mode != "edge" && mode != "reflect")
    return err("mode '" + mode + "' is not supported (constant, edge, reflect)");
  KILN_ASSIGN_OR_RETURN(auto pads, operand(1, "pads"));
  std::vector<int64_t> axes;
  if (in(3)) {
    KILN_ASSIGN_OR_RETURN(auto a, const_operand(3, "axes"));
    axes = a;
  } else {
    for (size_t k = 0; k < x.size(); ++k) axes.push_back(static_cast<int64_t>(k));
  }
  if (pads.size() != 2 * axes.size())
    return err("pads has " + std::to_string(pads.size()) + " elements, " +
               std::to_string(2 * axes.size()) + " expected");
  if (in(2) && (!in(2)->constant || in(2)->constant->numel() != 1))
    return err("constant_value '" + in(2)->name + "' must be a constant scalar");
  Shape s = x;
  for (size_t k = 0; k < axes.size(); ++k) {
    KILN_ASSIGN_OR_RETURN(auto a, axis(axes[k], x.size()));
    auto grown = sym_add(s[a], pads[k], 1);
    if (grown) grown = sym_add(*grown, pads[k + axes.size()], 1);
    if (!grown)
      return err("padded size of dim " + str(x[a]) + " by " + str(pads[k]) + " and " +
                 str(pads[k + axes.size()]) + " is not a monomial");
    s[a] = *grown;
  }
  set(0, in(0)->dtype, s);
  return Status::ok();
}

// CumSum(x, axis) {exclusive, reverse}: x's shape; prefix sums of a small int shape tensor.
Status NodeInference::cumsum() {
  KILN_RETURN_IF_ERROR(need_inputs(1));
  const Shape& x = shape(0);
  KILN_ASSIGN_OR_RETURN(auto a, const_operand(1, "axis"));
  if (a.size() != 1) return err("axis must be a scalar");
  KILN_ASSIGN_OR_RETURN(auto ax, axis(a[0], x.size()));
  (void)ax;
  const DType t = in(0)->dtype;
  if (t != DType::kFloat32 && t != DType::kFloat64 && t != DType::kInt64 && t != DType::kInt32)
    return err("input '" + in(0)->name + "' has dtype " + dtype_name(t) +
               ", which CumSum does not accept");
  std::optional<SymValue> sv;
  if (sym(0) && x.size() == 1) {
    const bool exclusive = n_.attr_int("exclusive", 0) != 0,
               reverse = n_.attr_int("reverse", 0) != 0;
    const SymValue& v = *sym(0);
    SymValue r(v.size());
    std::optional<Dim> acc = Dim(0);
    for (size_t j = 0; j < v.size() && acc; ++j) {
      const size_t at = reverse ? v.size() - 1 - j : j;
      if (exclusive) r[at] = *acc;
      acc = sym_add(*acc, v[at], 1);
      if (acc && !exclusive) r[at] = *acc;
    }
    if (acc) sv = r;
  }
  set(0, t, x, sv);
  return Status::ok();
}

// Tile(x, repeats): dim k times repeats[k].
Status NodeInference::tile() {
  KILN_RETURN_IF_ERROR(need_inputs(1));
  const Shape& x = shape(0);
  KILN_ASSIGN_OR_RETURN(auto reps, operand(1, "repeats"));
  if (reps.size() != x.size())
    return err("repeats has " + std::to_string(reps.size()) + " elements for input '" +
               in(0)->name + "' of shape " + str(x));
  Shape s = x;
  for (size_t k = 0; k < x.size(); ++k) s[k] = x[k] * reps[k];
  set(0, in(0)->dtype, s);
  return Status::ok();
}

// Trilu(x, k?) {upper}: x's shape and dtype; rank >= 2; k a scalar int64.
Status NodeInference::trilu() {
  KILN_RETURN_IF_ERROR(need_inputs(1));
  if (shape(0).size() < 2)
    return err("input '" + in(0)->name + "' of shape " + str(shape(0)) + " has rank < 2");
  if (const Value* k = in(1)) {
    if (!k->shape || shape_numel(*k->shape) != Dim(1))
      return err("k '" + k->name + "' is not a scalar" +
                 (k->shape ? " (shape " + str(*k->shape) + ")" : ""));
    if (k->dtype != DType::kInt64 && k->dtype != DType::kInt32)
      return err("k '" + k->name + "' has dtype " + dtype_name(k->dtype) + ", int64 is required");
  }
  set(0, in(0)->dtype, shape(0));
  return Status::ok();
}

// ScatterND(data, indices [..., k], updates [indices dims but the last, data dims after k])
// {reduction}: data's shape and dtype.
Status NodeInference::scatter_nd() {
  KILN_RETURN_IF_ERROR(need_inputs(3));
  KILN_RETURN_IF_ERROR(check_indices(1));
  const Shape &d = shape(0), &i = shape(1), &u = shape(2);
  if (i.empty() || !i.back().is_constant())
    return err("indices '" + in(1)->name + "' of shape " + str(i) +
               " need a constant last dimension");
  const int64_t k = i.back().coef;
  if (k < 1 || k > static_cast<int64_t>(d.size()))
    return err("indices '" + in(1)->name + "' of shape " + str(i) + " index " + std::to_string(k) +
               " dims of data '" + in(0)->name + "' of shape " + str(d));
  Shape want(i.begin(), i.end() - 1);
  want.insert(want.end(), d.begin() + k, d.end());
  if (u != want)
    return err("updates '" + in(2)->name + "' have shape " + str(u) + ", " + str(want) +
               " expected from data " + str(d) + " and indices " + str(i));
  if (in(2)->dtype != in(0)->dtype)
    return err("updates '" + in(2)->name + "' have dtype " + dtype_name(in(2)->dtype) + ", data '" +
               in(0)->name + "' has " + dtype_name(in(0)->dtype));
  const std::string red = n_.attr_string("reduction", "none");
  if (red != "none" && red != "add" && red != "mul" && red != "max" && red != "min")
    return err("reduction '" + red + "' is not one of none, add, mul, max, min");
  if (red != "none" && in(0)->dtype == DType::kBool)
    return err("reduction '" + red + "' on bool data");
  set(0, in(0)->dtype, d);
  return Status::ok();
}

// Einsum(inputs...) {equation}: one dim per output label, the size its inputs give it (a size-1
// dim broadcasts).
Status NodeInference::einsum() {
  if (n_.inputs.empty()) return err("has no inputs");
  KILN_RETURN_IF_ERROR(need_inputs(n_.inputs.size()));
  std::vector<size_t> ranks;
  for (size_t i = 0; i < n_.inputs.size(); ++i) {
    if (in(i)->dtype != in(0)->dtype)
      return err("inputs '" + in(0)->name + "' and '" + in(i)->name + "' have different dtypes");
    ranks.push_back(shape(i).size());
  }
  const std::string equation = n_.attr_string("equation", "");
  auto labels = parse_einsum(equation, ranks);
  if (!labels) return err("equation '" + equation + "': " + labels.status().message());
  std::map<int, Dim> size;
  for (size_t i = 0; i < n_.inputs.size(); ++i)
    for (size_t j = 0; j < ranks[i]; ++j) {
      const int l = labels->inputs[i][j];
      const Dim& d = shape(i)[j];
      auto it = size.find(l);
      if (it == size.end() || it->second == Dim(1)) {
        size[l] = d;
      } else if (d != Dim(1) && d != it->second) {
        return err("label '" + einsum_label_name(l) + "' of equation '" + equation +
                   "' has sizes " + str(it->second) + " and " + str(d));
      }
    }
  Shape s;
  for (int l : labels->output) s.push_back(size[l]);
  set(0, in(0)->dtype, s);
  return Status::ok();
}

Status NodeInference::matmul() {
  KILN_RETURN_IF_ERROR(need_inputs(2));
  if (in(0)->dtype != in(1)->dtype) return err("inputs have different dtypes");
  Shape a = shape(0), b = shape(1);
  if (a.empty() || b.empty()) return err("scalar operand");
  bool a1 = a.size() == 1, b1 = b.size() == 1;
  if (a1) a.insert(a.begin(), Dim(1));
  if (b1) b.push_back(Dim(1));
  const Dim& k1 = a[a.size() - 1];
  const Dim& k2 = b[b.size() - 2];
  if (k1 != k2) return err("inner dimensions differ: " + str(shape(0)) + " x " + str(shape(1)));
  KILN_ASSIGN_OR_RETURN(auto batch,
                        broadcast(Shape(a.begin(), a.end() - 2), Shape(b.begin(), b.end() - 2)));
  Shape s = batch;
  if (!a1) s.push_back(a[a.size() - 2]);
  if (!b1) s.push_back(b.back());
  set(0, in(0)->dtype, s);
  return Status::ok();
}

Status NodeInference::gemm() {
  KILN_RETURN_IF_ERROR(need_inputs(2));
  const Shape &a = shape(0), &b = shape(1);
  if (a.size() != 2 || b.size() != 2) return err("Gemm needs rank-2 A and B");
  bool ta = n_.attr_int("transA", 0) != 0, tb = n_.attr_int("transB", 0) != 0;
  Dim m = ta ? a[1] : a[0], ka = ta ? a[0] : a[1];
  Dim kb = tb ? b[1] : b[0], nn = tb ? b[0] : b[1];
  if (ka != kb) return err("inner dimensions differ: " + str(a) + " x " + str(b));
  Shape s{m, nn};
  if (in(2)) {
    if (!in(2)->shape) return err("input C has no shape");
    KILN_ASSIGN_OR_RETURN(auto bc, broadcast(s, *in(2)->shape));
    if (bc != s)
      return err("C of shape " + str(*in(2)->shape) + " does not broadcast to " + str(s));
  }
  set(0, in(0)->dtype, s);
  return Status::ok();
}

// kiln's Dense(x[..., K], W[K, N], bias[N]?, residual?) -> [..., N] (passes/fuse_dense.cpp).
Status NodeInference::dense() {
  KILN_RETURN_IF_ERROR(need_inputs(2));
  const Shape &x = shape(0), &w = shape(1);
  if (in(0)->dtype != DType::kFloat32 || in(1)->dtype != DType::kFloat32)
    return err("x and W must be float32");
  if (x.empty() || w.size() != 2 || x.back() != w[0])
    return err("x " + str(x) + " and W " + str(w) + " do not make x[..., K] * W[K, N]");
  Shape s = x;
  s.back() = w[1];
  if (in(2) && (!in(2)->shape || *in(2)->shape != Shape{w[1]}))
    return err("bias must have shape [" + str(w[1]) + "]");
  if (in(3) && (!in(3)->shape || *in(3)->shape != s))
    return err("residual must have the output's shape " + str(s));
  // Inputs 4/5: LayerNorm scale / bias over the rows (passes/fuse_dense_layer_norm.cpp).
  for (size_t i = 4; i < 6; ++i)
    if (in(i) && (!in(i)->shape || *in(i)->shape != Shape{w[1]}))
      return err("LayerNorm scale/bias must have shape [" + str(w[1]) + "]");
  if (in(5) && !in(4)) return err("LayerNorm bias without scale");
  if (in(6) && (!in(6)->shape || *in(6)->shape != Shape{w[0]}))
    return err("act_smooth must have shape [" + str(w[0]) + "]");
  set(0, DType::kFloat32, s);
  return Status::ok();
}

// kiln's EmbeddingLayerNorm(scale [H], bias [H]?, table_0 [V0, H], ids_0, table_1, ids_1?, ...)
// -> ids_0's shape + [H] (passes/fuse_embed_layer_norm.cpp).
Status NodeInference::embedding_layer_norm() {
  KILN_RETURN_IF_ERROR(need_inputs(1));
  if (n_.inputs.size() < 4 || n_.inputs.size() % 2) return err("needs (table, ids) pairs");
  if (!in(3) || !in(3)->shape) return err("ids_0 is missing");
  const size_t terms = n_.inputs.size() / 2 - 1;
  if (n_.attr_ints("row_first").size() != terms || n_.attr_ints("row_step").size() != terms)
    return err("row_first / row_step need one entry per table");
  const Shape& s0 = shape(0);
  if (s0.size() != 1) return err("scale must be a vector");
  for (size_t t = 0; t < terms; ++t) {
    const Value* table = in(2 + 2 * t);
    if (!table || !table->shape || table->shape->size() != 2 || (*table->shape)[1] != s0[0])
      return err("table " + std::to_string(t) + " must be [V, " + str(s0) + "]");
    const Value* ids = in(3 + 2 * t);
    if (ids && ids->dtype != DType::kInt64 && ids->dtype != DType::kInt32)
      return err("ids must be int64 or int32");
  }
  Shape s = shape(3);
  s.push_back(s0[0]);
  set(0, DType::kFloat32, s);
  return Status::ok();
}

// kiln's Attention(q, k, v [B, S, H], mask?) -> [B, S, H], or with qkv_packed = 1
// Attention(qkv [B, S, 3H], -, -, mask?) (passes/fuse_attention.cpp, fuse_qkv.cpp).
Status NodeInference::attention() {
  const bool packed = n_.attr_int("qkv_packed", 0) != 0;
  KILN_RETURN_IF_ERROR(need_inputs(packed ? 1 : 3));
  const Shape& q = shape(0);
  const int64_t heads = n_.attr_int("num_heads", 0);
  if (q.size() != 3 || !q[2].is_constant() || heads <= 0)
    return err("q must be [batch, seq, hidden] with a constant hidden size, num_heads > 0");
  if (!packed && (shape(1) != q || shape(2) != q))
    return err("q, k, v must have the same shape, got " + str(q) + ", " + str(shape(1)) + ", " +
               str(shape(2)));
  const int64_t h = packed ? q[2].coef / 3 : q[2].coef;
  if ((packed && q[2].coef % 3) || h % heads)
    return err("hidden size " + std::to_string(h) + " does not split into " +
               std::to_string(heads) + " heads");
  for (size_t i = 0; i < 3; ++i)
    if (in(i) && in(i)->dtype != DType::kFloat32) return err("q, k, v must be float32");
  Shape s = q;
  s[2] = Dim(h);
  if (in(3)) {
    if (!in(3)->shape || in(3)->dtype != DType::kFloat32 || in(3)->shape->size() > 4)
      return err("mask must be float32 of rank <= 4");
    const Shape full{q[0], Dim(heads), q[1], q[1]};
    auto b = broadcast(full, *in(3)->shape);
    if (!b || *b != full)
      return err("mask " + str(*in(3)->shape) + " does not broadcast to " + str(full));
  }
  set(0, DType::kFloat32, s);
  return Status::ok();
}

Status NodeInference::reshape() {
  KILN_RETURN_IF_ERROR(need_inputs(2));
  KILN_ASSIGN_OR_RETURN(auto target, operand(1, "shape"));
  const Shape& x = shape(0);
  bool allowzero = n_.attr_int("allowzero", 0) != 0;
  Shape s;
  int infer_at = -1;
  for (size_t i = 0; i < target.size(); ++i) {
    Dim d = target[i];
    if (d == Dim(0) && !allowzero) {
      if (i >= x.size())
        return err("0 in shape at position " + std::to_string(i) + " beyond input rank");
      d = x[i];
    } else if (d == Dim(-1)) {
      if (infer_at >= 0) return err("more than one -1 in target shape");
      infer_at = static_cast<int>(i);
      d = Dim(1);
    } else if (d.coef < 0) {
      return err("invalid target dim " + str(d));
    }
    s.push_back(d);
  }
  Dim total = shape_numel(x);
  if (infer_at >= 0) {
    auto q = total.divide(shape_numel(s));
    if (!q) return err("cannot infer -1: " + str(x) + " does not divide into " + str(s));
    s[infer_at] = *q;
  } else if (shape_numel(s) != total) {
    return err("cannot reshape " + str(x) + " to " + str(s));
  }
  set(0, in(0)->dtype, s, in(0)->sym_value);
  return Status::ok();
}

Status NodeInference::flatten() {
  KILN_RETURN_IF_ERROR(need_inputs(1));
  const Shape& x = shape(0);
  int64_t a = n_.attr_int("axis", 1);
  if (a < 0) a += static_cast<int64_t>(x.size());
  if (a < 0 || a > static_cast<int64_t>(x.size())) return err("axis out of range");
  Shape s{shape_numel(Shape(x.begin(), x.begin() + a)), shape_numel(Shape(x.begin() + a, x.end()))};
  set(0, in(0)->dtype, s, in(0)->sym_value);
  return Status::ok();
}

Status NodeInference::transpose() {
  KILN_RETURN_IF_ERROR(need_inputs(1));
  const Shape& x = shape(0);
  std::vector<int64_t> perm = n_.attr_ints("perm");
  if (perm.empty())
    for (size_t i = x.size(); i-- > 0;) perm.push_back(static_cast<int64_t>(i));
  if (perm.size() != x.size())
    return err("perm size does not match rank " + std::to_string(x.size()));
  Shape s;
  std::vector<bool> seen(x.size());
  for (int64_t p : perm) {
    KILN_ASSIGN_OR_RETURN(auto a, axis(p, x.size()));
    if (seen[a]) return err("perm repeats axis " + std::to_string(p));
    seen[a] = true;
    s.push_back(x[a]);
  }
  set(0, in(0)->dtype, s, x.size() <= 1 ? in(0)->sym_value : std::nullopt);
  return Status::ok();
}

Status NodeInference::squeeze() {
  KILN_RETURN_IF_ERROR(need_inputs(1));
  const Shape& x = shape(0);
  KILN_ASSIGN_OR_RETURN(auto axes, axes_from_attr_or_input(1));
  std::vector<bool> drop(x.size());
  if (axes.empty()) {
    for (size_t i = 0; i < x.size(); ++i) drop[i] = x[i] == Dim(1);
  }
  for (int64_t a : axes) {
    KILN_ASSIGN_OR_RETURN(auto k, axis(a, x.size()));
    if (x[k] != Dim(1))
      return err("cannot squeeze axis " + std::to_string(a) + " of shape " + str(x));
    drop[k] = true;
  }
  Shape s;
  for (size_t i = 0; i < x.size(); ++i)
    if (!drop[i]) s.push_back(x[i]);
  set(0, in(0)->dtype, s, in(0)->sym_value);
  return Status::ok();
}

Status NodeInference::unsqueeze() {
  KILN_RETURN_IF_ERROR(need_inputs(1));
  const Shape& x = shape(0);
  KILN_ASSIGN_OR_RETURN(auto axes, axes_from_attr_or_input(1));
  size_t r = x.size() + axes.size();
  std::vector<bool> ins(r);
  for (int64_t a : axes) {
    KILN_ASSIGN_OR_RETURN(auto k, axis(a, r));
    if (ins[k]) return err("repeated axis " + std::to_string(a));
    ins[k] = true;
  }
  Shape s;
  size_t j = 0;
  for (size_t i = 0; i < r; ++i) s.push_back(ins[i] ? Dim(1) : x[j++]);
  set(0, in(0)->dtype, s, in(0)->sym_value);
  return Status::ok();
}

Result<Dim> NodeInference::slice_dim(const Dim& d, Dim s, Dim e, int64_t step) {
  bool e_end = e.is_constant() && e.coef >= kSliceToEnd;
  if (d.is_constant() && s.is_constant() && e.is_constant()) {
    int64_t n = d.coef, st = s.coef, en = e.coef;
    if (st < 0) st += n;
    if (en < 0) en += n;
    if (step > 0) {
      st = std::clamp<int64_t>(st, 0, n);
      en = std::clamp<int64_t>(en, 0, n);
      return Dim(en > st ? (en - st + step - 1) / step : 0);
    }
    st = std::clamp<int64_t>(st, 0, n - 1);
    en = std::clamp<int64_t>(en, -1, n - 1);
    return Dim(st > en ? (st - en - step - 1) / -step : 0);
  }
  if (step == 1 && s == Dim(0) && !e.is_constant()) {
    // end is symbolic (x[:, :seq]): valid only when end <= dim, which bounds the symbol.
    if (d.is_constant()) clamp_symbol(e, d.coef);
    return e;
  }
  if (step == 1 && s.is_constant() && e.is_constant()) {
    if (e_end && s.coef == 0) return d;
    if (e_end && s.coef < 0) return Dim(-s.coef);
    if (!e_end && ((s.coef >= 0 && e.coef >= s.coef) || (s.coef < 0 && e.coef < 0)))
      return Dim(std::max<int64_t>(0, e.coef - s.coef));
  }
  if (step == 1 && s == e) return Dim(0);
  return err("cannot slice symbolic dim " + str(d) + " with start " + str(s) + ", end " + str(e) +
             ", step " + std::to_string(step) + " (result is not a monomial)");
}

Status NodeInference::slice() {
  KILN_RETURN_IF_ERROR(need_inputs(1));
  if (n_.has_attr("starts"))
    return err("Slice with starts/ends attributes (opset < 10) is not supported");
  const Shape& x = shape(0);
  KILN_ASSIGN_OR_RETURN(auto starts, operand(1, "starts"));
  KILN_ASSIGN_OR_RETURN(auto ends, operand(2, "ends"));
  if (starts.size() != ends.size()) return err("starts and ends differ in length");
  std::vector<int64_t> axes, steps;
  if (in(3)) {
    KILN_ASSIGN_OR_RETURN(auto a, const_operand(3, "axes"));
    axes = a;
  } else {
    for (size_t i = 0; i < starts.size(); ++i) axes.push_back(static_cast<int64_t>(i));
  }
  if (in(4)) {
    KILN_ASSIGN_OR_RETURN(auto st, const_operand(4, "steps"));
    steps = st;
  } else {
    steps.assign(starts.size(), 1);
  }
  if (axes.size() != starts.size() || steps.size() != starts.size())
    return err("starts, ends, axes and steps differ in length");
  Shape s = x;
  for (size_t i = 0; i < axes.size(); ++i) {
    KILN_ASSIGN_OR_RETURN(auto a, axis(axes[i], x.size()));
    if (steps[i] == 0) return err("step 0");
    KILN_ASSIGN_OR_RETURN(auto d, slice_dim(x[a], starts[i], ends[i], steps[i]));
    s[a] = d;
  }
  std::optional<SymValue> sv;
  if (sym(0) && x.size() == 1 && x[0].is_constant() && shape_is_constant(s)) {
    int64_t n = x[0].coef;
    int64_t st = starts[0].coef, step = steps[0];
    if (st < 0) st += n;
    st = step > 0 ? std::clamp<int64_t>(st, 0, n) : std::clamp<int64_t>(st, 0, n - 1);
    SymValue r;
    for (int64_t k = 0; k < s[0].coef; ++k) r.push_back((*sym(0))[st + k * step]);
    sv = r;
  }
  set(0, in(0)->dtype, s, sv);
  return Status::ok();
}

Status NodeInference::concat() {
  KILN_RETURN_IF_ERROR(need_inputs(n_.inputs.size()));
  if (n_.inputs.empty()) return err("no inputs");
  const Shape& first = shape(0);
  KILN_ASSIGN_OR_RETURN(auto ax, axis(n_.attr_int("axis", 0), first.size()));
  Shape s = first;
  bool all_sym = true;
  SymValue sv;
  for (size_t i = 0; i < n_.inputs.size(); ++i) {
    const Shape& x = shape(i);
    if (in(i)->dtype != in(0)->dtype) return err("inputs have different dtypes");
    if (x.size() != first.size())
      return err("input '" + in(i)->name + "' of shape " + str(x) + " has a different rank from " +
                 str(first));
    for (size_t k = 0; k < x.size(); ++k)
      if (static_cast<int64_t>(k) != ax && x[k] != first[k])
        return err("input '" + in(i)->name + "' of shape " + str(x) + " does not match " +
                   str(first));
    if (i > 0) {
      auto sum = sym_add(s[ax], x[ax], 1);
      if (!sum)
        return err("concatenated size " + str(s[ax]) + " + " + str(x[ax]) + " is not a monomial");
      s[ax] = *sum;
    }
    if (sym(i))
      sv.insert(sv.end(), sym(i)->begin(), sym(i)->end());
    else
      all_sym = false;
  }
  set(0, in(0)->dtype, s, all_sym && s.size() == 1 ? std::optional<SymValue>(sv) : std::nullopt);
  return Status::ok();
}

Status NodeInference::expand() {
  KILN_RETURN_IF_ERROR(need_inputs(2));
  KILN_ASSIGN_OR_RETURN(auto target, operand(1, "shape"));
  KILN_ASSIGN_OR_RETURN(auto s, broadcast(shape(0), Shape(target.begin(), target.end())));
  auto sv = sym_elementwise(s, [](const std::vector<Dim>& a) { return std::optional<Dim>(a[0]); });
  set(0, in(0)->dtype, s,
      sym(0) && in(0)->shape && shape_is_constant(shape(0)) ? sv : std::nullopt);
  return Status::ok();
}

Status NodeInference::range() {
  KILN_RETURN_IF_ERROR(need_inputs(3));
  auto st = operand(0, "start"), lim = operand(1, "limit"), de = operand(2, "delta");
  if (!st) return st.status();
  if (!lim) return lim.status();
  if (!de) return de.status();
  if (st->size() != 1 || lim->size() != 1 || de->size() != 1) return err("inputs must be scalars");
  Dim a = (*st)[0], b = (*lim)[0], c = (*de)[0];
  Dim len;
  bool is_float = in(0)->dtype == DType::kFloat32 || in(0)->dtype == DType::kFloat64;
  if (is_float && in(0)->constant && in(1)->constant && in(2)->constant) {
    double fa = in(0)->constant->float_at(0), fb = in(1)->constant->float_at(0),
           fc = in(2)->constant->float_at(0);
    len = Dim(std::max<int64_t>(0, static_cast<int64_t>(std::ceil((fb - fa) / fc))));
  } else if (a.is_constant() && b.is_constant() && c.is_constant()) {
    if (c.coef == 0) return err("delta is 0");
    double l = std::ceil(static_cast<double>(b.coef - a.coef) / static_cast<double>(c.coef));
    len = Dim(std::max<int64_t>(0, static_cast<int64_t>(l)));
  } else if (a == Dim(0) && c == Dim(1)) {
    len = b;
  } else {
    return err("cannot size Range(" + str(a) + ", " + str(b) + ", " + str(c) + ")");
  }
  std::optional<SymValue> sv;
  if (!is_float && len.is_constant() && len.coef <= 64 && a.is_constant() && c.is_constant()) {
    SymValue r;
    for (int64_t k = 0; k < len.coef; ++k) r.push_back(Dim(a.coef + k * c.coef));
    sv = r;
  }
  set(0, in(0)->dtype, {len}, sv);
  return Status::ok();
}

Status NodeInference::reduce() {
  KILN_RETURN_IF_ERROR(need_inputs(1));
  const Shape& x = shape(0);
  KILN_ASSIGN_OR_RETURN(auto axes, axes_from_attr_or_input(1));
  bool keep = n_.attr_int("keepdims", 1) != 0;
  std::vector<bool> red(x.size(), axes.empty() && n_.attr_int("noop_with_empty_axes", 0) == 0);
  for (int64_t a : axes) {
    KILN_ASSIGN_OR_RETURN(auto k, axis(a, x.size()));
    red[k] = true;
  }
  const DType t = in(0)->dtype;
  if (t != DType::kFloat32 && t != DType::kFloat64 && t != DType::kInt64 && t != DType::kInt32)
    return err("input '" + in(0)->name + "' has dtype " + dtype_name(t) + ", which " +
               op_name(n_.op) + " does not accept");
  Shape s;
  for (size_t i = 0; i < x.size(); ++i) {
    if (!red[i])
      s.push_back(x[i]);
    else if (keep)
      s.push_back(Dim(1));
  }
  set(0, t, s, sym_reduce(red));
  return Status::ok();
}

// ReduceSum / Prod / Max / Min of a small int tensor of known elements (sizes of a shape
// computation), symbolic where the algebra allows.
std::optional<SymValue> NodeInference::sym_reduce(const std::vector<bool>& red) const {
  const Op op = n_.op;
  if (!sym(0) || !shape_is_constant(shape(0)) ||
      (op != Op::kReduceSum && op != Op::kReduceProd && op != Op::kReduceMax &&
       op != Op::kReduceMin))
    return std::nullopt;
  const std::vector<int64_t> xd = constant_dims(shape(0));
  std::vector<int64_t> kept_strides(xd.size(), 0);
  int64_t kept = 1;
  for (size_t k = xd.size(); k-- > 0;)
    if (!red[k]) {
      kept_strides[k] = kept;
      kept *= xd[k];
    }
  std::vector<std::optional<Dim>> acc(kept);
  for (size_t i = 0; i < sym(0)->size(); ++i) {
    int64_t rem = static_cast<int64_t>(i), dst = 0;
    for (size_t k = xd.size(); k-- > 0;) {
      dst += (rem % xd[k]) * kept_strides[k];
      rem /= xd[k];
    }
    const Dim& v = (*sym(0))[i];
    std::optional<Dim>& a = acc[dst];
    if (!a)
      a = v;
    else if (op == Op::kReduceSum)
      a = sym_add(*a, v, 1);
    else if (op == Op::kReduceProd)
      a = *a * v;
    else
      a = sym_order(op == Op::kReduceMax ? Op::kMax : Op::kMin, *a, v);
    if (!a) return std::nullopt;
  }
  SymValue r;
  for (auto& a : acc) {
    if (!a) return std::nullopt;  // an empty reduction
    r.push_back(*a);
  }
  return r;
}

Status NodeInference::shape_op() {
  KILN_RETURN_IF_ERROR(need_inputs(1));
  const Shape& x = shape(0);
  int64_t r = static_cast<int64_t>(x.size());
  int64_t st = n_.attr_int("start", 0), en = n_.attr_int("end", r);
  if (st < 0) st += r;
  if (en < 0) en += r;
  st = std::clamp<int64_t>(st, 0, r);
  en = std::clamp<int64_t>(en, 0, r);
  SymValue sv(x.begin() + st, x.begin() + std::max(st, en));
  set(0, DType::kInt64, {Dim(static_cast<int64_t>(sv.size()))}, sv);
  return Status::ok();
}

Status NodeInference::constant_of_shape() {
  KILN_RETURN_IF_ERROR(need_inputs(1));
  KILN_ASSIGN_OR_RETURN(auto target, operand(0, "shape"));
  Shape s(target.begin(), target.end());
  const Tensor* v = n_.attr_tensor("value");
  DType t = v ? v->dtype : DType::kFloat32;
  std::optional<SymValue> sv;
  if (v && v->numel() == 1 && shape_is_constant(s) && shape_numel(s).coef <= 64)
    sv = SymValue(shape_numel(s).coef, Dim(v->int_at(0)));
  set(0, t, s, sv);
  return Status::ok();
}

Status NodeInference::cast() {
  KILN_RETURN_IF_ERROR(need_inputs(1));
  auto t = dtype_from_onnx(n_.attr_int("to", 0));
  if (!t) return err("unsupported target dtype " + std::to_string(n_.attr_int("to", 0)));
  std::optional<SymValue> sv;
  if (sym(0) && (*t == DType::kInt64 || *t == DType::kInt32)) sv = *sym(0);
  if (sym(0) && *t == DType::kBool)
    sv = sym_elementwise(shape(0), [](const std::vector<Dim>& a) -> std::optional<Dim> {
      if (!a[0].is_constant()) return a[0].coef > 0 ? std::optional<Dim>(Dim(1)) : std::nullopt;
      return Dim(a[0].coef != 0);
    });
  set(0, *t, shape(0), sv);
  return Status::ok();
}

Status NodeInference::split() {
  KILN_RETURN_IF_ERROR(need_inputs(1));
  const Shape& x = shape(0);
  KILN_ASSIGN_OR_RETURN(auto ax, axis(n_.attr_int("axis", 0), x.size()));
  std::vector<Dim> parts;
  if (in(1)) {
    KILN_ASSIGN_OR_RETURN(auto sp, const_operand(1, "split"));
    parts.assign(sp.begin(), sp.end());
  } else if (n_.has_attr("split")) {
    for (int64_t v : n_.attr_ints("split")) parts.push_back(Dim(v));
  } else {
    int64_t k = static_cast<int64_t>(n_.outputs.size());
    auto q = x[ax].divide(Dim(k));
    if (!q)
      return err("cannot split dim " + str(x[ax]) + " into " + std::to_string(k) + " equal parts");
    parts.assign(k, *q);
  }
  if (parts.size() != n_.outputs.size()) return err("split sizes do not match the output count");
  for (size_t i = 0; i < parts.size(); ++i) {
    Shape s = x;
    s[ax] = parts[i];
    set(i, in(0)->dtype, s);
  }
  return Status::ok();
}

Status NodeInference::layer_norm() {
  KILN_RETURN_IF_ERROR(need_inputs(2));
  const Shape& x = shape(0);
  KILN_ASSIGN_OR_RETURN(auto ax, axis(n_.attr_int("axis", -1), x.size()));
  Shape norm(x.begin() + ax, x.end());
  for (size_t i = 1; i < 3; ++i) {
    if (!in(i)) continue;
    if (!in(i)->shape) return err("input '" + in(i)->name + "' has no shape");
    auto b = broadcast(norm, *in(i)->shape);
    if (!b || *b != norm)
      return err("input '" + in(i)->name + "' of shape " + str(*in(i)->shape) +
                 " does not match normalized shape " + str(norm));
  }
  set(0, in(0)->dtype, x);
  Shape stat = x;
  for (size_t i = ax; i < stat.size(); ++i) stat[i] = Dim(1);
  set(1, DType::kFloat32, stat);
  set(2, DType::kFloat32, stat);
  return Status::ok();
}

Status NodeInference::softmax() {
  KILN_RETURN_IF_ERROR(need_inputs(1));
  const Shape& x = shape(0);
  int64_t dflt = g_.opset > 0 && g_.opset < 13 ? 1 : -1;
  KILN_ASSIGN_OR_RETURN(auto ax, axis(n_.attr_int("axis", dflt), x.size()));
  // Before opset 13 Softmax flattens to 2-D at `axis`; that equals the opset-13 op only when
  // axis is the last one.
  if (g_.opset > 0 && g_.opset < 13 && ax != static_cast<int64_t>(x.size()) - 1)
    return err("opset-" + std::to_string(g_.opset) + " Softmax over axis " + std::to_string(ax) +
               " of shape " + str(x) + " (not the last axis) is not supported");
  set(0, in(0)->dtype, x);
  return Status::ok();
}

Status NodeInference::constant() {
  const Tensor* t = n_.attr_tensor("value");
  if (!t) return err("Constant without a tensor 'value' attribute");
  Shape s(t->dims.begin(), t->dims.end());
  std::optional<SymValue> sv;
  if (t->numel() <= 64 && (t->dtype == DType::kInt64 || t->dtype == DType::kInt32)) {
    sv = SymValue();
    for (int64_t i = 0; i < t->numel(); ++i) sv->push_back(Dim(t->int_at(i)));
  }
  set(0, t->dtype, s, sv);
  return Status::ok();
}

Status NodeInference::symbolic_tensor() {
  Value* o = out(0);
  if (!o || !o->sym_value || !o->shape) return err("output has no sym_value or shape");
  return Status::ok();
}

NodeInference::Hook NodeInference::hook(Op op) {
  using N = NodeInference;
  switch (op_kind(op)) {
    case OpKind::kUnary:
      return &N::unary;
    case OpKind::kBinary:
    case OpKind::kCompare:
      return &N::binary;
    case OpKind::kPredicate:
      return &N::predicate;
    case OpKind::kPassThrough:
      return &N::pass_through;
    case OpKind::kReduce:
      return &N::reduce;
    case OpKind::kView:
    case OpKind::kMovement:
    case OpKind::kShapeSource:
    case OpKind::kScan:
    case OpKind::kNormalization:
    case OpKind::kLinear:
    case OpKind::kFused:
      break;  // one hook per op
  }
  switch (op) {
    case Op::kReshape:
      return &N::reshape;
    case Op::kFlatten:
      return &N::flatten;
    case Op::kSqueeze:
      return &N::squeeze;
    case Op::kUnsqueeze:
      return &N::unsqueeze;
    case Op::kGather:
      return &N::gather;
    case Op::kSlice:
      return &N::slice;
    case Op::kConcat:
      return &N::concat;
    case Op::kExpand:
      return &N::expand;
    case Op::kTranspose:
      return &N::transpose;
    case Op::kSplit:
      return &N::split;
    case Op::kWhere:
      return &N::where;
    case Op::kCast:
      return &N::cast;
    case Op::kClip:
      return &N::clip;
    case Op::kGatherElements:
      return &N::gather_elements;
    case Op::kGatherND:
      return &N::gather_nd;
    case Op::kPad:
      return &N::pad;
    case Op::kCumSum:
      return &N::cumsum;
    case Op::kTile:
      return &N::tile;
    case Op::kTrilu:
      return &N::trilu;
    case Op::kScatterND:
      return &N::scatter_nd;
    case Op::kConstant:
      return &N::constant;
    case Op::kShape:
      return &N::shape_op;
    case Op::kConstantOfShape:
      return &N::constant_of_shape;
    case Op::kRange:
      return &N::range;
    case Op::kSymbolicTensor:
      return &N::symbolic_tensor;
    case Op::kSoftmax:
      return &N::softmax;
    case Op::kLayerNormalization:
      return &N::layer_norm;
    case Op::kMatMul:
      return &N::matmul;
    case Op::kGemm:
      return &N::gemm;
    case Op::kEinsum:
      return &N::einsum;
    case Op::kDense:
      return &N::dense;
    case Op::kAttention:
      return &N::attention;
    case Op::kEmbeddingLayerNorm:
      return &N::embedding_layer_norm;
    default:
      return nullptr;
  }
}

Status NodeInference::run() {
  Hook h = hook(n_.op);
  if (!h) return err("no shape inference for this op");
  return (this->*h)();
}

}  // namespace

std::optional<DType> dtype_from_onnx(int64_t t) {
  switch (t) {
    case 1:
      return DType::kFloat32;
    case 2:
      return DType::kUInt8;
    case 3:
      return DType::kInt8;
    case 6:
      return DType::kInt32;
    case 7:
      return DType::kInt64;
    case 9:
      return DType::kBool;
    case 10:
      return DType::kFloat16;
    case 11:
      return DType::kFloat64;
    default:
      return std::nullopt;
  }
}

int64_t onnx_dtype(DType t) {
  switch (t) {
    case DType::kFloat32:
      return 1;
    case DType::kUInt8:
      return 2;
    case DType::kInt8:
      return 3;
    case DType::kInt32:
      return 6;
    case DType::kInt64:
      return 7;
    case DType::kBool:
      return 9;
    case DType::kFloat16:
      return 10;
    case DType::kFloat64:
      return 11;
  }
  return 0;
}

Dim shape_numel(const Shape& s) {
  Dim r(1);
  for (const Dim& d : s) r = r * d;
  return r;
}

bool shape_is_constant(const Shape& s) {
  for (const Dim& d : s)
    if (!d.is_constant()) return false;
  return true;
}

std::vector<int64_t> constant_dims(const Shape& s) {
  std::vector<int64_t> r;
  for (const Dim& d : s) r.push_back(d.coef);
  return r;
}

bool has_shape_inference(Op op) {
  return NodeInference::hook(op) != nullptr;
}

namespace {

// Most elements (the constant factors of its dims) a value may have: far above any tensor of a
// BERT-family model, far below int64 overflow in the dim arithmetic of the next node.
constexpr uint64_t kMaxElements = uint64_t{1} << 48;

bool shape_too_large(const Shape& s) {
  uint64_t n = 1;
  for (const Dim& d : s) {
    const uint64_t c = d.coef < 0 ? 0 - static_cast<uint64_t>(d.coef) : d.coef;
    if (__builtin_mul_overflow(n, c, &n) || n > kMaxElements) return true;
  }
  return false;
}

std::string too_large(const std::string& what, const Shape& s, const Graph& g) {
  return what + " has shape " + shape_str(s, g.symbol_names()) + ": more than 2^48 elements";
}

}  // namespace

Status infer_shapes(Graph& g) {
  KILN_RETURN_IF_ERROR(g.topo_sort());
  for (Value* v : g.inputs) {
    if (!v->shape) return Status::error("graph input '" + v->name + "' has no shape");
    if (shape_too_large(*v->shape))
      return Status::error(too_large("graph input '" + v->name + "'", *v->shape, g));
  }
  for (auto& n : g.nodes()) {
    if (n->op == Op::kSymbolicTensor) continue;
    for (Value* o : n->outputs) {
      if (!o) continue;
      o->shape.reset();
      o->sym_value.reset();
    }
  }
  for (auto& n : g.nodes()) {
    KILN_RETURN_IF_ERROR(NodeInference(g, *n).run());
    for (const Value* o : n->outputs)
      if (o && o->shape && shape_too_large(*o->shape))
        return Status::error(too_large(n->describe() + ": output '" + o->name + "'", *o->shape, g));
  }
  for (Value* v : g.outputs)
    if (!v->shape) return Status::error("graph output '" + v->name + "' has no shape");
  return Status::ok();
}

}  // namespace kiln::ir
