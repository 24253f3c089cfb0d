// fuse_embed_layer_norm: the exporter's word / token-type / position Gathers, their Adds and the
// LayerNorm become one EmbeddingLayerNorm computing the same values; the position_ids /
// token_type_ids buffer slices become row_first / row_step; anything else is left alone.
#include <gtest/gtest.h>

#include "graph_test_util.h"

namespace kiln {
namespace {

using ir::Dim;
using test::op;

constexpr int64_t kH = 6, kVocab = 9, kTypes = 2, kPositions = 7, kSeq = 4;

ir::Value* table(ir::Graph& g, const std::string& name, int64_t rows, float scale) {
  std::vector<float> v(rows * kH);
  for (size_t i = 0; i < v.size(); ++i) v[i] = scale * static_cast<float>((i * 5) % 13) - 0.3f;
  return g.add_constant(name, test::f32({rows, kH}, v));
}

ir::Value* gather(ir::Graph& g, ir::Value* t, ir::Value* ids, const std::string& name) {
  return op(g, "Gather", {t, ids}, {{"axis", int64_t{0}}}, name);
}

// Slice(C [1, kPositions], start, start + kSeq, axis 1, step) as the exporter slices its buffers.
ir::Value* buffer_slice(ir::Graph& g, std::vector<int64_t> values, int64_t start, int64_t step) {
  ir::Value* c = g.add_constant(g.unique_name("buffer"), test::i64({1, kPositions}, values));
  ir::Value* s = g.add_value(g.unique_name("slice"), ir::DType::kInt64);
  g.add_node(ir::Op::kSlice, g.unique_name("/embeddings/Slice"),
             {c, test::ci(g, {start}), test::ci(g, {start + kSeq * step}), test::ci(g, {1}),
              test::ci(g, {step})},
             {s});
  return s;
}

enum Variant {
  kTokenTypesInput,     // word + tt(input) + pos(arange slice): BERT with token_type_ids
  kTokenTypesBuffer,    // tt from Expand(Slice(zeros)): BERT without the input (torch 1.13 / 2.x)
  kTwoTables,           // word + pos
  kPositionIdsStep2,    // a strided slice: ids kept as a run-time tensor
  kPositionsNotAffine,  // a buffer that is not an arithmetic sequence: ids kept
  kAddIsGraphOutput,
  kTableNotConstant,
  kAxisNotLast,
  kPositionFirst,  // broadcast ids first in the sum: not fused
};

int64_t batch_of(Variant) {
  return 2;
}

void build(ir::Graph& g, Variant v) {
  g.symbols = {{"batch", 0}};
  ir::Value* ids = test::add_input(g, "input_ids", ir::DType::kInt64, {Dim::symbol(0), kSeq});
  ir::Value* word = gather(g, table(g, "word", kVocab, 0.1f), ids, "/embeddings/word/Gather");
  if (v == kTableNotConstant) {
    ir::Value* t = test::add_input(g, "word_in", ir::DType::kFloat32, {Dim(kVocab), Dim(kH)});
    word = gather(g, t, ids, "/embeddings/word/Gather");
  }
  std::vector<int64_t> arange(kPositions), zeros(kPositions, 0), odd(kPositions);
  for (int64_t i = 0; i < kPositions; ++i) arange[i] = i, odd[i] = (i * 3) % kPositions;
  ir::Value* pos_ids = v == kPositionIdsStep2     ? buffer_slice(g, arange, 0, 2)
                       : v == kPositionsNotAffine ? buffer_slice(g, odd, 1, 1)
                                                  : buffer_slice(g, arange, 1, 1);
  ir::Value* pos = gather(g, table(g, "pos", kPositions, 0.07f), pos_ids, "/embeddings/pos/Gather");
  ir::Value* x = nullptr;
  if (v == kTwoTables) {
    x = op(g, "Add", {word, pos}, {}, "/embeddings/Add");
  } else {
    ir::Value* tt_ids = nullptr;
    if (v == kTokenTypesBuffer) {
      tt_ids = g.add_value("tt_expanded", ir::DType::kInt64);
      g.add_node("Expand", "/embeddings/Expand",
                 {buffer_slice(g, zeros, 0, 1), test::ci(g, {1, kSeq})}, {tt_ids});
    } else {
      tt_ids = test::add_input(g, "token_type_ids", ir::DType::kInt64, {Dim::symbol(0), kSeq});
    }
    ir::Value* tt = gather(g, table(g, "tt", kTypes, 0.2f), tt_ids, "/embeddings/tt/Gather");
    ir::Value* sum = v == kPositionFirst ? op(g, "Add", {pos, word}, {}, "/embeddings/Add")
                                         : op(g, "Add", {word, tt}, {}, "/embeddings/Add");
    x = op(g, "Add", {sum, v == kPositionFirst ? tt : pos}, {}, "/embeddings/Add_1");
    if (v == kAddIsGraphOutput) g.outputs.push_back(sum);
  }
  // Over two axes, scale / bias cover [S, H] (the evaluator does not broadcast them).
  const int64_t n = v == kAxisNotLast ? kSeq * kH : kH;
  std::vector<float> gamma(n), beta(n);
  for (int64_t i = 0; i < n; ++i) gamma[i] = 1.0f + 0.1f * i, beta[i] = 0.05f * i - 0.1f;
  const std::vector<int64_t> dims =
      v == kAxisNotLast ? std::vector<int64_t>{kSeq, kH} : std::vector<int64_t>{kH};
  ir::Value* z =
      op(g, "LayerNormalization",
         {x, g.add_constant("gamma", test::f32(dims, gamma)),
          g.add_constant("beta", test::f32(dims, beta))},
         {{"axis", int64_t{v == kAxisNotLast ? 1 : -1}}, {"epsilon", 1e-5f}}, "/embeddings/LN");
  g.outputs.insert(g.outputs.begin(), z);
}

std::map<std::string, ir::Tensor> inputs_for(Variant v) {
  const int64_t b = batch_of(v);
  std::vector<int64_t> ids(b * kSeq), tt(b * kSeq);
  for (int64_t i = 0; i < b * kSeq; ++i) ids[i] = (i * 4 + 1) % kVocab, tt[i] = i % 3 == 0;
  std::map<std::string, ir::Tensor> in = {{"input_ids", test::i64({b, kSeq}, ids)}};
  if (v != kTokenTypesBuffer && v != kTwoTables) in["token_type_ids"] = test::i64({b, kSeq}, tt);
  if (v == kTableNotConstant) {
    std::vector<float> w(kVocab * kH);
    for (size_t i = 0; i < w.size(); ++i) w[i] = 0.1f * static_cast<float>((i * 5) % 13) - 0.3f;
    in["word_in"] = test::f32({kVocab, kH}, w);
  }
  return in;
}

// Runs the pass; checks that every output keeps its values; returns the fused node or null.
const ir::Node* fuse_and_compare(Variant v, ir::Graph& g) {
  ir::Graph ref, copy;
  build(ref, v);
  EXPECT_TRUE(ir::infer_shapes(ref).is_ok());
  auto want = test::run_graph(ref, inputs_for(v));
  EXPECT_TRUE(want.is_ok()) << want.status().message();
  for (ir::Graph* h : {&g, &copy}) {
    build(*h, v);
    EXPECT_TRUE(ir::infer_shapes(*h).is_ok());
    EXPECT_TRUE(passes::fuse_embed_layer_norm(*h).is_ok());
    EXPECT_TRUE(passes::eliminate_dead_code(*h).is_ok());
    Status st = ir::infer_shapes(*h);
    EXPECT_TRUE(st.is_ok()) << st.message() << "\n" << ir::print_graph(*h);
  }
  auto got = test::run_graph(copy, inputs_for(v));
  EXPECT_TRUE(got.is_ok()) << got.status().message();
  if (want.is_ok() && got.is_ok())
    for (const auto& [name, a] : want.value()) {
      const ir::Tensor& b = got.value()[name];
      EXPECT_EQ(a.dims, b.dims) << name;
      for (int64_t i = 0; i < a.numel() && a.dims == b.dims; ++i)
        EXPECT_NEAR(a.data<float>()[i], b.data<float>()[i], 2e-5) << name << "[" << i << "]";
    }
  const ir::Node* fused = nullptr;
  for (const auto& n : g.nodes())
    if (n->op == ir::Op::kEmbeddingLayerNorm) fused = n.get();
  if (fused) {
    EXPECT_EQ(test::count_ops(g, "Gather") + test::count_ops(g, "Add") +
                  test::count_ops(g, "LayerNormalization"),
              0)
        << ir::print_graph(g);
    EXPECT_EQ(fused->name, "/embeddings/EmbeddingLayerNorm");
    EXPECT_EQ(fused->outputs[0], g.outputs[0]);
    EXPECT_EQ(fused->input(3)->name, "input_ids");
  }
  return fused;
}

TEST(FuseEmbedLayerNorm, TokenTypesInputAndPositionBuffer) {
  ir::Graph g;
  const ir::Node* n = fuse_and_compare(kTokenTypesInput, g);
  ASSERT_NE(n, nullptr);
  ASSERT_EQ(n->inputs.size(), 8u);
  EXPECT_EQ(n->input(2)->name, "word");
  EXPECT_EQ(n->input(5)->name, "token_type_ids");
  EXPECT_EQ(n->input(6)->name, "pos");
  EXPECT_EQ(n->input(7), nullptr);  // positions 1, 2, 3, ...
  EXPECT_EQ(n->attr_ints("row_first"), (std::vector<int64_t>{0, 0, 1}));
  EXPECT_EQ(n->attr_ints("row_step"), (std::vector<int64_t>{0, 0, 1}));
  EXPECT_EQ(test::count_ops(g, "Slice"), 0) << ir::print_graph(g);
}

TEST(FuseEmbedLayerNorm, TokenTypesFromTheZerosBuffer) {
  ir::Graph g;
  const ir::Node* n = fuse_and_compare(kTokenTypesBuffer, g);
  ASSERT_NE(n, nullptr);
  EXPECT_EQ(n->input(5), nullptr);
  EXPECT_EQ(n->attr_ints("row_first"), (std::vector<int64_t>{0, 0, 1}));
  EXPECT_EQ(n->attr_ints("row_step"), (std::vector<int64_t>{0, 0, 1}));
  EXPECT_EQ(g.nodes().size(), 1u) << ir::print_graph(g);
}

TEST(FuseEmbedLayerNorm, TwoTables) {
  ir::Graph g;
  const ir::Node* n = fuse_and_compare(kTwoTables, g);
  ASSERT_NE(n, nullptr);
  EXPECT_EQ(n->inputs.size(), 6u);
}

TEST(FuseEmbedLayerNorm, StridedOrIrregularPositionIdsStayRunTimeTensors) {
  for (Variant v : {kPositionIdsStep2, kPositionsNotAffine}) {
    ir::Graph g;
    const ir::Node* n = fuse_and_compare(v, g);
    ASSERT_NE(n, nullptr) << v;
    ASSERT_NE(n->input(7), nullptr) << v;
    EXPECT_EQ(test::count_ops(g, "Slice"), 1) << ir::print_graph(g);
  }
}

TEST(FuseEmbedLayerNormNegative, NotFused) {
  for (Variant v : {kAddIsGraphOutput, kTableNotConstant, kAxisNotLast, kPositionFirst}) {
    ir::Graph g;
    EXPECT_EQ(fuse_and_compare(v, g), nullptr) << v << "\n" << ir::print_graph(g);
    EXPECT_EQ(test::count_ops(g, "LayerNormalization"), 1) << v;
  }
}

}  // namespace
}  // namespace kiln
