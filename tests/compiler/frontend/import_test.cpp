// ONNX import: symbols, seq maximum, initializer encodings, external data, opset forms and every
// bad-input error. Models come from make_models.py (generated at build time).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <map>

#include "compiler/frontend/onnx/import.h"
#include "compiler/passes/pipeline.h"
#include "graph_test_util.h"

namespace kiln {
namespace {

std::string model(const std::string& name) {
  return std::string(KILN_TEST_MODELS) + "/" + name;
}

std::unique_ptr<ir::Graph> load(const std::string& name, int64_t max_seq = 0) {
  frontend::ImportOptions opts;
  opts.max_seq = max_seq;
  auto g = frontend::import_onnx(model(name), opts);
  EXPECT_TRUE(g.is_ok()) << g.status().message();
  return g.is_ok() ? std::move(g.value()) : nullptr;
}

std::string import_error(const std::string& name, int64_t max_seq = 0) {
  frontend::ImportOptions opts;
  opts.max_seq = max_seq;
  auto g = frontend::import_onnx(model(name), opts);
  EXPECT_FALSE(g.is_ok()) << name << " imported but should not";
  return g.is_ok() ? "" : g.status().message();
}

template <class T>
std::vector<T> read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  std::vector<T> v(bytes.size() / sizeof(T));
  std::memcpy(v.data(), bytes.data(), v.size() * sizeof(T));
  return v;
}

TEST(Import, SymbolsAreBatchAndSeqAndSharedAcrossInputs) {
  auto g = load("bert_op14.onnx");
  ASSERT_TRUE(g);
  ASSERT_EQ(g->symbols.size(), 2u);
  EXPECT_EQ(g->symbols[0].name, "batch");
  EXPECT_EQ(g->symbols[1].name, "seq");
  EXPECT_EQ(g->symbols[0].max, 0);
  ASSERT_EQ(g->inputs.size(), 3u);
  auto names = g->symbol_names();
  for (const ir::Value* v : g->inputs)
    EXPECT_EQ(ir::shape_str(*v->shape, names), "[batch, seq]") << v->name;
  ASSERT_EQ(g->outputs.size(), 2u);
  EXPECT_EQ(g->outputs[0]->name, "last_hidden_state");
  EXPECT_EQ(g->outputs[1]->name, "pooler_output");
  EXPECT_EQ(ir::shape_str(*g->outputs[0]->shape, names), "[batch, seq, 32]");
  EXPECT_EQ(ir::shape_str(*g->outputs[1]->shape, names), "[batch, 32]");
  EXPECT_EQ(g->opset, 14);
}

TEST(Import, SeqMaxIsThePositionTableSize) {
  auto g = load("bert_op14.onnx");
  ASSERT_TRUE(g);
  EXPECT_EQ(g->symbols[1].max, 64);
}

TEST(Import, SeqMaxDefaultsTo512WhenTheTableIsLarger) {
  auto g = load("bert_long_positions.onnx");
  ASSERT_TRUE(g);
  EXPECT_EQ(g->symbols[g->symbol_index("seq")].max, 512);
  auto g2 = load("bert_long_positions.onnx", 600);
  ASSERT_TRUE(g2);
  EXPECT_EQ(g2->symbols[g2->symbol_index("seq")].max, 600);
}

TEST(Import, MaxSeqOptionOverridesAndIsChecked) {
  auto g = load("bert_op14.onnx", 16);
  ASSERT_TRUE(g);
  EXPECT_EQ(g->symbols[1].max, 16);
  std::string e = import_error("bert_op14.onnx", 100);
  EXPECT_NE(e.find("100"), std::string::npos) << e;
  EXPECT_NE(e.find("64"), std::string::npos) << e;
}

TEST(Import, ExternalDataLoadsAndMatchesEmbeddedWeights) {
  auto a = load("bert_op14.onnx");
  auto b = load("ext/model.onnx");
  ASSERT_TRUE(a && b);
  size_t compared = 0;
  for (const auto& v : a->values()) {
    if (!v->constant || v->constant->numel() < 100) continue;
    for (const auto& w : b->values())
      if (w->name == v->name) {
        ASSERT_TRUE(w->constant);
        EXPECT_EQ(w->constant->bytes, v->constant->bytes) << v->name;
        ++compared;
      }
  }
  EXPECT_GT(compared, 10u);
}

TEST(Import, ExternalDataErrors) {
  std::string e = import_error("ext_short/model.onnx");
  EXPECT_NE(e.find("too short"), std::string::npos) << e;
  EXPECT_NE(e.find("weights.data"), std::string::npos) << e;
  e = import_error("ext_missing/model.onnx");
  EXPECT_NE(e.find("cannot open external data file"), std::string::npos) << e;
  EXPECT_NE(e.find("initializer '"), std::string::npos) << e;
}

TEST(Import, TypedInitializerFieldsConstantsGemmAndSlice) {
  auto g = load("typed.onnx");
  ASSERT_TRUE(g);
  EXPECT_EQ(g->symbols[0].name, "batch");  // the first rank-2 input names its dims batch/seq
  ASSERT_TRUE(passes::run_pipeline(*g).is_ok());
  auto x = read_file<float>(model("typed_x.f32"));
  auto z = read_file<float>(model("typed_z.f32"));
  auto out = test::run_graph(*g, {{"x", test::f32({2, 3}, x)}});
  ASSERT_TRUE(out.is_ok()) << out.status().message();
  const ir::Tensor& t = out.value()["z"];
  ASSERT_EQ(t.dims, (std::vector<int64_t>{2, 2}));
  for (size_t i = 0; i < z.size(); ++i) EXPECT_NEAR(t.data<float>()[i], z[i], 1e-4) << i;
}

TEST(Import, Opset18AxesInputsAndSplit) {
  auto g = load("opset18.onnx");
  ASSERT_TRUE(g);
  auto names = g->symbol_names();
  EXPECT_EQ(ir::shape_str(*g->outputs[0]->shape, names), "[b, s, 2]");
  ASSERT_TRUE(passes::run_pipeline(*g).is_ok());
  EXPECT_EQ(test::count_ops(*g, "Split"), 0);
  EXPECT_EQ(test::count_ops(*g, "Slice"), 2);
  std::vector<float> x = {1, 2, 3, 6, -1, 0, 1, 4};  // [1, 2, 4]
  auto out = test::run_graph(*g, {{"x", test::f32({1, 2, 4}, x)}});
  ASSERT_TRUE(out.is_ok()) << out.status().message();
  const ir::Tensor& y = out.value()["y"];
  // row 0: mean 3 -> d = [-2,-1,0,3] -> [-2*0, -1*3]; row 1: mean 1 -> [-2,-1,0,3] likewise
  EXPECT_EQ(std::vector<float>(y.data<float>(), y.data<float>() + 4),
            (std::vector<float>{0, -3, 0, -3}));
}

TEST(Import, UnknownDimBecomesAFreshSymbol) {
  auto g = load("unknown_dims.onnx");
  ASSERT_TRUE(g);
  ASSERT_EQ(g->symbols.size(), 2u);
  EXPECT_EQ(g->symbols[0].name, "b");
  EXPECT_EQ(ir::shape_str(*g->outputs[0]->shape, g->symbol_names()), "[b, x_dim1, 4]");
}

TEST(Import, Opset20GeluBothApproximations) {
  auto g = load("gelu_none.onnx");
  ASSERT_TRUE(g);
  EXPECT_EQ(g->nodes()[0]->op, ir::Op::kGelu);
  ASSERT_TRUE(passes::run_pipeline(*g).is_ok());
  auto t = load("gelu_tanh.onnx");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->nodes()[0]->op, ir::Op::kGeluTanh);
  EXPECT_FALSE(t->nodes()[0]->has_attr("approximate"));
  ASSERT_TRUE(passes::run_pipeline(*t).is_ok());
}

TEST(Import, EinsumBecomesMatMulTransposeAndMul) {
  auto g = load("einsum.onnx");
  ASSERT_TRUE(g);
  std::map<std::string, int> ops;
  for (const auto& n : g->nodes()) ++ops[ir::op_name(n->op)];
  EXPECT_EQ(ops, (std::map<std::string, int>{
                     {"MatMul", 2}, {"Transpose", 2}, {"Unsqueeze", 1}, {"Mul", 1}}));
  const auto names = g->symbol_names();
  std::map<std::string, const ir::Value*> out;
  for (const ir::Value* v : g->outputs) out[v->name] = v;
  // The projection is MatMul(x, w) with w untouched, as fuse_dense wants it.
  const ir::Node* proj = out.at("proj")->producer;
  ASSERT_TRUE(proj);
  EXPECT_EQ(proj->op, ir::Op::kMatMul);
  EXPECT_EQ(proj->inputs[0]->name, "x");
  EXPECT_EQ(proj->inputs[1]->name, "w");
  EXPECT_EQ(ir::shape_str(*out.at("proj")->shape, names), "[b, s, 6]");
  EXPECT_EQ(ir::shape_str(*out.at("scores")->shape, names), "[b, 2, s, s]");
  EXPECT_EQ(out.at("outer")->producer->op, ir::Op::kMul);
  EXPECT_EQ(ir::shape_str(*out.at("outer")->shape, names), "[s, 5]");
}

// Dynamo exports: a node with the exporter's module path is named after it as the TorchScript
// exporter would name it (a second one in the same module gets _1); others keep their names.
TEST(Import, DynamoModulePathsNameTheNodes) {
  auto g = load("module_paths.onnx");
  ASSERT_TRUE(g);
  std::vector<std::string> names;
  for (const auto& n : g->nodes()) names.push_back(n->name);
  EXPECT_EQ(names, (std::vector<std::string>{"/encoder/layer.0/output/dense/MatMul",
                                             "/encoder/layer.0/output/dense/MatMul_1",
                                             "node_Relu_3", "node_Relu_4"}));
}

TEST(ImportErrors, EinsumOutsideTheLoweredFormsNamesNodeAndEquation) {
  const std::string msg = import_error("einsum_diagonal.onnx");
  EXPECT_NE(msg.find("node 'diag' (Einsum)"), std::string::npos) << msg;
  EXPECT_NE(msg.find("equation 'ii->i' is not supported"), std::string::npos) << msg;
}

TEST(ImportErrors, MissingFile) {
  std::string e = import_error("does_not_exist.onnx");
  EXPECT_NE(e.find("cannot open ONNX model"), std::string::npos) << e;
  EXPECT_NE(e.find("does_not_exist.onnx"), std::string::npos) << e;
}

TEST(ImportErrors, TruncatedAndGarbageFiles) {
  for (const char* f : {"truncated.onnx", "garbage.onnx"}) {
    std::string e = import_error(f);
    EXPECT_NE(e.find(f), std::string::npos) << e;
    EXPECT_TRUE(e.find("corrupt") != std::string::npos) << e;
  }
}

TEST(ImportErrors, UnsupportedOp) {
  EXPECT_NE(
      import_error("unsupported_op.onnx")
          .find("unsupported op 'Foo' (domain '', opset 14, not supported): 1 node, 'foo_node'"),
      std::string::npos);
}

TEST(ImportErrors, CustomDomain) {
  std::string e = import_error("custom_domain.onnx");
  EXPECT_NE(e.find("unsupported op 'FusedThing' (domain 'com.example', opset 3, not supported): "
                   "1 node, 'fused'"),
            std::string::npos)
      << e;
}

TEST(ImportErrors, SubgraphAttribute) {
  std::string e = import_error("subgraph.onnx");
  EXPECT_NE(e.find("if_node"), std::string::npos) << e;
  EXPECT_NE(e.find("subgraph"), std::string::npos) << e;
}

TEST(ImportErrors, UnsupportedDtype) {
  std::string e = import_error("bad_dtype.onnx");
  EXPECT_NE(e.find("initializer 'k'"), std::string::npos) << e;
  EXPECT_NE(e.find("COMPLEX64"), std::string::npos) << e;
}

}  // namespace
}  // namespace kiln
