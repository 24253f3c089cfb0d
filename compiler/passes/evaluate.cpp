// Reference semantics of every op in kiln's IR on concrete tensors; see evaluate.h.
#include "compiler/passes/evaluate.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <type_traits>

#include "compiler/ir/einsum.h"
#include "compiler/ir/shape_inference.h"

namespace kiln::passes {
namespace {

using ir::DType;
using ir::Tensor;

bool is_float(DType t) {
  return t == DType::kFloat32 || t == DType::kFloat64;
}

Tensor make(DType t, const std::vector<int64_t>& dims) {
  Tensor r;
  r.dtype = t;
  r.dims = dims;
  r.bytes.assign(static_cast<size_t>(r.numel()) * ir::dtype_size(t), 0);
  return r;
}

void set_f(Tensor& t, int64_t i, double v) {
  switch (t.dtype) {
    case DType::kFloat32:
      t.data<float>()[i] = static_cast<float>(v);
      break;
    case DType::kFloat64:
      t.data<double>()[i] = v;
      break;
    case DType::kInt64:
      t.data<int64_t>()[i] = static_cast<int64_t>(v);
      break;
    case DType::kInt32:
      t.data<int32_t>()[i] = static_cast<int32_t>(v);
      break;
    case DType::kInt8:
      t.data<int8_t>()[i] = static_cast<int8_t>(v);
      break;
    case DType::kUInt8:
      t.data<uint8_t>()[i] = static_cast<uint8_t>(v);
      break;
    case DType::kBool:
      t.data<uint8_t>()[i] = v != 0;
      break;
    case DType::kFloat16:
      break;
  }
}

void set_i(Tensor& t, int64_t i, int64_t v) {
  if (is_float(t.dtype))
    set_f(t, i, static_cast<double>(v));
  else if (t.dtype == DType::kBool)
    t.data<uint8_t>()[i] = v != 0;
  else if (t.dtype == DType::kInt64)
    t.data<int64_t>()[i] = v;
  else
    set_f(t, i, static_cast<double>(v));
}

std::vector<int64_t> row_major_strides(const std::vector<int64_t>& dims) {
  std::vector<int64_t> s(dims.size(), 1);
  for (size_t k = dims.size(); k-- > 1;) s[k - 1] = s[k] * dims[k];
  return s;
}

// Maps output element indices to the element index of a broadcast input.
class Broadcast {
 public:
  Broadcast(const std::vector<int64_t>& out, const std::vector<int64_t>& in) : out_(out) {
    strides_.assign(out.size(), 0);
    int64_t acc = 1;
    for (size_t k = in.size(); k-- > 0;) {
      size_t o = k + out.size() - in.size();
      strides_[o] = in[k] == 1 ? 0 : acc;
      acc *= in[k];
    }
  }
  int64_t operator()(int64_t i) const {
    int64_t idx = 0;
    for (size_t k = out_.size(); k-- > 0;) {
      idx += (i % out_[k]) * strides_[k];
      i /= out_[k];
    }
    return idx;
  }

 private:
  std::vector<int64_t> out_;
  std::vector<int64_t> strides_;
};

class Evaluator {
 public:
  Evaluator(const ir::Node& n, const std::vector<const Tensor*>& in,
            const std::vector<std::vector<int64_t>>& out_dims)
      : n_(n), in_(in), out_dims_(out_dims) {}
  Result<std::vector<Tensor>> run();
  using Hook = Result<std::vector<Tensor>> (Evaluator::*)();
  static Hook hook(ir::Op op);  // nullptr: the op cannot be evaluated

 private:
  // A hook from a method that makes the one output.
  template <auto F>
  Result<std::vector<Tensor>> one() {
    auto r = (this->*F)();
    if constexpr (std::is_same_v<decltype(r), Tensor>) {
      return std::vector<Tensor>{std::move(r)};
    } else {
      if (!r) return r.status();
      return std::vector<Tensor>{std::move(r.value())};
    }
  }
  Result<std::vector<Tensor>> constant();
  Result<std::vector<Tensor>> shape();
  Status err(const std::string& m) const { return Status::error(n_.describe() + ": " + m); }
  const Tensor* in(size_t i) const { return i < in_.size() ? in_[i] : nullptr; }
  Tensor out(size_t i) const { return make(n_.outputs[i]->dtype, out_dims_[i]); }
  int64_t axis(int64_t a, size_t rank) const { return a < 0 ? a + static_cast<int64_t>(rank) : a; }
  std::vector<int64_t> ints(size_t i) const {
    std::vector<int64_t> r;
    if (in(i))
      for (int64_t k = 0; k < in(i)->numel(); ++k) r.push_back(in(i)->int_at(k));
    return r;
  }

  Result<Tensor> binary();
  Result<Tensor> unary();
  Tensor where();
  Tensor clip();
  Result<Tensor> gather_elements();
  Result<Tensor> gather_nd();
  Tensor pad();
  Tensor cumsum();
  Tensor tile();
  Tensor trilu();
  Result<Tensor> scatter_nd();
  Result<Tensor> einsum();
  Tensor cast();
  Tensor copy();
  Tensor transpose();
  Result<Tensor> gather();
  Tensor slice_like(const Tensor& x, const std::vector<int64_t>& starts,
                    const std::vector<int64_t>& steps, const std::vector<int64_t>& dims);
  Tensor slice();
  Tensor concat();
  Tensor expand();
  Result<std::vector<Tensor>> split();
  Tensor range();
  Tensor constant_of_shape();
  Tensor matmul();
  Tensor gemm();
  Tensor dense();
  Tensor embedding_layer_norm();
  Tensor attention();
  Tensor softmax();
  Tensor reduce();
  Tensor layer_norm();

  const ir::Node& n_;
  const std::vector<const Tensor*>& in_;
  const std::vector<std::vector<int64_t>>& out_dims_;
};

// Elementwise ops by their registry entry: float math in double, rounded through float32 like
// the runtime for float32 tensors (Pow excepted); integers and bools with the integer reference.
Result<Tensor> Evaluator::binary() {
  const Tensor &a = *in(0), &b = *in(1);
  Tensor r = out(0);
  Broadcast ba(r.dims, a.dims), bb(r.dims, b.dims);
  const ir::Scalar& f = ir::op_info(n_.op).scalar;
  const bool fl = is_float(a.dtype) || !f.i2;
  for (int64_t i = 0; i < r.numel(); ++i) {
    int64_t ia = ba(i), ib = bb(i);
    if (fl) {
      if (!f.f2) return err("op on " + std::string(ir::dtype_name(a.dtype)) + " cannot be folded");
      double v = f.f2(a.float_at(ia), b.float_at(ib));
      if (r.dtype == DType::kFloat32 && n_.op != ir::Op::kPow) v = static_cast<float>(v);
      set_f(r, i, v);
    } else {
      auto v = f.i2(a.int_at(ia), b.int_at(ib));
      if (!v) return err("integer division by zero");
      set_i(r, i, *v);
    }
  }
  return r;
}

Result<Tensor> Evaluator::unary() {
  const Tensor& x = *in(0);
  Tensor r = out(0);
  const ir::Scalar& f = ir::op_info(n_.op).scalar;
  for (int64_t i = 0; i < r.numel(); ++i) {
    if (!is_float(x.dtype) && f.i1) {
      auto v = f.i1(x.int_at(i));
      if (!v) return err("undefined on " + std::to_string(x.int_at(i)));
      set_i(r, i, *v);
    } else if (is_float(x.dtype) && f.f1) {
      set_f(r, i, f.f1(x.float_at(i)));
    } else {
      return err("op on " + std::string(ir::dtype_name(x.dtype)) + " cannot be folded");
    }
  }
  return r;
}

Tensor Evaluator::where() {
  Tensor r = out(0);
  Broadcast bc(r.dims, in(0)->dims), bx(r.dims, in(1)->dims), by(r.dims, in(2)->dims);
  size_t es = ir::dtype_size(r.dtype);
  for (int64_t i = 0; i < r.numel(); ++i) {
    bool c = in(0)->int_at(bc(i)) != 0;
    const Tensor& src = c ? *in(1) : *in(2);
    int64_t j = c ? bx(i) : by(i);
    std::memcpy(r.bytes.data() + i * es, src.bytes.data() + j * es, es);
  }
  return r;
}

// Clip(x, min?, max?); a NaN x stays NaN.
Tensor Evaluator::clip() {
  const Tensor& x = *in(0);
  Tensor r = out(0);
  for (int64_t i = 0; i < r.numel(); ++i) {
    if (is_float(x.dtype)) {
      double v = x.float_at(i);
      if (in(1) && v < in(1)->float_at(0)) v = in(1)->float_at(0);
      if (in(2) && v > in(2)->float_at(0)) v = in(2)->float_at(0);
      set_f(r, i, v);
    } else {
      int64_t v = x.int_at(i);
      if (in(1)) v = std::max(v, in(1)->int_at(0));
      if (in(2)) v = std::min(v, in(2)->int_at(0));
      set_i(r, i, v);
    }
  }
  return r;
}

Result<Tensor> Evaluator::gather_elements() {
  const Tensor &x = *in(0), &idx = *in(1);
  Tensor r = out(0);
  const size_t rank = x.dims.size();
  const int64_t ax = axis(n_.attr_int("axis", 0), rank);
  const auto xs = row_major_strides(x.dims);
  const size_t es = ir::dtype_size(r.dtype);
  for (int64_t i = 0; i < r.numel(); ++i) {
    int64_t rem = i, src = 0;
    for (size_t k = rank; k-- > 0;) {
      if (static_cast<int64_t>(k) != ax) src += (rem % r.dims[k]) * xs[k];
      rem /= r.dims[k];
    }
    int64_t v = idx.int_at(i);
    if (v < -x.dims[ax] || v >= x.dims[ax])
      return err("index " + std::to_string(v) + " out of range for dim " +
                 std::to_string(x.dims[ax]));
    src += (v < 0 ? v + x.dims[ax] : v) * xs[ax];
    std::memcpy(r.bytes.data() + i * es, x.bytes.data() + src * es, es);
  }
  return r;
}

Result<Tensor> Evaluator::gather_nd() {
  const Tensor &x = *in(0), &idx = *in(1);
  Tensor r = out(0);
  const int64_t b = n_.attr_int("batch_dims", 0), k = idx.dims.back();
  const auto xs = row_major_strides(x.dims);
  int64_t batch = 1, slab = 1;
  for (int64_t d = 0; d < b; ++d) batch *= idx.dims[d];
  for (size_t d = b + k; d < x.dims.size(); ++d) slab *= x.dims[d];
  const int64_t tuples = idx.numel() / std::max<int64_t>(k, 1), per_batch = tuples / batch;
  const size_t es = ir::dtype_size(r.dtype);
  for (int64_t t = 0; t < tuples; ++t) {
    int64_t src = b > 0 ? (t / per_batch) * xs[b - 1] : 0;
    for (int64_t j = 0; j < k; ++j) {
      const int64_t d = x.dims[b + j];
      int64_t v = idx.int_at(t * k + j);
      if (v < -d || v >= d)
        return err("index " + std::to_string(v) + " out of range for dim " + std::to_string(d));
      src += (v < 0 ? v + d : v) * xs[b + j];
    }
    std::memcpy(r.bytes.data() + t * slab * es, x.bytes.data() + src * es, slab * es);
  }
  return r;
}

// Pad by the registry's operands: pads [begins..., ends...] over axes (default all).
Tensor Evaluator::pad() {
  const Tensor& x = *in(0);
  Tensor r = out(0);
  const size_t rank = x.dims.size();
  std::vector<int64_t> pads = ints(1), axes = ints(3), begin(rank, 0);
  if (axes.empty())
    for (size_t k = 0; k < rank; ++k) axes.push_back(static_cast<int64_t>(k));
  for (size_t k = 0; k < axes.size(); ++k) begin[axis(axes[k], rank)] = pads[k];
  const std::string mode = n_.attr_string("mode", "constant");
  const auto xs = row_major_strides(x.dims);
  const size_t es = ir::dtype_size(r.dtype);
  for (int64_t i = 0; i < r.numel(); ++i) {
    int64_t rem = i, src = 0;
    bool inside = true;
    for (size_t k = rank; k-- > 0;) {
      int64_t c = rem % r.dims[k] - begin[k];
      rem /= r.dims[k];
      const int64_t d = x.dims[k];
      if (c < 0 || c >= d) {
        if (mode == "constant" || d == 0) {
          inside = false;
          break;
        }
        if (mode == "edge") {
          c = c < 0 ? 0 : d - 1;
        } else {  // reflect
          while (c < 0 || c >= d) c = c < 0 ? -c : 2 * (d - 1) - c;
        }
      }
      src += c * xs[k];
    }
    if (inside)
      std::memcpy(r.bytes.data() + i * es, x.bytes.data() + src * es, es);
    else if (in(2))
      std::memcpy(r.bytes.data() + i * es, in(2)->bytes.data(), es);
  }
  return r;
}

Tensor Evaluator::cumsum() {
  const Tensor& x = *in(0);
  Tensor r = out(0);
  const int64_t ax = axis(in(1)->int_at(0), x.dims.size());
  const bool exclusive = n_.attr_int("exclusive", 0) != 0, reverse = n_.attr_int("reverse", 0) != 0;
  int64_t outer = 1, inner = 1, n = x.dims[ax];
  for (int64_t k = 0; k < ax; ++k) outer *= x.dims[k];
  for (size_t k = ax + 1; k < x.dims.size(); ++k) inner *= x.dims[k];
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) {
      double acc = 0;
      for (int64_t j = 0; j < n; ++j) {
        const int64_t at = (o * n + (reverse ? n - 1 - j : j)) * inner + i;
        const double v = x.float_at(at);
        if (!exclusive) acc += v;
        if (is_float(r.dtype))
          set_f(r, at, acc);
        else
          set_i(r, at, static_cast<int64_t>(acc));
        if (exclusive) acc += v;
      }
    }
  return r;
}

Tensor Evaluator::tile() {
  const Tensor& x = *in(0);
  Tensor r = out(0);
  const auto xs = row_major_strides(x.dims);
  const size_t es = ir::dtype_size(r.dtype);
  for (int64_t i = 0; i < r.numel(); ++i) {
    int64_t rem = i, src = 0;
    for (size_t k = r.dims.size(); k-- > 0;) {
      src += (rem % r.dims[k]) % x.dims[k] * xs[k];
      rem /= r.dims[k];
    }
    std::memcpy(r.bytes.data() + i * es, x.bytes.data() + src * es, es);
  }
  return r;
}

// Trilu: element (i, j) of each matrix kept where j - i >= k (upper) or <= k (lower), else 0.
Tensor Evaluator::trilu() {
  const Tensor& x = *in(0);
  Tensor r = out(0);  // zeros
  const int64_t k = in(1) ? in(1)->int_at(0) : 0;
  const bool upper = n_.attr_int("upper", 1) != 0;
  const size_t rank = x.dims.size();
  const int64_t rows = x.dims[rank - 2], cols = x.dims[rank - 1];
  const size_t es = ir::dtype_size(r.dtype);
  for (int64_t e = 0; e < r.numel(); ++e) {
    const int64_t i = e / cols % rows, j = e % cols;
    if (upper ? j - i >= k : j - i <= k)
      std::memcpy(r.bytes.data() + e * es, x.bytes.data() + e * es, es);
  }
  return r;
}

// ScatterND: a copy of data with the slab at each index tuple replaced (or combined by the
// reduction) by the update's, in index order; negative indices count from the end.
Result<Tensor> Evaluator::scatter_nd() {
  const Tensor &x = *in(0), &idx = *in(1), &upd = *in(2);
  Tensor r = out(0);
  r.bytes = x.bytes;
  const int64_t k = idx.dims.back();
  const auto xs = row_major_strides(x.dims);
  int64_t slab = 1;
  for (size_t d = k; d < x.dims.size(); ++d) slab *= x.dims[d];
  const std::string red = n_.attr_string("reduction", "none");
  const size_t es = ir::dtype_size(r.dtype);
  const bool fl = is_float(r.dtype);
  for (int64_t t = 0; t < idx.numel() / k; ++t) {
    int64_t dst = 0;
    for (int64_t j = 0; j < k; ++j) {
      const int64_t d = x.dims[j], v = idx.int_at(t * k + j);
      if (v < -d || v >= d)
        return err("index " + std::to_string(v) + " out of range for dim " + std::to_string(d));
      dst += (v < 0 ? v + d : v) * xs[j];
    }
    for (int64_t e = 0; e < slab; ++e) {
      const int64_t o = dst + e, u = t * slab + e;
      if (red == "none") {
        std::memcpy(r.bytes.data() + o * es, upd.bytes.data() + u * es, es);
      } else if (fl) {
        const double a = r.float_at(o), b = upd.float_at(u);
        set_f(r, o,
              red == "add"                     ? a + b
              : red == "mul"                   ? a * b
              : std::isnan(a) || std::isnan(b) ? a + b
              : red == "max"                   ? std::max(a, b)
                                               : std::min(a, b));
      } else {
        const int64_t a = r.int_at(o), b = upd.int_at(u);
        set_i(r, o,
              red == "add"   ? a + b
              : red == "mul" ? a * b
              : red == "max" ? std::max(a, b)
                             : std::min(a, b));
      }
    }
  }
  return r;
}

// Einsum, any equation parse_einsum accepts (repeated labels read diagonals): for each output
// element, the sum over the other labels of the product of the inputs, in double.
Result<Tensor> Evaluator::einsum() {
  std::vector<size_t> ranks;
  for (const Tensor* t : in_) ranks.push_back(t->dims.size());
  auto labels = ir::parse_einsum(n_.attr_string("equation", ""), ranks);
  if (!labels) return err(labels.status().message());
  std::vector<int> loop = labels->output;        // output labels, then the summed ones
  std::vector<int64_t> extent(loop.size(), -1);  // -1: not seen yet
  auto slot = [&](int l) -> size_t {
    auto it = std::find(loop.begin(), loop.end(), l);
    if (it != loop.end()) return it - loop.begin();
    loop.push_back(l);
    extent.push_back(-1);
    return loop.size() - 1;
  };
  for (size_t i = 0; i < in_.size(); ++i)
    for (size_t j = 0; j < ranks[i]; ++j) {
      const size_t s = slot(labels->inputs[i][j]);
      if (extent[s] < 0 || extent[s] == 1) extent[s] = in_[i]->dims[j];  // size 1 broadcasts
    }
  // strides[i][s]: input i's element stride along loop label s (0 where it lacks or broadcasts it)
  std::vector<std::vector<int64_t>> strides(in_.size(), std::vector<int64_t>(loop.size(), 0));
  for (size_t i = 0; i < in_.size(); ++i) {
    const auto st = row_major_strides(in_[i]->dims);
    for (size_t j = 0; j < ranks[i]; ++j)
      if (in_[i]->dims[j] != 1) strides[i][slot(labels->inputs[i][j])] += st[j];
  }
  Tensor r = out(0);
  const size_t n_out = labels->output.size();
  int64_t summed = 1;
  for (size_t s = n_out; s < loop.size(); ++s) summed *= extent[s];
  const bool fl = is_float(r.dtype);
  for (int64_t o = 0; o < r.numel(); ++o) {
    double acc = 0;
    int64_t iacc = 0;
    for (int64_t t = 0; t < summed; ++t) {
      std::vector<int64_t> off(in_.size(), 0);
      int64_t rem_o = o, rem_t = t;
      for (size_t s = loop.size(); s-- > 0;) {
        int64_t& rem = s < n_out ? rem_o : rem_t;
        const int64_t c = rem % extent[s];
        rem /= extent[s];
        for (size_t i = 0; i < in_.size(); ++i) off[i] += c * strides[i][s];
      }
      double p = 1;
      int64_t ip = 1;
      for (size_t i = 0; i < in_.size(); ++i) {
        if (fl)
          p *= in_[i]->float_at(off[i]);
        else
          ip *= in_[i]->int_at(off[i]);
      }
      acc += p;
      iacc += ip;
    }
    if (fl)
      set_f(r, o, acc);
    else
      set_i(r, o, iacc);
  }
  return r;
}

Tensor Evaluator::cast() {
  const Tensor& x = *in(0);
  Tensor r = out(0);
  if (r.dtype == x.dtype) {
    r.bytes = x.bytes;
    return r;
  }
  for (int64_t i = 0; i < r.numel(); ++i) {
    if (is_float(x.dtype))
      set_f(r, i, r.dtype == DType::kBool ? (x.float_at(i) != 0) : x.float_at(i));
    else
      set_i(r, i, x.int_at(i));
  }
  return r;
}

Tensor Evaluator::copy() {
  Tensor r = out(0);
  r.bytes = in(0)->bytes;
  return r;
}

Tensor Evaluator::transpose() {
  const Tensor& x = *in(0);
  Tensor r = out(0);
  std::vector<int64_t> perm = n_.attr_ints("perm");
  if (perm.empty())
    for (size_t k = x.dims.size(); k-- > 0;) perm.push_back(static_cast<int64_t>(k));
  auto xs = row_major_strides(x.dims);
  size_t es = ir::dtype_size(r.dtype);
  for (int64_t i = 0; i < r.numel(); ++i) {
    int64_t rem = i, src = 0;
    for (size_t k = r.dims.size(); k-- > 0;) {
      src += (rem % r.dims[k]) * xs[axis(perm[k], x.dims.size())];
      rem /= r.dims[k];
    }
    std::memcpy(r.bytes.data() + i * es, x.bytes.data() + src * es, es);
  }
  return r;
}

Result<Tensor> Evaluator::gather() {
  const Tensor &x = *in(0), &idx = *in(1);
  Tensor r = out(0);
  int64_t ax = axis(n_.attr_int("axis", 0), x.dims.size());
  int64_t outer = 1, inner = 1, n = x.dims[ax];
  for (int64_t k = 0; k < ax; ++k) outer *= x.dims[k];
  for (size_t k = ax + 1; k < x.dims.size(); ++k) inner *= x.dims[k];
  size_t es = ir::dtype_size(r.dtype);
  int64_t ni = idx.numel();
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t j = 0; j < ni; ++j) {
      int64_t k = idx.int_at(j);
      if (k < 0) k += n;
      if (k < 0 || k >= n)
        return err("index " + std::to_string(idx.int_at(j)) + " out of range [0, " +
                   std::to_string(n) + ")");
      std::memcpy(r.bytes.data() + ((o * ni + j) * inner) * es,
                  x.bytes.data() + ((o * n + k) * inner) * es, inner * es);
    }
  return r;
}

// Copies x[starts[k] + i_k * steps[k]] for each output index i (dims = output dims).
Tensor Evaluator::slice_like(const Tensor& x, const std::vector<int64_t>& starts,
                             const std::vector<int64_t>& steps, const std::vector<int64_t>& dims) {
  Tensor r = make(x.dtype, dims);
  auto xs = row_major_strides(x.dims);
  size_t es = ir::dtype_size(r.dtype);
  for (int64_t i = 0; i < r.numel(); ++i) {
    int64_t rem = i, src = 0;
    for (size_t k = dims.size(); k-- > 0;) {
      src += (starts[k] + (rem % dims[k]) * steps[k]) * xs[k];
      rem /= dims[k];
    }
    std::memcpy(r.bytes.data() + i * es, x.bytes.data() + src * es, es);
  }
  return r;
}

Tensor Evaluator::slice() {
  const Tensor& x = *in(0);
  size_t rank = x.dims.size();
  std::vector<int64_t> st = ints(1), axes = ints(3), steps = ints(4);
  if (axes.empty())
    for (size_t k = 0; k < st.size(); ++k) axes.push_back(static_cast<int64_t>(k));
  if (steps.empty()) steps.assign(st.size(), 1);
  std::vector<int64_t> starts(rank, 0), step(rank, 1);
  for (size_t k = 0; k < axes.size(); ++k) {
    int64_t a = axis(axes[k], rank), d = x.dims[a], s = st[k];
    if (s < 0) s += d;
    s = steps[k] > 0 ? std::clamp<int64_t>(s, 0, d) : std::clamp<int64_t>(s, 0, d - 1);
    starts[a] = s;
    step[a] = steps[k];
  }
  return slice_like(x, starts, step, out_dims_[0]);
}

Tensor Evaluator::concat() {
  Tensor r = out(0);
  int64_t ax = axis(n_.attr_int("axis", 0), r.dims.size());
  int64_t outer = 1;
  for (int64_t k = 0; k < ax; ++k) outer *= r.dims[k];
  size_t es = ir::dtype_size(r.dtype);
  uint8_t* dst = r.bytes.data();
  for (int64_t o = 0; o < outer; ++o)
    for (const Tensor* t : in_) {
      size_t chunk = static_cast<size_t>(t->numel() / std::max<int64_t>(outer, 1)) * es;
      if (t->numel() == 0) continue;
      std::memcpy(dst, t->bytes.data() + o * chunk, chunk);
      dst += chunk;
    }
  return r;
}

Tensor Evaluator::expand() {
  Tensor r = out(0);
  Broadcast b(r.dims, in(0)->dims);
  size_t es = ir::dtype_size(r.dtype);
  for (int64_t i = 0; i < r.numel(); ++i)
    std::memcpy(r.bytes.data() + i * es, in(0)->bytes.data() + b(i) * es, es);
  return r;
}

Result<std::vector<Tensor>> Evaluator::split() {
  const Tensor& x = *in(0);
  int64_t ax = axis(n_.attr_int("axis", 0), x.dims.size());
  std::vector<Tensor> r;
  int64_t offset = 0;
  for (const auto& d : out_dims_) {
    std::vector<int64_t> starts(x.dims.size(), 0), steps(x.dims.size(), 1);
    starts[ax] = offset;
    r.push_back(slice_like(x, starts, steps, d));
    offset += d[ax];
  }
  return r;
}

Tensor Evaluator::range() {
  Tensor r = out(0);
  for (int64_t i = 0; i < r.numel(); ++i) {
    if (is_float(r.dtype))
      set_f(r, i, in(0)->float_at(0) + static_cast<double>(i) * in(2)->float_at(0));
    else
      set_i(r, i, in(0)->int_at(0) + i * in(2)->int_at(0));
  }
  return r;
}

Tensor Evaluator::constant_of_shape() {
  Tensor r = out(0);
  const Tensor* v = n_.attr_tensor("value");
  if (!v) return r;  // float zeros
  size_t es = ir::dtype_size(r.dtype);
  for (int64_t i = 0; i < r.numel(); ++i) std::memcpy(r.bytes.data() + i * es, v->bytes.data(), es);
  return r;
}

Tensor Evaluator::matmul() {
  const Tensor &a = *in(0), &b = *in(1);
  Tensor r = out(0);
  std::vector<int64_t> ad = a.dims, bd = b.dims;
  if (ad.size() == 1) ad.insert(ad.begin(), 1);
  if (bd.size() == 1) bd.push_back(1);
  int64_t m = ad[ad.size() - 2], k = ad.back(), n = bd.back();
  std::vector<int64_t> batch(
      r.dims.begin(), r.dims.end() - (a.dims.size() == 1 ? 0 : 1) - (b.dims.size() == 1 ? 0 : 1));
  int64_t nb = 1;
  for (int64_t d : batch) nb *= d;
  Broadcast ba(batch, std::vector<int64_t>(ad.begin(), ad.end() - 2));
  Broadcast bb(batch, std::vector<int64_t>(bd.begin(), bd.end() - 2));
  for (int64_t t = 0; t < nb; ++t) {
    int64_t oa = ba(t) * m * k, ob = bb(t) * k * n;
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        double acc = 0;
        for (int64_t p = 0; p < k; ++p)
          acc += a.float_at(oa + i * k + p) * b.float_at(ob + p * n + j);
        set_f(r, (t * m + i) * n + j, acc);
      }
  }
  return r;
}

Tensor Evaluator::gemm() {
  const Tensor &a = *in(0), &b = *in(1);
  Tensor r = out(0);
  bool ta = n_.attr_int("transA", 0) != 0, tb = n_.attr_int("transB", 0) != 0;
  double alpha = n_.attr_float("alpha", 1.0f), beta = n_.attr_float("beta", 1.0f);
  int64_t m = r.dims[0], n = r.dims[1], k = ta ? a.dims[0] : a.dims[1];
  std::optional<Broadcast> bc;
  if (in(2)) bc.emplace(r.dims, in(2)->dims);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double acc = 0;
      for (int64_t p = 0; p < k; ++p)
        acc += a.float_at(ta ? p * m + i : i * k + p) * b.float_at(tb ? j * k + p : p * n + j);
      double v = alpha * acc;
      if (bc) v += beta * in(2)->float_at((*bc)(i * n + j));
      set_f(r, i * n + j, v);
    }
  return r;
}

// y = gelu?(x W + bias) + residual, x [..., K], W [K, N]; with inputs 4/5 (ln scale, bias) the
// rows of y are then layer-normalized (passes/fuse_dense_layer_norm.cpp).
Tensor Evaluator::dense() {
  const Tensor &x = *in(0), &w = *in(1), *smooth = in(ir::DenseIn::kActSmooth);
  Tensor r = out(0);
  const int64_t k = w.dims[0], n = w.dims[1], m = k ? x.numel() / k : r.numel() / n;
  std::vector<double> y(static_cast<size_t>(m * n));
  auto x_at = [&](int64_t i, int64_t p) {  // float product, as the INT8 quantizer forms it
    return smooth ? double(float(x.float_at(i * k + p)) * float(smooth->float_at(p)))
                  : x.float_at(i * k + p);
  };
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double v = 0;
      for (int64_t p = 0; p < k; ++p) v += x_at(i, p) * w.float_at(p * n + j);
      y[i * n + j] = v;
    }
  dense_epilogue(n_, in_, m, n, y, &r);
  return r;
}

// EmbeddingLayerNorm: per output row, the float sum of each table's row (ids, or row_first +
// row_step * position along the last axis), then LayerNorm (passes/fuse_embed_layer_norm.cpp).
Tensor Evaluator::embedding_layer_norm() {
  Tensor r = out(0);
  const int64_t h = in(0)->numel(), rows = r.numel() / std::max<int64_t>(h, 1);
  const int64_t seq = r.dims.size() >= 2 ? r.dims[r.dims.size() - 2] : 1;
  const auto first = n_.attr_ints("row_first"), step = n_.attr_ints("row_step");
  const double eps = n_.attr_float("epsilon", 1e-5f);
  std::vector<double> row(h);
  for (int64_t i = 0; i < rows; ++i) {
    for (size_t t = 0; t < first.size(); ++t) {
      const Tensor& table = *in(2 + 2 * t);
      const Tensor* ids = in(3 + 2 * t);
      int64_t v = first[t] + step[t] * (i % seq);
      if (ids) v = ids->int_at(ids->numel() == rows ? i : i % seq);
      for (int64_t j = 0; j < h; ++j) {
        const double e = table.float_at(v * h + j);
        row[j] = t == 0 ? e : static_cast<float>(row[j] + e);  // float sums, as the Adds
      }
    }
    double mean = 0, var = 0;
    for (double v : row) mean += v;
    mean /= static_cast<double>(h);
    for (double v : row) var += (v - mean) * (v - mean);
    const double rstd = 1.0 / std::sqrt(var / static_cast<double>(h) + eps);
    for (int64_t j = 0; j < h; ++j)
      set_f(r, i * h + j,
            (row[j] - mean) * rstd * in(0)->float_at(j) + (in(1) ? in(1)->float_at(j) : 0.0));
  }
  return r;
}

// Scores rounded to float after the scale and after the mask add, as the unfused graph (and
// PyTorch) computes them: a finfo.min mask absorbs the scores of a fully padded row. Q, K and V are
// read as float rows (one copy when stored otherwise): mixed precision evaluates a whole BERT's
// attention once per candidate layer.
Tensor Evaluator::attention() {
  const bool packed = n_.attr_int("qkv_packed", 0) != 0;
  Tensor r = out(0);
  const int64_t nb = r.dims[0], s = r.dims[1], h = r.dims[2];
  const int64_t heads = n_.attr_int("num_heads", 1), hd = h / heads;
  const float scale = n_.attr_float("scale", 1.0f);
  const bool empty_rows_zero = n_.attr_int("empty_rows_zero", 0) != 0;
  const int64_t ld = packed ? 3 * h : h;
  std::vector<float> copies[3];
  auto rows = [&](const Tensor& t, std::vector<float>& copy) {
    if (t.dtype == DType::kFloat32) return t.data<float>();
    copy.resize(t.numel());
    for (int64_t i = 0; i < t.numel(); ++i) copy[i] = static_cast<float>(t.float_at(i));
    return static_cast<const float*>(copy.data());
  };
  const float* q = rows(*in(0), copies[0]);
  const float* k = packed ? q + h : rows(*in(1), copies[1]);
  const float* v = packed ? q + 2 * h : rows(*in(2), copies[2]);
  const Tensor* mask = in(3);
  std::optional<Broadcast> mb;
  if (mask) mb.emplace(std::vector<int64_t>{nb, heads, s, s}, mask->dims);
  std::vector<float> sc(s);
  std::vector<double> e(s), acc(hd);  // exp(score - max), once per key
  for (int64_t b = 0; b < nb; ++b)
    for (int64_t hh = 0; hh < heads; ++hh)
      for (int64_t i = 0; i < s; ++i) {
        const float* qi = q + (b * s + i) * ld + hh * hd;
        double mx = -INFINITY, sum = 0;
        for (int64_t j = 0; j < s; ++j) {
          const float* kj = k + (b * s + j) * ld + hh * hd;
          double dot[4] = {0, 0, 0, 0};  // four chains: the adds' latency, not their count
          int64_t d = 0;
          for (; d + 4 <= hd; d += 4)
            for (int l = 0; l < 4; ++l) dot[l] += double(qi[d + l]) * kj[d + l];
          for (; d < hd; ++d) dot[0] += double(qi[d]) * kj[d];
          sc[j] = static_cast<float>((dot[0] + dot[1]) + (dot[2] + dot[3])) * scale;
          if (mask)
            sc[j] += static_cast<float>(mask->float_at((*mb)(((b * heads + hh) * s + i) * s + j)));
          mx = std::max(mx, static_cast<double>(sc[j]));
        }
        if (mx == -INFINITY) mx = 0;  // every key masked with -inf: 0 / 0 (NaN) below
        for (int64_t j = 0; j < s; ++j) sum += e[j] = std::exp(sc[j] - mx);
        const double inv = empty_rows_zero && sum == 0 ? 0.0 : 1.0 / sum;
        std::fill(acc.begin(), acc.end(), 0.0);
        for (int64_t j = 0; j < s; ++j) {
          const double p = e[j] * inv;
          const float* vj = v + (b * s + j) * ld + hh * hd;
          for (int64_t d = 0; d < hd; ++d) acc[d] += p * vj[d];
        }
        for (int64_t d = 0; d < hd; ++d) set_f(r, (b * s + i) * h + hh * hd + d, acc[d]);
      }
  return r;
}

Tensor Evaluator::softmax() {
  const Tensor& x = *in(0);
  Tensor r = out(0);
  int64_t ax = axis(n_.attr_int("axis", -1), x.dims.size());
  int64_t outer = 1, inner = 1, n = x.dims[ax];
  for (int64_t k = 0; k < ax; ++k) outer *= x.dims[k];
  for (size_t k = ax + 1; k < x.dims.size(); ++k) inner *= x.dims[k];
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t in_i = 0; in_i < inner; ++in_i) {
      auto at = [&](int64_t j) { return (o * n + j) * inner + in_i; };
      double mx = -INFINITY, sum = 0;
      for (int64_t j = 0; j < n; ++j) mx = std::max(mx, x.float_at(at(j)));
      for (int64_t j = 0; j < n; ++j) sum += std::exp(x.float_at(at(j)) - mx);
      for (int64_t j = 0; j < n; ++j) set_f(r, at(j), std::exp(x.float_at(at(j)) - mx) / sum);
    }
  return r;
}

// Every Reduce* in double (integers exact below 2^53); an empty reduction gives the op's
// identity (0, 1, -inf, +inf; the mean of nothing is NaN).
Tensor Evaluator::reduce() {
  const Tensor& x = *in(0);
  Tensor r = out(0);
  const ir::Op op = n_.op;
  std::vector<int64_t> axes = n_.attr_ints("axes");
  std::vector<bool> red(x.dims.size(), axes.empty() && n_.attr_int("noop_with_empty_axes", 0) == 0);
  for (int64_t a : axes) red[axis(a, x.dims.size())] = true;
  // Output index with reduced dims dropped (keepdims only changes the dims, not the order).
  std::vector<int64_t> kept;
  for (size_t k = 0; k < x.dims.size(); ++k) kept.push_back(red[k] ? 1 : x.dims[k]);
  auto ks = row_major_strides(kept);
  const double init = op == ir::Op::kReduceProd  ? 1.0
                      : op == ir::Op::kReduceMax ? -INFINITY
                      : op == ir::Op::kReduceMin ? INFINITY
                                                 : 0.0;
  std::vector<double> acc(r.numel(), init);
  for (int64_t i = 0; i < x.numel(); ++i) {
    int64_t rem = i, dst = 0;
    for (size_t k = x.dims.size(); k-- > 0;) {
      if (!red[k]) dst += (rem % x.dims[k]) * ks[k];
      rem /= x.dims[k];
    }
    const double v = x.float_at(i);
    double& a = acc[dst];
    switch (op) {
      case ir::Op::kReduceProd:
        a *= v;
        break;
      case ir::Op::kReduceMax:
        a = std::isnan(v) || v > a ? v : a;
        break;
      case ir::Op::kReduceMin:
        a = std::isnan(v) || v < a ? v : a;
        break;
      case ir::Op::kReduceL2:
      case ir::Op::kReduceSumSquare:
        a += v * v;
        break;
      default:
        a += v;
    }
  }
  const int64_t count = r.numel() ? x.numel() / r.numel() : 0;
  for (int64_t i = 0; i < r.numel(); ++i) {
    double v = acc[i];
    if (op == ir::Op::kReduceMean) v = count ? v / static_cast<double>(count) : NAN;
    if (op == ir::Op::kReduceL2) v = std::sqrt(v);
    if (is_float(r.dtype))
      set_f(r, i, v);
    else
      set_i(r, i, std::isinf(v) ? (v > 0 ? INT64_MAX : INT64_MIN) : static_cast<int64_t>(v));
  }
  return r;
}

Tensor Evaluator::layer_norm() {
  const Tensor& x = *in(0);
  Tensor r = out(0);
  int64_t ax = axis(n_.attr_int("axis", -1), x.dims.size());
  double eps = n_.attr_float("epsilon", 1e-5f);
  int64_t inner = 1;
  for (size_t k = ax; k < x.dims.size(); ++k) inner *= x.dims[k];
  int64_t outer = x.numel() / std::max<int64_t>(inner, 1);
  for (int64_t o = 0; o < outer; ++o) {
    double mean = 0, var = 0;
    for (int64_t j = 0; j < inner; ++j) mean += x.float_at(o * inner + j);
    mean /= static_cast<double>(inner);
    for (int64_t j = 0; j < inner; ++j) {
      double d = x.float_at(o * inner + j) - mean;
      var += d * d;
    }
    var /= static_cast<double>(inner);
    double inv = 1.0 / std::sqrt(var + eps);
    for (int64_t j = 0; j < inner; ++j) {
      double v = (x.float_at(o * inner + j) - mean) * inv;
      if (in(1)) v *= in(1)->float_at(in(1)->numel() == 1 ? 0 : j);
      if (in(2)) v += in(2)->float_at(in(2)->numel() == 1 ? 0 : j);
      set_f(r, o * inner + j, v);
    }
  }
  return r;
}

Result<std::vector<Tensor>> Evaluator::constant() {
  const Tensor* t = n_.attr_tensor("value");
  if (!t) return err("no tensor 'value'");
  return std::vector<Tensor>{*t};
}

Result<std::vector<Tensor>> Evaluator::shape() {
  Tensor r = out(0);
  int64_t rank = static_cast<int64_t>(in(0)->dims.size());
  int64_t s = n_.attr_int("start", 0);
  if (s < 0) s += rank;
  s = std::clamp<int64_t>(s, 0, rank);
  for (int64_t i = 0; i < r.numel(); ++i) set_i(r, i, in(0)->dims[s + i]);
  return std::vector<Tensor>{r};
}

Evaluator::Hook Evaluator::hook(ir::Op op) {
  using E = Evaluator;
  using ir::Op;
  switch (ir::op_kind(op)) {
    case ir::OpKind::kUnary:
    case ir::OpKind::kPredicate:
      return &E::one<&E::unary>;
    case ir::OpKind::kBinary:
    case ir::OpKind::kCompare:
      return &E::one<&E::binary>;
    case ir::OpKind::kPassThrough:
    case ir::OpKind::kView:
      return &E::one<&E::copy>;
    case ir::OpKind::kReduce:
      return &E::one<&E::reduce>;
    case ir::OpKind::kMovement:
    case ir::OpKind::kShapeSource:
    case ir::OpKind::kScan:
    case ir::OpKind::kNormalization:
    case ir::OpKind::kLinear:
    case ir::OpKind::kFused:
      break;  // one hook per op
  }
  switch (op) {
    case Op::kGather:
      return &E::one<&E::gather>;
    case Op::kSlice:
      return &E::one<&E::slice>;
    case Op::kConcat:
      return &E::one<&E::concat>;
    case Op::kExpand:
      return &E::one<&E::expand>;
    case Op::kTranspose:
      return &E::one<&E::transpose>;
    case Op::kSplit:
      return &E::split;
    case Op::kWhere:
      return &E::one<&E::where>;
    case Op::kCast:
      return &E::one<&E::cast>;
    case Op::kClip:
      return &E::one<&E::clip>;
    case Op::kGatherElements:
      return &E::one<&E::gather_elements>;
    case Op::kGatherND:
      return &E::one<&E::gather_nd>;
    case Op::kPad:
      return &E::one<&E::pad>;
    case Op::kCumSum:
      return &E::one<&E::cumsum>;
    case Op::kTile:
      return &E::one<&E::tile>;
    case Op::kTrilu:
      return &E::one<&E::trilu>;
    case Op::kScatterND:
      return &E::one<&E::scatter_nd>;
    case Op::kConstant:
      return &E::constant;
    case Op::kShape:
      return &E::shape;
    case Op::kConstantOfShape:
      return &E::one<&E::constant_of_shape>;
    case Op::kRange:
      return &E::one<&E::range>;
    case Op::kSoftmax:
      return &E::one<&E::softmax>;
    case Op::kLayerNormalization:
      return &E::one<&E::layer_norm>;
    case Op::kMatMul:
      return &E::one<&E::matmul>;
    case Op::kGemm:
      return &E::one<&E::gemm>;
    case Op::kEinsum:
      return &E::one<&E::einsum>;
    case Op::kDense:
      return &E::one<&E::dense>;
    case Op::kAttention:
      return &E::one<&E::attention>;
    case Op::kEmbeddingLayerNorm:
      return &E::one<&E::embedding_layer_norm>;
    default:
      return nullptr;  // SymbolicTensor: its value is symbolic
  }
}

Result<std::vector<Tensor>> Evaluator::run() {
  for (size_t i = 0; i < n_.outputs.size(); ++i)
    if (!n_.outputs[i]) return err("omitted output cannot be folded");
  for (const Tensor* t : in_)
    if (t && t->dtype == DType::kFloat16) return err("float16 constants cannot be folded");
  Hook h = hook(n_.op);
  if (!h) return err("cannot evaluate op '" + std::string(ir::op_name(n_.op)) + "'");
  return (this->*h)();
}

}  // namespace

void dense_epilogue(const ir::Node& n, const std::vector<const Tensor*>& in, int64_t m,
                    int64_t cols, const std::vector<double>& y, Tensor* out) {
  auto input = [&](size_t i) { return i < in.size() ? in[i] : nullptr; };
  const bool gelu = n.attr_int("gelu", 0) != 0, ln = input(4) != nullptr;
  const double eps = n.attr_float("ln_epsilon", 1e-5f);
  std::vector<double> row(cols);
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < cols; ++j) {
      double v = y[i * cols + j] + (input(2) ? input(2)->float_at(j) : 0.0);
      if (gelu) v = 0.5 * v * (1.0 + std::erf(v / std::sqrt(2.0)));
      if (input(3)) v += input(3)->float_at(i * cols + j);
      row[j] = ln ? static_cast<float>(v) : v;  // the unfused graph rounds y to float
    }
    double mean = 0, var = 0;
    if (ln) {
      for (double v : row) mean += v;
      mean /= static_cast<double>(cols);
      for (double v : row) var += (v - mean) * (v - mean);
      var = 1.0 / std::sqrt(var / static_cast<double>(cols) + eps);
    }
    for (int64_t j = 0; j < cols; ++j) {
      double v = row[j];
      if (ln) {
        v = (v - mean) * var * input(4)->float_at(j);
        if (input(5)) v += input(5)->float_at(j);
      }
      set_f(*out, i * cols + j, v);
    }
  }
}

bool has_evaluator(ir::Op op) {
  return Evaluator::hook(op) != nullptr;
}

Result<std::vector<Tensor>> evaluate_node(const ir::Node& n,
                                          const std::vector<const Tensor*>& inputs,
                                          const std::vector<std::vector<int64_t>>& out_dims) {
  for (size_t i = 0; i < n.inputs.size(); ++i)
    if (n.inputs[i] && (i >= inputs.size() || !inputs[i]))
      return Status::error(n.describe() + ": input " + std::to_string(i) + " has no value");
  if (out_dims.size() != n.outputs.size())
    return Status::error(n.describe() + ": output shapes missing");
  return Evaluator(n, inputs, out_dims).run();
}

Result<std::vector<int64_t>> bind_input_symbols(const ir::Graph& g,
                                                const std::map<std::string, ir::Tensor>& inputs) {
  std::vector<int64_t> sym(ir::kMaxSymbols, 1);
  for (const ir::Value* v : g.inputs) {
    auto it = inputs.find(v->name);
    if (it == inputs.end()) return Status::error("no value for graph input '" + v->name + "'");
    if (!v->shape || v->shape->size() != it->second.dims.size())
      return Status::error("graph input '" + v->name + "': rank does not match the given value");
    for (size_t k = 0; k < v->shape->size(); ++k) {
      const ir::Dim& d = (*v->shape)[k];
      int which = -1, count = 0;
      for (int s = 0; s < ir::kMaxSymbols; ++s)
        if (d.pow[s] != 0) which = s, count += d.pow[s];
      if (count == 1 && d.coef == 1) sym[which] = it->second.dims[k];
    }
  }
  for (const ir::Value* v : g.inputs) {
    const ir::Tensor& t = inputs.at(v->name);
    for (size_t k = 0; k < v->shape->size(); ++k)
      if ((*v->shape)[k].eval(sym.data()) != t.dims[k])
        return Status::error("graph input '" + v->name + "': dim " + std::to_string(k) + " is " +
                             std::to_string(t.dims[k]) + ", inconsistent with the other inputs");
    if (t.dtype != v->dtype)
      return Status::error("graph input '" + v->name + "' is " + ir::dtype_name(v->dtype) +
                           ", given " + ir::dtype_name(t.dtype));
  }
  return sym;
}

}  // namespace kiln::passes
