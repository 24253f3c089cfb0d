// The op registry: every op kiln's IR knows, ONNX's and kiln's own fused ones, described once.
//
// An op is an `Op` (an enum, so a `switch` over it or over its `OpKind` is checked by the compiler)
// with one `OpInfo` entry in ops.cpp: its name, kind, the ONNX opsets the importer accepts it
// from, which inputs are shape operands, whether the runtime can execute it, and for elementwise
// ops the scalar reference and the kernel functor. The importer, shape inference, the evaluator,
// the pipeline's contract, lowering and codegen all read this table; each consumer dispatches on
// the kind (uniform kinds) or the op with a `switch`, and `tests/compiler/ops_registry_test.cpp`
// fails when an entry and a consumer disagree.
//
// Adding an op: an `Op` below, an `OpInfo` in ops.cpp; for a plain unary / binary / compare op
// that is all the compiler needs, plus the functor in kernels/kiln/kernels/elementwise.h and a
// case in tests/ops/cases.py.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace kiln::ir {

enum class Op : uint16_t {
  // unary
  kSqrt,
  kErf,
  kTanh,
  kExp,
  kNeg,
  kRelu,
  kSigmoid,
  kNot,
  kAbs,
  kLog,
  kSin,
  kCos,
  kSoftplus,
  kSign,
  kFloor,
  kCeil,
  kGelu,
  kGeluTanh,
  // binary
  kAdd,
  kSub,
  kMul,
  kDiv,
  kPow,
  kMod,
  kFMod,
  kMin,
  kMax,
  kAnd,
  kOr,
  kXor,
  // compare
  kEqual,
  kLess,
  kGreater,
  kGreaterOrEqual,
  kLessOrEqual,
  // predicates
  kIsNaN,
  kIsInf,
  // pass-through and views
  kIdentity,
  kDropout,
  kReshape,
  kFlatten,
  kSqueeze,
  kUnsqueeze,
  // data movement and selection
  kGather,
  kSlice,
  kConcat,
  kExpand,
  kTranspose,
  kSplit,
  kWhere,
  kCast,
  kClip,
  kGatherElements,
  kGatherND,
  kPad,
  kTile,
  kTrilu,
  kScatterND,
  // shape sources
  kConstant,
  kShape,
  kConstantOfShape,
  kRange,
  kSymbolicTensor,
  // reductions and normalisation
  kReduceMean,
  kReduceSum,
  kReduceMax,
  kReduceMin,
  kReduceProd,
  kReduceL2,
  kReduceSumSquare,
  kCumSum,
  kSoftmax,
  kLayerNormalization,
  // linear algebra
  kMatMul,
  kGemm,
  kEinsum,
  // kiln's fused ops (schemas below)
  kDense,
  kAttention,
  kEmbeddingLayerNorm,
  kCount
};
constexpr int kOpCount = static_cast<int>(Op::kCount);

enum class OpKind : uint8_t {
  kUnary,          // y = f(x) elementwise, same shape and dtype
  kBinary,         // z = f(x, y) elementwise with numpy broadcasting, x's dtype
  kCompare,        // z = f(x, y) elementwise with broadcasting, bool
  kPredicate,      // y = f(x) elementwise, bool (IsNaN, IsInf)
  kPassThrough,    // y = x, removed by simplify (Identity, Dropout)
  kView,           // y shares x's storage with another shape (Reshape, Flatten, (Un)Squeeze)
  kMovement,       // data moved or selected without arithmetic (Gather, Slice, Concat, ...)
  kShapeSource,    // computed from shapes and attributes only (Shape, Range, ...)
  kReduce,         // reduction over axes
  kScan,           // running reduction along an axis, same shape (CumSum)
  kNormalization,  // Softmax, LayerNormalization
  kLinear,         // MatMul, Gemm
  kFused,          // kiln's own ops, made by passes, never imported
};

// Input dtypes an elementwise op accepts (a bit set).
enum DTypeClass : uint8_t { kFloatTypes = 1, kIntTypes = 2, kBoolType = 4 };

// Scalar reference of an elementwise op on doubles / int64; nullptr where the op has no such form.
// The integer forms return nullopt where the op is undefined (integer division by zero).
struct Scalar {
  double (*f1)(double) = nullptr;
  std::optional<int64_t> (*i1)(int64_t) = nullptr;
  double (*f2)(double, double) = nullptr;
  std::optional<int64_t> (*i2)(int64_t, int64_t) = nullptr;
};

struct OpInfo {
  Op op;
  const char* name;  // ONNX op type, or kiln's name for its own ops
  OpKind kind;
  int min_opset = 0;  // first ONNX opset (default domain) the importer accepts; 0: kiln's own
  uint32_t shape_operands =
      0;                 // bit i: input i gives a shape / axes / sizes (never read at run time)
  bool runtime = false;  // codegen can emit it (else simplify / folding must remove it)
  uint8_t dtypes = 0;    // elementwise: DTypeClass bits accepted for the inputs
  const char* functor = nullptr;  // elementwise: kernels/elementwise.h `op::<functor>`
  Scalar scalar;                  // elementwise: reference semantics
};

const OpInfo& op_info(Op op);
inline const char* op_name(Op op) {
  return op_info(op).name;
}
inline OpKind op_kind(Op op) {
  return op_info(op).kind;
}
const char* op_kind_name(OpKind kind);
// The op of an ONNX / kiln op name, or nullopt.
std::optional<Op> op_from_name(const std::string& name);
inline bool is_shape_operand(Op op, size_t input) {
  return input < 32 && (op_info(op).shape_operands >> input & 1u);
}
// Every op, in enum order.
std::vector<Op> all_ops();

// Named inputs of kiln's fused ops: passes build them and codegen reads them by these names.
// Dense: y = gelu?(x' W + bias) + residual, then optionally LayerNorm(y) * ln_scale + ln_bias,
// where x'[., k] = x[., k] * act_smooth[k] with act_smooth [K] (only INT8 Dense get it: W was
// divided by it row by row, compiler/quantize/smooth.h), else x' = x.
// Attributes: `gelu` (0/1), `ln_epsilon` (with ln_scale).
struct DenseIn {
  enum : size_t { kX, kWeight, kBias, kResidual, kLnScale, kLnBias, kActSmooth, kCount };
};
// Attention(q, k, v, mask?) {num_heads, scale, qkv_packed, empty_rows_zero}; packed: q holds
// [.., 3 * hidden] and k, v are omitted. empty_rows_zero: a query row whose keys are all masked
// with -inf gives 0 (SDPA's Where(IsNaN(p), 0, p)), else NaN as Softmax does.
struct AttentionIn {
  enum : size_t { kQuery, kKey, kValue, kMask, kCount };
};
// EmbeddingLayerNorm(scale, bias?, table_0, ids_0, table_1, ids_1?, ...) {epsilon, row_first,
// row_step}: term t reads table `kFirstTable + 2t` at the rows given by ids `kFirstTable + 2t + 1`
// (or, without ids, row_first[t] + row_step[t] * position).
struct EmbeddingLayerNormIn {
  enum : size_t { kScale, kBias, kFirstTable };
  static size_t table(size_t t) { return kFirstTable + 2 * t; }
  static size_t ids(size_t t) { return kFirstTable + 2 * t + 1; }
};

}  // namespace kiln::ir
