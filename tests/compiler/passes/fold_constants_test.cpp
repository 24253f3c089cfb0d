// fold_constants: constant subgraphs evaluate in the right dtypes, known shape values become
// constants, symbolic ones become SymbolicTensor nodes.
#include <gtest/gtest.h>

#include <cmath>

#include "graph_test_util.h"

namespace kiln {
namespace {

using test::op;

TEST(FoldConstants, EvaluatesConstantSubgraphsInTheirDtypes) {
  ir::Graph g;
  ir::Value* a = g.add_constant("a", test::f32({2, 2}, {1, 2, 3, 4}));
  ir::Value* t = op(g, "Transpose", {a}, {{"perm", std::vector<int64_t>{1, 0}}});
  ir::Value* s = op(g, "Sqrt", {op(g, "Mul", {t, test::cf(g, 4.0f)})});
  ir::Value* i = op(g, "Add", {test::ci(g, {1, 2}), test::ci(g, {10, 20})});
  ir::Value* d = op(g, "Div", {test::ci(g, {7, -7}), test::ci(g, {2, 2})});
  ir::Value* c = op(g, "Cast", {d}, {{"to", int64_t{1}}});
  ir::Value* gat = op(g, "Gather", {a, test::ci(g, {-1})}, {{"axis", int64_t{1}}});
  g.outputs = {s, i, d, c, gat};
  std::string s_name = s->name;
  ASSERT_TRUE(ir::infer_shapes(g).is_ok());
  ASSERT_TRUE(passes::fold_constants(g).is_ok());
  EXPECT_TRUE(g.nodes().empty()) << ir::print_graph(g);
  ASSERT_TRUE(s->constant && i->constant && d->constant && c->constant && gat->constant);
  EXPECT_EQ(s->constant->dtype, ir::DType::kFloat32);
  EXPECT_EQ(std::vector<float>(s->constant->data<float>(), s->constant->data<float>() + 4),
            (std::vector<float>{2, std::sqrt(12.0f), std::sqrt(8.0f), 4}));
  EXPECT_EQ(i->constant->dtype, ir::DType::kInt64);
  EXPECT_EQ(i->constant->data<int64_t>()[1], 22);
  EXPECT_EQ(d->constant->data<int64_t>()[1], -3);  // truncating integer division
  EXPECT_EQ(c->constant->dtype, ir::DType::kFloat32);
  EXPECT_EQ(c->constant->data<float>()[0], 3.0f);
  EXPECT_EQ(gat->constant->dims, (std::vector<int64_t>{2, 1}));
  EXPECT_EQ(gat->constant->data<float>()[1], 4.0f);
  EXPECT_EQ(s->name, s_name);  // folded values keep their names
}

// A ConstantOfShape of 4 TB (found by the onnx_import fuzzer) is an error naming the node, not a
// std::bad_alloc.
TEST(FoldConstants, RefusesHugeConstants) {
  ir::Graph g;
  ir::Value* big = op(g, "ConstantOfShape", {test::ci(g, {1000000, 1000000})});
  g.outputs = {op(g, "ReduceSum", {big}, {{"keepdims", int64_t{0}}})};
  ASSERT_TRUE(ir::infer_shapes(g).is_ok());
  Status s = passes::fold_constants(g);
  ASSERT_FALSE(s.is_ok());
  EXPECT_NE(s.message().find("(ConstantOfShape): constant output"), std::string::npos)
      << s.message();
  EXPECT_NE(s.message().find("[1000000, 1000000] would take more than 1024 MiB"), std::string::npos)
      << s.message();
}

TEST(FoldConstants, ShapeArithmeticBecomesConstantsAndSymbolicTensors) {
  ir::Graph g;
  g.symbols = {{"batch", 0}, {"seq", 0}};
  ir::Value* x = test::add_input(g, "x", ir::DType::kFloat32,
                                 {ir::Dim::symbol(0), ir::Dim::symbol(1), ir::Dim(32)});
  ir::Value* shp = op(g, "Shape", {x});
  ir::Value* hidden = op(g, "Gather", {shp, test::ci(g, {2})});
  ir::Value* hf = op(g, "Cast", {hidden}, {{"to", int64_t{1}}});  // freed once folded
  ir::Value* scaled = op(g, "Div", {x, op(g, "Sqrt", {hf})});
  ir::Value* bs = op(g, "Slice", {shp, test::ci(g, {0}), test::ci(g, {2})});
  ir::Value* target = op(g, "Concat", {bs, test::ci(g, {4, 8})}, {{"axis", int64_t{0}}});
  ir::Value* r = op(g, "Reshape", {scaled, target});
  g.outputs = {r};
  ASSERT_TRUE(ir::infer_shapes(g).is_ok());
  ASSERT_TRUE(passes::fold_constants(g).is_ok());
  ASSERT_TRUE(passes::eliminate_dead_code(g).is_ok());
  ASSERT_TRUE(ir::infer_shapes(g).is_ok());
  std::string p = ir::print_graph(g);
  EXPECT_EQ(test::count_ops(g, "Shape"), 0) << p;
  EXPECT_EQ(test::count_ops(g, "Sqrt"), 0) << p;
  EXPECT_EQ(test::count_ops(g, "SymbolicTensor"), 1) << p;
  // hf and its Sqrt folded away (the values are gone): Div reads the constant sqrt(32).
  const ir::Value* root = scaled->producer->input(1);
  ASSERT_TRUE(root->constant) << p;
  EXPECT_FLOAT_EQ(root->constant->data<float>()[0], std::sqrt(32.0f));
  ASSERT_EQ(r->producer->op, ir::Op::kReshape);
  ir::Value* t = r->producer->input(1);
  EXPECT_EQ(t->producer->op, ir::Op::kSymbolicTensor);
  EXPECT_EQ(ir::shape_str(*t->sym_value, g.symbol_names()), "[batch, seq, 4, 8]");
  auto out = test::run_graph(g, {{"x", test::f32({1, 1, 32}, std::vector<float>(32, 2.0f))}});
  ASSERT_TRUE(out.is_ok()) << out.status().message();
  EXPECT_EQ(out.value()[r->name].dims, (std::vector<int64_t>{1, 1, 4, 8}));
  EXPECT_NEAR(out.value()[r->name].data<float>()[5], 2.0f / std::sqrt(32.0f), 1e-6);
}

TEST(FoldConstants, FoldsDataMovementAndReductions) {
  ir::Graph g;
  ir::Value* a = g.add_constant("a", test::f32({2, 3}, {1, 2, 3, 4, 5, 6}));
  ir::Value* sl = op(g, "Slice",
                     {a, test::ci(g, {-1}), test::ci(g, {-4}), test::ci(g, {1}),
                      test::ci(g, {-1})});  // reversed columns
  ir::Value* cat = op(g, "Concat", {a, sl}, {{"axis", int64_t{1}}});
  ir::Value* mean = op(g, "ReduceMean", {cat}, {{"axes", std::vector<int64_t>{-1}}});
  ir::Value* sm = op(g, "Softmax", {a}, {{"axis", int64_t{-1}}});
  ir::Value* ex = op(g, "Expand", {test::cf(g, 3.0f), test::ci(g, {2, 2})});
  ir::Value* rg = op(g, "Range", {test::ci(g, {1}), test::ci(g, {7}), test::ci(g, {2})});
  g.outputs = {sl, mean, sm, ex, rg};
  // Range needs scalars.
  for (ir::Value* v : rg->producer->inputs) {
    ir::Tensor t = *v->constant;
    t.dims = {};
    passes::set_constant(v, t);
  }
  ASSERT_TRUE(ir::infer_shapes(g).is_ok());
  ASSERT_TRUE(passes::fold_constants(g).is_ok());
  EXPECT_TRUE(g.nodes().empty()) << ir::print_graph(g);
  EXPECT_EQ(std::vector<float>(sl->constant->data<float>(), sl->constant->data<float>() + 6),
            (std::vector<float>{3, 2, 1, 6, 5, 4}));
  EXPECT_EQ(mean->constant->data<float>()[1], 5.0f);
  EXPECT_NEAR(sm->constant->data<float>()[2], std::exp(2.0) / (1 + std::exp(1.0) + std::exp(2.0)),
              1e-6);
  EXPECT_EQ(ex->constant->numel(), 4);
  EXPECT_EQ(std::vector<int64_t>(rg->constant->data<int64_t>(), rg->constant->data<int64_t>() + 3),
            (std::vector<int64_t>{1, 3, 5}));
}

}  // namespace
}  // namespace kiln
