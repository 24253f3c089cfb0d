// fuse_qkv: three projections of one x feeding an Attention (MatMul + bias Add, or Dense) become
// one projection with [K, 3N] weights and a packed Attention that computes the same values.
#include <gtest/gtest.h>

#include <random>

#include "graph_test_util.h"

namespace kiln {
namespace {

using test::op;

constexpr int64_t kIn = 5, kHeads = 2, kHd = 4, kN = kHeads * kHd, kBatch = 2, kSeq = 3;

enum class Proj { kMatMulAdd, kMatMul, kDense };

ir::Tensor random_tensor(std::vector<int64_t> dims, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  std::vector<float> x(n);
  for (float& e : x) e = dist(rng);
  return test::f32(std::move(dims), x);
}

struct QkvGraph {
  ir::Graph g;
  ir::Node* attn = nullptr;
  QkvGraph(Proj kind, bool same_x = true) {
    g.symbols = {{"batch", 0}, {"seq", 8}};
    const ir::Shape xs = {ir::Dim::symbol(0), ir::Dim::symbol(1), ir::Dim(kIn)};
    ir::Value* x = test::add_input(g, "x", ir::DType::kFloat32, xs);
    ir::Value* x2 = same_x ? x : test::add_input(g, "x2", ir::DType::kFloat32, xs);
    ir::Value* mask =
        test::add_input(g, "mask", ir::DType::kFloat32,
                        {ir::Dim::symbol(0), ir::Dim(1), ir::Dim(1), ir::Dim::symbol(1)});
    std::vector<ir::Value*> qkv;
    for (uint32_t i = 0; i < 3; ++i) {
      ir::Value* w = g.add_constant("w" + std::to_string(i), random_tensor({kIn, kN}, 10 + i));
      ir::Value* b = g.add_constant("b" + std::to_string(i), random_tensor({kN}, 20 + i));
      ir::Value* in = i == 2 ? x2 : x;
      if (kind == Proj::kDense) {
        qkv.push_back(op(g, "Dense", {in, w, b}, {{"gelu", int64_t{0}}}));
      } else {
        ir::Value* y =
            op(g, "MatMul", {in, w}, {}, "layer/attention/self/q" + std::to_string(i) + "/MatMul");
        // Alternate the Add's operand order.
        if (kind == Proj::kMatMulAdd) y = i == 1 ? op(g, "Add", {b, y}) : op(g, "Add", {y, b});
        qkv.push_back(y);
      }
    }
    ir::Value* out = g.add_value("out", ir::DType::kFloat32);
    attn = g.add_node("Attention", "attn", {qkv[0], qkv[1], qkv[2], mask}, {out});
    attn->attrs["num_heads"] = kHeads;
    attn->attrs["scale"] = 0.5f;
    attn->attrs["qkv_packed"] = int64_t{0};
    g.outputs = {out};
  }
};

std::vector<float> run(ir::Graph& g, bool two_inputs = false) {
  std::vector<float> m(kBatch * kSeq, 0.0f);
  m[kSeq + 2] = -10000.0f;
  std::map<std::string, ir::Tensor> in = {{"x", random_tensor({kBatch, kSeq, kIn}, 1)},
                                          {"mask", test::f32({kBatch, 1, 1, kSeq}, m)}};
  if (two_inputs) in["x2"] = random_tensor({kBatch, kSeq, kIn}, 2);
  auto r = test::run_graph(g, in);
  EXPECT_TRUE(r.is_ok()) << r.status().message();
  if (!r.is_ok()) return {};
  const ir::Tensor& t = r.value()["out"];
  return std::vector<float>(t.data<float>(), t.data<float>() + t.numel());
}

class FuseQkv : public ::testing::TestWithParam<Proj> {};

TEST_P(FuseQkv, MergesProjectionsAndPreservesValues) {
  QkvGraph ref(GetParam());
  ASSERT_TRUE(ir::infer_shapes(ref.g).is_ok());
  const std::vector<float> want = run(ref.g);

  QkvGraph t(GetParam());
  ASSERT_TRUE(ir::infer_shapes(t.g).is_ok());
  ASSERT_TRUE(passes::fuse_qkv(t.g).is_ok());
  ASSERT_TRUE(passes::eliminate_dead_code(t.g).is_ok());
  ASSERT_TRUE(ir::infer_shapes(t.g).is_ok()) << ir::print_graph(t.g);
  const std::string p = ir::print_graph(t.g);
  const bool dense = GetParam() == Proj::kDense;
  EXPECT_EQ(test::count_ops(t.g, dense ? "Dense" : "MatMul"), 1) << p;
  EXPECT_EQ(test::count_ops(t.g, "Add"), dense ? 0 : 1) << p;
  EXPECT_EQ(t.attn->attr_int("qkv_packed", 0), 1);
  ASSERT_EQ(t.attn->inputs.size(), 4u);
  EXPECT_EQ(t.attn->input(1), nullptr);
  EXPECT_EQ(t.attn->input(2), nullptr);
  EXPECT_EQ(ir::shape_str(*t.attn->input(0)->shape, t.g.symbol_names()), "[batch, seq, 24]");
  const std::vector<float> got = run(t.g);
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-5) << i;
}

INSTANTIATE_TEST_SUITE_P(Projections, FuseQkv,
                         ::testing::Values(Proj::kMatMulAdd, Proj::kMatMul, Proj::kDense));

TEST(FuseQkvNegative, DifferentInputsAreNotMerged) {
  QkvGraph t(Proj::kMatMulAdd, /*same_x=*/false);
  ASSERT_TRUE(ir::infer_shapes(t.g).is_ok());
  ASSERT_TRUE(passes::fuse_qkv(t.g).is_ok());
  EXPECT_EQ(t.attn->attr_int("qkv_packed", 0), 0);
  EXPECT_EQ(test::count_ops(t.g, "MatMul"), 3);
}

}  // namespace
}  // namespace kiln
