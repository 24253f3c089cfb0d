// Per-op C++ emission; see emit_node.h.
#include "compiler/codegen/emit_node.h"

#include <algorithm>

#include "compiler/codegen/cpp_literals.h"
#include "compiler/quantize/quantize.h"
#include "kiln/kernels/attention.h"

namespace kiln::codegen {
namespace {

using ir::Dim;
using ir::DType;
using ir::Shape;

class NodeEmitter {
 public:
  NodeEmitter(const ir::Graph& g, const LoweredNode& ln, size_t index,
              const std::vector<tune::TunedRow>* tuned)
      : g_(g), ln_(ln), index_(index), n_(ln.node), tuned_(tuned) {}

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
    KILN_ASSIGN_OR_RETURN(auto t, ctype(v->dtype, where()));
    const InputRef& ref = ln_.inputs[i];
    if (ref.kind == InputRef::kSlot)
      return "static_cast<const " + t + "*>(c->tensors[" + std::to_string(ref.slot) + "])";
    if (ref.kind == InputRef::kInline) {
      const std::string name = "kc" + std::to_string(index_) + "_" + std::to_string(i);
      const ir::Tensor& k = *v->constant;
      *statics_ << "static const " << t << " " << name << "[] = {";
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
    KILN_ASSIGN_OR_RETURN(auto t, ctype(out_value()->dtype, where()));
    return "static_cast<" + t + "*>(c->tensors[" + std::to_string(ln_.input_tensors.size()) + "])";
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

  Status body() {
    if (ln_.copy) return emit_copy();
    Hook h = hook(n_->op);
    if (!h)
      return Status::error(where() +
                           ": op is not supported by code generation (not in the runtime op set)");
    return (this->*h)();
  }

 public:
  using Hook = Status (NodeEmitter::*)();
  static Hook hook(ir::Op op) {
    using E = NodeEmitter;
    using ir::Op;
    switch (ir::op_kind(op)) {
      case ir::OpKind::kUnary:
      case ir::OpKind::kPredicate:
        return &E::emit_unary;
      case ir::OpKind::kBinary:
      case ir::OpKind::kCompare:
        return &E::emit_binary;
      case ir::OpKind::kPassThrough:  // removed by simplify
      case ir::OpKind::kView:         // share their input's storage (lowering)
        return nullptr;
      case ir::OpKind::kReduce:
        return &E::emit_reduce;
      case ir::OpKind::kMovement:
      case ir::OpKind::kShapeSource:
      case ir::OpKind::kScan:
      case ir::OpKind::kNormalization:
      case ir::OpKind::kLinear:
      case ir::OpKind::kFused:
        break;  // one emitter per op
    }
    switch (op) {
      case Op::kGather:
        return &E::emit_gather;
      case Op::kSlice:
        return &E::emit_slice;
      case Op::kConcat:
        return &E::emit_concat;
      case Op::kExpand:
        return &E::emit_expand;
      case Op::kTranspose:
        return &E::emit_transpose;
      case Op::kWhere:
        return &E::emit_where;
      case Op::kCast:
        return &E::emit_cast;
      case Op::kClip:
        return &E::emit_clip;
      case Op::kGatherElements:
        return &E::emit_gather_elements;
      case Op::kGatherND:
        return &E::emit_gather_nd;
      case Op::kPad:
        return &E::emit_pad;
      case Op::kCumSum:
        return &E::emit_cumsum;
      case Op::kTile:
        return &E::emit_tile;
      case Op::kTrilu:
        return &E::emit_trilu;
      case Op::kScatterND:
        return &E::emit_scatter_nd;
      case Op::kConstantOfShape:
        return &E::emit_constant_of_shape;
      case Op::kRange:
        return &E::emit_range;
      case Op::kSymbolicTensor:
        return &E::emit_symbolic_tensor;
      case Op::kSoftmax:
        return &E::emit_softmax;
      case Op::kLayerNormalization:
        return &E::emit_layernorm;
      case Op::kMatMul:
        return &E::emit_matmul;
      case Op::kGemm:
        return &E::emit_gemm;
      case Op::kDense:
        return &E::emit_dense;
      case Op::kAttention:
        return &E::emit_attention;
      case Op::kEmbeddingLayerNorm:
        return &E::emit_embedding_layer_norm;
      default:
        return nullptr;  // Split, Shape, Constant, Einsum: removed before codegen
    }
  }

 private:
  Status emit_copy() {
    KILN_ASSIGN_OR_RETURN(auto src, in_ptr(0));
    KILN_ASSIGN_OR_RETURN(auto dst, out_ptr());
    const ir::Value* o = out_value();
    dims("od", shape(o));
    b_ << "  kk::copy_bytes(" << src << ", " << dst << ", kk::product(od, 0, " << shape(o).size()
       << ") * " << ir::dtype_size(o->dtype) << ", be);\n";
    return Status::ok();
  }

  // An elementwise op's input dtype, as its registry entry allows.
  Status require_dtype(const ir::Value* v) {
    const ir::OpInfo& info = ir::op_info(n_->op);
    const uint8_t cls = v->dtype == DType::kFloat32                                ? ir::kFloatTypes
                        : v->dtype == DType::kBool                                 ? ir::kBoolType
                        : (v->dtype == DType::kInt64 || v->dtype == DType::kInt32) ? ir::kIntTypes
                                                                                   : 0;
    if (info.dtypes & cls) return Status::ok();
    return Status::error(where() + ": '" + v->name + "' has dtype " + ir::dtype_name(v->dtype) +
                         ", which " + info.name + " does not support at run time");
  }

  Status emit_binary() {
    const ir::Value* a = in(0);
    const ir::Value* bv = in(1);
    const ir::Value* o = out_value();
    KILN_RETURN_IF_ERROR(require_dtype(a));
    KILN_ASSIGN_OR_RETURN(auto pa, in_ptr(0));
    KILN_ASSIGN_OR_RETURN(auto po, out_ptr());
    // x^2 and x^0.5 with a constant exponent: exact and much cheaper than pow.
    if (n_->op == ir::Op::kPow && bv->constant && bv->constant->numel() == 1 &&
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
    KILN_ASSIGN_OR_RETURN(auto pb, in_ptr(1));
    const size_t ar = dims("ad", shape(a)), br = dims("bd", shape(bv)),
                 orank = dims("od", shape(o));
    b_ << "  kk::binary<kk::op::" << ir::op_info(n_->op).functor << ">(" << pa << ", ad, " << ar
       << ", " << pb << ", bd, " << br << ", " << po << ", od, " << orank << ", be);\n";
    return Status::ok();
  }

  Status emit_unary() {
    KILN_RETURN_IF_ERROR(require_dtype(in(0)));
    KILN_ASSIGN_OR_RETURN(auto px, in_ptr(0));
    KILN_ASSIGN_OR_RETURN(auto po, out_ptr());
    dims("od", shape(out_value()));
    b_ << "  kk::unary<kk::op::" << ir::op_info(n_->op).functor << ">(" << px << ", " << po
       << ", kk::product(od, 0, " << shape(out_value()).size() << "), be);\n";
    return Status::ok();
  }

  Status emit_where() {
    KILN_ASSIGN_OR_RETURN(auto pc, in_ptr(0));
    KILN_ASSIGN_OR_RETURN(auto px, in_ptr(1));
    KILN_ASSIGN_OR_RETURN(auto py, in_ptr(2));
    KILN_ASSIGN_OR_RETURN(auto po, out_ptr());
    const size_t cr = dims("cd", shape(in(0))), xr = dims("xd", shape(in(1))),
                 yr = dims("yd", shape(in(2))), orank = dims("od", shape(out_value()));
    b_ << "  kk::where(" << pc << ", cd, " << cr << ", " << px << ", xd, " << xr << ", " << py
       << ", yd, " << yr << ", " << po << ", od, " << orank << ", be);\n";
    return Status::ok();
  }

  // Clip: the bounds are scalars read at run time (nullptr: unbounded on that side).
  Status emit_clip() {
    const ir::Value* x = in(0);
    if (x->dtype != DType::kFloat32 && x->dtype != DType::kInt64 && x->dtype != DType::kInt32)
      return Status::error(where() + ": '" + x->name + "' has dtype " + ir::dtype_name(x->dtype) +
                           ", Clip supports float32, int64 and int32 at run time");
    KILN_ASSIGN_OR_RETURN(auto px, in_ptr(0));
    KILN_ASSIGN_OR_RETURN(auto lo, optional_ptr(1));
    KILN_ASSIGN_OR_RETURN(auto hi, optional_ptr(2));
    KILN_ASSIGN_OR_RETURN(auto po, out_ptr());
    dims("od", shape(out_value()));
    b_ << "  kk::clip(" << px << ", " << lo << ", " << hi << ", " << po << ", kk::product(od, 0, "
       << shape(out_value()).size() << "), be);\n";
    return Status::ok();
  }

  Status emit_cast() {
    KILN_ASSIGN_OR_RETURN(auto px, in_ptr(0));
    KILN_ASSIGN_OR_RETURN(auto po, out_ptr());
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
    KILN_ASSIGN_OR_RETURN(auto pa, in_ptr(0));
    KILN_ASSIGN_OR_RETURN(auto pb, in_ptr(1));
    KILN_ASSIGN_OR_RETURN(auto po, out_ptr());
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
    KILN_ASSIGN_OR_RETURN(auto pa, in_ptr(0));
    KILN_ASSIGN_OR_RETURN(auto pb, in_ptr(1));
    KILN_ASSIGN_OR_RETURN(auto po, out_ptr());
    std::string pc = "nullptr", rs = "0", cs = "0";
    if (in(2)) {
      KILN_ASSIGN_OR_RETURN(auto p, in_ptr(2));
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

  // A pointer expression for optional input i, or "nullptr".
  Result<std::string> optional_ptr(size_t i) {
    if (!in(i)) return std::string("nullptr");
    return in_ptr(i);
  }

  // Declares `Type var;` and assigns the given fields by name (kernel structs are never filled
  // by position, so a field added or reordered in a kernel header cannot shift the others).
  using Fields = std::vector<std::pair<const char*, std::string>>;
  void assign_fields(const std::string& var, const Fields& fields) {
    for (const auto& [field, value] : fields)
      b_ << "  " << var << "." << field << " = " << value << ";\n";
  }
  void struct_fields(const std::string& type, const std::string& var, const Fields& fields) {
    b_ << "  " << type << " " << var << ";\n";
    assign_fields(var, fields);
  }

  // A tuned Dense (kiln compile --tuning-log) passes its rows (kernels/gemm/tuned.h) first;
  // tuned_args() writes them as a static table and returns the leading arguments.
  std::string tuned_call() const { return tuned_ && !tuned_->empty() ? "_tuned" : ""; }
  std::string tuned_args() {
    if (tuned_call().empty()) return "";
    b_ << "  static const kk::gemm::TunedSchedule tuned[] = {\n";
    for (const tune::TunedRow& r : *tuned_) {
      const tune::ScheduleChoice& s = r.schedule;
      b_ << "      {" << (r.max_m < 0 ? std::string("INT64_MAX") : int_literal(r.max_m)) << ", "
         << c_string(s.variant) << ", kk::gemm::Schedule{" << s.mr << ", " << s.panels << ", "
         << s.mc << ", " << s.kc << ", " << s.nc << ", " << s.threads << ", " << s.prefetch
         << "}},\n";
    }
    b_ << "  };\n";
    return "tuned, " + std::to_string(tuned_->size()) + ", kiln_tuned_cpu(), ";
  }

  // y[M, N] = gelu?(x[M, K] W + bias) + residual [-> LayerNorm], W packed by lowering; M = x's
  // leading dims.
  Status emit_dense() {
    using In = ir::DenseIn;
    const ir::Value* w = in(In::kWeight);
    if (!w->constant || w->constant->dims.size() != 2)
      return Status::error(where() + ": W must be a 2-D constant");
    KILN_RETURN_IF_ERROR(require_float(in(In::kX)));
    const Shape& xs = shape(in(In::kX));
    const std::string K = int_literal(w->constant->dims[0]), N = int_literal(w->constant->dims[1]);
    KILN_ASSIGN_OR_RETURN(auto px, in_ptr(In::kX));
    KILN_ASSIGN_OR_RETURN(auto pbias, optional_ptr(In::kBias));
    KILN_ASSIGN_OR_RETURN(auto pres, optional_ptr(In::kResidual));
    KILN_ASSIGN_OR_RETURN(auto pscale, optional_ptr(In::kLnScale));
    KILN_ASSIGN_OR_RETURN(auto plnb, optional_ptr(In::kLnBias));
    KILN_ASSIGN_OR_RETURN(auto po, out_ptr());
    Fields fields = {{"bias", pbias},
                     {"residual", pres},
                     {"ldr", N},
                     {"gelu", n_->attr_int("gelu", 0) != 0 ? "true" : "false"}};
    if (in(In::kLnScale)) {  // passes/fuse_dense_layer_norm.cpp: LayerNorm of each finished row
      fields.insert(fields.end(),
                    {{"layer_norm", "true"},
                     {"ln_scale", pscale},
                     {"ln_bias", plnb},
                     {"ln_epsilon", float_literal(n_->attr_float("ln_epsilon", 1e-5f))}});
    }
    struct_fields("kk::gemm::Epilogue", "epilogue", fields);
    if (quantize::is_quantized(*n_)) {
      // W is gemm/s8_pack.h's blob (uint8 param, lowering). Workspace null: s8_driver.h's
      // thread_local buffer, which grows to the largest M * K once and is reused afterwards.
      // act_smooth (compiler/quantize/smooth.h): the quantizer multiplies x by it per channel.
      // The weight group (lowering packed the blob with it) only when there is one, so that
      // per-channel models generate the same code as before groups existed.
      KILN_ASSIGN_OR_RETURN(auto blob, raw_ptr(In::kWeight));
      KILN_ASSIGN_OR_RETURN(auto psmooth, optional_ptr(In::kActSmooth));
      const int64_t group = quantize::weight_group(*n_);
      const std::string targs = tuned_args();
      b_ << "  kk::gemm::gemm_s8_packed" << tuned_call() << "(" << targs << "be, "
         << product_expr(xs, 0, xs.size() - 1) << ", " << N << ", " << K << ", " << px << ", " << K
         << ", kk::gemm::packed_s8_view(" << blob << ", " << K << ", " << N << ", " << psmooth
         << (group ? ", " + std::to_string(group) : std::string()) << "), " << po << ", " << N
         << ", epilogue, nullptr);\n";
      return Status::ok();
    }
    if (in(In::kActSmooth))
      return Status::error(where() + ": act_smooth is only supported on an INT8 Dense");
    KILN_ASSIGN_OR_RETURN(auto pw, in_ptr(In::kWeight));
    const std::string targs = tuned_args();
    b_ << "  kk::gemm::gemm_f32_packed" << tuned_call() << "(" << targs << "be, "
       << product_expr(xs, 0, xs.size() - 1) << ", " << N << ", " << K << ", " << px << ", " << K
       << ", " << pw << ", " << po << ", " << N << ", epilogue);\n";
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
    using In = ir::EmbeddingLayerNormIn;
    if (n_->inputs.size() != In::table(terms) || step.size() != terms)
      return Status::error(where() + ": inputs do not match row_first / row_step");
    const Shape lead(os.begin(), os.end() - 1);
    const std::string seq = dim_expr(lead.back());
    KILN_ASSIGN_OR_RETURN(auto pscale, in_ptr(In::kScale));
    KILN_ASSIGN_OR_RETURN(auto pbias, optional_ptr(In::kBias));
    b_ << "  kk::EmbeddingTerm terms[" << terms << "];\n";
    for (size_t t = 0; t < terms; ++t) {
      const ir::Value* table = in(In::table(t));
      const ir::Value* ids = in(In::ids(t));
      KILN_RETURN_IF_ERROR(require_float(table));
      std::string pf = "nullptr", ps8 = "nullptr";
      if (quantize::is_quantized_input(*n_, In::table(t))) {
        KILN_ASSIGN_OR_RETURN(auto p, raw_ptr(In::table(t)));
        ps8 = p;
      } else {
        KILN_ASSIGN_OR_RETURN(auto p, in_ptr(In::table(t)));
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
        KILN_ASSIGN_OR_RETURN(auto p, in_ptr(In::ids(t)));
        pids = p;
        int32 = ids->dtype == DType::kInt32;
        ids_name = ids->name;
        if (shape(ids) == lead)
          period = "0";
        else if (shape(ids).empty() || shape(ids).back() != lead.back())
          return Status::error(where() + ": ids '" + ids->name + "' do not broadcast to the rows");
      }
      assign_fields("terms[" + std::to_string(t) + "]", {{"table", pf},
                                                         {"table_s8", ps8},
                                                         {"table_rows", dim_expr(shape(table)[0])},
                                                         {"ids", pids},
                                                         {"ids_int32", int32 ? "true" : "false"},
                                                         {"period", period},
                                                         {"first", int_literal(first[t])},
                                                         {"step", int_literal(step[t])},
                                                         {"ids_name", c_string(ids_name)}});
    }
    KILN_ASSIGN_OR_RETURN(auto po, out_ptr());
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
    KILN_ASSIGN_OR_RETURN(auto px, in_ptr(0));
    KILN_ASSIGN_OR_RETURN(auto po, out_ptr());
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
    KILN_ASSIGN_OR_RETURN(auto px, in_ptr(0));
    KILN_ASSIGN_OR_RETURN(auto po, out_ptr());
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
    using In = ir::AttentionIn;
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
    KILN_ASSIGN_OR_RETURN(auto pq, in_ptr(In::kQuery));
    std::string pk = "q + " + int_literal(h), pv = "q + " + int_literal(2 * h);
    if (!packed) {
      KILN_ASSIGN_OR_RETURN(auto k, in_ptr(In::kKey));
      KILN_ASSIGN_OR_RETURN(auto v, in_ptr(In::kValue));
      pk = k;
      pv = v;
    }
    std::string pm = "nullptr";
    int64_t mask_rank = 0;
    if (in(In::kMask)) {
      KILN_ASSIGN_OR_RETURN(auto m, in_ptr(In::kMask));
      pm = m;
      mask_rank = static_cast<int64_t>(shape(in(In::kMask)).size());
    }
    KILN_ASSIGN_OR_RETURN(auto po, out_ptr());
    b_ << "  const int64_t md[] = {";
    for (int64_t i = 0; i < 4; ++i) {
      const int64_t j = i - (4 - mask_rank);
      b_ << (i ? ", " : "") << (j < 0 ? "1" : dim_expr(shape(in(In::kMask))[j]));
    }
    const std::string ld = int_literal(packed ? 3 * h : h);
    b_ << "};\n  const float* q = " << pq << ";\n";
    b_ << "  kk::attention_f32(be, q, " << pk << ", " << pv << ", " << ld << ", " << ld << ", "
       << ld << ", " << pm << ", md, " << po << ", " << int_literal(h) << ", " << dim_expr(os[0])
       << ", " << dim_expr(os[1]) << ", " << heads << ", " << hd << ", "
       << float_literal(n_->attr_float("scale", 1.0f)) << ", "
       << (n_->attr_int("empty_rows_zero", 0) ? "true" : "false") << ");\n";
    return Status::ok();
  }

  // Reduce*: kernels/kiln/kernels/reduce.h's reducer of the same name.
  static const char* reducer(ir::Op op) {
    switch (op) {
      case ir::Op::kReduceSum:
        return "Sum";
      case ir::Op::kReduceMax:
        return "Max";
      case ir::Op::kReduceMin:
        return "Min";
      case ir::Op::kReduceProd:
        return "Prod";
      case ir::Op::kReduceL2:
        return "L2";
      case ir::Op::kReduceSumSquare:
        return "SumSquare";
      default:
        return "Mean";
    }
  }

  Status emit_reduce() {
    const DType t = in(0)->dtype;
    if (t != DType::kFloat32 && t != DType::kInt64 && t != DType::kInt32)
      return Status::error(where() + ": '" + in(0)->name + "' has dtype " + ir::dtype_name(t) +
                           ", " + ir::op_name(n_->op) +
                           " supports float32, int64 and int32 at run time");
    const Shape& xs = shape(in(0));
    std::vector<int64_t> axes = n_->attr_ints("axes");
    if (in(1)) {
      KILN_ASSIGN_OR_RETURN(auto a, operand(1, "axes"));
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
    KILN_ASSIGN_OR_RETURN(auto px, in_ptr(0));
    KILN_ASSIGN_OR_RETURN(auto po, out_ptr());
    dims("xd", xs);
    b_ << "  const uint8_t red[] = {";
    for (size_t i = 0; i < red.size(); ++i) b_ << (i ? ", " : "") << red[i];
    if (red.empty()) b_ << "0";
    b_ << "};\n  kk::reduce<kk::reduce_op::" << reducer(n_->op) << ">(" << px << ", xd, "
       << xs.size() << ", red, " << po << ", be);\n";
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
      KILN_ASSIGN_OR_RETURN(auto p, in_ptr(i));
      (i == 1 ? ps : pb) = p;
    }
    KILN_ASSIGN_OR_RETURN(auto px, in_ptr(0));
    KILN_ASSIGN_OR_RETURN(auto po, out_ptr());
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
      KILN_ASSIGN_OR_RETURN(auto pb, raw_ptr(0));
      KILN_ASSIGN_OR_RETURN(auto pi, in_ptr(1));
      KILN_ASSIGN_OR_RETURN(auto po, out_ptr());
      dims("id", shape(idx));
      returns_ = true;
      b_ << "  return kk::gather_s8(" << pb << ", " << dim_expr(ds[0]) << ", " << dim_expr(ds[1])
         << ", " << pi << ", kk::product(id, 0, " << shape(idx).size() << "), " << po << ", "
         << c_string(ln_.name) << ", " << c_string(idx->name)
         << ", c->error, c->error_size, be);\n";
      return Status::ok();
    }
    KILN_ASSIGN_OR_RETURN(auto pd, in_ptr(0));
    KILN_ASSIGN_OR_RETURN(auto pi, in_ptr(1));
    KILN_ASSIGN_OR_RETURN(auto po, out_ptr());
    dims("id", shape(idx));
    returns_ = true;
    b_ << "  return kk::gather(" << pd << ", " << product_expr(ds, 0, axis) << ", "
       << dim_expr(ds[axis]) << ", " << product_expr(ds, axis + 1, ds.size()) << ", " << pi
       << ", kk::product(id, 0, " << shape(idx).size() << "), " << po << ", "
       << (allow_negative ? "true" : "false") << ", " << c_string(ln_.name) << ", "
       << c_string(idx->name) << ", c->error, c->error_size, be);\n";
    return Status::ok();
  }

  // `return kk::<fn>(<args>, node, indices, c->error, c->error_size, be);` for the index kernels
  // that validate their indices.
  void emit_checked_call(const std::string& fn, const std::string& args, const ir::Value* idx) {
    returns_ = true;
    b_ << "  return kk::" << fn << "(" << args << ", " << c_string(ln_.name) << ", "
       << c_string(idx->name) << ", c->error, c->error_size, be);\n";
  }

  Status emit_gather_elements() {
    const Shape& ds = shape(in(0));
    const int64_t axis = norm_axis(n_->attr_int("axis", 0), ds.size());
    if (axis < 0 || axis >= static_cast<int64_t>(ds.size()))
      return Status::error(where() + ": axis out of range");
    KILN_ASSIGN_OR_RETURN(auto pd, in_ptr(0));
    KILN_ASSIGN_OR_RETURN(auto pi, in_ptr(1));
    KILN_ASSIGN_OR_RETURN(auto po, out_ptr());
    dims("dd", ds);
    dims("id", shape(in(1)));
    emit_checked_call("gather_elements",
                      pd + ", dd, " + pi + ", id, " + std::to_string(ds.size()) + ", " +
                          std::to_string(axis) + ", " + po,
                      in(1));
    return Status::ok();
  }

  Status emit_gather_nd() {
    const Shape &ds = shape(in(0)), &is = shape(in(1));
    const int64_t b = n_->attr_int("batch_dims", 0);
    if (is.empty() || !is.back().is_constant() || b < 0 || b >= static_cast<int64_t>(is.size()))
      return Status::error(where() + ": indices need a constant last dim and batch_dims < rank");
    KILN_ASSIGN_OR_RETURN(auto pd, in_ptr(0));
    KILN_ASSIGN_OR_RETURN(auto pi, in_ptr(1));
    KILN_ASSIGN_OR_RETURN(auto po, out_ptr());
    dims("dd", ds);
    emit_checked_call("gather_nd",
                      pd + ", dd, " + std::to_string(ds.size()) + ", " + std::to_string(b) + ", " +
                          pi + ", " + product_expr(is, 0, b) + ", " +
                          product_expr(is, b, is.size() - 1) + ", " + int_literal(is.back().coef) +
                          ", " + po,
                      in(1));
    return Status::ok();
  }

  Status emit_pad() {
    const Shape& xs = shape(in(0));
    const size_t rank = xs.size();
    const std::string mode = n_->attr_string("mode", "constant");
    KILN_ASSIGN_OR_RETURN(auto pads, operand(1, "pads"));
    std::vector<Dim> axes;
    if (in(3)) {
      KILN_ASSIGN_OR_RETURN(auto a, operand(3, "axes"));
      axes = a;
    } else {
      for (size_t k = 0; k < rank; ++k) axes.push_back(Dim(static_cast<int64_t>(k)));
    }
    if (pads.size() != 2 * axes.size())
      return Status::error(where() + ": pads and axes have different lengths");
    std::vector<std::string> begin(rank, "0");
    for (size_t k = 0; k < axes.size(); ++k) {
      const int64_t a = axes[k].is_constant() ? norm_axis(axes[k].coef, rank) : -1;
      if (a < 0 || a >= static_cast<int64_t>(rank))
        return Status::error(where() + ": axes must be constants within the rank");
      begin[a] = dim_expr(pads[k]);
      if (mode == "reflect" && !(xs[a].is_constant() && xs[a].coef >= 2) &&
          !(pads[k] == Dim(0) && pads[k + axes.size()] == Dim(0)))
        return Status::error(where() + ": reflect padding of dim " + std::to_string(a) +
                             " needs a constant size >= 2");
    }
    const ir::Value* o = out_value();
    std::string value = "0";
    if (in(2)) {
      const ir::Tensor& v = *in(2)->constant;  // shape inference: a constant scalar
      value = o->dtype == DType::kFloat32 ? float_literal(v.float_at(0)) : int_literal(v.int_at(0));
    }
    KILN_ASSIGN_OR_RETURN(auto t, ctype(o->dtype, where()));
    KILN_ASSIGN_OR_RETURN(auto px, in_ptr(0));
    KILN_ASSIGN_OR_RETURN(auto po, out_ptr());
    dims("xd", xs);
    dims("od", shape(o));
    b_ << "  const int64_t begin[] = {";
    for (size_t k = 0; k < rank; ++k) b_ << (k ? ", " : "") << begin[k];
    if (rank == 0) b_ << "0";
    b_ << "};\n  kk::pad<" << t << ">(" << px << ", xd, " << rank << ", begin, kk::PadMode::"
       << (mode == "edge"      ? "kEdge"
           : mode == "reflect" ? "kReflect"
                               : "kConstant")
       << ", " << value << ", " << po << ", od, be);\n";
    return Status::ok();
  }

  Status emit_tile() {
    KILN_ASSIGN_OR_RETURN(auto px, in_ptr(0));
    KILN_ASSIGN_OR_RETURN(auto po, out_ptr());
    const size_t rank = dims("xd", shape(in(0)));
    dims("od", shape(out_value()));
    b_ << "  kk::tile(" << px << ", xd, " << rank << ", " << po << ", od, be);\n";
    return Status::ok();
  }

  // Trilu over the last two dims; k (a scalar, default 0) is read at run time.
  Status emit_trilu() {
    const Shape& xs = shape(in(0));
    const size_t r = xs.size();
    if (r < 2) return Status::error(where() + ": input must have rank >= 2");
    std::string k = "0";
    if (in(1)) {
      KILN_ASSIGN_OR_RETURN(auto pk, in_ptr(1));
      k = "static_cast<int64_t>((" + pk + ")[0])";
    }
    KILN_ASSIGN_OR_RETURN(auto px, in_ptr(0));
    KILN_ASSIGN_OR_RETURN(auto po, out_ptr());
    b_ << "  kk::trilu(" << px << ", " << po << ", " << product_expr(xs, 0, r - 2) << ", "
       << dim_expr(xs[r - 2]) << ", " << dim_expr(xs[r - 1]) << ", " << k << ", "
       << (n_->attr_int("upper", 1) != 0 ? "true" : "false") << ", be);\n";
    return Status::ok();
  }

  Status emit_scatter_nd() {
    const Shape &ds = shape(in(0)), &is = shape(in(1));
    if (is.empty() || !is.back().is_constant())
      return Status::error(where() + ": indices need a constant last dim");
    const std::string red = n_->attr_string("reduction", "none");
    const char* reduction = red == "add"   ? "kAdd"
                            : red == "mul" ? "kMul"
                            : red == "max" ? "kMax"
                            : red == "min" ? "kMin"
                                           : "kNone";
    KILN_ASSIGN_OR_RETURN(auto pd, in_ptr(0));
    KILN_ASSIGN_OR_RETURN(auto pi, in_ptr(1));
    KILN_ASSIGN_OR_RETURN(auto pu, in_ptr(2));
    KILN_ASSIGN_OR_RETURN(auto po, out_ptr());
    dims("dd", ds);
    emit_checked_call("scatter_nd",
                      pd + ", dd, " + std::to_string(ds.size()) + ", " + pi + ", " +
                          product_expr(is, 0, is.size() - 1) + ", " + int_literal(is.back().coef) +
                          ", " + pu + ", kk::ScatterReduction::" + reduction + ", " + po,
                      in(1));
    return Status::ok();
  }

  Status emit_cumsum() {
    const Shape& xs = shape(in(0));
    KILN_ASSIGN_OR_RETURN(auto a, operand(1, "axis"));
    if (a.size() != 1 || !a[0].is_constant())
      return Status::error(where() + ": axis must be a constant scalar");
    const int64_t axis = norm_axis(a[0].coef, xs.size());
    if (axis < 0 || axis >= static_cast<int64_t>(xs.size()))
      return Status::error(where() + ": axis out of range");
    const DType t = in(0)->dtype;
    if (t != DType::kFloat32 && t != DType::kInt64 && t != DType::kInt32)
      return Status::error(where() + ": '" + in(0)->name + "' has dtype " + ir::dtype_name(t) +
                           ", CumSum supports float32, int64 and int32 at run time");
    KILN_ASSIGN_OR_RETURN(auto px, in_ptr(0));
    KILN_ASSIGN_OR_RETURN(auto po, out_ptr());
    b_ << "  kk::cumsum(" << px << ", " << po << ", " << product_expr(xs, 0, axis) << ", "
       << dim_expr(xs[axis]) << ", " << product_expr(xs, axis + 1, xs.size()) << ", "
       << (n_->attr_int("exclusive", 0) ? "true" : "false") << ", "
       << (n_->attr_int("reverse", 0) ? "true" : "false") << ", be);\n";
    return Status::ok();
  }

  Status emit_slice() {
    const Shape& xs = shape(in(0));
    const size_t rank = xs.size();
    KILN_ASSIGN_OR_RETURN(auto starts, operand(1, "starts"));
    KILN_ASSIGN_OR_RETURN(auto ends, operand(2, "ends"));
    std::vector<Dim> axes, steps;
    if (in(3) || n_->has_attr("axes")) {
      KILN_ASSIGN_OR_RETURN(auto a, operand(3, "axes"));
      axes = a;
    } else {
      for (size_t i = 0; i < starts.size(); ++i) axes.push_back(Dim(static_cast<int64_t>(i)));
    }
    if (in(4)) {
      KILN_ASSIGN_OR_RETURN(auto st, operand(4, "steps"));
      steps = st;
    } else {
      steps.assign(starts.size(), Dim(1));
    }
    if (ends.size() != starts.size() || axes.size() != starts.size() ||
        steps.size() != starts.size())
      return Status::error(where() + ": starts/ends/axes/steps have different lengths");
    KILN_ASSIGN_OR_RETURN(auto px, in_ptr(0));
    KILN_ASSIGN_OR_RETURN(auto po, out_ptr());
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
    KILN_ASSIGN_OR_RETURN(auto t, ctype(out_value()->dtype, where()));
    std::string ptrs, chunks;
    int count = 0;
    for (size_t i = 0; i < n_->inputs.size(); ++i) {
      if (!in(i)) continue;
      KILN_ASSIGN_OR_RETURN(auto p, in_ptr(i));
      ptrs += (count ? ", " : "") + p;
      chunks += (count ? ", " : "") + product_expr(shape(in(i)), axis, os.size());
      ++count;
    }
    KILN_ASSIGN_OR_RETURN(auto po, out_ptr());
    b_ << "  const " << t << "* ins[] = {" << ptrs << "};\n";
    b_ << "  const int64_t chunk[] = {" << chunks << "};\n";
    b_ << "  kk::concat(ins, chunk, " << count << ", " << product_expr(os, 0, axis) << ", " << po
       << ", be);\n";
    return Status::ok();
  }

  Status emit_expand() {
    KILN_ASSIGN_OR_RETURN(auto px, in_ptr(0));
    KILN_ASSIGN_OR_RETURN(auto po, out_ptr());
    const size_t xr = dims("xd", shape(in(0))), orank = dims("od", shape(out_value()));
    b_ << "  kk::expand(" << px << ", xd, " << xr << ", " << po << ", od, " << orank << ", be);\n";
    return Status::ok();
  }

  Result<std::string> scalar_operand(size_t i) {
    const ir::Value* v = in(i);
    if (v && v->constant && v->constant->numel() == 1 &&
        (v->dtype == DType::kFloat32 || v->dtype == DType::kFloat64))
      return float_literal(v->constant->float_at(0));
    KILN_ASSIGN_OR_RETURN(auto d, operand(i, "scalar input"));
    if (d.size() != 1)
      return Status::error(where() + ": input " + std::to_string(i) + " must be a scalar");
    return dim_expr(d[0]);
  }

  Status emit_range() {
    const ir::Value* o = out_value();
    KILN_ASSIGN_OR_RETURN(auto t, ctype(o->dtype, where()));
    KILN_ASSIGN_OR_RETURN(auto start, scalar_operand(0));
    KILN_ASSIGN_OR_RETURN(auto delta, scalar_operand(2));
    KILN_ASSIGN_OR_RETURN(auto po, out_ptr());
    if (shape(o).size() != 1) return Status::error(where() + ": output must be 1-D");
    b_ << "  kk::range<" << t << ">(" << start << ", " << delta << ", " << po << ", "
       << dim_expr(shape(o)[0]) << ");\n";
    return Status::ok();
  }

  Status emit_constant_of_shape() {
    const ir::Value* o = out_value();
    KILN_ASSIGN_OR_RETURN(auto t, ctype(o->dtype, where()));
    std::string value = o->dtype == DType::kFloat32 ? float_literal(0) : "0";
    if (const ir::Tensor* v = n_->attr_tensor("value"); v && v->numel() >= 1)
      value =
          o->dtype == DType::kFloat32 ? float_literal(v->float_at(0)) : int_literal(v->int_at(0));
    KILN_ASSIGN_OR_RETURN(auto po, out_ptr());
    dims("od", shape(o));
    b_ << "  kk::fill<" << t << ">(" << po << ", kk::product(od, 0, " << shape(o).size() << "), "
       << value << ");\n";
    return Status::ok();
  }

  Status emit_symbolic_tensor() {
    const ir::Value* o = out_value();
    if (!o->sym_value) return Status::error(where() + ": output has no sym_value");
    KILN_ASSIGN_OR_RETURN(auto t, ctype(o->dtype, where()));
    KILN_ASSIGN_OR_RETURN(auto po, out_ptr());
    b_ << "  " << t << "* o = " << po << ";\n";
    for (size_t i = 0; i < o->sym_value->size(); ++i)
      b_ << "  o[" << i << "] = static_cast<" << t << ">(" << dim_expr((*o->sym_value)[i])
         << ");\n";
    return Status::ok();
  }

  const ir::Graph& g_;
  const LoweredNode& ln_;
  size_t index_;
  const ir::Node* n_;
  const std::vector<tune::TunedRow>* tuned_;
  std::ostringstream* statics_ = nullptr;
  std::ostringstream b_;
  bool returns_ = false;  // the body ends with its own return (kernels that can fail)
};

}  // namespace

Status emit_node(const ir::Graph& g, const LoweredNode& node, size_t index,
                 std::ostringstream& statics, std::ostringstream& out,
                 const std::vector<tune::TunedRow>* tuned) {
  return NodeEmitter(g, node, index, tuned).emit(statics, out);
}

bool has_emitter(ir::Op op) {
  return NodeEmitter::hook(op) != nullptr;
}

}  // namespace kiln::codegen
