// Code generation of the less common runtime ops (Gemm with transB and a constant B,
// Pow->Square, Concat, Slice with steps, Range/ConstantOfShape/Expand from symbolic shapes,
// Cast, ReduceMean over the batch, default Transpose) against naive C++.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>

#include "compiler/codegen/emit_artifact.h"
#include "mini_runner.h"

namespace kiln::codegen {
namespace {

using ir::Dim;
using ir::DType;

ir::Tensor make_tensor(DType t, std::vector<int64_t> dims, const void* data, size_t bytes) {
  ir::Tensor r;
  r.dtype = t;
  r.dims = std::move(dims);
  r.bytes.resize(bytes);
  std::memcpy(r.bytes.data(), data, bytes);
  return r;
}

TEST(CodegenOps, MiscOpsMatchNaive) {
  ir::Graph g;
  g.symbols = {{"batch", 0}, {"seq", 9}};
  g.opset = 17;
  const Dim B = Dim::symbol(0), S = Dim::symbol(1);
  auto val = [&](const std::string& n, DType t, ir::Shape s) {
    ir::Value* v = g.add_value(n, t);
    v->shape = std::move(s);
    return v;
  };
  auto sym = [&](const std::string& n, std::vector<Dim> d) {
    ir::Value* v = val(n, DType::kInt64, {static_cast<int64_t>(d.size())});
    v->sym_value = d;
    g.add_node("SymbolicTensor", n + "_node", {}, {v});
    return v;
  };
  auto i64 = [&](const std::string& n, std::vector<int64_t> v) {
    return g.add_constant(
        n, make_tensor(DType::kInt64, {static_cast<int64_t>(v.size())}, v.data(), v.size() * 8));
  };
  std::vector<float> bw(7 * 5), cw(7);
  for (size_t i = 0; i < bw.size(); ++i) bw[i] = 0.1f * static_cast<float>(i % 11) - 0.4f;
  for (size_t i = 0; i < cw.size(); ++i) cw[i] = 0.3f * static_cast<float>(i) - 1.f;
  ir::Value* x = val("x", DType::kFloat32, {B, 5});
  ir::Value* ids = val("ids", DType::kInt64, {B, S});
  g.inputs = {x, ids};
  ir::Value* bc = g.add_constant("Bc", make_tensor(DType::kFloat32, {7, 5}, bw.data(), 140));
  ir::Value* cc = g.add_constant("Cc", make_tensor(DType::kFloat32, {7}, cw.data(), 28));
  ir::Value* y1 = val("y1", DType::kFloat32, {B, 7});
  ir::Node* gemm = g.add_node("Gemm", "gemm", {x, bc, cc}, {y1});
  gemm->attrs["transB"] = int64_t{1};
  gemm->attrs["alpha"] = 0.5f;
  gemm->attrs["beta"] = 2.f;
  float two = 2.f;
  ir::Value* y2 = val("y2", DType::kFloat32, {B, 7});
  g.add_node("Pow", "pow", {y1, g.add_constant("two", make_tensor(DType::kFloat32, {}, &two, 4))},
             {y2});
  ir::Value* y3 = val("y3", DType::kFloat32, {B, 14});
  g.add_node("Concat", "concat", {y1, y2}, {y3})->attrs["axis"] = int64_t{-1};
  ir::Value* y4 = val("y4", DType::kFloat32, {B, 7});
  g.add_node("Slice", "slice",
             {y3, i64("st", {1}), i64("en", {INT64_MAX}), i64("ax", {-1}), i64("sp", {2})}, {y4});
  ir::Value* r = val("r", DType::kInt64, {S});
  ir::Value* zero = i64("zero", {0});
  zero->shape = ir::Shape{};
  ir::Value* one = i64("one", {1});
  one->shape = ir::Shape{};
  ir::Value* seqv = val("seqv", DType::kInt64, {});
  seqv->sym_value = std::vector<Dim>{S};
  g.add_node("SymbolicTensor", "seqv_node", {}, {seqv});
  g.add_node("Range", "range", {zero, seqv, one}, {r});
  ir::Value* rf = val("rf", DType::kFloat32, {S});
  g.add_node("Cast", "cast", {r}, {rf})->attrs["to"] = int64_t{1};
  ir::Value* e = val("e", DType::kFloat32, {B, S});
  g.add_node("Expand", "expand", {rf, sym("bs", {B, S})}, {e});
  ir::Value* k = val("k", DType::kFloat32, {B, S});
  float quarter = 0.25f;
  g.add_node("ConstantOfShape", "cos", {sym("bs2", {B, S})}, {k})->attrs["value"] =
      make_tensor(DType::kFloat32, {1}, &quarter, 4);
  ir::Value* ek = val("ek", DType::kFloat32, {B, S});
  g.add_node("Add", "add", {e, k}, {ek});
  ir::Value* sg = val("sg", DType::kFloat32, {B, S});
  g.add_node("Sigmoid", "sigmoid", {ek}, {sg});
  ir::Value* sgt = val("sgt", DType::kFloat32, {S, B});
  g.add_node("Transpose", "transpose", {sg}, {sgt});
  ir::Value* m = val("m", DType::kFloat32, {7});
  ir::Node* rm = g.add_node("ReduceMean", "rmean", {y4}, {m});
  rm->attrs["axes"] = std::vector<int64_t>{0};
  rm->attrs["keepdims"] = int64_t{0};
  ir::Value* tm = val("tm", DType::kFloat32, {7});
  g.add_node("Tanh", "tanh", {m}, {tm});
  ir::Value* y5 = val("y5", DType::kFloat32, {B, 3});
  ir::Node* legacy = g.add_node("Slice", "slice_opset9", {y4}, {y5});  // attributes, not inputs
  legacy->attrs["starts"] = std::vector<int64_t>{0};
  legacy->attrs["ends"] = std::vector<int64_t>{3};
  legacy->attrs["axes"] = std::vector<int64_t>{1};
  g.outputs = {y4, tm, sgt, y5};

  CodegenOptions o;
  o.output_dir = ::testing::TempDir() + "/kiln_codegen_ops_" + std::to_string(getpid());
  o.target = *target::target_from_name("native");
  Status st = emit_artifact(g, o);
  ASSERT_TRUE(st.is_ok()) << st.message();
  {
    MiniRunner run(o.output_dir);
    for (const auto& n : run.model()["nodes"]) EXPECT_NE(n["op"], "SymbolicTensor");

    for (int64_t Bn : {1, 3}) {
      const int64_t Sn = 9 - Bn;
      std::vector<float> xv(Bn * 5);
      for (size_t i = 0; i < xv.size(); ++i) xv[i] = std::sin(static_cast<float>(i));
      std::vector<int64_t> idv(Bn * Sn, 0);
      const int64_t symv[2] = {Bn, Sn};
      std::vector<std::vector<uint8_t>> outs;
      ASSERT_EQ(run.run(symv, {xv.data(), idv.data()}, &outs), "");
      const float* o4 = reinterpret_cast<const float*>(outs[0].data());
      const float* otm = reinterpret_cast<const float*>(outs[1].data());
      const float* osg = reinterpret_cast<const float*>(outs[2].data());
      std::vector<double> mean(7, 0.0);
      for (int64_t b = 0; b < Bn; ++b) {
        double y1r[7], y3r[14];
        for (int j = 0; j < 7; ++j) {
          double acc = 0;
          for (int kk = 0; kk < 5; ++kk) acc += double(xv[b * 5 + kk]) * bw[j * 5 + kk];
          y1r[j] = 0.5 * acc + 2.0 * cw[j];
          y3r[j] = y1r[j];
          y3r[7 + j] = y1r[j] * y1r[j];
        }
        for (int j = 0; j < 7; ++j) {
          ASSERT_NEAR(o4[b * 7 + j], y3r[1 + 2 * j], 1e-5) << b << "," << j;
          mean[j] += y3r[1 + 2 * j] / Bn;
        }
      }
      for (int j = 0; j < 7; ++j) ASSERT_NEAR(otm[j], std::tanh(mean[j]), 1e-5);
      const float* o5 = reinterpret_cast<const float*>(outs[3].data());
      for (int64_t b = 0; b < Bn; ++b)
        for (int j = 0; j < 3; ++j) ASSERT_EQ(o5[b * 3 + j], o4[b * 7 + j]);
      for (int64_t s = 0; s < Sn; ++s)
        for (int64_t b = 0; b < Bn; ++b)
          ASSERT_NEAR(osg[s * Bn + b], 1.0 / (1.0 + std::exp(-(s + 0.25))), 1e-6);
    }
  }
  std::filesystem::remove_all(o.output_dir);
}

// A long chain is split into several translation units (compiled in parallel) that link into
// one model.so; keep_source=false removes them afterwards.
TEST(CodegenOps, LargeGraphIsSplitIntoParts) {
  ir::Graph g;
  g.symbols = {{"n", 64}};
  ir::Value* x = g.add_value("x", DType::kFloat32);
  x->shape = ir::Shape{Dim::symbol(0)};
  g.inputs = {x};
  ir::Value* cur = x;
  const int kChain = 301;
  for (int i = 0; i < kChain; ++i) {
    ir::Value* next = g.add_value("v" + std::to_string(i), DType::kFloat32);
    next->shape = ir::Shape{Dim::symbol(0)};
    g.add_node(ir::Op::kNeg, "neg" + std::to_string(i), {cur}, {next});
    cur = next;
  }
  g.outputs = {cur};
  for (bool keep : {true, false}) {
    CodegenOptions o;
    o.output_dir = ::testing::TempDir() + "/kiln_codegen_split_" + std::to_string(getpid());
    o.target = *target::target_from_name("native");
    o.keep_source = keep;
    Status st = emit_artifact(g, o);
    ASSERT_TRUE(st.is_ok()) << st.message();
    EXPECT_EQ(std::filesystem::exists(o.output_dir + "/model.cpp"), keep);
    EXPECT_EQ(std::filesystem::exists(o.output_dir + "/model_2.cpp"), keep);
    MiniRunner run(o.output_dir);
    EXPECT_EQ(run.model()["nodes"].size(), static_cast<size_t>(kChain));
    EXPECT_EQ(run.model()["arena"]["scale"], nullptr);
    std::vector<float> xv(37);
    for (size_t i = 0; i < xv.size(); ++i) xv[i] = static_cast<float>(i) - 3.f;
    const int64_t n = 37;
    std::vector<std::vector<uint8_t>> outs;
    ASSERT_EQ(run.run(&n, {xv.data()}, &outs), "");
    const float* y = reinterpret_cast<const float*>(outs[0].data());
    for (size_t i = 0; i < xv.size(); ++i) ASSERT_EQ(y[i], -xv[i]);
    std::filesystem::remove_all(o.output_dir);
  }
}

}  // namespace
}  // namespace kiln::codegen
