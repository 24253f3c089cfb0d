// Code generation of Dense (y = gelu?(x W + bias) + residual through the packed GEMM
// micro-kernels) at odd K and N against a double-precision naive loop, the packed weight in
// model.params, and the GEMM variant model.so reports (x86-64-v3 never picks AVX-512).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "compiler/codegen/emit_artifact.h"
#include "compiler/codegen/lowering.h"
#include "compiler/codegen/memory_plan.h"
#include "mini_runner.h"

namespace kiln::codegen {
namespace {

using ir::Dim;
using ir::DType;

constexpr int64_t kK = 37, kN = 100;

ir::Tensor f32_tensor(std::vector<int64_t> dims, const std::vector<float>& v) {
  ir::Tensor t;
  t.dtype = DType::kFloat32;
  t.dims = std::move(dims);
  t.bytes.resize(v.size() * sizeof(float));
  std::memcpy(t.bytes.data(), v.data(), t.bytes.size());
  return t;
}

std::vector<float> wave(size_t n, float freq, float amp) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = amp * std::sin(freq * static_cast<float>(i) + 0.3f);
  return v;
}

// y1 = gelu(x W + b) + r;  y2 = x W (the same W: one packed param);  y3 = (x W + b) + r.
struct DenseGraph {
  ir::Graph g;
  std::vector<float> w = wave(kK * kN, 0.37f, 0.25f), b = wave(kN, 1.3f, 0.5f);
  DenseGraph() {
    g.symbols = {{"batch", 0}, {"seq", 16}};
    const Dim B = Dim::symbol(0), S = Dim::symbol(1);
    auto val = [&](const std::string& n, ir::Shape s) {
      ir::Value* v = g.add_value(n, DType::kFloat32);
      v->shape = std::move(s);
      return v;
    };
    ir::Value* x = val("x", {B, S, kK});
    ir::Value* r = val("r", {B, S, kN});
    g.inputs = {x, r};
    ir::Value* wv = g.add_constant("W", f32_tensor({kK, kN}, w));
    ir::Value* bv = g.add_constant("b", f32_tensor({kN}, b));
    ir::Value* y1 = val("y1", {B, S, kN});
    ir::Value* y2 = val("y2", {B, S, kN});
    ir::Value* y3 = val("y3", {B, S, kN});
    g.add_node("Dense", "dense_gelu_residual", {x, wv, bv, r}, {y1})->attrs["gelu"] = int64_t{1};
    g.add_node("Dense", "dense_plain", {x, wv, nullptr, nullptr}, {y2})->attrs["gelu"] = int64_t{0};
    g.add_node("Dense", "dense_residual", {x, wv, bv, r}, {y3})->attrs["gelu"] = int64_t{0};
    g.outputs = {y1, y2, y3};
  }
};

std::string compile(const ir::Graph& g, const std::string& target, const std::string& tag) {
  CodegenOptions o;
  o.output_dir = ::testing::TempDir() + "/kiln_dense_" + tag + "_" + std::to_string(getpid());
  o.target = *target::target_from_name(target);
  Status st = emit_artifact(g, o);
  EXPECT_TRUE(st.is_ok()) << st.message();
  return o.output_dir;
}

void expect_matches_naive(MiniRunner& run, const DenseGraph& d) {
  for (auto [batch, seq] : {std::pair<int64_t, int64_t>{1, 1}, {2, 7}, {3, 13}, {2, 16}}) {
    SCOPED_TRACE("batch " + std::to_string(batch) + " seq " + std::to_string(seq));
    const int64_t M = batch * seq;
    const std::vector<float> x = wave(M * kK, 0.71f, 1.0f), r = wave(M * kN, 0.13f, 0.8f);
    const int64_t sym[2] = {batch, seq};
    std::vector<std::vector<uint8_t>> outs;
    ASSERT_EQ(run.run(sym, {x.data(), r.data()}, &outs), "");
    ASSERT_EQ(outs.size(), 3u);
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = 0; n < kN; ++n) {
        double acc = 0;
        for (int64_t k = 0; k < kK; ++k) acc += double(x[m * kK + k]) * d.w[k * kN + n];
        const double z = acc + d.b[n];
        const double want[3] = {0.5 * z * (1 + std::erf(z / std::sqrt(2.0))) + r[m * kN + n], acc,
                                z + r[m * kN + n]};
        for (int o = 0; o < 3; ++o) {
          const float got = reinterpret_cast<const float*>(outs[o].data())[m * kN + n];
          ASSERT_NEAR(got, want[o], 2e-5) << "output " << o << " m " << m << " n " << n;
        }
      }
  }
}

const char* kernel_variant(MiniRunner& run) {
  auto fn =
      reinterpret_cast<kiln_model_kernel_variant_fn>(dlsym(run.so(), "kiln_model_kernel_variant"));
  return fn ? fn() : nullptr;
}

TEST(CodegenDense, GeluResidualAtOddSizesMatchesNaive) {
  DenseGraph d;
  const std::string dir = compile(d.g, "native", "native");
  {
    MiniRunner run(dir);
    ASSERT_NE(run.so(), nullptr);
    // W is stored once, packed: ceil(100 / 16) panels of 37 rows x 16 floats.
    int packed = 0;
    for (const auto& t : run.model()["tensors"]) {
      if (t["storage"] != "param" || t["name"] != "W.packed16") continue;
      ++packed;
      EXPECT_EQ(t["shape"], json::array({7 * kK * 16}));
    }
    EXPECT_EQ(packed, 1);
    for (const auto& n : run.model()["nodes"]) EXPECT_EQ(n["op"], "Dense");
    const char* v = kernel_variant(run);
    ASSERT_NE(v, nullptr);
    EXPECT_EQ(std::string(v).rfind("gemm f32: ", 0), 0u) << v;
    expect_matches_naive(run, d);
  }
  std::filesystem::remove_all(dir);
}

// The GEMM epilogue reads the residual while it writes y, so they must never share storage,
// even when the residual's last use is this Dense (the planner's liveness includes the node).
TEST(CodegenDense, ResidualAndOutputGetDistinctArenaStorage) {
  DenseGraph d;
  ir::Graph& g = d.g;
  const Dim B = Dim::symbol(0), S = Dim::symbol(1);
  auto val = [&](const std::string& n) {
    ir::Value* v = g.add_value(n, DType::kFloat32);
    v->shape = ir::Shape{B, S, kN};
    return v;
  };
  ir::Value* sq = g.add_constant("Wsq", f32_tensor({kN, kN}, wave(kN * kN, 0.5f, 0.1f)));
  ir::Value* t = val("t");
  ir::Value* u = val("u");
  ir::Value* z = val("z");
  g.add_node("Relu", "relu", {g.outputs[1]}, {t});
  g.add_node("Dense", "dense_t", {t, sq, nullptr, t}, {u})->attrs["gelu"] = int64_t{0};
  g.add_node("Neg", "neg", {u}, {z});
  g.outputs = {z};
  auto lowered = lower(g);
  ASSERT_TRUE(lowered.is_ok()) << lowered.status().message();
  ASSERT_TRUE(plan_memory(g.symbols, *lowered).is_ok());
  const Lowering& L = *lowered;
  const TensorInfo &ti = L.tensors[L.tensor_of.at(t)], &ui = L.tensors[L.tensor_of.at(u)];
  ASSERT_EQ(ti.storage, Storage::kArena);
  ASSERT_EQ(ui.storage, Storage::kArena);
  const int64_t bytes = 4 * 16 * kN;  // batch 1 (the scale), seq at its maximum 16
  EXPECT_GE(std::abs(ti.offset - ui.offset), bytes) << ti.offset << " " << ui.offset;
}

#if defined(__x86_64__)
// x86-64-v3 pins the GEMM to AVX2: even KILN_GEMM_VARIANT=avx512 on an AVX-512 CPU cannot pick
// the AVX-512 kernel, which is not even in model.so (no zmm instruction at all).
TEST(CodegenDense, X86_64_V3NeverRunsAvx512) {
  if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma"))
    GTEST_SKIP() << "this CPU lacks avx2/fma, which target x86-64-v3 needs";
  DenseGraph d;
  const std::string dir = compile(d.g, "x86-64-v3", "v3");
  const char* old = std::getenv("KILN_GEMM_VARIANT");
  const std::string saved = old ? old : "";
  setenv("KILN_GEMM_VARIANT", "avx512", 1);
  {
    MiniRunner run(dir);
    ASSERT_NE(run.so(), nullptr);
    const char* v = kernel_variant(run);
    ASSERT_NE(v, nullptr);
    EXPECT_EQ(std::string(v),
              "gemm f32: avx2 6x16 (KILN_GEMM_VARIANT=avx512 ignored: not built into this "
              "model.so)");
    expect_matches_naive(run, d);
  }
  if (old)
    setenv("KILN_GEMM_VARIANT", saved.c_str(), 1);
  else
    unsetenv("KILN_GEMM_VARIANT");
  if (FILE* p =
          popen(("objdump -d '" + dir + "/model.so' 2>/dev/null | grep -c zmm").c_str(), "r")) {
    char buf[32] = "";
    const bool read = std::fgets(buf, sizeof(buf), p) != nullptr;
    pclose(p);
    if (read) {
      EXPECT_EQ(std::atoi(buf), 0) << "AVX-512 registers in an x86-64-v3 model.so";
    }
  }
  std::filesystem::remove_all(dir);
}
#endif

}  // namespace
}  // namespace kiln::codegen
