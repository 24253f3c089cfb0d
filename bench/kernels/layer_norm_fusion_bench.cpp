// The two LayerNorm fusions against the unfused calls they replace, one thread, BERT shapes:
//   DenseLN:  GEMM with bias + residual epilogue, then layernorm_f32 over the output (unfused)
//             vs the GEMM's LayerNorm epilogue (fused), FP32 and INT8 (the dispatched variants);
//   EmbedLN:  three gathers (word ids, token types, positions), two Adds and layernorm_f32
//             (unfused, each writing [rows, H]) vs embedding_layer_norm_f32 (fused), f32 and
//             int8 tables.
// Arguments: M (rows), K, N for DenseLN; rows, H for EmbedLN. Threading is measured end to end
// (`kiln bench`), with the runtime's pool.
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "kiln/kernels/embed_layer_norm.h"
#include "kiln/kernels/gather.h"
#include "kiln/kernels/gemm/gemm.h"
#include "kiln/kernels/gemm/s8_dispatch.h"
#include "kiln/kernels/normalization.h"

namespace {

namespace kk = kiln::kernels;
namespace gemm = kiln::kernels::gemm;

std::vector<float> random_floats(size_t n, uint32_t seed) {
  std::mt19937 g(seed);
  std::uniform_real_distribution<float> d(-1.f, 1.f);
  std::vector<float> v(n);
  for (auto& x : v) x = d(g);
  return v;
}

// 64-byte aligned copy of `bytes` bytes, as model.params provides weights.
struct Aligned {
  std::vector<uint8_t> store;
  uint8_t* p;
  explicit Aligned(size_t bytes) : store(bytes + 64) {
    p = store.data();
    while (reinterpret_cast<uintptr_t>(p) % 64) ++p;
  }
};

template <bool kInt8, bool kFused>
void DenseLN(benchmark::State& state) {
  const int64_t M = state.range(0), K = state.range(1), N = state.range(2);
  const auto A = random_floats(M * K, 1), B = random_floats(K * N, 2), bias = random_floats(N, 3),
             res = random_floats(M * N, 4), scale = random_floats(N, 5), beta = random_floats(N, 6);
  Aligned packed(kInt8 ? gemm::packed_b_s8_bytes(K, N) : gemm::packed_b_floats(K, N) * 4);
  if (kInt8)
    gemm::quantize_pack_b_s8(B.data(), K, N, false, packed.p);
  else
    gemm::pack_b_f32(B.data(), K, N, false, reinterpret_cast<float*>(packed.p));
  std::vector<float> C(M * N);
  gemm::Epilogue ep{bias.data(), res.data(), N, false};
  if (kFused) ep.layer_norm = true, ep.ln_scale = scale.data(), ep.ln_bias = beta.data();
  ep.ln_epsilon = 1e-12f;
  for (auto _ : state) {
    if (kInt8)
      gemm::gemm_s8_packed(nullptr, M, N, K, A.data(), K, gemm::packed_s8_view(packed.p, K, N),
                           C.data(), N, ep);
    else
      gemm::gemm_f32_packed(nullptr, M, N, K, A.data(), K, reinterpret_cast<float*>(packed.p),
                            C.data(), N, ep);
    if (!kFused)
      kk::layernorm_f32(C.data(), scale.data(), beta.data(), C.data(), M, N, 1e-12f, nullptr);
    benchmark::DoNotOptimize(C.data());
  }
  state.SetLabel(kInt8 ? gemm::gemm_s8_variant().name : gemm::gemm_f32_variant().name);
}

template <bool kInt8, bool kFused>
void EmbedLN(benchmark::State& state) {
  const int64_t rows = state.range(0), H = state.range(1), V = 30522, P = 512;
  const auto word = random_floats(V * H, 1), types = random_floats(2 * H, 2),
             pos = random_floats(P * H, 3), scale = random_floats(H, 4), beta = random_floats(H, 5);
  Aligned word8(kk::embedding_s8_bytes(V, H)), types8(kk::embedding_s8_bytes(2, H)),
      pos8(kk::embedding_s8_bytes(P, H));
  kk::quantize_embedding_s8(word.data(), V, H, word8.p);
  kk::quantize_embedding_s8(types.data(), 2, H, types8.p);
  kk::quantize_embedding_s8(pos.data(), P, H, pos8.p);
  std::vector<int64_t> ids(rows), tt(rows), positions(rows);
  std::mt19937 g(7);
  for (int64_t i = 0; i < rows; ++i) ids[i] = g() % V, tt[i] = i >= rows / 2, positions[i] = i;
  std::vector<float> out(rows * H), e1(rows * H), e2(rows * H), e3(rows * H);
  char err[128];
  const kk::EmbeddingTerm terms[] = {{kInt8 ? nullptr : word.data(), kInt8 ? word8.p : nullptr, V,
                                      ids.data(), false, 0, 0, 0, "ids"},
                                     {kInt8 ? nullptr : types.data(), kInt8 ? types8.p : nullptr, 2,
                                      tt.data(), false, 0, 0, 0, "tt"},
                                     {kInt8 ? nullptr : pos.data(), kInt8 ? pos8.p : nullptr, P,
                                      nullptr, false, rows, 0, 1, "pos"}};
  for (auto _ : state) {
    if (kFused) {
      kk::embedding_layer_norm_f32(terms, 3, rows, H, scale.data(), beta.data(), 1e-12f, out.data(),
                                   "n", err, sizeof(err), nullptr);
    } else {
      if (kInt8) {
        kk::gather_s8(word8.p, V, H, ids.data(), rows, e1.data(), "n", "ids", err, sizeof(err),
                      nullptr);
        kk::gather_s8(types8.p, 2, H, tt.data(), rows, e2.data(), "n", "tt", err, sizeof(err),
                      nullptr);
        kk::gather_s8(pos8.p, P, H, positions.data(), rows, e3.data(), "n", "pos", err, sizeof(err),
                      nullptr);
      } else {
        kk::gather(word.data(), 1, V, H, ids.data(), rows, e1.data(), false, "n", "ids", err,
                   sizeof(err), nullptr);
        kk::gather(types.data(), 1, 2, H, tt.data(), rows, e2.data(), false, "n", "tt", err,
                   sizeof(err), nullptr);
        kk::gather(pos.data(), 1, P, H, positions.data(), rows, e3.data(), false, "n", "pos", err,
                   sizeof(err), nullptr);
      }
      for (int64_t i = 0; i < rows * H; ++i) e1[i] += e2[i];
      for (int64_t i = 0; i < rows * H; ++i) e1[i] += e3[i];
      kk::layernorm_f32(e1.data(), scale.data(), beta.data(), out.data(), rows, H, 1e-12f, nullptr);
    }
    benchmark::DoNotOptimize(out.data());
  }
}

// BERT-base and the small config (hidden 256, FFN 1024) at seq 128: attention output (K = N =
// H) and FFN down (K = 4H, N = H).
void dense_args(benchmark::internal::Benchmark* b) {
  for (int64_t h : {256, 768}) {
    b->Args({128, h, h});
    b->Args({128, 4 * h, h});
  }
  b->Unit(benchmark::kMicrosecond);
}

void embed_args(benchmark::internal::Benchmark* b) {
  for (int64_t h : {256, 768}) b->Args({128, h});
  b->Unit(benchmark::kMicrosecond);
}

BENCHMARK_TEMPLATE(DenseLN, false, false)->Name("DenseLN/f32/unfused")->Apply(dense_args);
BENCHMARK_TEMPLATE(DenseLN, false, true)->Name("DenseLN/f32/fused")->Apply(dense_args);
BENCHMARK_TEMPLATE(DenseLN, true, false)->Name("DenseLN/s8/unfused")->Apply(dense_args);
BENCHMARK_TEMPLATE(DenseLN, true, true)->Name("DenseLN/s8/fused")->Apply(dense_args);
BENCHMARK_TEMPLATE(EmbedLN, false, false)->Name("EmbedLN/f32/unfused")->Apply(embed_args);
BENCHMARK_TEMPLATE(EmbedLN, false, true)->Name("EmbedLN/f32/fused")->Apply(embed_args);
BENCHMARK_TEMPLATE(EmbedLN, true, false)->Name("EmbedLN/s8/unfused")->Apply(embed_args);
BENCHMARK_TEMPLATE(EmbedLN, true, true)->Name("EmbedLN/s8/fused")->Apply(embed_args);

}  // namespace

BENCHMARK_MAIN();
