// fuse_layer_norm: the exporter's decomposed LayerNorm (several spellings) becomes one
// LayerNormalization that computes the same values; near misses are left alone.
#include <gtest/gtest.h>

#include <random>

#include "graph_test_util.h"

namespace kiln {
namespace {

using test::op;

struct Variant {
  bool shared_sub = true;  // one Sub feeding Pow and Div (else two equal Subs)
  bool pow = true;         // Pow(d, 2) (else Mul(d, d))
  bool gamma = true;
  bool beta = true;
  int64_t mean_axis = -1;
};

struct LnGraph {
  ir::Graph g;
  ir::Value* x;
  ir::Value* y;
  explicit LnGraph(const Variant& v) {
    g.symbols = {{"batch", 0}};
    x = test::add_input(g, "x", ir::DType::kFloat32, {ir::Dim::symbol(0), ir::Dim(2), ir::Dim(4)});
    auto axes = std::map<std::string, ir::Attribute>{{"axes", std::vector<int64_t>{v.mean_axis}}};
    ir::Value* mean = op(g, "ReduceMean", {x}, axes, "ln/ReduceMean");
    ir::Value* d = op(g, "Sub", {x, mean});
    ir::Value* d2 = v.shared_sub ? d : op(g, "Sub", {x, mean});
    ir::Value* sq = v.pow ? op(g, "Pow", {d2, test::cf(g, 2.0f)}) : op(g, "Mul", {d2, d2});
    ir::Value* var = op(g, "ReduceMean", {sq}, axes);
    ir::Value* sd = op(g, "Sqrt", {op(g, "Add", {var, test::cf(g, 1e-5f)})});
    y = op(g, "Div", {d, sd});
    if (v.gamma) y = op(g, "Mul", {y, g.add_constant("gamma", test::f32({4}, {1, 2, 0.5f, -1}))});
    if (v.beta) y = op(g, "Add", {g.add_constant("beta", test::f32({4}, {0, 1, 2, 3})), y});
    y->name = "out";
    g.outputs = {y};
  }
};

std::vector<float> run(ir::Graph& g, const std::vector<float>& x) {
  auto r = test::run_graph(g, {{"x", test::f32({2, 2, 4}, x)}});
  EXPECT_TRUE(r.is_ok()) << r.status().message();
  if (!r.is_ok()) return {};
  const ir::Tensor& t = r.value()["out"];
  return std::vector<float>(t.data<float>(), t.data<float>() + t.numel());
}

class FuseLayerNorm : public ::testing::TestWithParam<Variant> {};

TEST_P(FuseLayerNorm, FusesAndPreservesValues) {
  std::mt19937 rng(3);
  std::normal_distribution<float> dist(0.0f, 2.0f);
  std::vector<float> x(16);
  for (float& v : x) v = dist(rng);
  LnGraph ref(GetParam());
  ASSERT_TRUE(ir::infer_shapes(ref.g).is_ok());
  std::vector<float> want = run(ref.g, x);

  LnGraph t(GetParam());
  ASSERT_TRUE(ir::infer_shapes(t.g).is_ok());
  ASSERT_TRUE(passes::fuse_layer_norm(t.g).is_ok());
  ASSERT_TRUE(passes::eliminate_dead_code(t.g).is_ok());
  ASSERT_TRUE(ir::infer_shapes(t.g).is_ok());
  std::string p = ir::print_graph(t.g);
  ASSERT_EQ(t.g.nodes().size(), 1u) << p;
  const ir::Node& ln = *t.g.nodes()[0];
  EXPECT_EQ(ln.op, ir::Op::kLayerNormalization);
  EXPECT_EQ(ln.attr_int("axis", 0), -1);
  EXPECT_FLOAT_EQ(ln.attr_float("epsilon", 0), 1e-5f);
  EXPECT_EQ(ln.inputs.size(), 3u);  // Scale and B always present
  EXPECT_EQ(t.g.outputs[0]->name, "out");
  std::vector<float> got = run(t.g, x);
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-4) << i;
}

INSTANTIATE_TEST_SUITE_P(Spellings, FuseLayerNorm,
                         ::testing::Values(Variant{}, Variant{false, true, true, true},
                                           Variant{true, false, true, true},
                                           Variant{true, true, false, false},
                                           Variant{true, true, true, false},
                                           Variant{true, true, true, true, 2}));

TEST(FuseLayerNormNegative, ReductionOverAnotherAxisIsNotFused) {
  Variant v;
  v.mean_axis = 1;
  LnGraph t(v);
  ASSERT_TRUE(ir::infer_shapes(t.g).is_ok());
  ASSERT_TRUE(passes::fuse_layer_norm(t.g).is_ok());
  EXPECT_EQ(test::count_ops(t.g, "LayerNormalization"), 0);
}

}  // namespace
}  // namespace kiln
