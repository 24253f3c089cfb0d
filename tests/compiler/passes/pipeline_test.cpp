// run_pipeline: calls after_pass for every pass, produces the runtime op set, reports what each
// fusion made; check_pipeline_output reports contract violations; unfused_warnings names what
// the fast paths missed.
#include "compiler/passes/pipeline.h"

#include <gtest/gtest.h>

#include <map>

#include "graph_test_util.h"

namespace kiln {
namespace {

using test::op;

TEST(Pipeline, ReachesTheContractAndReportsEachPass) {
  ir::Graph g;
  g.symbols = {{"batch", 0}, {"seq", 16}};
  ir::Value* x = test::add_input(g, "x", ir::DType::kFloat32,
                                 {ir::Dim::symbol(0), ir::Dim::symbol(1), ir::Dim(8)});
  ir::Value* shp = op(g, "Shape", {x});
  ir::Value* target = op(
      g, "Concat", {op(g, "Slice", {shp, test::ci(g, {0}), test::ci(g, {2})}), test::ci(g, {2, 4})},
      {{"axis", int64_t{0}}});
  ir::Value* r = op(g, "Reshape", {op(g, "Identity", {x}), target});
  ir::Value* k = op(g, "Constant", {}, {{"value", test::f32({4}, {1, 2, 3, 4})}});
  ir::Value* y = op(g, "Mul", {r, op(g, "Neg", {k})});
  g.outputs = {op(g, "Dropout", {y})};
  g.outputs[0]->name = "out";
  std::vector<std::string> seen;
  passes::PipelineOptions opts;
  opts.after_pass = [&](const std::string& name, const ir::Graph&) { seen.push_back(name); };
  Status s = passes::run_pipeline(g, opts).status();
  ASSERT_TRUE(s.is_ok()) << s.message() << "\n" << ir::print_graph(g);
  EXPECT_GE(seen.size(), 6u);
  EXPECT_EQ(seen.front(), "simplify");
  std::string p = ir::print_graph(g);
  EXPECT_EQ(g.nodes().size(), 3u) << p;  // SymbolicTensor, Reshape, Mul
  EXPECT_EQ(test::count_ops(g, "SymbolicTensor"), 1) << p;
  EXPECT_EQ(g.outputs[0]->name, "out");
  EXPECT_EQ(ir::shape_str(*g.outputs[0]->shape, g.symbol_names()), "[batch, seq, 2, 4]");
  EXPECT_TRUE(passes::check_pipeline_output(g).is_ok());
}

TEST(Pipeline, ContractCheckNamesTheViolation) {
  ir::Graph g;
  ir::Value* x = test::add_input(g, "x", ir::DType::kFloat32, {ir::Dim(2)});
  ir::Value* s = op(g, "Shape", {x}, {}, "leftover_shape");
  g.outputs = {s};
  ASSERT_TRUE(ir::infer_shapes(g).is_ok());
  Status st = passes::check_pipeline_output(g);
  ASSERT_FALSE(st.is_ok());
  EXPECT_NE(st.message().find("leftover_shape"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("runtime op set"), std::string::npos) << st.message();
}

TEST(Pipeline, ErrorsNameThePass) {
  ir::Graph g;
  g.symbols = {{"batch", 0}};
  ir::Value* x = test::add_input(g, "x", ir::DType::kFloat32, {ir::Dim::symbol(0), ir::Dim(4)});
  ir::Value* y = test::add_input(g, "y", ir::DType::kFloat32, {ir::Dim::symbol(0), ir::Dim(3)});
  g.outputs = {op(g, "Add", {x, y}, {}, "bad_add")};
  Status s = passes::run_pipeline(g).status();
  ASSERT_FALSE(s.is_ok());
  EXPECT_NE(s.message().find("bad_add"), std::string::npos) << s.message();
}

// A Dense (MatMul by a constant weight + bias) with GELU: the report counts both fusions.
TEST(Pipeline, ReportsWhatEachFusionMade) {
  ir::Graph g;
  g.symbols = {{"batch", 0}, {"seq", 16}};
  ir::Value* x = test::add_input(g, "x", ir::DType::kFloat32,
                                 {ir::Dim::symbol(0), ir::Dim::symbol(1), ir::Dim(4)});
  ir::Value* w = g.add_constant("w", test::f32({4, 4}, std::vector<float>(16, 0.5f)));
  ir::Value* h = op(g, "Add", {op(g, "MatMul", {x, w}), test::cf(g, 0.25f)});
  ir::Value* erf = op(g, "Erf", {op(g, "Div", {h, test::cf(g, 1.41421356f)})});
  g.outputs = {
      op(g, "Mul", {op(g, "Mul", {h, op(g, "Add", {erf, test::cf(g, 1.0f)})}), test::cf(g, 0.5f)})};
  auto r = passes::run_pipeline(g);
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  std::map<std::string, std::pair<int, int>> f;
  for (const auto& c : r->fusions) f[c.op] = {c.fused, c.replaced};
  EXPECT_EQ(f["Gelu"], std::make_pair(1, 5)) << ir::print_graph(g);
  EXPECT_EQ(f["Dense"].first, 1) << ir::print_graph(g);
  EXPECT_TRUE(passes::unfused_warnings(g).empty());
}

TEST(Pipeline, WarnsAboutUnfusedWeightsAndAttention) {
  ir::Graph g;
  g.symbols = {{"seq", 16}};
  ir::Value* x = test::add_input(g, "x", ir::DType::kFloat32, {ir::Dim(8), ir::Dim::symbol(0)});
  // a constant on the left: not the x W form the Dense fusion takes
  ir::Value* w = g.add_constant("w_left", test::f32({3, 8}, std::vector<float>(24, 0.5f)));
  ir::Value* y = op(g, "MatMul", {w, x}, {}, "left_matmul");
  // scores of x with itself, softmaxed, with no V MatMul after: not an attention to fuse
  ir::Value* s =
      op(g, "MatMul", {op(g, "Transpose", {x}, {{"perm", std::vector<int64_t>{1, 0}}}), x});
  ir::Value* p = op(g, "Softmax", {op(g, "Div", {s, test::cf(g, 2.0f)})}, {{"axis", int64_t{-1}}},
                    "lonely_softmax");
  g.outputs = {y, p};
  ASSERT_TRUE(passes::run_pipeline(g).is_ok()) << ir::print_graph(g);
  const std::vector<std::string> w8 = passes::unfused_warnings(g);
  ASSERT_EQ(w8.size(), 2u);
  std::string all = w8[0] + "\n" + w8[1];
  EXPECT_NE(all.find("left_matmul"), std::string::npos) << all;
  EXPECT_NE(all.find("w_left"), std::string::npos) << all;
  EXPECT_NE(all.find("lonely_softmax"), std::string::npos) << all;
  EXPECT_NE(all.find("stayed unfused"), std::string::npos) << all;
}

}  // namespace
}  // namespace kiln
