// fuse_dense: MatMul/Gemm with a constant weight plus bias Add, Gelu and residual Add (each
// optional, in either operand order) become one Dense computing the same values; chains that
// cannot be absorbed (two consumers, graph output in the middle, wrong shapes) stay as they are.
#include <gtest/gtest.h>

#include <cmath>

#include "graph_test_util.h"

namespace kiln {
namespace {

using ir::Dim;
using test::op;

constexpr int64_t kK = 5, kN = 4;

std::vector<float> ramp(size_t n, float scale, float offset) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = scale * static_cast<float>((i * 7) % 11) + offset;
  return v;
}

ir::Value* weight(ir::Graph& g, std::vector<int64_t> dims) {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  return g.add_constant("W", test::f32(dims, ramp(static_cast<size_t>(n), 0.1f, -0.5f)));
}

ir::Value* bias(ir::Graph& g, std::vector<int64_t> dims) {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  return g.add_constant("b", test::f32(dims, ramp(static_cast<size_t>(n), 0.3f, -1.0f)));
}

// x [batch, 3, K] and r [batch, 3, N] inputs.
struct Inputs {
  ir::Value* x;
  ir::Value* r;
  explicit Inputs(ir::Graph& g) {
    g.symbols = {{"batch", 0}};
    x = test::add_input(g, "x", ir::DType::kFloat32, {Dim::symbol(0), Dim(3), Dim(kK)});
    r = test::add_input(g, "r", ir::DType::kFloat32, {Dim::symbol(0), Dim(3), Dim(kN)});
  }
};

std::map<std::string, ir::Tensor> sample_inputs() {
  return {{"x", test::f32({2, 3, kK}, ramp(2 * 3 * kK, 0.2f, -1.0f))},
          {"r", test::f32({2, 3, kN}, ramp(2 * 3 * kN, -0.15f, 0.7f))}};
}

// Runs fuse_dense (+ dead code elimination) on a graph built by `build`, checks that every graph
// output keeps its values, and returns the fused graph's text for further checks.
template <class Build>
void fuse_and_compare(Build build, ir::Graph& fused) {
  ir::Graph ref;
  build(ref);
  ASSERT_TRUE(ir::infer_shapes(ref).is_ok());
  auto want = test::run_graph(ref, sample_inputs());
  ASSERT_TRUE(want.is_ok()) << want.status().message();

  build(fused);
  ASSERT_TRUE(ir::infer_shapes(fused).is_ok());
  ASSERT_TRUE(passes::fuse_dense(fused).is_ok());
  ASSERT_TRUE(passes::eliminate_dead_code(fused).is_ok());
  Status st = ir::infer_shapes(fused);
  ASSERT_TRUE(st.is_ok()) << st.message() << "\n" << ir::print_graph(fused);

  ir::Graph copy;
  build(copy);
  ASSERT_TRUE(ir::infer_shapes(copy).is_ok());
  ASSERT_TRUE(passes::fuse_dense(copy).is_ok());
  ASSERT_TRUE(passes::eliminate_dead_code(copy).is_ok());
  ASSERT_TRUE(ir::infer_shapes(copy).is_ok());
  auto got = test::run_graph(copy, sample_inputs());
  ASSERT_TRUE(got.is_ok()) << got.status().message();
  ASSERT_EQ(want.value().size(), got.value().size());
  for (const auto& kv : want.value()) {
    const std::string& name = kv.first;
    const ir::Tensor& a = kv.second;
    ASSERT_TRUE(got.value().count(name)) << "output '" << name << "' lost its name";
    const ir::Tensor& b = got.value()[name];
    ASSERT_EQ(a.dims, b.dims) << name;
    for (int64_t i = 0; i < a.numel(); ++i)
      EXPECT_NEAR(a.data<float>()[i], b.data<float>()[i], 1e-5) << name << "[" << i << "]";
  }
}

const ir::Node* only_dense(const ir::Graph& g) {
  const ir::Node* d = nullptr;
  for (const auto& n : g.nodes())
    if (n->op == ir::Op::kDense) {
      EXPECT_EQ(d, nullptr) << "more than one Dense:\n" << ir::print_graph(g);
      d = n.get();
    }
  EXPECT_NE(d, nullptr) << "no Dense:\n" << ir::print_graph(g);
  return d;
}

// Epilogue shapes: bias shape, operand orders.
struct Chain {
  std::vector<int64_t> bias_dims;
  bool bias_first;      // Add(bias, mm) instead of Add(mm, bias)
  bool residual_first;  // Add(r, y) instead of Add(y, r)
};

class FuseDenseChain : public ::testing::TestWithParam<Chain> {};

TEST_P(FuseDenseChain, MatMulBiasGeluResidualBecomeOneDense) {
  const Chain c = GetParam();
  auto build = [&](ir::Graph& g) {
    Inputs in(g);
    ir::Value* mm = op(g, "MatMul", {in.x, weight(g, {kK, kN})}, {}, "/layer/dense/MatMul");
    ir::Value* b = bias(g, c.bias_dims);
    ir::Value* biased = op(
        g, "Add", c.bias_first ? std::vector<ir::Value*>{b, mm} : std::vector<ir::Value*>{mm, b});
    ir::Value* act = op(g, "Gelu", {biased});
    ir::Value* y = op(
        g, "Add",
        c.residual_first ? std::vector<ir::Value*>{in.r, act} : std::vector<ir::Value*>{act, in.r});
    g.outputs = {y};
  };
  ir::Graph g;
  fuse_and_compare(build, g);
  ASSERT_EQ(g.nodes().size(), 1u) << ir::print_graph(g);
  const ir::Node* d = only_dense(g);
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->name, "/layer/dense/Dense");
  EXPECT_EQ(d->attr_int("gelu", 0), 1);
  EXPECT_EQ(d->input(0)->name, "x");
  ASSERT_NE(d->input(2), nullptr);
  EXPECT_EQ(*d->input(2)->shape, ir::Shape{Dim(kN)});
  ASSERT_NE(d->input(3), nullptr);
  EXPECT_EQ(d->input(3)->name, "r");
  EXPECT_EQ(d->outputs[0], g.outputs[0]);
}

INSTANTIATE_TEST_SUITE_P(Shapes, FuseDenseChain,
                         ::testing::Values(Chain{{kN}, false, false}, Chain{{kN}, true, true},
                                           Chain{{1, kN}, true, false},
                                           Chain{{1, 1, kN}, false, true},
                                           Chain{{1}, false, false}));

TEST(FuseDense, EachEpilogueStepIsOptional) {
  // MatMul + residual only; MatMul + Gelu only; bare MatMul.
  for (int which = 0; which < 3; ++which) {
    auto build = [&](ir::Graph& g) {
      Inputs in(g);
      ir::Value* y = op(g, "MatMul", {in.x, weight(g, {kK, kN})});
      if (which == 0) y = op(g, "Add", {y, in.r});
      if (which == 1) y = op(g, "Gelu", {y});
      g.outputs = {op(g, "Relu", {y}, {}, "after")};
    };
    ir::Graph g;
    fuse_and_compare(build, g);
    const ir::Node* d = only_dense(g);
    ASSERT_NE(d, nullptr);
    EXPECT_EQ(g.nodes().size(), 2u) << ir::print_graph(g);
    EXPECT_EQ(d->input(2), nullptr);
    EXPECT_EQ(d->input(3) != nullptr, which == 0);
    EXPECT_EQ(d->attr_int("gelu", 0), which == 1 ? 1 : 0);
  }
}

TEST(FuseDense, GemmTransBAlphaBetaAreFoldedIntoWeightAndBias) {
  auto build = [](ir::Graph& g) {
    g.symbols = {{"batch", 0}};
    ir::Value* x = test::add_input(g, "x", ir::DType::kFloat32, {Dim::symbol(0), Dim(kK)});
    std::map<std::string, ir::Attribute> attrs = {
        {"transB", int64_t{1}}, {"alpha", 0.5f}, {"beta", 2.0f}};
    ir::Value* y = op(g, "Gemm", {x, weight(g, {kN, kK}), bias(g, {1, kN})}, attrs);
    g.outputs = {op(g, "Gelu", {y})};
  };
  ir::Graph ref;
  build(ref);
  ASSERT_TRUE(ir::infer_shapes(ref).is_ok());
  std::map<std::string, ir::Tensor> in = {{"x", test::f32({3, kK}, ramp(3 * kK, 0.2f, -1.0f))}};
  auto want = test::run_graph(ref, in);
  ASSERT_TRUE(want.is_ok()) << want.status().message();

  ir::Graph g;
  build(g);
  ASSERT_TRUE(ir::infer_shapes(g).is_ok());
  ASSERT_TRUE(passes::fuse_dense(g).is_ok());
  ASSERT_TRUE(passes::eliminate_dead_code(g).is_ok());
  ASSERT_TRUE(ir::infer_shapes(g).is_ok());
  const ir::Node* d = only_dense(g);
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(g.nodes().size(), 1u) << ir::print_graph(g);
  EXPECT_EQ(d->input(1)->constant->dims, (std::vector<int64_t>{kK, kN}));
  EXPECT_EQ(d->attr_int("gelu", 0), 1);
  auto got = test::run_graph(g, in);
  ASSERT_TRUE(got.is_ok()) << got.status().message();
  const ir::Tensor &a = want.value().begin()->second, &b = got.value().begin()->second;
  for (int64_t i = 0; i < a.numel(); ++i)
    EXPECT_NEAR(a.data<float>()[i], b.data<float>()[i], 1e-5) << i;
}

TEST(FuseDenseNegative, GemmWithTransAIsNotFused) {
  ir::Graph g;
  g.symbols = {{"batch", 0}};
  ir::Value* x = test::add_input(g, "x", ir::DType::kFloat32, {Dim(kK), Dim::symbol(0)});
  g.outputs = {op(g, "Gemm", {x, weight(g, {kK, kN})}, {{"transA", int64_t{1}}})};
  ASSERT_TRUE(ir::infer_shapes(g).is_ok());
  ASSERT_TRUE(passes::fuse_dense(g).is_ok());
  EXPECT_EQ(test::count_ops(g, "Dense"), 0);
}

TEST(FuseDenseNegative, NonConstantOr3DWeightIsNotFused) {
  ir::Graph g;
  Inputs in(g);
  ir::Value* w = test::add_input(g, "w", ir::DType::kFloat32, {Dim(kK), Dim(kN)});
  ir::Value* a = op(g, "MatMul", {in.x, w});
  ir::Value* b = op(g, "MatMul", {in.x, weight(g, {1, kK, kN})});
  g.outputs = {a, b};
  ASSERT_TRUE(ir::infer_shapes(g).is_ok());
  ASSERT_TRUE(passes::fuse_dense(g).is_ok());
  EXPECT_EQ(test::count_ops(g, "Dense"), 0);
  EXPECT_EQ(test::count_ops(g, "MatMul"), 2);
}

// Each case: the MatMul becomes a Dense but the Add after it stays a separate node.
TEST(FuseDenseNegative, AddIsNotAbsorbedWhenItCannotBe) {
  enum Case {
    kTwoConsumers,
    kGraphOutputInTheMiddle,
    kBiasWrongShape,
    kBiasTooLong,
    kResidualBroadcasts
  };
  for (Case c : {kTwoConsumers, kGraphOutputInTheMiddle, kBiasWrongShape, kBiasTooLong,
                 kResidualBroadcasts}) {
    SCOPED_TRACE(static_cast<int>(c));
    auto build = [&](ir::Graph& g) {
      Inputs in(g);
      ir::Value* mm = op(g, "MatMul", {in.x, weight(g, {kK, kN})});
      ir::Value* other = nullptr;
      switch (c) {
        case kTwoConsumers:
        case kGraphOutputInTheMiddle:
          other = bias(g, {kN});
          break;
        case kBiasWrongShape:
          other = bias(g, {3, kN});  // a constant that varies along another axis
          break;
        case kBiasTooLong:
          other = bias(g, {1, 1, 1, kN});  // would raise the rank
          break;
        case kResidualBroadcasts:  // not exactly the output's shape
          other = test::add_input(g, "r2", ir::DType::kFloat32, {Dim(3), Dim(kN)});
          break;
      }
      ir::Value* y = op(g, "Add", {mm, other});
      g.outputs = {y};
      if (c == kTwoConsumers) g.outputs.push_back(op(g, "Relu", {mm}));
      if (c == kGraphOutputInTheMiddle) g.outputs.push_back(mm);
    };
    ir::Graph g;
    if (c == kResidualBroadcasts) {  // r2 has no sample value: check the structure only
      build(g);
      ASSERT_TRUE(ir::infer_shapes(g).is_ok());
      ASSERT_TRUE(passes::fuse_dense(g).is_ok());
      ASSERT_TRUE(passes::eliminate_dead_code(g).is_ok());
    } else {
      fuse_and_compare(build, g);
    }
    const ir::Node* d = only_dense(g);
    ASSERT_NE(d, nullptr);
    EXPECT_EQ(d->input(2), nullptr);
    EXPECT_EQ(d->input(3), nullptr);
    EXPECT_EQ(test::count_ops(g, "Add"), 1) << ir::print_graph(g);
  }
}

TEST(FuseDenseNegative, TanhGeluIsNotAbsorbed) {
  ir::Graph g;
  Inputs in(g);
  ir::Value* mm = op(g, "MatMul", {in.x, weight(g, {kK, kN})});
  g.outputs = {op(g, "GeluTanh", {mm})};
  ASSERT_TRUE(ir::infer_shapes(g).is_ok());
  ASSERT_TRUE(passes::fuse_dense(g).is_ok());
  ASSERT_TRUE(passes::eliminate_dead_code(g).is_ok());
  const ir::Node* d = only_dense(g);
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->attr_int("gelu", 0), 0);
  EXPECT_EQ(test::count_ops(g, "GeluTanh"), 1);
}

TEST(FuseDense, ResidualProducedLaterIsOrderedBeforeTheDense) {
  // The residual's producer comes after the MatMul in node order: topo_sort must fix it.
  auto build = [](ir::Graph& g) {
    Inputs in(g);
    ir::Value* mm = op(g, "MatMul", {in.x, weight(g, {kK, kN})});
    ir::Value* r = op(g, "Relu", {in.r});
    g.outputs = {op(g, "Add", {mm, r})};
  };
  ir::Graph g;
  fuse_and_compare(build, g);
  ASSERT_EQ(g.nodes().size(), 2u);
  EXPECT_EQ(g.nodes()[0]->op, ir::Op::kRelu);
  EXPECT_EQ(g.nodes()[1]->op, ir::Op::kDense);
}

}  // namespace
}  // namespace kiln
