// Code generation of Attention: separate Q/K/V with a [B, 1, S, S] mask and packed QKV without a
// mask, symbolic batch and seq, against a naive reference; a sequence without a compiled maximum
// is refused.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>

#include "compiler/codegen/emit_artifact.h"
#include "mini_runner.h"

namespace kiln::codegen {
namespace {

using ir::Dim;
using ir::DType;

constexpr int64_t kHeads = 2, kHd = 3, kH = kHeads * kHd;

// out[b, i, h*hd + d] for q/k/v rows at stride ld (head h at column h*hd), mask [B, 1, S, S].
std::vector<double> reference(const float* q, const float* k, const float* v, int64_t ld,
                              const float* mask, int64_t B, int64_t S, float scale) {
  std::vector<double> out(B * S * kH);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < kHeads; ++h)
      for (int64_t i = 0; i < S; ++i) {
        std::vector<double> p(S);
        double mx = -INFINITY, sum = 0;
        for (int64_t j = 0; j < S; ++j) {
          double dot = 0;
          for (int64_t d = 0; d < kHd; ++d)
            dot += double(q[(b * S + i) * ld + h * kHd + d]) * k[(b * S + j) * ld + h * kHd + d];
          p[j] = dot * scale + (mask ? mask[(b * S + i) * S + j] : 0.0f);
          mx = std::max(mx, p[j]);
        }
        for (double& x : p) sum += (x = std::exp(x - mx));
        for (int64_t d = 0; d < kHd; ++d) {
          double acc = 0;
          for (int64_t j = 0; j < S; ++j) acc += p[j] / sum * v[(b * S + j) * ld + h * kHd + d];
          out[(b * S + i) * kH + h * kHd + d] = acc;
        }
      }
  return out;
}

struct AttnGraph {
  ir::Graph g;
  AttnGraph(int64_t seq_max) {
    g.symbols = {{"batch", 0}, {"seq", seq_max}};
    g.opset = 17;
    const Dim B = Dim::symbol(0), S = Dim::symbol(1);
    auto val = [&](const std::string& n, ir::Shape s) {
      ir::Value* v = g.add_value(n, DType::kFloat32);
      v->shape = std::move(s);
      return v;
    };
    ir::Value* q = val("q", {B, S, kH});
    ir::Value* k = val("k", {B, S, kH});
    ir::Value* v = val("v", {B, S, kH});
    ir::Value* qkv = val("qkv", {B, S, 3 * kH});
    ir::Value* mask = val("mask", {B, 1, S, S});
    g.inputs = {q, k, v, qkv, mask};
    ir::Value* y1 = val("y1", {B, S, kH});
    ir::Node* a1 = g.add_node("Attention", "attn_separate", {q, k, v, mask}, {y1});
    a1->attrs = {{"num_heads", kHeads}, {"scale", 0.5f}, {"qkv_packed", int64_t{0}}};
    ir::Value* y2 = val("y2", {B, S, kH});
    ir::Node* a2 = g.add_node("Attention", "attn_packed", {qkv, nullptr, nullptr}, {y2});
    a2->attrs = {{"num_heads", kHeads}, {"scale", 0.25f}, {"qkv_packed", int64_t{1}}};
    g.outputs = {y1, y2};
  }
};

TEST(CodegenAttention, SeparateAndPackedMatchNaive) {
  AttnGraph t(16);
  CodegenOptions o;
  o.output_dir = ::testing::TempDir() + "/kiln_codegen_attention_" + std::to_string(getpid());
  o.target = *target::target_from_name("native");
  Status st = emit_artifact(t.g, o);
  ASSERT_TRUE(st.is_ok()) << st.message();
  {
    MiniRunner run(o.output_dir);
    for (auto [Bn, Sn] : {std::pair<int64_t, int64_t>{1, 5}, {3, 16}}) {
      auto fill = [](int64_t n, float f) {
        std::vector<float> x(n);
        for (int64_t i = 0; i < n; ++i) x[i] = std::sin(f * static_cast<float>(i + 1));
        return x;
      };
      const std::vector<float> q = fill(Bn * Sn * kH, 0.7f), k = fill(Bn * Sn * kH, 1.3f),
                               v = fill(Bn * Sn * kH, 0.4f), qkv = fill(Bn * Sn * 3 * kH, 0.9f);
      std::vector<float> mask(Bn * Sn * Sn, 0.0f);
      for (int64_t i = 0; i < Bn * Sn; ++i)
        for (int64_t j = 0; j < Sn; ++j)
          if (j > i % Sn) mask[i * Sn + j] = -3.4028234663852886e+38f;  // causal
      const int64_t symv[2] = {Bn, Sn};
      std::vector<std::vector<uint8_t>> outs;
      ASSERT_EQ(run.run(symv, {q.data(), k.data(), v.data(), qkv.data(), mask.data()}, &outs), "");
      const auto want1 = reference(q.data(), k.data(), v.data(), kH, mask.data(), Bn, Sn, 0.5f);
      const auto want2 = reference(qkv.data(), qkv.data() + kH, qkv.data() + 2 * kH, 3 * kH,
                                   nullptr, Bn, Sn, 0.25f);
      const float* y1 = reinterpret_cast<const float*>(outs[0].data());
      const float* y2 = reinterpret_cast<const float*>(outs[1].data());
      for (size_t e = 0; e < want1.size(); ++e) {
        ASSERT_NEAR(y1[e], want1[e], 1e-5) << Bn << "x" << Sn << " separate " << e;
        ASSERT_NEAR(y2[e], want2[e], 1e-5) << Bn << "x" << Sn << " packed " << e;
      }
    }
  }
  std::filesystem::remove_all(o.output_dir);
}

TEST(CodegenAttention, UnboundedSequenceIsRefused) {
  AttnGraph t(0);
  CodegenOptions o;
  o.output_dir =
      ::testing::TempDir() + "/kiln_codegen_attention_unbounded_" + std::to_string(getpid());
  o.target = *target::target_from_name("native");
  Status st = emit_artifact(t.g, o);
  ASSERT_FALSE(st.is_ok());
  EXPECT_NE(st.message().find("attn_separate"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("compiled maximum"), std::string::npos) << st.message();
  std::filesystem::remove_all(o.output_dir);
}

}  // namespace
}  // namespace kiln::codegen
