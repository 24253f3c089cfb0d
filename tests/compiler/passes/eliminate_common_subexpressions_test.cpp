// eliminate_common_subexpressions: equal constants and equal computations merge; different
// attributes or inputs do not.
#include <gtest/gtest.h>

#include "graph_test_util.h"

namespace kiln {
namespace {

using test::op;

TEST(EliminateCommonSubexpressions, MergesEqualConstantsAndNodes) {
  ir::Graph g;
  g.symbols = {{"batch", 0}};
  ir::Value* x = test::add_input(g, "x", ir::DType::kFloat32, {ir::Dim::symbol(0), ir::Dim(4)});
  ir::Value* a1 = op(g, "Mul", {x, test::cf(g, 2.0f)});
  ir::Value* a2 = op(g, "Mul", {x, test::cf(g, 2.0f)});  // same after constant merge
  ir::Value* a3 = op(g, "Mul", {x, test::cf(g, 3.0f)});
  ir::Value* t1 = op(g, "Transpose", {x}, {{"perm", std::vector<int64_t>{1, 0}}});
  ir::Value* t2 = op(g, "Transpose", {x}, {{"perm", std::vector<int64_t>{1, 0}}});
  ir::Value* u1 = op(g, "Unsqueeze", {x, test::ci(g, {0})});
  ir::Value* u2 = op(g, "Unsqueeze", {x, test::ci(g, {1})});
  g.outputs = {op(g, "Add", {a1, a2}), a3, op(g, "Add", {t1, t2}), u1, u2};
  ASSERT_TRUE(ir::infer_shapes(g).is_ok());
  ASSERT_TRUE(passes::eliminate_common_subexpressions(g).is_ok());
  ASSERT_TRUE(passes::eliminate_dead_code(g).is_ok());
  std::string p = ir::print_graph(g);
  EXPECT_EQ(test::count_ops(g, "Mul"), 2) << p;
  EXPECT_EQ(test::count_ops(g, "Transpose"), 1) << p;
  EXPECT_EQ(test::count_ops(g, "Unsqueeze"), 2) << p;
  const ir::Node* add = g.outputs[0]->producer;
  EXPECT_EQ(add->input(0), add->input(1));
}

TEST(EliminateCommonSubexpressions, MergesEqualSymbolicTensors) {
  ir::Graph g;
  g.symbols = {{"batch", 0}, {"seq", 0}};
  ir::Value* x = test::add_input(g, "x", ir::DType::kFloat32,
                                 {ir::Dim::symbol(0), ir::Dim::symbol(1), ir::Dim(8)});
  auto sym = [&](std::vector<ir::Dim> d) {
    ir::Value* v = g.add_value("", ir::DType::kInt64);
    v->shape = ir::Shape{ir::Dim(static_cast<int64_t>(d.size()))};
    v->sym_value = d;
    g.add_node("SymbolicTensor", "", {}, {v});
    return v;
  };
  ir::Dim b = ir::Dim::symbol(0), s = ir::Dim::symbol(1);
  ir::Value* r1 = op(g, "Reshape", {x, sym({b * s, 8})});
  ir::Value* r2 = op(g, "Reshape", {x, sym({b * s, 8})});
  ir::Value* r3 = op(g, "Reshape", {x, sym({b, s * 8})});
  g.outputs = {r1, r2, r3};
  ASSERT_TRUE(ir::infer_shapes(g).is_ok());
  ASSERT_TRUE(passes::eliminate_common_subexpressions(g).is_ok());
  ASSERT_TRUE(passes::eliminate_dead_code(g).is_ok());
  EXPECT_EQ(test::count_ops(g, "SymbolicTensor"), 2) << ir::print_graph(g);
  // r2 is a graph output: it keeps its own node.
  EXPECT_EQ(test::count_ops(g, "Reshape"), 3);
}

}  // namespace
}  // namespace kiln
