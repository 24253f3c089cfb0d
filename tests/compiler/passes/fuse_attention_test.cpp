// fuse_attention: the exporter's self-attention (every spelling of K^T, scale and mask order)
// becomes one Attention that computes the same values; near misses are left alone.
#include <gtest/gtest.h>

#include <cfloat>
#include <random>

#include "graph_test_util.h"

namespace kiln {
namespace {

using test::op;

enum class Mask { kNone, kRow, kSquare };  // [B, 1, 1, S], [B, 1, S, S]

struct Variant {
  bool k_one_transpose = true;  // Transpose(0,2,3,1), else (0,2,1,3) then (0,1,3,2)
  bool div = true;              // Div by sqrt(hd), else Mul by 1/sqrt(hd)
  bool scale_first = true;      // scale, then mask Add (else mask Add, then scale)
  Mask mask = Mask::kRow;
  bool mask_left = false;  // Add(mask, scores)
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
    if (v.mask == Mask::kSquare)
      mask =
          test::add_input(g, "mask", ir::DType::kFloat32,
                          {ir::Dim::symbol(0), ir::Dim(1), ir::Dim::symbol(1), ir::Dim::symbol(1)});
    auto split = [&](ir::Value* x) {
      return op(g, "Reshape", {x, test::ci(g, {0, 0, kHeads, kHd})});
    };
    auto perm = [](std::vector<int64_t> p) {
      return std::map<std::string, ir::Attribute>{{"perm", p}};
    };
    ir::Value* qh = op(g, "Transpose", {split(q)}, perm({0, 2, 1, 3}));
    ir::Value* kt = v.k_one_transpose
                        ? op(g, "Transpose", {split(k)}, perm({0, 2, 3, 1}))
                        : op(g, "Transpose", {op(g, "Transpose", {split(k)}, perm({0, 2, 1, 3}))},
                             perm({0, 1, 3, 2}));
    ir::Value* vh = op(g, "Transpose", {split(val)}, perm({0, 2, 1, 3}));
    ir::Value* s = op(g, "MatMul", {qh, kt});
    auto scale = [&](ir::Value* x) {
      return v.div ? op(g, "Div", {x, test::cf(g, std::sqrt(float(kHd)))})
                   : op(g, "Mul", {x, test::cf(g, 1.0f / std::sqrt(float(kHd)))});
    };
    auto add_mask = [&](ir::Value* x) {
      if (!mask) return x;
      return v.mask_left ? op(g, "Add", {mask, x}) : op(g, "Add", {x, mask});
    };
    s = v.scale_first ? add_mask(scale(s)) : scale(add_mask(s));
    probs = op(g, "Softmax", {s}, {{"axis", int64_t{-1}}}, "layer/attention/Softmax");
    ir::Value* ctx = op(g, "Transpose", {op(g, "MatMul", {probs, vh})}, perm({0, 2, 1, 3}));
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
  const bool mask_scaled = v.mask != Mask::kNone && !v.scale_first;
  ASSERT_EQ(t.g.nodes().size(), mask_scaled ? 2u : 1u) << p;
  EXPECT_EQ(test::count_ops(t.g, "Mul"), mask_scaled ? 1 : 0) << p;
  const ir::Node* a = t.g.outputs[0]->producer;
  ASSERT_TRUE(a && a->op == ir::Op::kAttention) << p;
  EXPECT_EQ(a->name, "layer/attention/Attention");
  EXPECT_EQ(a->attr_int("num_heads", 0), kHeads);
  EXPECT_EQ(a->attr_int("qkv_packed", -1), 0);
  EXPECT_NEAR(a->attr_float("scale", 0), 1.0 / std::sqrt(double(kHd)), 1e-7);
  EXPECT_EQ(a->inputs.size(), v.mask == Mask::kNone ? 3u : 4u);
  EXPECT_EQ(t.g.outputs[0]->name, "out");
  EXPECT_EQ(ir::shape_str(*t.g.outputs[0]->shape, t.g.symbol_names()), "[batch, seq, 6]");
  const std::vector<float> got = run(t.g, v);
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-5) << i;
}

INSTANTIATE_TEST_SUITE_P(Spellings, FuseAttention,
                         ::testing::Values(Variant{}, Variant{false, true, true, Mask::kRow, false},
                                           Variant{true, false, true, Mask::kRow, false},
                                           Variant{true, true, false, Mask::kRow, false},
                                           Variant{true, false, false, Mask::kSquare, true},
                                           Variant{true, true, true, Mask::kSquare, false},
                                           Variant{true, true, true, Mask::kNone, false},
                                           Variant{false, false, true, Mask::kRow, true}));

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
