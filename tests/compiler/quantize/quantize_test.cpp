// quantize_int8: which nodes get marked (Dense weights, embedding Gathers), exclude patterns
// (glob over node and weight names), and the warnings for unused patterns and for models with
// nothing to quantize.
#include "compiler/quantize/quantize.h"

#include <gtest/gtest.h>

#include "graph_test_util.h"

namespace kiln {
namespace {

using ir::Dim;
using test::op;

bool mentions(const std::vector<std::string>& warnings, const std::string& text) {
  for (const auto& w : warnings)
    if (w.find(text) != std::string::npos) return true;
  return false;
}

// ids -> Gather(word_embeddings [100, 8]) -> Dense(layer.0 W) -> Dense(pooler W) -> Gather(pos
// table [4, 8], axis 1: not an embedding lookup) -> Softmax.
struct Model {
  ir::Graph g;
  ir::Node *embed, *layer, *pooler, *other_gather;
  Model() {
    g.symbols = {{"batch", 0}, {"seq", 8}};
    ir::Value* ids =
        test::add_input(g, "input_ids", ir::DType::kInt64, {Dim::symbol(0), Dim::symbol(1)});
    ir::Value* table = g.add_constant("embeddings.word_embeddings.weight",
                                      test::f32({100, 8}, std::vector<float>(800, 0.5f)));
    ir::Value* w1 = g.add_constant("encoder.layer.0.dense.weight",
                                   test::f32({8, 8}, std::vector<float>(64, 1)));
    ir::Value* w2 =
        g.add_constant("pooler.dense.weight", test::f32({8, 8}, std::vector<float>(64, 1)));
    ir::Value* t = g.add_constant("small", test::f32({4, 8}, std::vector<float>(32, 1)));
    ir::Value* e = op(g, "Gather", {table, ids}, {}, "/embeddings/word_embeddings/Gather");
    ir::Value* h = op(g, "Dense", {e, w1}, {{"gelu", int64_t{0}}}, "/encoder/layer.0/Dense");
    ir::Value* p = op(g, "Dense", {h, w2}, {{"gelu", int64_t{0}}}, "/pooler/Dense");
    ir::Value* q = op(g, "Gather", {t, ids}, {{"axis", int64_t{1}}}, "/other/Gather");
    g.outputs = {p, q};
    embed = e->producer, layer = h->producer, pooler = p->producer, other_gather = q->producer;
  }
};

TEST(GlobMatch, StarQuestionAndWholeString) {
  using quantize::glob_match;
  EXPECT_TRUE(glob_match("*", ""));
  EXPECT_TRUE(glob_match("*", "/a/b"));
  EXPECT_TRUE(glob_match("/pooler/*", "/pooler/Dense"));
  EXPECT_TRUE(glob_match("*pooler*", "/pooler/Dense"));
  EXPECT_TRUE(glob_match("*layer.?/*", "/encoder/layer.3/Dense"));
  EXPECT_FALSE(glob_match("*layer.?/*", "/encoder/layer.11/Dense"));
  EXPECT_TRUE(glob_match("*layer.1?/*", "/encoder/layer.11/Dense"));
  EXPECT_FALSE(glob_match("pooler", "/pooler/Dense"));  // whole string, not a substring
  EXPECT_TRUE(glob_match("a**b", "ab"));
  EXPECT_TRUE(glob_match("*a*b*c", "xxaxxbxxbc"));
  EXPECT_FALSE(glob_match("*a*b*c", "xxaxxbxxcb"));
  EXPECT_FALSE(glob_match("?", ""));
}

TEST(QuantizeInt8, MarksDenseAndEmbeddingGathers) {
  Model m;
  auto r = quantize::quantize_int8(m.g, {});
  ASSERT_TRUE(static_cast<bool>(r)) << r.status().message();
  EXPECT_EQ(r->quantized, (std::vector<std::string>{"/encoder/layer.0/Dense", "/pooler/Dense"}));
  EXPECT_EQ(r->embeddings, (std::vector<std::string>{"/embeddings/word_embeddings/Gather"}));
  EXPECT_TRUE(r->excluded.empty());
  EXPECT_TRUE(r->warnings.empty());
  EXPECT_TRUE(quantize::is_quantized(*m.embed));
  EXPECT_TRUE(quantize::is_quantized(*m.layer));
  EXPECT_TRUE(quantize::is_quantized(*m.pooler));
  EXPECT_FALSE(quantize::is_quantized(*m.other_gather));  // axis 1: not an embedding lookup
}

TEST(QuantizeInt8, ExcludeByNodeNameOrWeightName) {
  Model m;
  auto r = quantize::quantize_int8(m.g, {{"/pooler/*", "*word_embeddings.weight"}});
  ASSERT_TRUE(static_cast<bool>(r));
  EXPECT_EQ(r->quantized, (std::vector<std::string>{"/encoder/layer.0/Dense"}));
  EXPECT_TRUE(r->embeddings.empty());
  EXPECT_EQ(r->excluded,
            (std::vector<std::string>{"/embeddings/word_embeddings/Gather", "/pooler/Dense"}));
  EXPECT_TRUE(r->warnings.empty());
  EXPECT_FALSE(quantize::is_quantized(*m.pooler));
  EXPECT_FALSE(quantize::is_quantized(*m.embed));

  Model by_weight;
  r = quantize::quantize_int8(by_weight.g, {{"encoder.layer.?.dense.weight"}});
  ASSERT_TRUE(static_cast<bool>(r));
  EXPECT_EQ(r->excluded, (std::vector<std::string>{"/encoder/layer.0/Dense"}));
}

TEST(QuantizeInt8, WarnsAboutPatternsThatMatchNothing) {
  Model m;
  auto r = quantize::quantize_int8(m.g, {{"*pooler*", "/decoder/*"}});
  ASSERT_TRUE(static_cast<bool>(r));
  ASSERT_EQ(r->warnings.size(), 1u);
  EXPECT_NE(r->warnings[0].find("'/decoder/*' matches no"), std::string::npos) << r->warnings[0];
}

TEST(QuantizeInt8, WarnsWhenNothingIsQuantizable) {
  ir::Graph g;
  ir::Value* x = test::add_input(g, "x", ir::DType::kFloat32, {Dim(2), Dim(3)});
  g.outputs = {op(g, "Softmax", {x}, {{"axis", int64_t{-1}}})};
  auto r = quantize::quantize_int8(g, {});
  ASSERT_TRUE(static_cast<bool>(r));
  EXPECT_TRUE(r->quantized.empty());
  EXPECT_TRUE(mentions(r->warnings, "no quantizable layer")) << r->warnings.size();
  EXPECT_TRUE(mentions(r->warnings, "the artifact is FP32"));

  Model all;
  r = quantize::quantize_int8(all.g, {{"*"}});
  ASSERT_TRUE(static_cast<bool>(r));
  EXPECT_TRUE(mentions(r->warnings, "every quantizable layer is excluded"));
}

// The Dense weight group (s8_pack.h): the attribute carries the effective group, none when one
// group would cover K (per channel, the blob and the generated code as before groups); embedding
// Gathers never get it; an invalid group is an error naming it.
TEST(QuantizeInt8, DenseWeightGroupAttribute) {
  ir::Graph g;
  ir::Value* x = test::add_input(g, "x", ir::DType::kFloat32, {Dim(2), Dim(256)});
  auto dense = [&](ir::Value* in, int64_t k, int64_t n, const std::string& name) {
    ir::Value* w = g.add_constant(name + ".weight", test::f32({k, n}, test::normal(k * n, 1)));
    return op(g, "Dense", {in, w}, {{"gelu", int64_t{0}}}, name);
  };
  ir::Value* h = dense(x, 256, 128, "/k256");
  ir::Value* y = dense(h, 128, 8, "/k128");
  g.outputs = {y};
  const ir::Node &big = *h->producer, &small = *y->producer;

  ASSERT_TRUE(quantize::quantize_int8(g, {{}, 128}).is_ok());
  EXPECT_EQ(quantize::weight_group(big), 128);
  EXPECT_EQ(big.attr_int("weight_group", -1), 128);
  EXPECT_FALSE(small.has_attr("weight_group"));
  EXPECT_EQ(quantize::weight_group(small), 0);

  auto clear = [&] {
    for (const auto& node : g.nodes()) node->attrs.erase("weight_group");
  };
  clear();  // the default: s8_pack.h's
  ASSERT_TRUE(quantize::quantize_int8(g, {}).is_ok());
  using kernels::gemm::effective_s8_weight_group, kernels::gemm::kS8WeightGroup;
  EXPECT_EQ(quantize::weight_group(big), effective_s8_weight_group(256, kS8WeightGroup));
  EXPECT_EQ(quantize::weight_group(small), effective_s8_weight_group(128, kS8WeightGroup));

  clear();
  ASSERT_TRUE(quantize::quantize_int8(g, {{}, 64}).is_ok());
  EXPECT_EQ(quantize::weight_group(big), 64);
  EXPECT_EQ(quantize::weight_group(small), 64);

  clear();
  ASSERT_TRUE(quantize::quantize_int8(g, {{}, 0}).is_ok());
  EXPECT_FALSE(big.has_attr("weight_group") || small.has_attr("weight_group"));

  Model embeddings;  // K = 8: no group; the Gather's table is not a Dense weight
  ASSERT_TRUE(quantize::quantize_int8(embeddings.g, {{}, 4}).is_ok());
  EXPECT_EQ(quantize::weight_group(*embeddings.layer), 4);
  EXPECT_FALSE(embeddings.embed->has_attr("weight_group"));

  for (int64_t bad : {int64_t{3}, int64_t{-4}, int64_t{1024}, int64_t{2}}) {
    auto r = quantize::quantize_int8(g, {{}, bad});
    ASSERT_FALSE(r.is_ok()) << bad;
    EXPECT_NE(r.status().message().find("weight group " + std::to_string(bad)), std::string::npos)
        << r.status().message();
  }
}

// EmbeddingLayerNorm (fuse_embed_layer_norm): each table on its own, as the Gathers it replaced;
// a table of at most 16 elements stays float32, and so does one read by position (every input
// shares its rows: listed as shared); one excluded by name is listed as "<node> (<table>)", and
// lowering finds the int8 ones through is_quantized_input.
TEST(QuantizeInt8, EmbeddingLayerNormTablesOneByOne) {
  ir::Graph g;
  g.symbols = {{"batch", 0}, {"seq", 8}};
  ir::Value* ids =
      test::add_input(g, "input_ids", ir::DType::kInt64, {Dim::symbol(0), Dim::symbol(1)});
  auto table = [&](const char* name, int64_t rows) {
    return g.add_constant(name, test::f32({rows, 8}, std::vector<float>(rows * 8, 0.5f)));
  };
  ir::Value* ones = g.add_constant("gamma", test::f32({8}, std::vector<float>(8, 1)));
  ir::Value* y = op(g, "EmbeddingLayerNorm",
                    {ones, nullptr, table("word", 100), ids, table("types", 2), nullptr,
                     table("pos", 80), nullptr, table("lang", 100), ids},
                    {{"epsilon", 1e-5f},
                     {"row_first", std::vector<int64_t>{0, 0, 0, 0}},
                     {"row_step", std::vector<int64_t>{0, 0, 1, 0}}},
                    "/embeddings/EmbeddingLayerNorm");
  g.outputs = {y};
  const ir::Node& n = *y->producer;
  auto r = quantize::quantize_int8(g, {{"lang"}});
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  EXPECT_TRUE(quantize::is_quantized(n));
  EXPECT_EQ(n.attr_ints("quantize_tables"), (std::vector<int64_t>{1, 0, 0, 0}));
  EXPECT_EQ(r->embeddings, std::vector<std::string>{"/embeddings/EmbeddingLayerNorm (word)"});
  EXPECT_EQ(r->excluded, std::vector<std::string>{"/embeddings/EmbeddingLayerNorm (lang)"});
  EXPECT_EQ(r->shared, std::vector<std::string>{"/embeddings/EmbeddingLayerNorm (pos)"});
  EXPECT_TRUE(r->warnings.empty());
  EXPECT_TRUE(quantize::is_quantized_input(n, 2));
  for (size_t i : {0, 1, 3, 4, 6, 8}) EXPECT_FALSE(quantize::is_quantized_input(n, i)) << i;
}

}  // namespace
}  // namespace kiln
