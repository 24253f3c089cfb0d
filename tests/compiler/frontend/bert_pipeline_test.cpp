// Import + pass pipeline on torch-exported tiny BERTs (opsets 11, 14, 17): the output satisfies
// the pipeline contract, has one LayerNormalization per LayerNorm and one Gelu per FFN, and
// computes what torch computed (checked by binding the symbols and folding the whole graph).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>

#include "compiler/frontend/onnx/import.h"
#include "compiler/passes/pipeline.h"
#include "graph_test_util.h"

namespace kiln {
namespace {

constexpr int kLayers = 2;
constexpr int64_t kBatch = 2, kSeq = 5, kHidden = 32;

std::string model(const std::string& name) {
  return std::string(KILN_TEST_MODELS) + "/" + name;
}

template <class T>
std::vector<T> read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  std::vector<T> v(bytes.size() / sizeof(T));
  std::memcpy(v.data(), bytes.data(), v.size() * sizeof(T));
  return v;
}

// io_dir holds the inputs and torch's outputs written by make_models.py.
std::map<std::string, ir::Tensor> bert_inputs(const std::string& io_dir, bool token_types) {
  std::map<std::string, ir::Tensor> in;
  for (const char* n : {"input_ids", "attention_mask", "token_type_ids"}) {
    if (!token_types && std::string(n) == "token_type_ids") continue;
    in[n] = test::i64({kBatch, kSeq}, read_file<int64_t>(model(io_dir + "/" + n + ".i64")));
  }
  return in;
}

void expect_matches_torch(ir::Graph& g, const std::string& io_dir = "bert_io",
                          bool token_types = true) {
  auto out = test::run_graph(g, bert_inputs(io_dir, token_types));
  ASSERT_TRUE(out.is_ok()) << out.status().message();
  for (const char* name : {"last_hidden_state", "pooler_output"}) {
    auto want = read_file<float>(model(io_dir + "/" + name + ".f32"));
    const ir::Tensor& got = out.value()[name];
    ASSERT_EQ(got.numel(), static_cast<int64_t>(want.size())) << name;
    double max_err = 0;
    for (size_t i = 0; i < want.size(); ++i)
      max_err = std::max(max_err, std::fabs(double(got.data<float>()[i]) - want[i]));
    EXPECT_LT(max_err, 1e-4) << name;
  }
}

class BertPipeline : public ::testing::TestWithParam<int> {};

TEST_P(BertPipeline, ImportedGraphComputesTorchOutputs) {
  auto g = frontend::import_onnx(model("bert_op" + std::to_string(GetParam()) + ".onnx"), {});
  ASSERT_TRUE(g.is_ok()) << g.status().message();
  expect_matches_torch(*g.value());
}

// GELUs left after the pipeline: fuse_dense folds each FFN's Gelu into its Dense (gelu=1).
int gelu_count(const ir::Graph& g) {
  int n = test::count_ops(g, "Gelu");
  for (const auto& node : g.nodes())
    n += node->op == ir::Op::kDense && node->attr_int("gelu", 0) != 0;
  return n;
}

// No MatMul/Gemm with a constant weight survives fuse_dense.
int constant_weight_gemms(const ir::Graph& g) {
  int n = 0;
  for (const auto& node : g.nodes())
    n += (node->op == ir::Op::kMatMul || node->op == ir::Op::kGemm) && node->input(1)->constant;
  return n;
}

// Every LayerNorm is fused: the embeddings' into EmbeddingLayerNorm (no embedding Gather or Add
// left), the 2 per layer into the Dense before them (inputs 4/5).
void expect_layer_norms_fused(const ir::Graph& g, const std::string& dump) {
  EXPECT_EQ(test::count_ops(g, "LayerNormalization"), 0) << dump;
  EXPECT_EQ(test::count_ops(g, "EmbeddingLayerNorm"), 1) << dump;
  EXPECT_EQ(test::count_ops(g, "Add"), 0) << dump;
  int dense_ln = 0;
  for (const auto& n : g.nodes()) dense_ln += n->op == ir::Op::kDense && n->input(4) != nullptr;
  EXPECT_EQ(dense_ln, 2 * kLayers) << dump;
}

TEST_P(BertPipeline, PipelineOutputMeetsTheContract) {
  auto r = frontend::import_onnx(model("bert_op" + std::to_string(GetParam()) + ".onnx"), {});
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  ir::Graph& g = *r.value();
  std::vector<std::string> passes_run;
  passes::PipelineOptions opts;
  opts.after_pass = [&](const std::string& name, const ir::Graph&) { passes_run.push_back(name); };
  Status s = passes::run_pipeline(g, opts).status();
  ASSERT_TRUE(s.is_ok()) << s.message() << "\n" << ir::print_graph(g);
  EXPECT_GE(passes_run.size(), 6u);
  std::string dump = ir::print_graph(g);
  // Embeddings LN in EmbeddingLayerNorm, 2 per layer in their Dense; one GELU per FFN; every
  // weight GEMM is a Dense.
  expect_layer_norms_fused(g, dump);
  EXPECT_EQ(gelu_count(g), kLayers) << dump;
  EXPECT_EQ(constant_weight_gemms(g), 0) << dump;
  EXPECT_EQ(test::count_ops(g, "Erf"), 0) << dump;
  EXPECT_EQ(test::count_ops(g, "ReduceMean"), 0) << dump;
  for (const char* op : {"Shape", "Constant", "Identity", "Dropout", "Split"})
    EXPECT_EQ(test::count_ops(g, op), 0) << op << "\n" << dump;
  auto names = g.symbol_names();
  for (const auto& n : g.nodes()) {
    if (n->op == ir::Op::kReshape) {
      const ir::Value* t = n->input(1);
      EXPECT_TRUE(t->constant || t->sym_value) << n->describe();
    }
  }
  ASSERT_EQ(g.symbols.size(), 2u);
  EXPECT_EQ(g.symbols[0].name, "batch");
  EXPECT_EQ(g.symbols[1].name, "seq");
  EXPECT_EQ(g.symbols[1].max, 64);
  EXPECT_EQ(g.outputs[0]->name, "last_hidden_state");
  EXPECT_EQ(g.outputs[1]->name, "pooler_output");
  EXPECT_EQ(ir::shape_str(*g.outputs[0]->shape, names), "[batch, seq, 32]");
  // The fused graph still computes what torch computed.
  expect_matches_torch(g);
}

INSTANTIATE_TEST_SUITE_P(Opsets, BertPipeline, ::testing::Values(11, 14, 17));

// Every layer's self-attention becomes one Attention with packed Q/K/V, whatever the head count
// (4, 5, 3 heads of 16, 12, 12), mask value (finfo.min, -10000) and opset.
class BertAttention : public ::testing::TestWithParam<std::tuple<std::string, int>> {};

TEST_P(BertAttention, EveryLayerFuses) {
  const auto& [tag, opset] = GetParam();
  auto r =
      frontend::import_onnx(model("attn/" + tag + "_op" + std::to_string(opset) + ".onnx"), {});
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  ir::Graph& g = *r.value();
  Status s = passes::run_pipeline(g).status();
  ASSERT_TRUE(s.is_ok()) << s.message() << "\n" << ir::print_graph(g);
  const std::string dump = ir::print_graph(g);
  EXPECT_EQ(test::count_ops(g, "Attention"), kLayers) << dump;
  for (const char* op : {"Softmax", "Transpose"})
    EXPECT_EQ(test::count_ops(g, op), 0) << op << dump;
  for (const auto& n : g.nodes())
    if (n->op == ir::Op::kAttention) {
      EXPECT_EQ(n->attr_int("qkv_packed", 0), 1) << n->describe();
      ASSERT_TRUE(n->input(3)) << n->describe();  // the mask, kept as computed
    }
  expect_matches_torch(g, "attn/" + tag + "_io");
}

INSTANTIATE_TEST_SUITE_P(HeadsMasksOpsets, BertAttention,
                         ::testing::Combine(::testing::Values("h64_finfo", "h64_10000", "h60_finfo",
                                                              "h60_10000", "h36_finfo",
                                                              "h36_10000"),
                                            ::testing::Values(13, 14, 17)));

TEST(BertPipeline, ExternalDataModelCompiles) {
  auto r = frontend::import_onnx(model("ext/model.onnx"), {});
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  ASSERT_TRUE(passes::run_pipeline(*r.value()).is_ok());
  expect_matches_torch(*r.value());
}

TEST(BertPipeline, UnfoldedExportWithoutTokenTypes) {
  auto r = frontend::import_onnx(model("bert_nofold_op13.onnx"), {});
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  ir::Graph& g = *r.value();
  EXPECT_EQ(g.inputs.size(), 2u);  // initializers listed as inputs are not graph inputs
  Status s = passes::run_pipeline(g).status();
  ASSERT_TRUE(s.is_ok()) << s.message();
  std::string dump = ir::print_graph(g);
  expect_layer_norms_fused(g, dump);
  EXPECT_EQ(gelu_count(g), kLayers) << dump;
  EXPECT_EQ(constant_weight_gemms(g), 0) << dump;
  EXPECT_EQ(test::count_ops(g, "Shape"), 0) << dump;
  EXPECT_EQ(test::count_ops(g, "Constant"), 0) << dump;
  EXPECT_EQ(g.symbols[1].max, 64);
  expect_matches_torch(g, "bert_io_nott", false);
}

}  // namespace
}  // namespace kiln
