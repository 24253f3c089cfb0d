// run_pipeline: calls after_pass for every pass, produces the runtime op set, and
// check_pipeline_output reports contract violations.
#include "compiler/passes/pipeline.h"

#include <gtest/gtest.h>

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
  Status s = passes::run_pipeline(g, opts);
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
  Status s = passes::run_pipeline(g);
  ASSERT_FALSE(s.is_ok());
  EXPECT_NE(s.message().find("bad_add"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace kiln
