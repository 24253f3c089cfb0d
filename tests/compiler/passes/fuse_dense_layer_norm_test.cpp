// fuse_dense_layer_norm: Dense -> LayerNormalization (last axis, constant scale / bias) becomes
// one Dense with inputs 4/5 and ln_epsilon computing the same values; each condition that rules
// the fusion out leaves the graph as it was.
#include <gtest/gtest.h>

#include "compiler/passes/pipeline.h"
#include "graph_test_util.h"

namespace kiln {
namespace {

using ir::Dim;
using test::op;

constexpr int64_t kK = 5, kN = 6;

std::vector<float> ramp(size_t n, float scale, float offset) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = scale * static_cast<float>((i * 7) % 11) + offset;
  return v;
}

ir::Value* constant(ir::Graph& g, const std::string& name, std::vector<int64_t> dims, float scale,
                    float offset) {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  return g.add_constant(name, test::f32(dims, ramp(static_cast<size_t>(n), scale, offset)));
}

std::map<std::string, ir::Tensor> sample_inputs() {
  return {{"x", test::f32({2, 3, kK}, ramp(2 * 3 * kK, 0.2f, -1.0f))},
          {"r", test::f32({2, 3, kN}, ramp(2 * 3 * kN, -0.15f, 0.7f))}};
}

enum Variant {
  kFuses,
  kNoLnBias,
  kTwoConsumers,
  kDenseIsGraphOutput,
  kAxisNotLast,
  kScaleNotConstant,
  kMeanOutputUsed,
};

// x [batch, 3, K], r [batch, 3, N] -> Dense(x, W, b, r) {gelu} -> LayerNormalization.
void build(ir::Graph& g, Variant v) {
  g.symbols = {{"batch", 0}};
  ir::Value* x = test::add_input(g, "x", ir::DType::kFloat32, {Dim::symbol(0), Dim(3), Dim(kK)});
  ir::Value* r = test::add_input(g, "r", ir::DType::kFloat32, {Dim::symbol(0), Dim(3), Dim(kN)});
  // Over two axes, scale / bias cover [3, N] (the evaluator does not broadcast them).
  const std::vector<int64_t> affine =
      v == kAxisNotLast ? std::vector<int64_t>{3, kN} : std::vector<int64_t>{kN};
  ir::Value* scale = constant(g, "gamma", affine, 0.1f, 0.5f);
  if (v == kScaleNotConstant)
    scale = test::add_input(g, "gamma_in", ir::DType::kFloat32, {Dim(kN)});
  ir::Value* beta = v == kNoLnBias ? nullptr : constant(g, "beta", affine, 0.05f, -0.2f);
  ir::Value* y =
      op(g, "Dense",
         {x, constant(g, "W", {kK, kN}, 0.1f, -0.5f), constant(g, "b", {kN}, 0.3f, -1.f), r},
         {{"gelu", int64_t{1}}}, "/layer/output/dense/Dense");
  std::vector<ir::Value*> ln_in = {y, scale};
  if (beta) ln_in.push_back(beta);
  ir::Value* z = g.add_value("z", ir::DType::kFloat32);
  std::vector<ir::Value*> outs = {z};
  ir::Value* mean = nullptr;
  if (v == kMeanOutputUsed) {
    mean = g.add_value("mean", ir::DType::kFloat32);
    outs.push_back(mean);
  }
  ir::Node* ln = g.add_node(ir::Op::kLayerNormalization, "/layer/output/LayerNorm", ln_in, outs);
  ln->attrs["epsilon"] = 1e-3f;
  ln->attrs["axis"] = int64_t{v == kAxisNotLast ? 1 : -1};
  g.outputs = {z};
  if (v == kTwoConsumers) g.outputs.push_back(op(g, "Relu", {y}));
  if (v == kDenseIsGraphOutput) g.outputs.push_back(y);
  if (v == kMeanOutputUsed) g.outputs.push_back(mean);
}

std::map<std::string, ir::Tensor> inputs_for(Variant v) {
  auto in = sample_inputs();
  if (v == kScaleNotConstant) in["gamma_in"] = test::f32({kN}, ramp(kN, 0.1f, 0.5f));
  return in;
}

// Runs the pass; checks that the outputs keep their values. Returns whether it fused.
bool fuse_and_compare(Variant v) {
  ir::Graph ref, g, copy;
  build(ref, v);
  EXPECT_TRUE(ir::infer_shapes(ref).is_ok());
  auto want = test::run_graph(ref, inputs_for(v));
  EXPECT_TRUE(want.is_ok()) << want.status().message();
  for (ir::Graph* h : {&g, &copy}) {
    build(*h, v);
    EXPECT_TRUE(ir::infer_shapes(*h).is_ok());
    EXPECT_TRUE(passes::fuse_dense_layer_norm(*h).is_ok());
    EXPECT_TRUE(passes::eliminate_dead_code(*h).is_ok());
    Status st = ir::infer_shapes(*h);
    EXPECT_TRUE(st.is_ok()) << st.message() << "\n" << ir::print_graph(*h);
  }
  auto got = test::run_graph(copy, inputs_for(v));
  EXPECT_TRUE(got.is_ok()) << got.status().message();
  if (!want.is_ok() || !got.is_ok()) return false;
  for (const auto& [name, a] : want.value()) {
    EXPECT_TRUE(got.value().count(name)) << "output '" << name << "' lost its name";
    const ir::Tensor& b = got.value()[name];
    EXPECT_EQ(a.dims, b.dims) << name;
    for (int64_t i = 0; i < a.numel() && a.dims == b.dims; ++i)
      EXPECT_NEAR(a.data<float>()[i], b.data<float>()[i], 2e-5) << name << "[" << i << "]";
  }
  const bool fused = test::count_ops(g, "LayerNormalization") == 0;
  if (fused) {
    EXPECT_EQ(g.nodes().size(), 1u) << ir::print_graph(g);
    const ir::Node& d = *g.nodes()[0];
    EXPECT_EQ(d.op, ir::Op::kDense);
    EXPECT_EQ(d.name, "/layer/output/dense/Dense");
    EXPECT_EQ(d.attr_int("gelu", 0), 1);
    EXPECT_FLOAT_EQ(d.attr_float("ln_epsilon", 0), 1e-3f);
    EXPECT_NE(d.input(3), nullptr);  // the residual stays
    EXPECT_NE(d.input(4), nullptr);
    EXPECT_EQ(*d.input(4)->shape, ir::Shape{Dim(kN)});
    EXPECT_EQ(d.input(5) != nullptr, v != kNoLnBias);
    EXPECT_EQ(d.outputs[0]->name, "z");
    EXPECT_EQ(d.outputs[0], g.outputs[0]);
  }
  return fused;
}

TEST(FuseDenseLayerNorm, FusesIntoTheDense) {
  EXPECT_TRUE(fuse_and_compare(kFuses));
}

TEST(FuseDenseLayerNorm, WithoutLayerNormBias) {
  EXPECT_TRUE(fuse_and_compare(kNoLnBias));
}

TEST(FuseDenseLayerNormNegative, DenseOutputWithAnotherConsumer) {
  EXPECT_FALSE(fuse_and_compare(kTwoConsumers));
}

TEST(FuseDenseLayerNormNegative, DenseOutputIsAGraphOutput) {
  EXPECT_FALSE(fuse_and_compare(kDenseIsGraphOutput));
}

TEST(FuseDenseLayerNormNegative, LayerNormOverMoreThanTheLastAxis) {
  EXPECT_FALSE(fuse_and_compare(kAxisNotLast));
}

TEST(FuseDenseLayerNormNegative, ScaleIsNotAConstant) {
  EXPECT_FALSE(fuse_and_compare(kScaleNotConstant));
}

TEST(FuseDenseLayerNormNegative, MeanOutputIsUsed) {
  ir::Graph g;
  build(g, kMeanOutputUsed);
  ASSERT_TRUE(ir::infer_shapes(g).is_ok());
  ASSERT_TRUE(passes::fuse_dense_layer_norm(g).is_ok());
  EXPECT_EQ(test::count_ops(g, "LayerNormalization"), 1);
  EXPECT_EQ(test::count_ops(g, "Dense"), 1);
}

TEST(FuseDenseLayerNorm, PipelineFusesBertSublayerOutput) {
  // MatMul + bias + residual Add + LayerNorm through the whole pipeline: one Dense node.
  ir::Graph g;
  g.symbols = {{"batch", 0}};
  ir::Value* x = test::add_input(g, "x", ir::DType::kFloat32, {Dim::symbol(0), Dim(3), Dim(kK)});
  ir::Value* r = test::add_input(g, "r", ir::DType::kFloat32, {Dim::symbol(0), Dim(3), Dim(kN)});
  ir::Value* mm = op(g, "MatMul", {x, constant(g, "W", {kK, kN}, 0.1f, -0.5f)});
  ir::Value* y = op(g, "Add", {op(g, "Add", {mm, constant(g, "b", {kN}, 0.3f, -1.f)}), r});
  g.outputs = {op(g, "LayerNormalization",
                  {y, constant(g, "gamma", {kN}, 0.1f, 0.5f), constant(g, "beta", {kN}, 0.1f, 0.f)},
                  {{"axis", int64_t{-1}}, {"epsilon", 1e-5f}})};
  ASSERT_TRUE(passes::run_pipeline(g, {}).is_ok()) << ir::print_graph(g);
  ASSERT_EQ(g.nodes().size(), 1u) << ir::print_graph(g);
  EXPECT_EQ(g.nodes()[0]->op, ir::Op::kDense);
  EXPECT_NE(g.nodes()[0]->input(4), nullptr);
}

}  // namespace
}  // namespace kiln
