// fuse_gelu: the exact-erf GELU in each order the exporters emit becomes one Gelu, the tanh
// approximation (x^3 as Pow or as Muls) one GeluTanh, computing the same values; other constants
// are not fused.
#include <gtest/gtest.h>

#include <cmath>
#include <tuple>

#include "graph_test_util.h"

namespace kiln {
namespace {

using test::op;

enum class Order { kXaHalf, kXhalfA, kAhalfX, kMulInvSqrt2 };
enum class Form { kErf, kTanhPow, kTanhMuls };

struct GeluGraph {
  ir::Graph g;
  ir::Value* x;
  GeluGraph(Order order, Form form, float half = 0.5f) {
    g.symbols = {{"batch", 0}};
    x = test::add_input(g, "x", ir::DType::kFloat32, {ir::Dim::symbol(0), ir::Dim(4)});
    ir::Value* e = nullptr;
    if (form == Form::kErf) {
      ir::Value* scaled = order == Order::kMulInvSqrt2 ? op(g, "Mul", {test::cf(g, 0.70710677f), x})
                                                       : op(g, "Div", {x, test::cf(g, 1.4142135f)});
      e = op(g, "Erf", {scaled});
    } else {  // HF gelu_new: tanh(sqrt(2/pi) * (x + 0.044715 * x^3))
      ir::Value* cube = form == Form::kTanhPow ? op(g, "Pow", {x, test::cf(g, 3.0f)})
                                               : op(g, "Mul", {x, op(g, "Mul", {x, x})});
      ir::Value* inner = op(g, "Add", {x, op(g, "Mul", {test::cf(g, 0.044715f), cube})});
      e = op(g, "Tanh", {op(g, "Mul", {inner, test::cf(g, 0.7978845608f)})});
    }
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

class FuseGelu : public ::testing::TestWithParam<std::tuple<Order, Form>> {};

TEST_P(FuseGelu, FusesAndPreservesValues) {
  const auto [order, form] = GetParam();
  std::vector<float> x = {-3, -0.5f, 0.25f, 2, 1, -1, 0, 5};
  GeluGraph ref(order, form);
  ASSERT_TRUE(ir::infer_shapes(ref.g).is_ok());
  auto want = test::run_graph(ref.g, {{"x", test::f32({2, 4}, x)}});
  ASSERT_TRUE(want.is_ok()) << want.status().message();

  GeluGraph t(order, form);
  ASSERT_TRUE(ir::infer_shapes(t.g).is_ok());
  ASSERT_TRUE(passes::fuse_gelu(t.g).is_ok());
  ASSERT_TRUE(passes::eliminate_dead_code(t.g).is_ok());
  ASSERT_TRUE(ir::infer_shapes(t.g).is_ok());
  std::string p = ir::print_graph(t.g);
  ASSERT_EQ(t.g.nodes().size(), 2u) << p;
  const ir::Node& gelu = *t.g.nodes()[0];
  EXPECT_EQ(gelu.op, form == Form::kErf ? ir::Op::kGelu : ir::Op::kGeluTanh) << p;
  EXPECT_EQ(gelu.input(0), t.x);
  auto got = test::run_graph(t.g, {{"x", test::f32({2, 4}, x)}});
  ASSERT_TRUE(got.is_ok()) << got.status().message();
  const ir::Tensor &a = want.value()["after_out"], &b = got.value()["after_out"];
  for (int i = 0; i < 8; ++i) EXPECT_NEAR(a.data<float>()[i], b.data<float>()[i], 1e-5) << i;
}

INSTANTIATE_TEST_SUITE_P(Orders, FuseGelu,
                         ::testing::Combine(::testing::Values(Order::kXaHalf, Order::kXhalfA,
                                                              Order::kAhalfX, Order::kMulInvSqrt2),
                                            ::testing::Values(Form::kErf, Form::kTanhPow,
                                                              Form::kTanhMuls)));

TEST(FuseGeluNegative, WrongConstantIsNotFused) {
  GeluGraph t(Order::kXaHalf, Form::kErf, 0.6f);
  ASSERT_TRUE(ir::infer_shapes(t.g).is_ok());
  ASSERT_TRUE(passes::fuse_gelu(t.g).is_ok());
  EXPECT_EQ(test::count_ops(t.g, "Gelu"), 0);
  EXPECT_EQ(test::count_ops(t.g, "Erf"), 1);
}

TEST(FuseGeluNegative, TanhWithAnotherCubicCoefficientIsNotFused) {
  GeluGraph t(Order::kXaHalf, Form::kTanhPow);
  for (const auto& n : t.g.nodes())  // 0.044715 -> 0.05
    for (ir::Value* in : n->inputs)
      if (in && in->constant &&
          std::fabs(passes::constant_scalar(in).value_or(0) - 0.044715) < 1e-6)
        passes::set_constant(in, test::f32_scalar(0.05f));
  ASSERT_TRUE(ir::infer_shapes(t.g).is_ok());
  ASSERT_TRUE(passes::fuse_gelu(t.g).is_ok());
  EXPECT_EQ(test::count_ops(t.g, "GeluTanh"), 0);
  EXPECT_EQ(test::count_ops(t.g, "Tanh"), 1);
}

}  // namespace
}  // namespace kiln
