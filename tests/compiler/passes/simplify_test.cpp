// simplify: Identity/Dropout/no-op Cast/same-shape Reshape/Mul-by-1 disappear, graph output
// names survive, real work stays, Split becomes Slices.
#include <gtest/gtest.h>

#include "graph_test_util.h"

namespace kiln {
namespace {

using test::op;

struct Graph2d {
  ir::Graph g;
  ir::Value* x;
  Graph2d() {
    g.symbols = {{"batch", 0}};
    x = test::add_input(g, "x", ir::DType::kFloat32, {ir::Dim::symbol(0), ir::Dim(4)});
  }
};

TEST(Simplify, RemovesNoOpsAndKeepsOutputNames) {
  Graph2d t;
  ir::Value* a = op(t.g, "Relu", {t.x});
  ir::Value* b = op(t.g, "Identity", {a});
  ir::Value* c = op(t.g, "Dropout", {b});
  ir::Value* d = op(t.g, "Cast", {c}, {{"to", int64_t{1}}});
  ir::Value* e = op(t.g, "Reshape", {d, test::ci(t.g, {-1, 4})});
  ir::Value* f = op(t.g, "Mul", {test::cf(t.g, 1.0f), e});
  ir::Value* h = op(t.g, "Add", {f, test::cf(t.g, 0.0f)});
  ir::Value* out = op(t.g, "Identity", {h}, {}, "final");
  out->name = "last_hidden_state";
  t.g.outputs = {out};
  ASSERT_TRUE(ir::infer_shapes(t.g).is_ok());
  ASSERT_TRUE(passes::simplify(t.g).is_ok());
  EXPECT_EQ(t.g.nodes().size(), 1u) << ir::print_graph(t.g);
  EXPECT_EQ(t.g.nodes()[0]->op, ir::Op::kRelu);
  EXPECT_EQ(t.g.outputs[0]->name, "last_hidden_state");
  EXPECT_EQ(t.g.outputs[0]->producer, t.g.nodes()[0].get());
}

TEST(Simplify, KeepsNodesThatChangeSomething) {
  Graph2d t;
  ir::Value* c = op(t.g, "Cast", {t.x}, {{"to", int64_t{7}}});
  ir::Value* r = op(t.g, "Reshape", {t.x, test::ci(t.g, {0, 2, 2})});
  ir::Value* m = op(t.g, "Mul", {t.x, test::cf(t.g, 2.0f)});
  // Adding a [1, 1, 4] zero broadcasts x up a rank: not a no-op.
  ir::Value* z =
      op(t.g, "Add", {t.x, t.g.add_constant("zeros", test::f32({1, 1, 4}, {0, 0, 0, 0}))});
  t.g.outputs = {c, r, m, z};
  ASSERT_TRUE(ir::infer_shapes(t.g).is_ok());
  ASSERT_TRUE(passes::simplify(t.g).is_ok());
  EXPECT_EQ(t.g.nodes().size(), 4u) << ir::print_graph(t.g);
}

TEST(Simplify, IdentityBetweenInputAndOutputIsKept) {
  Graph2d t;
  ir::Value* y = op(t.g, "Identity", {t.x});
  t.g.outputs = {y};
  ASSERT_TRUE(ir::infer_shapes(t.g).is_ok());
  ASSERT_TRUE(passes::simplify(t.g).is_ok());
  EXPECT_EQ(t.g.nodes().size(), 1u);  // the output must stay a distinct tensor
}

TEST(Simplify, SplitBecomesSlices) {
  Graph2d t;
  ir::Value* a = t.g.add_value("a", ir::DType::kFloat32);
  ir::Value* b = t.g.add_value("b", ir::DType::kFloat32);
  t.g.add_node("Split", "split", {t.x, test::ci(t.g, {1, 3})}, {a, b})->attrs["axis"] = int64_t{-1};
  t.g.outputs = {a, b};
  ASSERT_TRUE(ir::infer_shapes(t.g).is_ok());
  ASSERT_TRUE(passes::simplify(t.g).is_ok());
  ASSERT_TRUE(ir::infer_shapes(t.g).is_ok());
  EXPECT_EQ(test::count_ops(t.g, "Split"), 0);
  EXPECT_EQ(test::count_ops(t.g, "Slice"), 2);
  auto names = t.g.symbol_names();
  EXPECT_EQ(ir::shape_str(*t.g.outputs[1]->shape, names), "[batch, 3]");
  auto out = test::run_graph(t.g, {{"x", test::f32({1, 4}, {1, 2, 3, 4})}});
  ASSERT_TRUE(out.is_ok()) << out.status().message();
  EXPECT_EQ(out.value()["a"].data<float>()[0], 1.0f);
  EXPECT_EQ(out.value()["b"].data<float>()[2], 4.0f);
}

}  // namespace
}  // namespace kiln
