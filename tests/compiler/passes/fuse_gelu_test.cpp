// fuse_gelu: the exact-erf GELU in each order the exporters emit becomes one Gelu with
// approximate="none", computing the same values; other constants are not fused.
#include <gtest/gtest.h>

#include "graph_test_util.h"

namespace kiln {
namespace {

using test::op;

enum class Order { kXaHalf, kXhalfA, kAhalfX, kMulInvSqrt2 };

struct GeluGraph {
  ir::Graph g;
  ir::Value* x;
  GeluGraph(Order order, float half = 0.5f) {
    g.symbols = {{"batch", 0}};
    x = test::add_input(g, "x", ir::DType::kFloat32, {ir::Dim::symbol(0), ir::Dim(4)});
    ir::Value* scaled = order == Order::kMulInvSqrt2 ? op(g, "Mul", {test::cf(g, 0.70710677f), x})
                                                     : op(g, "Div", {x, test::cf(g, 1.4142135f)});
    ir::Value* e = op(g, "Erf", {scaled});
    ir::Value* a = op(g, "Add", {e, test::cf(g, 1.0f)});
    ir::Value* y = nullptr;
    switch (order) {
      case Order::kXaHalf:
      case Order::kMulInvSqrt2:
        y = op(g, "Mul", {op(g, "Mul", {x, a}), test::cf(g, half)});
        break;
      case Order::kXhalfA:
        y = op(g, "Mul", {op(g, "Mul", {x, test::cf(g, half)}), a});
        break;
      case Order::kAhalfX:
        y = op(g, "Mul", {x, op(g, "Mul", {a, test::cf(g, half)})});
        break;
    }
    g.outputs = {op(g, "Relu", {y}, {}, "after")};
  }
};

class FuseGelu : public ::testing::TestWithParam<Order> {};

TEST_P(FuseGelu, FusesAndPreservesValues) {
  std::vector<float> x = {-3, -0.5f, 0.25f, 2, 1, -1, 0, 5};
  GeluGraph ref(GetParam());
  ASSERT_TRUE(ir::infer_shapes(ref.g).is_ok());
  auto want = test::run_graph(ref.g, {{"x", test::f32({2, 4}, x)}});
  ASSERT_TRUE(want.is_ok()) << want.status().message();

  GeluGraph t(GetParam());
  ASSERT_TRUE(ir::infer_shapes(t.g).is_ok());
  ASSERT_TRUE(passes::fuse_gelu(t.g).is_ok());
  ASSERT_TRUE(passes::eliminate_dead_code(t.g).is_ok());
  ASSERT_TRUE(ir::infer_shapes(t.g).is_ok());
  std::string p = ir::print_graph(t.g);
  ASSERT_EQ(t.g.nodes().size(), 2u) << p;
  const ir::Node& gelu = *t.g.nodes()[0];
  EXPECT_EQ(gelu.op, ir::Op::kGelu);
  EXPECT_EQ(gelu.input(0), t.x);
  auto got = test::run_graph(t.g, {{"x", test::f32({2, 4}, x)}});
  ASSERT_TRUE(got.is_ok()) << got.status().message();
  const ir::Tensor &a = want.value()["after_out"], &b = got.value()["after_out"];
  for (int i = 0; i < 8; ++i) EXPECT_NEAR(a.data<float>()[i], b.data<float>()[i], 1e-5) << i;
}

INSTANTIATE_TEST_SUITE_P(Orders, FuseGelu,
                         ::testing::Values(Order::kXaHalf, Order::kXhalfA, Order::kAhalfX,
                                           Order::kMulInvSqrt2));

TEST(FuseGeluNegative, WrongConstantIsNotFused) {
  GeluGraph t(Order::kXaHalf, 0.6f);
  ASSERT_TRUE(ir::infer_shapes(t.g).is_ok());
  ASSERT_TRUE(passes::fuse_gelu(t.g).is_ok());
  EXPECT_EQ(test::count_ops(t.g, "Gelu"), 0);
  EXPECT_EQ(test::count_ops(t.g, "Erf"), 1);
}

}  // namespace
}  // namespace kiln
