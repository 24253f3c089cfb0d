// eliminate_dead_code: only what reaches a graph output survives.
#include <gtest/gtest.h>

#include "graph_test_util.h"

namespace kiln {
namespace {

using test::op;

TEST(EliminateDeadCode, RemovesUnreachableNodesOnly) {
  ir::Graph g;
  g.symbols = {{"batch", 0}};
  ir::Value* x = test::add_input(g, "x", ir::DType::kFloat32, {ir::Dim::symbol(0), ir::Dim(4)});
  ir::Value* a = op(g, "Relu", {x});
  ir::Value* dead1 = op(g, "Exp", {a});
  op(g, "Neg", {dead1});
  ir::Value* y = op(g, "Tanh", {a});
  g.outputs = {y};
  ASSERT_TRUE(passes::eliminate_dead_code(g).is_ok());
  EXPECT_EQ(g.nodes().size(), 2u);
  EXPECT_EQ(test::count_ops(g, "Exp"), 0);
  EXPECT_EQ(test::count_ops(g, "Neg"), 0);
  EXPECT_EQ(test::count_ops(g, "Relu"), 1);
  for (const auto& v : g.values()) EXPECT_NE(v.get(), dead1);
}

TEST(EliminateDeadCode, MultiOutputNodeStaysWhenOneOutputIsUsed) {
  ir::Graph g;
  ir::Value* x = test::add_input(g, "x", ir::DType::kFloat32, {ir::Dim(4)});
  ir::Value* a = g.add_value("a", ir::DType::kFloat32);
  ir::Value* b = g.add_value("b", ir::DType::kFloat32);
  g.add_node("Split", "split", {x}, {a, b});
  g.outputs = {b};
  ASSERT_TRUE(passes::eliminate_dead_code(g).is_ok());
  EXPECT_EQ(g.nodes().size(), 1u);
}

}  // namespace
}  // namespace kiln
