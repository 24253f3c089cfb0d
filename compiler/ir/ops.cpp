// The op table; see ops.h.
#include "compiler/ir/ops.h"

#include <algorithm>
#include <cmath>
#include <unordered_map>

namespace kiln::ir {
namespace {

using I = std::optional<int64_t>;
constexpr uint8_t kF = kFloatTypes, kI = kIntTypes, kB = kBoolType;
constexpr uint32_t operands(std::initializer_list<int> inputs) {
  uint32_t m = 0;
  for (int i : inputs) m |= 1u << i;
  return m;
}

Scalar unary(double (*f)(double), I (*i)(int64_t) = nullptr) {
  Scalar s;
  s.f1 = f;
  s.i1 = i;
  return s;
}
Scalar binary(double (*f)(double, double), I (*i)(int64_t, int64_t) = nullptr) {
  Scalar s;
  s.f2 = f;
  s.i2 = i;
  return s;
}

// Entries of non-elementwise ops leave dtypes / functor / scalar at their defaults.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
// clang-format off
const OpInfo kOps[] = {
  // op                    name                  kind                  opset shape operands          runtime  dtypes      functor
  {Op::kSqrt,              "Sqrt",               OpKind::kUnary,       6,  0,                        true,  kF,          "Sqrt",
      unary([](double x) { return std::sqrt(x); })},
  {Op::kErf,               "Erf",                OpKind::kUnary,       9,  0,                        true,  kF,          "Erf",
      unary([](double x) { return std::erf(x); })},
  {Op::kTanh,              "Tanh",               OpKind::kUnary,       6,  0,                        true,  kF,          "Tanh",
      unary([](double x) { return std::tanh(x); })},
  {Op::kExp,               "Exp",                OpKind::kUnary,       6,  0,                        true,  kF,          "Exp",
      unary([](double x) { return std::exp(x); })},
  {Op::kNeg,               "Neg",                OpKind::kUnary,       6,  0,                        true,  kF | kI,     "Neg",
      unary([](double x) { return -x; }, [](int64_t x) -> I { return -x; })},
  {Op::kRelu,              "Relu",               OpKind::kUnary,       6,  0,                        true,  kF | kI,     "Relu",
      unary([](double x) { return x > 0 ? x : 0.0; }, [](int64_t x) -> I { return x > 0 ? x : 0; })},
  {Op::kSigmoid,           "Sigmoid",            OpKind::kUnary,       6,  0,                        true,  kF,          "Sigmoid",
      unary([](double x) { return 1.0 / (1.0 + std::exp(-x)); })},
  {Op::kNot,               "Not",                OpKind::kUnary,       1,  0,                        true,  kB,          "Not",
      unary(nullptr, [](int64_t x) -> I { return x == 0; })},
  {Op::kAbs,               "Abs",                OpKind::kUnary,       6,  0,                        true,  kF | kI,     "Abs",
      unary([](double x) { return std::fabs(x); }, [](int64_t x) -> I { return x < 0 ? -x : x; })},
  {Op::kLog,               "Log",                OpKind::kUnary,       6,  0,                        true,  kF,          "Log",
      unary([](double x) { return std::log(x); })},
  {Op::kSin,               "Sin",                OpKind::kUnary,       7,  0,                        true,  kF,          "Sin",
      unary([](double x) { return std::sin(x); })},
  {Op::kCos,               "Cos",                OpKind::kUnary,       7,  0,                        true,  kF,          "Cos",
      unary([](double x) { return std::cos(x); })},
  {Op::kSoftplus,          "Softplus",           OpKind::kUnary,       1,  0,                        true,  kF,          "Softplus",
      unary([](double x) { return x > 30 ? x : std::log1p(std::exp(x)); })},
  {Op::kSign,              "Sign",               OpKind::kUnary,       9,  0,                        true,  kF | kI,     "Sign",
      unary([](double x) -> double { return (x > 0) - (x < 0); },
            [](int64_t x) -> I { return (x > 0) - (x < 0); })},
  {Op::kFloor,             "Floor",              OpKind::kUnary,       6,  0,                        true,  kF,          "Floor",
      unary([](double x) { return std::floor(x); })},
  {Op::kCeil,              "Ceil",               OpKind::kUnary,       6,  0,                        true,  kF,          "Ceil",
      unary([](double x) { return std::ceil(x); })},
  {Op::kGelu,              "Gelu",               OpKind::kUnary,       20, 0,                        true,  kF,          "Gelu",
      unary([](double x) { return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0))); })},
  // Gelu(approximate="tanh"): the importer turns that attribute into this op.
  {Op::kGeluTanh,          "GeluTanh",           OpKind::kUnary,       0,  0,                        true,  kF,          "GeluTanh",
      unary([](double x) {
        return 0.5 * x * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
      })},

  {Op::kAdd,               "Add",                OpKind::kBinary,      7,  0,                        true,  kF | kI,     "Add",
      binary([](double x, double y) { return x + y; }, [](int64_t x, int64_t y) -> I { return x + y; })},
  {Op::kSub,               "Sub",                OpKind::kBinary,      7,  0,                        true,  kF | kI,     "Sub",
      binary([](double x, double y) { return x - y; }, [](int64_t x, int64_t y) -> I { return x - y; })},
  {Op::kMul,               "Mul",                OpKind::kBinary,      7,  0,                        true,  kF | kI,     "Mul",
      binary([](double x, double y) { return x * y; }, [](int64_t x, int64_t y) -> I { return x * y; })},
  {Op::kDiv,               "Div",                OpKind::kBinary,      7,  0,                        true,  kF | kI,     "Div",
      binary([](double x, double y) { return x / y; },
             [](int64_t x, int64_t y) -> I { return y == 0 ? I() : I(x / y); })},
  // Pow's exponent may have another dtype; the result has the base's.
  {Op::kPow,               "Pow",                OpKind::kBinary,      7,  0,                        true,  kF,          "Pow",
      binary([](double x, double y) { return std::pow(x, y); })},
  // Mod(fmod=0): integers, the result takes the divisor's sign (Python's %). The importer turns
  // Mod(fmod=1) into FMod: C's fmod / %, the dividend's sign. Division by zero gives 0 at run time.
  {Op::kMod,               "Mod",                OpKind::kBinary,      10, 0,                        true,  kI,          "Mod",
      binary(nullptr, [](int64_t x, int64_t y) -> I {
        if (y == 0) return I();
        const int64_t r = y == -1 ? 0 : x % y;
        return r != 0 && (r < 0) != (y < 0) ? r + y : r;
      })},
  {Op::kFMod,              "FMod",               OpKind::kBinary,      0,  0,                        true,  kF | kI,     "FMod",
      binary([](double x, double y) { return std::fmod(x, y); },
             [](int64_t x, int64_t y) -> I { return y == 0 ? I() : I(y == -1 ? 0 : x % y); })},
  // Min / Max with n > 2 inputs are imported as a chain of two-input nodes.
  {Op::kMin,               "Min",                OpKind::kBinary,      8,  0,                        true,  kF | kI,     "Min",
      binary([](double x, double y) { return std::isnan(x) || x < y ? x : y; },
             [](int64_t x, int64_t y) -> I { return std::min(x, y); })},
  {Op::kMax,               "Max",                OpKind::kBinary,      8,  0,                        true,  kF | kI,     "Max",
      binary([](double x, double y) { return std::isnan(x) || x > y ? x : y; },
             [](int64_t x, int64_t y) -> I { return std::max(x, y); })},
  {Op::kAnd,               "And",                OpKind::kBinary,      7,  0,                        true,  kB,          "And",
      binary(nullptr, [](int64_t x, int64_t y) -> I { return x && y; })},
  {Op::kOr,                "Or",                 OpKind::kBinary,      7,  0,                        true,  kB,          "Or",
      binary(nullptr, [](int64_t x, int64_t y) -> I { return x || y; })},
  {Op::kXor,               "Xor",                OpKind::kBinary,      7,  0,                        true,  kB,          "Xor",
      binary(nullptr, [](int64_t x, int64_t y) -> I { return (x != 0) != (y != 0); })},

  {Op::kEqual,             "Equal",              OpKind::kCompare,     7,  0,                        true,  kF | kI | kB, "Equal",
      binary([](double x, double y) -> double { return x == y; })},
  {Op::kLess,              "Less",               OpKind::kCompare,     7,  0,                        true,  kF | kI,     "Less",
      binary([](double x, double y) -> double { return x < y; })},
  {Op::kGreater,           "Greater",            OpKind::kCompare,     7,  0,                        true,  kF | kI,     "Greater",
      binary([](double x, double y) -> double { return x > y; })},
  {Op::kGreaterOrEqual,    "GreaterOrEqual",     OpKind::kCompare,     12, 0,                        true,  kF | kI,     "GreaterOrEqual",
      binary([](double x, double y) -> double { return x >= y; })},
  {Op::kLessOrEqual,       "LessOrEqual",        OpKind::kCompare,     12, 0,                        true,  kF | kI,     "LessOrEqual",
      binary([](double x, double y) -> double { return x <= y; })},

  {Op::kIsNaN,             "IsNaN",              OpKind::kPredicate,   9,  0,                        true,  kF,          "IsNaN",
      unary([](double x) -> double { return std::isnan(x); })},
  // detect_positive / detect_negative other than 1 are rejected by the importer.
  {Op::kIsInf,             "IsInf",              OpKind::kPredicate,   10, 0,                        true,  kF,          "IsInf",
      unary([](double x) -> double { return std::isinf(x); })},

  {Op::kIdentity,          "Identity",           OpKind::kPassThrough, 1,  0,                        false},
  {Op::kDropout,           "Dropout",            OpKind::kPassThrough, 1,  0,                        false},
  {Op::kReshape,           "Reshape",            OpKind::kView,        5,  operands({1}),            true},
  {Op::kFlatten,           "Flatten",            OpKind::kView,        1,  0,                        true},
  {Op::kSqueeze,           "Squeeze",            OpKind::kView,        1,  operands({1}),            true},
  {Op::kUnsqueeze,         "Unsqueeze",          OpKind::kView,        1,  operands({1}),            true},

  {Op::kGather,            "Gather",             OpKind::kMovement,    1,  0,                        true},
  {Op::kSlice,             "Slice",              OpKind::kMovement,    1,  operands({1, 2, 3, 4}),   true},
  {Op::kConcat,            "Concat",             OpKind::kMovement,    4,  0,                        true},
  {Op::kExpand,            "Expand",             OpKind::kMovement,    8,  operands({1}),            true},
  {Op::kTranspose,         "Transpose",          OpKind::kMovement,    1,  0,                        true},
  // Split becomes Slices (simplify).
  {Op::kSplit,             "Split",              OpKind::kMovement,    2,  operands({1}),            false},
  {Op::kWhere,             "Where",              OpKind::kMovement,    9,  0,                        true},
  {Op::kCast,              "Cast",               OpKind::kMovement,    6,  0,                        true},
  // Clip(x, min?, max?) (opset 11 inputs; the importer turns opset-6 attributes into inputs).
  {Op::kClip,              "Clip",               OpKind::kMovement,    6,  0,                        true},
  {Op::kGatherElements,    "GatherElements",     OpKind::kMovement,    11, 0,                        true},
  {Op::kGatherND,          "GatherND",           OpKind::kMovement,    11, 0,                        true},
  // Pad(x, pads, constant_value?, axes?) (opset 11 inputs; the importer turns opset-2 attributes
  // into inputs); constant_value must be a constant.
  {Op::kPad,               "Pad",                OpKind::kMovement,    2,  operands({1, 3}),         true},
  {Op::kTile,              "Tile",               OpKind::kMovement,    6,  operands({1}),            true},
  // Trilu(x, k?) {upper}: k is a scalar read at run time (a constant, or computed from seq).
  {Op::kTrilu,             "Trilu",              OpKind::kMovement,    14, 0,                        true},
  // ScatterND(data, indices, updates) {reduction: none, add, mul, max, min}.
  {Op::kScatterND,         "ScatterND",          OpKind::kMovement,    11, 0,                        true},

  {Op::kConstant,          "Constant",           OpKind::kShapeSource, 1,  0,                        false},
  {Op::kShape,             "Shape",              OpKind::kShapeSource, 1,  0,                        false},
  {Op::kConstantOfShape,   "ConstantOfShape",    OpKind::kShapeSource, 9,  operands({0}),            true},
  {Op::kRange,             "Range",              OpKind::kShapeSource, 11, operands({0, 1, 2}),      true},
  // A small int tensor whose elements are symbolic dims (fold_constants makes it).
  {Op::kSymbolicTensor,    "SymbolicTensor",     OpKind::kShapeSource, 0,  0,                        true},

  // Reductions: axes as an attribute, or (ReduceSum from opset 13, the others from 18) an input
  // the importer turns into the attribute.
  {Op::kReduceMean,        "ReduceMean",         OpKind::kReduce,      1,  operands({1}),            true},
  {Op::kReduceSum,         "ReduceSum",          OpKind::kReduce,      1,  operands({1}),            true},
  {Op::kReduceMax,         "ReduceMax",          OpKind::kReduce,      1,  operands({1}),            true},
  {Op::kReduceMin,         "ReduceMin",          OpKind::kReduce,      1,  operands({1}),            true},
  {Op::kReduceProd,        "ReduceProd",         OpKind::kReduce,      1,  operands({1}),            true},
  {Op::kReduceL2,          "ReduceL2",           OpKind::kReduce,      1,  operands({1}),            true},
  {Op::kReduceSumSquare,   "ReduceSumSquare",    OpKind::kReduce,      1,  operands({1}),            true},
  {Op::kCumSum,            "CumSum",             OpKind::kScan,        11, operands({1}),            true},
  {Op::kSoftmax,           "Softmax",            OpKind::kNormalization, 1, 0,                       true},
  {Op::kLayerNormalization, "LayerNormalization", OpKind::kNormalization, 17, 0,                     true},

  {Op::kMatMul,            "MatMul",             OpKind::kLinear,      1,  0,                        true},
  {Op::kGemm,              "Gemm",               OpKind::kLinear,      7,  0,                        true},
  // Einsum: the importer lowers the equations exporters write into Transpose / MatMul / Mul /
  // ReduceSum (frontend/onnx/einsum.cpp); what stays must fold.
  {Op::kEinsum,            "Einsum",             OpKind::kLinear,      12, 0,                        false},

  {Op::kDense,             "Dense",              OpKind::kFused,       0,  0,                        true},
  {Op::kAttention,         "Attention",          OpKind::kFused,       0,  0,                        true},
  {Op::kEmbeddingLayerNorm, "EmbeddingLayerNorm", OpKind::kFused,      0,  0,                        true},
};
// clang-format on
#pragma GCC diagnostic pop
static_assert(sizeof(kOps) / sizeof(kOps[0]) == kOpCount, "one OpInfo per Op, in enum order");

}  // namespace

const OpInfo& op_info(Op op) {
  return kOps[static_cast<size_t>(op)];
}

const char* op_kind_name(OpKind kind) {
  switch (kind) {
    case OpKind::kUnary:
      return "unary";
    case OpKind::kBinary:
      return "binary";
    case OpKind::kCompare:
      return "compare";
    case OpKind::kPredicate:
      return "predicate";
    case OpKind::kPassThrough:
      return "pass-through";
    case OpKind::kView:
      return "view";
    case OpKind::kMovement:
      return "movement";
    case OpKind::kShapeSource:
      return "shape-source";
    case OpKind::kReduce:
      return "reduce";
    case OpKind::kScan:
      return "scan";
    case OpKind::kNormalization:
      return "normalization";
    case OpKind::kLinear:
      return "linear";
    case OpKind::kFused:
      return "fused";
  }
  return "?";
}

std::optional<Op> op_from_name(const std::string& name) {
  static const std::unordered_map<std::string, Op> by_name = [] {
    std::unordered_map<std::string, Op> m;
    for (const OpInfo& i : kOps) m.emplace(i.name, i.op);
    return m;
  }();
  auto it = by_name.find(name);
  if (it == by_name.end()) return std::nullopt;
  return it->second;
}

std::vector<Op> all_ops() {
  std::vector<Op> r;
  for (const OpInfo& i : kOps) r.push_back(i.op);
  return r;
}

}  // namespace kiln::ir
