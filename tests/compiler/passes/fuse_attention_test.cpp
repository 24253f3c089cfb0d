// fuse_attention: the exporters' self-attention (every spelling of K^T, scale and mask order,
// SDPA's split scale and NaN guard, several masks, heads that are not a plain head split)
// becomes one Attention that computes the same values; near misses are left alone.
#include <gtest/gtest.h>

#include <cfloat>
#include <cmath>
#include <random>

#include "graph_test_util.h"

namespace kiln {
namespace {

using test::op;

// [B, 1, 1, S] finfo.min padding, [B, 1, S, S] finfo.min causal, [B, 1, S, S] -inf with a
// query row whose keys are all masked.
enum class Mask { kNone, kRow, kSquare, kSquareInf };
// K^T: Transpose(0,2,3,1) | Transpose(0,2,1,3) then (0,1,3,2) | the dynamo exporter's
// Reshape([B*nh, S, hd]) -> Transpose(0,2,1) -> Reshape([B, nh, hd, S]) of the (0,2,1,3) heads.
enum class KForm { kOneTranspose, kTwoTransposes, kDynamo };

struct Variant {
  KForm k = KForm::kOneTranspose;
  bool div = true;          // Div by sqrt(hd), else Mul by 1/sqrt(hd)
  bool scale_first = true;  // scale, then mask Add (else mask Add, then scale)
  Mask mask = Mask::kRow;
  bool mask_left = false;  // Add(mask, scores)
  bool sdpa = false;       // SDPA: Q and K^T each times hd^-1/4, Where(IsNaN(p), 0, p) after
  bool bias = false;       // a second additive term: a [1, nh, S, S] position bias
  bool rotary = false;     // Q and K heads go through an op of their own (as rotary does)
};

constexpr int64_t kHeads = 2, kHd = 3, kHidden = kHeads * kHd, kBatch = 2, kSeq = 5;

struct AttnGraph {
  ir::Graph g;
  ir::Value* probs = nullptr;
  explicit AttnGraph(const Variant& v) {
    g.symbols = {{"batch", 0}, {"seq", 16}};
    const ir::Shape bsh = {ir::Dim::symbol(0), ir::Dim::symbol(1), ir::Dim(kHidden)};
    ir::Value* q = test::add_input(g, "q", ir::DType::kFloat32, bsh);
    ir::Value* k = test::add_input(g, "k", ir::DType::kFloat32, bsh);
    ir::Value* val = test::add_input(g, "v", ir::DType::kFloat32, bsh);
    ir::Value* mask = nullptr;
    if (v.mask == Mask::kRow)
      mask = test::add_input(g, "mask", ir::DType::kFloat32,
                             {ir::Dim::symbol(0), ir::Dim(1), ir::Dim(1), ir::Dim::symbol(1)});
    if (v.mask == Mask::kSquare || v.mask == Mask::kSquareInf)
      mask =
          test::add_input(g, "mask", ir::DType::kFloat32,
                          {ir::Dim::symbol(0), ir::Dim(1), ir::Dim::symbol(1), ir::Dim::symbol(1)});
    auto split = [&](ir::Value* x) {
      return op(g, "Reshape", {x, test::ci(g, {0, 0, kHeads, kHd})});
    };
    auto perm = [](std::vector<int64_t> p) {
      return std::map<std::string, ir::Attribute>{{"perm", p}};
    };
    ir::Value* bias_in =
        v.bias
            ? test::add_input(g, "bias", ir::DType::kFloat32,
                              {ir::Dim(1), ir::Dim(kHeads), ir::Dim::symbol(1), ir::Dim::symbol(1)})
            : nullptr;
    auto heads = [&](ir::Value* x) {
      ir::Value* h = op(g, "Transpose", {split(x)}, perm({0, 2, 1, 3}));
      return v.rotary ? op(g, "Neg", {h}) : h;
    };
    auto sym = [&](std::vector<ir::Dim> dims) {  // a symbolic shape operand
      ir::Value* o = g.add_value(g.unique_name("shape"), ir::DType::kInt64);
      o->shape = ir::Shape{ir::Dim(static_cast<int64_t>(dims.size()))};
      o->sym_value = dims;
      g.add_node(ir::Op::kSymbolicTensor, g.unique_name("Shape"), {}, {o});
      return o;
    };
    const ir::Dim b = ir::Dim::symbol(0), sq = ir::Dim::symbol(1);
    ir::Value* qh = heads(q);
    ir::Value* kt = nullptr;
    if (v.k == KForm::kOneTranspose && !v.rotary)
      kt = op(g, "Transpose", {split(k)}, perm({0, 2, 3, 1}));
    else if (v.k == KForm::kDynamo)
      kt = op(
          g, "Reshape",
          {op(g, "Transpose", {op(g, "Reshape", {heads(k), sym({-1, sq, kHd})})}, perm({0, 2, 1})),
           sym({b, kHeads, kHd, sq})});
    else
      kt = op(g, "Transpose", {heads(k)}, perm({0, 1, 3, 2}));
    ir::Value* vh = op(g, "Transpose", {split(val)}, perm({0, 2, 1, 3}));
    if (v.sdpa) {
      const float c = std::pow(float(kHd), -0.25f);
      qh = op(g, "Mul", {qh, test::cf(g, c)});
      kt = op(g, "Mul", {kt, test::cf(g, c)});
    }
    ir::Value* s = op(g, "MatMul", {qh, kt});
    auto scale = [&](ir::Value* x) {
      if (v.sdpa) return x;
      return v.div ? op(g, "Div", {x, test::cf(g, std::sqrt(float(kHd)))})
                   : op(g, "Mul", {x, test::cf(g, 1.0f / std::sqrt(float(kHd)))});
    };
    auto add_mask = [&](ir::Value* x) {
      if (bias_in) x = op(g, "Add", {x, bias_in});
      if (!mask) return x;
      return v.mask_left ? op(g, "Add", {mask, x}) : op(g, "Add", {x, mask});
    };
    s = v.scale_first ? add_mask(scale(s)) : scale(add_mask(s));
    probs = op(g, "Softmax", {s}, {{"axis", int64_t{-1}}}, "layer/attention/Softmax");
    ir::Value* p = probs;
    if (v.sdpa) p = op(g, "Where", {op(g, "IsNaN", {probs}), test::cf(g, 0.0f), probs});
    ir::Value* ctx = op(g, "Transpose", {op(g, "MatMul", {p, vh})}, perm({0, 2, 1, 3}));
    ir::Value* y = op(g, "Reshape", {ctx, test::ci(g, {0, 0, kHidden})});
    y->name = "out";
    g.outputs = {y};
  }
};

std::map<std::string, ir::Tensor> inputs(const Variant& v) {
  std::mt19937 rng(5);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  auto random = [&](std::vector<int64_t> dims) {
    int64_t n = 1;
    for (int64_t d : dims) n *= d;
    std::vector<float> x(n);
    for (float& e : x) e = dist(rng);
    return test::f32(dims, x);
  };
  std::map<std::string, ir::Tensor> in;
  for (const char* n : {"q", "k", "v"}) in[n] = random({kBatch, kSeq, kHidden});
  if (v.bias) in["bias"] = random({1, kHeads, kSeq, kSeq});
  // Batch 1: keys 3, 4 padded with finfo.min; with the square mask query row 0 is fully padded.
  if (v.mask == Mask::kRow) {
    std::vector<float> m(kBatch * kSeq, 0.0f);
    m[kSeq + 3] = m[kSeq + 4] = -FLT_MAX;
    in["mask"] = test::f32({kBatch, 1, 1, kSeq}, m);
  } else if (v.mask == Mask::kSquare) {
    std::vector<float> m(kBatch * kSeq * kSeq, 0.0f);
    for (int64_t i = 0; i < kSeq; ++i)
      for (int64_t j = 0; j < kSeq; ++j)
        if (j > i || i == 0) m[(kSeq + i) * kSeq + j] = -FLT_MAX;
    in["mask"] = test::f32({kBatch, 1, kSeq, kSeq}, m);
  } else if (v.mask == Mask::kSquareInf) {  // batch 1: query row 2 sees no key, row 3 sees 0..3
    std::vector<float> m(kBatch * kSeq * kSeq, 0.0f);
    for (int64_t j = 0; j < kSeq; ++j) {
      m[(kSeq + 2) * kSeq + j] = -INFINITY;
      if (j > 3) m[(kSeq + 3) * kSeq + j] = -INFINITY;
    }
    in["mask"] = test::f32({kBatch, 1, kSeq, kSeq}, m);
  }
  return in;
}

std::vector<float> run(ir::Graph& g, const Variant& v) {
  auto r = test::run_graph(g, inputs(v));
  EXPECT_TRUE(r.is_ok()) << r.status().message();
  if (!r.is_ok()) return {};
  const ir::Tensor& t = r.value()["out"];
  return std::vector<float>(t.data<float>(), t.data<float>() + t.numel());
}

class FuseAttention : public ::testing::TestWithParam<Variant> {};

TEST_P(FuseAttention, FusesAndPreservesValues) {
  const Variant v = GetParam();
  AttnGraph ref(v);
  ASSERT_TRUE(ir::infer_shapes(ref.g).is_ok());
  const std::vector<float> want = run(ref.g, v);

  AttnGraph t(v);
  ASSERT_TRUE(ir::infer_shapes(t.g).is_ok());
  ASSERT_TRUE(passes::fuse_attention(t.g).is_ok());
  ASSERT_TRUE(passes::eliminate_dead_code(t.g).is_ok());
  ASSERT_TRUE(ir::infer_shapes(t.g).is_ok()) << ir::print_graph(t.g);
  const std::string p = ir::print_graph(t.g);
  // Left beside the Attention: the scale of masks added before it, the sum of two masks, and the
  // rotary heads of Q and K (Reshape, Transpose, Neg) with their copy back to rows (Transpose,
  // Reshape).
  const int masks = (v.mask != Mask::kNone) + v.bias;
  const int mask_muls = v.scale_first || v.sdpa ? 0 : masks;
  const int extra = mask_muls + (masks > 1) + (v.rotary ? 10 : 0);
  ASSERT_EQ(t.g.nodes().size(), static_cast<size_t>(1 + extra)) << p;
  EXPECT_EQ(test::count_ops(t.g, "Mul"), mask_muls) << p;
  EXPECT_EQ(test::count_ops(t.g, "MatMul") + test::count_ops(t.g, "Softmax"), 0) << p;
  const ir::Node* a = t.g.outputs[0]->producer;
  ASSERT_TRUE(a && a->op == ir::Op::kAttention) << p;
  EXPECT_EQ(a->name, "layer/attention/Attention");
  EXPECT_EQ(a->attr_int("num_heads", 0), kHeads);
  EXPECT_EQ(a->attr_int("qkv_packed", -1), 0);
  EXPECT_NEAR(a->attr_float("scale", 0), 1.0 / std::sqrt(double(kHd)), 1e-7);
  EXPECT_EQ(a->inputs.size(), masks == 0 ? 3u : 4u);
  EXPECT_EQ(a->attr_int("empty_rows_zero", -1), v.sdpa ? 1 : 0);
  EXPECT_EQ(t.g.outputs[0]->name, "out");
  EXPECT_EQ(ir::shape_str(*t.g.outputs[0]->shape, t.g.symbol_names()), "[batch, seq, 6]");
  const std::vector<float> got = run(t.g, v);
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    if (std::isnan(want[i])) {  // -inf rows without SDPA's guard: NaN in both
      EXPECT_TRUE(std::isnan(got[i])) << i;
      continue;
    }
    EXPECT_NEAR(got[i], want[i], 1e-5) << i;
  }
  if (v.mask == Mask::kSquareInf) {  // the row that sees no key: NaN, or 0 behind SDPA's guard
    const size_t row = (kSeq + 2) * kHidden;
    EXPECT_TRUE(v.sdpa ? got[row] == 0.0f : std::isnan(got[row])) << got[row];
  }
}

INSTANTIATE_TEST_SUITE_P(
    Spellings, FuseAttention,
    ::testing::Values(Variant{}, Variant{KForm::kTwoTransposes, true, true, Mask::kRow},
                      Variant{KForm::kOneTranspose, false, true, Mask::kRow},
                      Variant{KForm::kOneTranspose, true, false, Mask::kRow},
                      Variant{KForm::kOneTranspose, false, false, Mask::kSquare, true},
                      Variant{KForm::kOneTranspose, true, true, Mask::kSquare},
                      Variant{KForm::kOneTranspose, true, true, Mask::kNone},
                      Variant{KForm::kTwoTransposes, false, true, Mask::kRow, true},
                      // what torch 2.x exports: SDPA, dynamo's K^T, finfo.min or -inf
                      Variant{KForm::kDynamo, true, true, Mask::kSquare, false, true},
                      Variant{KForm::kTwoTransposes, true, true, Mask::kSquareInf, false, true},
                      Variant{KForm::kOneTranspose, true, true, Mask::kSquareInf},
                      // MPNet: position bias and mask, scaled after both
                      Variant{KForm::kOneTranspose, true, false, Mask::kRow, false, false, true},
                      // ModernBERT: rotary heads, SDPA
                      Variant{KForm::kDynamo, true, true, Mask::kRow, false, true, false, true},
                      Variant{KForm::kTwoTransposes, false, true, Mask::kNone, false, false, true,
                              true}));

TEST(FuseAttentionNegative, SharedIntermediateIsNotFused) {
  AttnGraph t(Variant{});
  t.g.outputs.push_back(t.probs);  // the probabilities are also a graph output
  ASSERT_TRUE(ir::infer_shapes(t.g).is_ok());
  ASSERT_TRUE(passes::fuse_attention(t.g).is_ok());
  EXPECT_EQ(test::count_ops(t.g, "Attention"), 0);
}

TEST(FuseAttentionNegative, SoftmaxOverAnotherAxisIsNotFused) {
  AttnGraph t(Variant{});
  t.probs->producer->attrs["axis"] = int64_t{2};
  ASSERT_TRUE(ir::infer_shapes(t.g).is_ok());
  ASSERT_TRUE(passes::fuse_attention(t.g).is_ok());
  EXPECT_EQ(test::count_ops(t.g, "Attention"), 0);
}

}  // namespace
}  // namespace kiln
