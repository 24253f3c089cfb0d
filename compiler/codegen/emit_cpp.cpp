// C++ source generation; see emit_cpp.h.
#include "compiler/codegen/emit_cpp.h"

#include <cmath>
#include <cstdio>
#include <sstream>

#include "compiler/quantize/quantize.h"
#include "kiln/kernels/attention.h"

namespace kiln::codegen {

std::string kernel_symbol(size_t i) {
  return "kiln_node_" + std::to_string(i);
}

namespace {

using ir::Dim;
using ir::DType;
using ir::Shape;

Result<std::string> ctype(DType t, const std::string& where) {
  switch (t) {
    case DType::kFloat32:
      return std::string("float");
    case DType::kInt64:
      return std::string("int64_t");
    case DType::kInt32:
      return std::string("int32_t");
    case DType::kInt8:
      return std::string("int8_t");
    case DType::kUInt8:
    case DType::kBool:
      return std::string("uint8_t");  // ONNX bool is stored as one byte 0/1
    default:
      break;
  }
  return Status::error(where + ": dtype " + ir::dtype_name(t) +
                       " is not supported by code generation");
}

std::string int_literal(int64_t v) {
  if (v == INT64_MIN) return "INT64_MIN";
  if (v == INT64_MAX) return "INT64_MAX";
  if (v >= INT32_MIN && v <= INT32_MAX) return std::to_string(v);
  return std::to_string(v) + "LL";
}

// Hex float literals are exact (the attention mask's -3.4028234663852886e+38 included).
std::string float_literal(double v) {
  if (std::isnan(v)) return "__builtin_nanf(\"\")";
  if (std::isinf(v)) return v > 0 ? "__builtin_inff()" : "(-__builtin_inff())";
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%af", static_cast<float>(v));
  return buf;
}

std::string dim_expr(const Dim& d) {
  if (d.is_constant()) return int_literal(d.coef);
  std::string e = d.coef == 1 ? "" : int_literal(d.coef);
  for (int i = 0; i < ir::kMaxSymbols; ++i)
    for (int p = 0; p < d.pow[i]; ++p)
      e += (e.empty() ? "" : "*") + std::string("s[") + std::to_string(i) + "]";
  return e;
}

std::string c_string(const std::string& s) {
  std::string r = "\"";
  for (unsigned char ch : s) {
    if (ch == '"' || ch == '\\') {
      r += '\\';
      r += static_cast<char>(ch);
    } else if (ch < 0x20 || ch >= 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\%03o", ch);
      r += buf;
    } else {
      r += static_cast<char>(ch);
    }
  }
  return r + "\"";
}

// Node names go into // comments: a backslash at the end or a newline would swallow code.
std::string comment_safe(const std::string& s) {
  std::string r;
  for (unsigned char ch : s)
    r += (ch < 0x20 || ch == '\\' || ch >= 0x7f) ? '?' : static_cast<char>(ch);
  return r;
}

int64_t norm_axis(int64_t axis, size_t rank) {
  return axis < 0 ? axis + static_cast<int64_t>(rank) : axis;
}

class NodeEmitter {
 public:
  NodeEmitter(const ir::Graph& g, const LoweredNode& ln, size_t index)
      : g_(g), ln_(ln), index_(index), n_(ln.node) {}

  Status emit(std::ostringstream& statics, std::ostringstream& out) {
    statics_ = &statics;
    KILN_RETURN_IF_ERROR(body());
    out << "// " << ln_.op << " '" << comment_safe(ln_.name) << "'\n";
    out << "KILN_NODE(" << index_ << ") {\n";
    out << "  const int64_t* s = c->sym;\n  (void)s;\n  const kiln_backend* be = c->backend;\n  "
           "(void)be;\n";
    out << b_.str();
    if (!returns_) out << "  return 0;\n";
    out << "}\n\n";
    return Status::ok();
  }

 private:
  std::string where() const { return n_ ? n_->describe() : "output copy '" + ln_.name + "'"; }
  const ir::Value* in(size_t i) const { return n_ ? n_->input(i) : ln_.copy_source; }
  const ir::Value* out_value() const { return n_ ? n_->outputs[0] : ln_.copy_source; }
  const Shape& shape(const ir::Value* v) const { return *v->shape; }

  // Pointer expression for IR input i, typed.
  Result<std::string> in_ptr(size_t i) {
    const ir::Value* v = in(i);
    auto t = ctype(v->dtype, where());
    if (!t) return t.status();
    const InputRef& ref = ln_.inputs[i];
    if (ref.kind == InputRef::kSlot)
      return "static_cast<const " + *t + "*>(c->tensors[" + std::to_string(ref.slot) + "])";
    if (ref.kind == InputRef::kInline) {
      const std::string name = "kc" + std::to_string(index_) + "_" + std::to_string(i);
      const ir::Tensor& k = *v->constant;
      *statics_ << "static const " << *t << " " << name << "[] = {";
      for (int64_t e = 0; e < std::max<int64_t>(k.numel(), 1); ++e) {
        if (e) *statics_ << ", ";
        if (k.numel() == 0)
          *statics_ << "0";
        else if (v->dtype == DType::kFloat32)
          *statics_ << float_literal(k.float_at(e));
        else
          *statics_ << int_literal(k.int_at(e));
      }
      *statics_ << "};\n";
      return name;
    }
    return Status::error(where() + ": input " + std::to_string(i) +
                         " is not available at run time");
  }
  // Untyped pointer to a slot input (INT8 blobs, whose IR value is the float constant).
  Result<std::string> raw_ptr(size_t i) {
    const InputRef& ref = ln_.inputs[i];
    if (ref.kind != InputRef::kSlot)
      return Status::error(where() + ": input " + std::to_string(i) + " is not a params entry");
    return "static_cast<const void*>(c->tensors[" + std::to_string(ref.slot) + "])";
  }
  Result<std::string> out_ptr() {
    auto t = ctype(out_value()->dtype, where());
    if (!t) return t.status();
    return "static_cast<" + *t + "*>(c->tensors[" + std::to_string(ln_.input_tensors.size()) + "])";
  }
  // Declares `const int64_t name[] = {dims}` and returns the rank.
  size_t dims(const std::string& name, const Shape& sh) {
    b_ << "  const int64_t " << name << "[] = {";
    for (size_t i = 0; i < sh.size(); ++i) b_ << (i ? ", " : "") << dim_expr(sh[i]);
    if (sh.empty()) b_ << "1";
    b_ << "};\n";
    return sh.size();
  }
  std::string product_expr(const Shape& sh, size_t begin, size_t end) {
    std::string e = "int64_t{1}";
    for (size_t i = begin; i < end && i < sh.size(); ++i) e += " * " + dim_expr(sh[i]);
    return e;
  }
  Status require_float(const ir::Value* v) {
    if (v->dtype != DType::kFloat32)
      return Status::error(where() + ": '" + v->name + "' has dtype " + ir::dtype_name(v->dtype) +
                           ", only float32 is supported");
    return Status::ok();
  }
  // Shape operand i, or (opset < 10 Slice) the attribute of the same name.
  Result<std::vector<Dim>> operand(size_t i, const char* what) {
    if (!in(i) && n_ && n_->has_attr(what)) {
      std::vector<Dim> r;
      for (int64_t v : n_->attr_ints(what)) r.push_back(Dim(v));
      return r;
    }
    auto v = shape_operand(in(i));
    if (!v)
      return Status::error(where() + ": " + what + " ('" + (in(i) ? in(i)->name : "?") +
                           "') is not known at compile time");
    return *v;
  }

#define KILN_TRY(var, expr)              \
  auto var##_r = (expr);                 \
  if (!var##_r) return var##_r.status(); \
  auto var = *var##_r

  Status body() {
    const std::string& op = ln_.op;
    if (ln_.copy) return emit_copy();
    if (op == "Add" || op == "Sub" || op == "Mul" || op == "Div" || op == "Pow" || op == "Equal" ||
        op == "Less" || op == "Greater")
      return emit_binary();
    if (op == "Sqrt" || op == "Erf" || op == "Tanh" || op == "Exp" || op == "Neg" || op == "Relu" ||
        op == "Sigmoid" || op == "Not" || op == "Gelu")
      return emit_unary();
    if (op == "Where") return emit_where();
    if (op == "Cast") return emit_cast();
    if (op == "MatMul") return emit_matmul();
    if (op == "Gemm") return emit_gemm();
    if (op == "Dense") return emit_dense();
    if (op == "EmbeddingLayerNorm") return emit_embedding_layer_norm();
    if (op == "Transpose") return emit_transpose();
    if (op == "Softmax") return emit_softmax();
    if (op == "Attention") return emit_attention();
    if (op == "ReduceMean") return emit_reduce_mean();
    if (op == "LayerNormalization") return emit_layernorm();
    if (op == "Gather") return emit_gather();
    if (op == "Slice") return emit_slice();
    if (op == "Concat") return emit_concat();
    if (op == "Expand") return emit_expand();
    if (op == "Range") return emit_range();
    if (op == "ConstantOfShape") return emit_constant_of_shape();
    if (op == "SymbolicTensor") return emit_symbolic_tensor();
    return Status::error(where() +
                         ": op is not supported by code generation (not in the runtime op set)");
  }

  Status emit_copy() {
    KILN_TRY(src, in_ptr(0));
    KILN_TRY(dst, out_ptr());
    const ir::Value* o = out_value();
    dims("od", shape(o));
    b_ << "  kk::copy_bytes(" << src << ", " << dst << ", kk::product(od, 0, " << shape(o).size()
       << ") * " << ir::dtype_size(o->dtype) << ", be);\n";
    return Status::ok();
  }

  Status emit_binary() {
    const std::string& op = ln_.op;
    const ir::Value* a = in(0);
    const ir::Value* bv = in(1);
    const ir::Value* o = out_value();
    KILN_TRY(pa, in_ptr(0));
    KILN_TRY(po, out_ptr());
    // x^2 and x^0.5 with a constant exponent: exact and much cheaper than pow.
    if (op == "Pow" && a->dtype == DType::kFloat32 && bv->constant && bv->constant->numel() == 1 &&
        shape(a) == shape(o)) {
      const double e = bv->constant->float_at(0);
      if (e == 2.0 || e == 0.5 || e == 1.0) {
        dims("od", shape(o));
        b_ << "  kk::unary<kk::op::"
           << (e == 2.0   ? "Square"
               : e == 0.5 ? "Sqrt"
                          : "Identity")
           << ">(" << pa << ", " << po << ", kk::product(od, 0, " << shape(o).size() << "), be);\n";
        return Status::ok();
      }
    }
    if (a->dtype != bv->dtype)
      return Status::error(where() + ": inputs have different dtypes (" + ir::dtype_name(a->dtype) +
                           ", " + ir::dtype_name(bv->dtype) + ")");
    KILN_TRY(pb, in_ptr(1));
    const size_t ar = dims("ad", shape(a)), br = dims("bd", shape(bv)),
                 orank = dims("od", shape(o));
    b_ << "  kk::binary<kk::op::" << op << ">(" << pa << ", ad, " << ar << ", " << pb << ", bd, "
       << br << ", " << po << ", od, " << orank << ", be);\n";
    return Status::ok();
  }

  Status emit_unary() {
    const std::string& op = ln_.op;
    const ir::Value* x = in(0);
    std::string functor = op;
    if (op == "Gelu") {
      const std::string approx = n_->attr_string("approximate", "none");
      if (approx == "tanh")
        functor = "GeluTanh";
      else if (approx != "none")
        return Status::error(where() + ": approximate='" + approx + "' is not supported");
    }
    if (op != "Neg" && op != "Relu" && op != "Not") KILN_RETURN_IF_ERROR(require_float(x));
    KILN_TRY(px, in_ptr(0));
    KILN_TRY(po, out_ptr());
    dims("od", shape(out_value()));
    b_ << "  kk::unary<kk::op::" << functor << ">(" << px << ", " << po << ", kk::product(od, 0, "
       << shape(out_value()).size() << "), be);\n";
    return Status::ok();
  }

  Status emit_where() {
    KILN_TRY(pc, in_ptr(0));
    KILN_TRY(px, in_ptr(1));
    KILN_TRY(py, in_ptr(2));
    KILN_TRY(po, out_ptr());
    const size_t cr = dims("cd", shape(in(0))), xr = dims("xd", shape(in(1))),
                 yr = dims("yd", shape(in(2))), orank = dims("od", shape(out_value()));
    b_ << "  kk::where(" << pc << ", cd, " << cr << ", " << px << ", xd, " << xr << ", " << py
       << ", yd, " << yr << ", " << po << ", od, " << orank << ", be);\n";
    return Status::ok();
  }

  Status emit_cast() {
    KILN_TRY(px, in_ptr(0));
    KILN_TRY(po, out_ptr());
    dims("od", shape(out_value()));
    const std::string n = "kk::product(od, 0, " + std::to_string(shape(out_value()).size()) + ")";
    if (out_value()->dtype == DType::kBool)
      b_ << "  kk::cast_to_bool(" << px << ", " << po << ", " << n << ", be);\n";
    else
      b_ << "  kk::cast(" << px << ", " << po << ", " << n << ", be);\n";
    return Status::ok();
  }

  Status emit_matmul() {
    KILN_RETURN_IF_ERROR(require_float(in(0)));
    KILN_RETURN_IF_ERROR(require_float(in(1)));
    KILN_TRY(pa, in_ptr(0));
    KILN_TRY(pb, in_ptr(1));
    KILN_TRY(po, out_ptr());
    const size_t ar = dims("ad", shape(in(0))), br = dims("bd", shape(in(1)));
    b_ << "  kk::matmul_f32(" << pa << ", ad, " << ar << ", " << pb << ", bd, " << br << ", " << po
       << ", be);\n";
    return Status::ok();
  }

  Status emit_gemm() {
    KILN_RETURN_IF_ERROR(require_float(in(0)));
    KILN_RETURN_IF_ERROR(require_float(in(1)));
    const bool ta = n_->attr_int("transA", 0) != 0, tb = n_->attr_int("transB", 0) != 0;
    const Shape& as = shape(in(0));
    const Shape& bs = shape(in(1));
    if (as.size() != 2 || bs.size() != 2) return Status::error(where() + ": A and B must be 2-D");
    const Dim M = ta ? as[1] : as[0], K = ta ? as[0] : as[1], N = tb ? bs[0] : bs[1];
    KILN_TRY(pa, in_ptr(0));
    KILN_TRY(pb, in_ptr(1));
    KILN_TRY(po, out_ptr());
    std::string pc = "nullptr", rs = "0", cs = "0";
    if (in(2)) {
      KILN_TRY(p, in_ptr(2));
      pc = p;
      const Shape& c = shape(in(2));
      auto is_one = [](const Dim& d) { return d.is_constant() && d.coef == 1; };
      if (c.size() == 1) {
        cs = is_one(c[0]) ? "0" : "1";
      } else if (c.size() == 2) {
        rs = is_one(c[0]) ? "0" : dim_expr(c[1]);
        cs = is_one(c[1]) ? "0" : "1";
      }
    }
    b_ << "  kk::gemm_f32(" << pa << ", " << ta << ", " << pb << ", " << tb << ", " << pc << ", "
       << rs << ", " << cs << ", " << po << ", " << dim_expr(M) << ", " << dim_expr(K) << ", "
       << dim_expr(N) << ", " << float_literal(n_->attr_float("alpha", 1.0f)) << ", "
       << float_literal(n_->attr_float("beta", 1.0f)) << ", be);\n";
    return Status::ok();
  }

  // y[M, N] = gelu?(x[M, K] W + bias) + residual with W packed by lowering; M = x's leading dims.
  Status emit_dense() {
    const ir::Value* w = in(1);
    if (!w->constant || w->constant->dims.size() != 2)
      return Status::error(where() + ": W must be a 2-D constant");
    KILN_RETURN_IF_ERROR(require_float(in(0)));
    const Shape& xs = shape(in(0));
    const std::string K = int_literal(w->constant->dims[0]), N = int_literal(w->constant->dims[1]);
    KILN_TRY(px, in_ptr(0));
    KILN_TRY(pw, in_ptr(1));
    std::string pbias = "nullptr", pres = "nullptr";
    if (in(2)) {
      KILN_TRY(p, in_ptr(2));
      pbias = p;
    }
    if (in(3)) {
      KILN_TRY(p, in_ptr(3));
      pres = p;
    }
    KILN_TRY(po, out_ptr());
    const bool gelu = n_->attr_int("gelu", 0) != 0;
    // Inputs 4/5 (passes/fuse_dense_layer_norm.cpp): LayerNorm of each finished row.
    std::string ln = "false, nullptr, nullptr, 0.0f";
    if (in(4)) {
      KILN_TRY(ps, in_ptr(4));
      std::string pb = "nullptr";
      if (in(5)) {
        KILN_TRY(p, in_ptr(5));
        pb = p;
      }
      ln = "true, " + ps + ", " + pb + ", " + float_literal(n_->attr_float("ln_epsilon", 1e-5f));
    }
    const std::string epilogue = "kk::gemm::Epilogue{" + pbias + ", " + pres + ", " + N + ", " +
                                 (gelu ? "true" : "false") + ", " + ln + "}";
    if (quantize::is_quantized(*n_)) {
      // W is gemm/s8_pack.h's blob (uint8 param, lowering). Workspace null: s8_driver.h's
      // thread_local buffer, which grows to the largest M * K once and is reused afterwards.
      KILN_TRY(blob, raw_ptr(1));
      b_ << "  kk::gemm::gemm_s8_packed(be, " << product_expr(xs, 0, xs.size() - 1) << ", " << N
         << ", " << K << ", " << px << ", " << K << ", kk::gemm::packed_s8_view(" << blob << ", "
         << K << ", " << N << "), " << po << ", " << N << ", " << epilogue << ", nullptr);\n";
      return Status::ok();
    }
    b_ << "  kk::gemm::gemm_f32_packed(be, " << product_expr(xs, 0, xs.size() - 1) << ", " << N
       << ", " << K << ", " << px << ", " << K << ", " << pw << ", " << po << ", " << N << ", "
       << epilogue << ");\n";
    return Status::ok();
  }

  // EmbeddingLayerNorm(scale, bias?, table_0, ids_0, table_1, ids_1?, ...)
  // (kernels/kiln/kernels/embed_layer_norm.h): one EmbeddingTerm per table; int8 tables
  // (compiler/quantize) are gather_s8.h blobs made by lowering.
  Status emit_embedding_layer_norm() {
    const Shape& os = shape(out_value());
    if (os.size() < 2 || !os.back().is_constant())
      return Status::error(where() + ": output must be [..., S, H] with a constant H");
    const std::vector<int64_t> first = n_->attr_ints("row_first"), step = n_->attr_ints("row_step");
    const size_t terms = first.size();
    if (n_->inputs.size() != 2 + 2 * terms || step.size() != terms)
      return Status::error(where() + ": inputs do not match row_first / row_step");
    const Shape lead(os.begin(), os.end() - 1);
    const std::string seq = dim_expr(lead.back());
    KILN_TRY(pscale, in_ptr(0));
    std::string pbias = "nullptr";
    if (in(1)) {
      KILN_TRY(p, in_ptr(1));
      pbias = p;
    }
    b_ << "  const kk::EmbeddingTerm terms[] = {\n";
    for (size_t t = 0; t < terms; ++t) {
      const ir::Value* table = in(2 + 2 * t);
      const ir::Value* ids = in(3 + 2 * t);
      KILN_RETURN_IF_ERROR(require_float(table));
      std::string pf = "nullptr", ps8 = "nullptr";
      if (quantize::is_quantized_input(*n_, 2 + 2 * t)) {
        KILN_TRY(p, raw_ptr(2 + 2 * t));
        ps8 = p;
      } else {
        KILN_TRY(p, in_ptr(2 + 2 * t));
        pf = p;
      }
      std::string pids = "nullptr", period = seq;
      bool int32 = false;
      // Affine rows have no ids tensor: the message names the attributes that give them.
      std::string ids_name =
          "row_first[" + std::to_string(t) + "] + row_step[" + std::to_string(t) + "] * position";
      if (ids) {
        if (ids->dtype != DType::kInt64 && ids->dtype != DType::kInt32)
          return Status::error(where() + ": ids '" + ids->name + "' must be int64 or int32");
        KILN_TRY(p, in_ptr(3 + 2 * t));
        pids = p;
        int32 = ids->dtype == DType::kInt32;
        ids_name = ids->name;
        if (shape(ids) == lead)
          period = "0";
        else if (shape(ids).empty() || shape(ids).back() != lead.back())
          return Status::error(where() + ": ids '" + ids->name + "' do not broadcast to the rows");
      }
      b_ << "      {" << pf << ", " << ps8 << ", " << dim_expr(shape(table)[0]) << ", " << pids
         << ", " << (int32 ? "true" : "false") << ", " << period << ", " << int_literal(first[t])
         << ", " << int_literal(step[t]) << ", " << c_string(ids_name) << "},\n";
    }
    b_ << "  };\n";
    KILN_TRY(po, out_ptr());
    returns_ = true;
    b_ << "  return kk::embedding_layer_norm_f32(terms, " << terms << ", "
       << product_expr(lead, 0, lead.size()) << ", " << int_literal(os.back().coef) << ", "
       << pscale << ", " << pbias << ", " << float_literal(n_->attr_float("epsilon", 1e-5f)) << ", "
       << po << ", " << c_string(ln_.name) << ", c->error, c->error_size, be);\n";
    return Status::ok();
  }

  Status emit_transpose() {
    const Shape& xs = shape(in(0));
    std::vector<int64_t> perm = n_->attr_ints("perm");
    if (perm.empty())
      for (size_t i = xs.size(); i-- > 0;) perm.push_back(static_cast<int64_t>(i));
    if (perm.size() != xs.size()) return Status::error(where() + ": perm has the wrong length");
    KILN_TRY(px, in_ptr(0));
    KILN_TRY(po, out_ptr());
    dims("xd", xs);
    b_ << "  const int64_t perm[] = {";
    for (size_t i = 0; i < perm.size(); ++i) b_ << (i ? ", " : "") << norm_axis(perm[i], xs.size());
    if (perm.empty()) b_ << "0";
    b_ << "};\n  kk::transpose(" << px << ", xd, " << xs.size() << ", perm, " << po << ", be);\n";
    return Status::ok();
  }

  Status emit_softmax() {
    KILN_RETURN_IF_ERROR(require_float(in(0)));
    const Shape& xs = shape(in(0));
    const bool legacy = g_.opset > 0 && g_.opset < 13;  // flattens [axis:] into one dim
    const int64_t axis = norm_axis(n_->attr_int("axis", legacy ? 1 : -1), xs.size());
    if (axis < 0 || axis >= static_cast<int64_t>(std::max<size_t>(xs.size(), 1)))
      return Status::error(where() + ": axis out of range");
    KILN_TRY(px, in_ptr(0));
    KILN_TRY(po, out_ptr());
    const std::string outer = product_expr(xs, 0, axis);
    const std::string n =
        legacy ? product_expr(xs, axis, xs.size()) : product_expr(xs, axis, axis + 1);
    const std::string inner = legacy ? "int64_t{1}" : product_expr(xs, axis + 1, xs.size());
    b_ << "  kk::softmax_f32(" << px << ", " << po << ", " << outer << ", " << n << ", " << inner
       << ", be);\n";
    return Status::ok();
  }

  // Attention (kernels/kiln/kernels/attention.h): Q/K/V row strides (3H when packed), the mask's
  // shape right-aligned to rank 4. The kernel keeps S_pad * (hd + 6) floats per task on the
  // stack, so the sequence length needs a compiled maximum that keeps that bounded.
  Status emit_attention() {
    const bool packed = n_->attr_int("qkv_packed", 0) != 0;
    const Shape& os = shape(out_value());
    const int64_t heads = n_->attr_int("num_heads", 0);
    if (os.size() != 3 || !os[2].is_constant() || heads <= 0 || os[2].coef % heads)
      return Status::error(where() + ": needs a [batch, seq, hidden] output with num_heads (" +
                           std::to_string(heads) + ") dividing a constant hidden size");
    for (size_t i = 0; i < n_->inputs.size(); ++i)
      if (in(i)) KILN_RETURN_IF_ERROR(require_float(in(i)));
    const int64_t h = os[2].coef, hd = h / heads;
    std::vector<int64_t> maxima(ir::kMaxSymbols, 1);
    for (size_t i = 0; i < g_.symbols.size() && i < maxima.size(); ++i) {
      if (os[1].pow[i] != 0 && g_.symbols[i].max <= 0)
        return Status::error(
            where() + ": sequence length '" + g_.symbols[i].name +
            "' has no compiled maximum (the kernel's stack scratch grows with it)");
      maxima[i] = g_.symbols[i].max;
    }
    const int64_t max_seq = os[1].eval(maxima.data());
    if (kernels::attention_stack_bytes(max_seq, hd) > kernels::kAttentionMaxStackBytes)
      return Status::error(where() + ": sequence length " + std::to_string(max_seq) +
                           " with head size " + std::to_string(hd) +
                           " needs more stack scratch than the kernel allows");
    KILN_TRY(pq, in_ptr(0));
    std::string pk = "q + " + int_literal(h), pv = "q + " + int_literal(2 * h);
    if (!packed) {
      KILN_TRY(k, in_ptr(1));
      KILN_TRY(v, in_ptr(2));
      pk = k;
      pv = v;
    }
    std::string pm = "nullptr";
    int64_t mask_rank = 0;
    if (in(3)) {
      KILN_TRY(m, in_ptr(3));
      pm = m;
      mask_rank = static_cast<int64_t>(shape(in(3)).size());
    }
    KILN_TRY(po, out_ptr());
    b_ << "  const int64_t md[] = {";
    for (int64_t i = 0; i < 4; ++i) {
      const int64_t j = i - (4 - mask_rank);
      b_ << (i ? ", " : "") << (j < 0 ? "1" : dim_expr(shape(in(3))[j]));
    }
    const std::string ld = int_literal(packed ? 3 * h : h);
    b_ << "};\n  const float* q = " << pq << ";\n";
    b_ << "  kk::attention_f32(be, q, " << pk << ", " << pv << ", " << ld << ", " << ld << ", "
       << ld << ", " << pm << ", md, " << po << ", " << int_literal(h) << ", " << dim_expr(os[0])
       << ", " << dim_expr(os[1]) << ", " << heads << ", " << hd << ", "
       << float_literal(n_->attr_float("scale", 1.0f)) << ");\n";
    return Status::ok();
  }

  Status emit_reduce_mean() {
    KILN_RETURN_IF_ERROR(require_float(in(0)));
    const Shape& xs = shape(in(0));
    std::vector<int64_t> axes = n_->attr_ints("axes");
    if (in(1)) {
      KILN_TRY(a, operand(1, "axes"));
      axes.clear();
      for (const Dim& d : a) {
        if (!d.is_constant()) return Status::error(where() + ": axes must be constant");
        axes.push_back(d.coef);
      }
    }
    std::vector<int> red(xs.size(), axes.empty() ? 1 : 0);
    if (axes.empty() && n_->attr_int("noop_with_empty_axes", 0)) red.assign(xs.size(), 0);
    for (int64_t a : axes) {
      const int64_t k = norm_axis(a, xs.size());
      if (k < 0 || k >= static_cast<int64_t>(xs.size()))
        return Status::error(where() + ": axis out of range");
      red[k] = 1;
    }
    KILN_TRY(px, in_ptr(0));
    KILN_TRY(po, out_ptr());
    dims("xd", xs);
    b_ << "  const uint8_t red[] = {";
    for (size_t i = 0; i < red.size(); ++i) b_ << (i ? ", " : "") << red[i];
    if (red.empty()) b_ << "0";
    b_ << "};\n  kk::reduce_mean_f32(" << px << ", xd, " << xs.size() << ", red, " << po
       << ", be);\n";
    return Status::ok();
  }

  Status emit_layernorm() {
    KILN_RETURN_IF_ERROR(require_float(in(0)));
    const Shape& xs = shape(in(0));
    const int64_t axis = norm_axis(n_->attr_int("axis", -1), xs.size());
    if (axis < 0 || axis >= static_cast<int64_t>(xs.size()))
      return Status::error(where() + ": axis out of range");
    Dim n(1);
    for (size_t i = axis; i < xs.size(); ++i) n = n * xs[i];
    std::string ps = "nullptr", pb = "nullptr";
    for (size_t i = 1; i <= 2; ++i) {
      if (!in(i)) continue;
      Dim m(1);
      for (const Dim& d : shape(in(i))) m = m * d;
      if (m != n)
        return Status::error(where() + ": '" + in(i)->name + "' must have the normalized shape's " +
                             "element count (broadcast scale/bias is not supported)");
      KILN_RETURN_IF_ERROR(require_float(in(i)));
      KILN_TRY(p, in_ptr(i));
      (i == 1 ? ps : pb) = p;
    }
    KILN_TRY(px, in_ptr(0));
    KILN_TRY(po, out_ptr());
    b_ << "  kk::layernorm_f32(" << px << ", " << ps << ", " << pb << ", " << po << ", "
       << product_expr(xs, 0, axis) << ", " << dim_expr(n) << ", "
       << float_literal(n_->attr_float("epsilon", 1e-5f)) << ", be);\n";
    return Status::ok();
  }

  Status emit_gather() {
    const ir::Value* data = in(0);
    const ir::Value* idx = in(1);
    const Shape& ds = shape(data);
    const int64_t axis = norm_axis(n_->attr_int("axis", 0), ds.size());
    if (axis < 0 || axis >= static_cast<int64_t>(ds.size()))
      return Status::error(where() + ": axis out of range");
    if (idx->dtype != DType::kInt64 && idx->dtype != DType::kInt32)
      return Status::error(where() + ": indices must be int64 or int32");
    // ONNX allows negative indices, but a negative token id into an embedding table (a constant
    // of rank >= 2 gathered on axis 0) is a user error, not a request for the last rows.
    const bool allow_negative = !(data->constant && ds.size() >= 2 && axis == 0);
    if (quantize::is_quantized(*n_)) {  // int8 embedding table (gather_s8.h, blob by lowering)
      KILN_TRY(pb, raw_ptr(0));
      KILN_TRY(pi, in_ptr(1));
      KILN_TRY(po, out_ptr());
      dims("id", shape(idx));
      returns_ = true;
      b_ << "  return kk::gather_s8(" << pb << ", " << dim_expr(ds[0]) << ", " << dim_expr(ds[1])
         << ", " << pi << ", kk::product(id, 0, " << shape(idx).size() << "), " << po << ", "
         << c_string(ln_.name) << ", " << c_string(idx->name)
         << ", c->error, c->error_size, be);\n";
      return Status::ok();
    }
    KILN_TRY(pd, in_ptr(0));
    KILN_TRY(pi, in_ptr(1));
    KILN_TRY(po, out_ptr());
    dims("id", shape(idx));
    returns_ = true;
    b_ << "  return kk::gather(" << pd << ", " << product_expr(ds, 0, axis) << ", "
       << dim_expr(ds[axis]) << ", " << product_expr(ds, axis + 1, ds.size()) << ", " << pi
       << ", kk::product(id, 0, " << shape(idx).size() << "), " << po << ", "
       << (allow_negative ? "true" : "false") << ", " << c_string(ln_.name) << ", "
       << c_string(idx->name) << ", c->error, c->error_size, be);\n";
    return Status::ok();
  }

  Status emit_slice() {
    const Shape& xs = shape(in(0));
    const size_t rank = xs.size();
    KILN_TRY(starts, operand(1, "starts"));
    KILN_TRY(ends, operand(2, "ends"));
    std::vector<Dim> axes, steps;
    if (in(3) || n_->has_attr("axes")) {
      KILN_TRY(a, operand(3, "axes"));
      axes = a;
    } else {
      for (size_t i = 0; i < starts.size(); ++i) axes.push_back(Dim(static_cast<int64_t>(i)));
    }
    if (in(4)) {
      KILN_TRY(st, operand(4, "steps"));
      steps = st;
    } else {
      steps.assign(starts.size(), Dim(1));
    }
    if (ends.size() != starts.size() || axes.size() != starts.size() ||
        steps.size() != starts.size())
      return Status::error(where() + ": starts/ends/axes/steps have different lengths");
    KILN_TRY(px, in_ptr(0));
    KILN_TRY(po, out_ptr());
    dims("xd", xs);
    dims("od", shape(out_value()));
    b_ << "  int64_t first[" << std::max<size_t>(rank, 1) << "] = {}, step["
       << std::max<size_t>(rank, 1) << "], count;\n  for (int i = 0; i < " << rank
       << "; ++i) step[i] = 1;\n";
    for (size_t i = 0; i < starts.size(); ++i) {
      if (!axes[i].is_constant() || !steps[i].is_constant())
        return Status::error(where() + ": axes and steps must be constants");
      const int64_t ax = norm_axis(axes[i].coef, rank);
      if (ax < 0 || ax >= static_cast<int64_t>(rank))
        return Status::error(where() + ": axis out of range");
      if (steps[i].coef == 0) return Status::error(where() + ": step 0");
      b_ << "  kk::slice_axis(xd[" << ax << "], " << dim_expr(starts[i]) << ", "
         << dim_expr(ends[i]) << ", " << int_literal(steps[i].coef) << ", &first[" << ax
         << "], &count);\n";
      b_ << "  step[" << ax << "] = " << int_literal(steps[i].coef) << ";\n";
    }
    b_ << "  kk::slice(" << px << ", xd, " << rank << ", first, step, " << po << ", od, be);\n";
    return Status::ok();
  }

  Status emit_concat() {
    const Shape& os = shape(out_value());
    const int64_t axis = norm_axis(n_->attr_int("axis", 0), os.size());
    if (axis < 0 || axis >= static_cast<int64_t>(os.size()))
      return Status::error(where() + ": axis out of range");
    KILN_TRY(t, ctype(out_value()->dtype, where()));
    std::string ptrs, chunks;
    int count = 0;
    for (size_t i = 0; i < n_->inputs.size(); ++i) {
      if (!in(i)) continue;
      KILN_TRY(p, in_ptr(i));
      ptrs += (count ? ", " : "") + p;
      chunks += (count ? ", " : "") + product_expr(shape(in(i)), axis, os.size());
      ++count;
    }
    KILN_TRY(po, out_ptr());
    b_ << "  const " << t << "* ins[] = {" << ptrs << "};\n";
    b_ << "  const int64_t chunk[] = {" << chunks << "};\n";
    b_ << "  kk::concat(ins, chunk, " << count << ", " << product_expr(os, 0, axis) << ", " << po
       << ", be);\n";
    return Status::ok();
  }

  Status emit_expand() {
    KILN_TRY(px, in_ptr(0));
    KILN_TRY(po, out_ptr());
    const size_t xr = dims("xd", shape(in(0))), orank = dims("od", shape(out_value()));
    b_ << "  kk::expand(" << px << ", xd, " << xr << ", " << po << ", od, " << orank << ", be);\n";
    return Status::ok();
  }

  Result<std::string> scalar_operand(size_t i) {
    const ir::Value* v = in(i);
    if (v && v->constant && v->constant->numel() == 1 &&
        (v->dtype == DType::kFloat32 || v->dtype == DType::kFloat64))
      return float_literal(v->constant->float_at(0));
    KILN_TRY(d, operand(i, "scalar input"));
    if (d.size() != 1)
      return Status::error(where() + ": input " + std::to_string(i) + " must be a scalar");
    return dim_expr(d[0]);
  }

  Status emit_range() {
    const ir::Value* o = out_value();
    KILN_TRY(t, ctype(o->dtype, where()));
    KILN_TRY(start, scalar_operand(0));
    KILN_TRY(delta, scalar_operand(2));
    KILN_TRY(po, out_ptr());
    if (shape(o).size() != 1) return Status::error(where() + ": output must be 1-D");
    b_ << "  kk::range<" << t << ">(" << start << ", " << delta << ", " << po << ", "
       << dim_expr(shape(o)[0]) << ");\n";
    return Status::ok();
  }

  Status emit_constant_of_shape() {
    const ir::Value* o = out_value();
    KILN_TRY(t, ctype(o->dtype, where()));
    std::string value = o->dtype == DType::kFloat32 ? float_literal(0) : "0";
    if (const ir::Tensor* v = n_->attr_tensor("value"); v && v->numel() >= 1)
      value =
          o->dtype == DType::kFloat32 ? float_literal(v->float_at(0)) : int_literal(v->int_at(0));
    KILN_TRY(po, out_ptr());
    dims("od", shape(o));
    b_ << "  kk::fill<" << t << ">(" << po << ", kk::product(od, 0, " << shape(o).size() << "), "
       << value << ");\n";
    return Status::ok();
  }

  Status emit_symbolic_tensor() {
    const ir::Value* o = out_value();
    if (!o->sym_value) return Status::error(where() + ": output has no sym_value");
    KILN_TRY(t, ctype(o->dtype, where()));
    KILN_TRY(po, out_ptr());
    b_ << "  " << t << "* o = " << po << ";\n";
    for (size_t i = 0; i < o->sym_value->size(); ++i)
      b_ << "  o[" << i << "] = static_cast<" << t << ">(" << dim_expr((*o->sym_value)[i])
         << ");\n";
    return Status::ok();
  }
#undef KILN_TRY

  const ir::Graph& g_;
  const LoweredNode& ln_;
  size_t index_;
  const ir::Node* n_;
  std::ostringstream* statics_ = nullptr;
  std::ostringstream b_;
  bool returns_ = false;  // the body ends with its own return (kernels that can fail)
};

const char* kPrelude =
    "// Generated by kiln 0.1.0. Do not edit.\n"
    "#include <cstdint>\n\n"
    "#include \"kiln/backend.h\"\n"
    "#include \"kiln/kernels/kernels.h\"\n\n"
    "namespace kk = kiln::kernels;\n"
    "#define KILN_NODE(i) extern \"C\" __attribute__((visibility(\"default\"))) int "
    "kiln_node_##i(const kiln_call* c)\n\n";

}  // namespace

Result<std::vector<std::string>> emit_sources(const ir::Graph& g, const Lowering& L,
                                              const std::string& target_name, int parts) {
  parts = std::max(1, std::min<int>(parts, static_cast<int>(std::max<size_t>(L.nodes.size(), 1))));
  std::vector<std::string> files;
  const size_t per_part = (L.nodes.size() + parts - 1) / parts;
  // INT8 kernels are included only by quantized models (FP32 model.so stays lean).
  bool s8 = false;
  bool embed = false;  // embed_layer_norm.h only where it is used, as the INT8 headers
  for (const LoweredNode& n : L.nodes) {
    s8 |= n.node && quantize::is_quantized(*n.node);
    embed |= n.op == "EmbeddingLayerNorm";
  }
  const std::string prelude = std::string(kPrelude) +
                              (embed ? "#include \"kiln/kernels/embed_layer_norm.h\"\n" : "") +
                              (s8 ? "#include <string>\n\n#include \"kiln/kernels/gather_s8.h\"\n"
                                    "#include \"kiln/kernels/gemm/s8_dispatch.h\"\n\n"
                                  : "");
  for (int p = 0; p < parts; ++p) {
    std::ostringstream statics, funcs;
    if (p == 0) {
      funcs << "extern \"C\" __attribute__((visibility(\"default\"))) uint32_t "
               "kiln_model_abi_version() { return KILN_ABI_VERSION; }\n";
      funcs << "extern \"C\" __attribute__((visibility(\"default\"))) const char* "
               "kiln_model_target() { return "
            << c_string(target_name) << "; }\n";
      if (s8)
        funcs << "extern \"C\" __attribute__((visibility(\"default\"))) const char* "
                 "kiln_model_kernel_variant() {\n  static const std::string d = "
                 "std::string(kk::gemm::gemm_f32_variant_description()) + \"; gemm s8: \" + "
                 "kk::gemm::gemm_s8_variant().name + \" \" + kk::gemm::gemm_s8_variant().tile + "
                 "\" (\" + kk::gemm::gemm_s8_variant().kernel + \")\";\n  return d.c_str();\n}\n\n";
      else
        funcs << "extern \"C\" __attribute__((visibility(\"default\"))) const char* "
                 "kiln_model_kernel_variant() { return "
                 "kk::gemm::gemm_f32_variant_description(); }\n\n";
    }
    for (size_t i = p * per_part; i < std::min(L.nodes.size(), (p + 1) * per_part); ++i) {
      NodeEmitter e(g, L.nodes[i], i);
      KILN_RETURN_IF_ERROR(e.emit(statics, funcs));
    }
    files.push_back(prelude + statics.str() + (statics.str().empty() ? "" : "\n") + funcs.str());
  }
  return files;
}

}  // namespace kiln::codegen
