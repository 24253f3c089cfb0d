// Portable f32 matrix products: batched MatMul with numpy batch broadcasting and ONNX Gemm.
// One core, gemm_rows_f32: a 6x16 register tile (GCC vector extensions at the target's native
// width: one zmm per row with AVX-512, two ymm with AVX2, four q registers on NEON), K walked in
// chunks of 256 and tiles column-panel-major, so a 256 x 16 panel of B stays in L1 for every row
// tile of the call. Edges (N % 16, rows % 6) use narrower variants of the same loops. Measured
// on the Zen 4 host, 128x768x3072, one thread: 9.1 ms vs 15.5 ms for the previous 4-row
// streaming loop (AVX-512); about equal with AVX2 only.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "kiln/kernels/common.h"
#include "kiln/kernels/parallel.h"

namespace kiln::kernels {

constexpr int kMatmulMr = 6;
constexpr int64_t kMatmulNr = 16;
// K is walked in chunks so that a kc x 16 panel of B (16 KB) stays in L1 for all row tiles.
constexpr int64_t kMatmulKc = 256;
// The target's native float vector (common.h: 16 lanes with AVX-512, 8 with AVX2, 4 on NEON).
constexpr int kMatmulVecFloats = kVecFloats;
constexpr int kMatmulVecs = kMatmulNr / kMatmulVecFloats;
using MatmulVec = VecF;

// C[0..MR, 0..16) += alpha * A(MR x K) * B(K x 16). Unaligned loads/stores through memcpy.
// Full unrolling keeps acc[][] in registers (-O2 does not unroll these loops on its own).
template <int MR>
inline void gemm_tile_f32(const float* A, int64_t a_si, int64_t a_sk, const float* B, int64_t b_sk,
                          float* C, int64_t ldc, int64_t K, float alpha) {
  MatmulVec acc[MR][kMatmulVecs];
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < kMatmulVecs; ++v) acc[r][v] = MatmulVec{};
  for (int64_t k = 0; k < K; ++k) {
    MatmulVec b[kMatmulVecs];
    std::memcpy(&b, B + k * b_sk, sizeof(b));
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      const float a = A[r * a_si + k * a_sk];
#pragma GCC unroll 4
      for (int v = 0; v < kMatmulVecs; ++v) acc[r][v] += a * b[v];
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r) {
    MatmulVec c[kMatmulVecs];
    std::memcpy(&c, C + r * ldc, sizeof(c));
#pragma GCC unroll 4
    for (int v = 0; v < kMatmulVecs; ++v) c[v] += alpha * acc[r][v];
    std::memcpy(C + r * ldc, &c, sizeof(c));
  }
}

// C[i, :] += alpha * sum_k A(i, k) * B(k, :) for rows [m0, m1). A(i, k) = A[i*a_si + k*a_sk];
// B(k, j) = B[k*b_sk + j*b_sn]; C row-major with leading dimension ldc.
inline void gemm_rows_f32(const float* A, int64_t a_si, int64_t a_sk, const float* B, int64_t b_sk,
                          int64_t b_sn, float* C, int64_t ldc, int64_t m0, int64_t m1, int64_t K,
                          int64_t N, float alpha) {
  if (b_sn != 1) {  // B transposed (k contiguous): dot products
    for (int64_t i = m0; i < m1; ++i)
      for (int64_t j = 0; j < N; ++j) {
        float acc = 0;
        const float* a = A + i * a_si;
        const float* b = B + j * b_sn;
        for (int64_t k = 0; k < K; ++k) acc += a[k * a_sk] * b[k * b_sk];
        C[i * ldc + j] += alpha * acc;
      }
    return;
  }
  const int64_t n_full = N / kMatmulNr * kMatmulNr;
  for (int64_t k0 = 0; k0 < K; k0 += kMatmulKc) {
    const int64_t kc = std::min(kMatmulKc, K - k0);
    for (int64_t j0 = 0; j0 < n_full; j0 += kMatmulNr) {
      for (int64_t i = m0; i < m1; i += kMatmulMr) {
        const float* a = A + i * a_si + k0 * a_sk;
        const float* b = B + k0 * b_sk + j0;
        float* c = C + i * ldc + j0;
        switch (std::min<int64_t>(kMatmulMr, m1 - i)) {
          case 6:
            gemm_tile_f32<6>(a, a_si, a_sk, b, b_sk, c, ldc, kc, alpha);
            break;
          case 5:
            gemm_tile_f32<5>(a, a_si, a_sk, b, b_sk, c, ldc, kc, alpha);
            break;
          case 4:
            gemm_tile_f32<4>(a, a_si, a_sk, b, b_sk, c, ldc, kc, alpha);
            break;
          case 3:
            gemm_tile_f32<3>(a, a_si, a_sk, b, b_sk, c, ldc, kc, alpha);
            break;
          case 2:
            gemm_tile_f32<2>(a, a_si, a_sk, b, b_sk, c, ldc, kc, alpha);
            break;
          default:
            gemm_tile_f32<1>(a, a_si, a_sk, b, b_sk, c, ldc, kc, alpha);
            break;
        }
      }
    }
  }
  if (n_full == N) return;
  for (int64_t i = m0; i < m1; ++i) {  // the last N % 16 columns
    float* __restrict c0 = C + i * ldc;
    const float* a = A + i * a_si;
    for (int64_t k = 0; k < K; ++k) {
      const float* __restrict b = B + k * b_sk;
      const float x = alpha * a[k * a_sk];
      for (int64_t j = n_full; j < N; ++j) c0[j] += x * b[j];
    }
  }
}

// Rows per parallel task: a multiple of the tile height, about two tasks per thread so the B
// panels are reused across several row tiles, capped so large M still splits finely.
inline int64_t matmul_task_rows(int64_t rows, const kiln_backend* be) {
  const int64_t threads = be && be->num_threads > 1 ? be->num_threads : 1;
  int64_t r = (rows + 2 * threads - 1) / (2 * threads);
  r = (r + kMatmulMr - 1) / kMatmulMr * kMatmulMr;
  return std::clamp<int64_t>(r, kMatmulMr, 16 * kMatmulMr);
}

// ONNX MatMul (numpy matmul) for f32. a: dims ad (rank ar >= 1), b: dims bd (rank br >= 1),
// out dense with the broadcast batch dims. 1-D operands follow numpy (prepend/append 1).
inline void matmul_f32(const float* a, const int64_t* ad, int ar, const float* b, const int64_t* bd,
                       int br, float* out, const kiln_backend* be) {
  const int64_t M = ar >= 2 ? ad[ar - 2] : 1, K = ad[ar - 1];
  const int64_t N = br >= 2 ? bd[br - 1] : 1;
  const int a_batch = ar > 2 ? ar - 2 : 0, b_batch = br > 2 ? br - 2 : 0;
  const int batch_rank = std::max(a_batch, b_batch);
  int64_t bdims[kMaxRank];
  for (int i = 0; i < batch_rank; ++i) {
    const int ia = i - (batch_rank - a_batch), ib = i - (batch_rank - b_batch);
    const int64_t da = ia >= 0 ? ad[ia] : 1, db = ib >= 0 ? bd[ib] : 1;
    bdims[i] = da == 1 ? db : da;
  }
  // Batch strides in elements of each operand's matrices.
  const int64_t* dims2[2] = {ad, bd};
  const int ranks2[2] = {a_batch, b_batch};
  StridedPlan p;
  p.rank = batch_rank;
  p.operands = 3;
  for (int i = 0; i < batch_rank; ++i) p.dims[i] = bdims[i];
  dense_strides(bdims, batch_rank, p.strides[0]);
  for (int k = 0; k < 2; ++k) broadcast_strides(dims2[k], ranks2[k], batch_rank, p.strides[k + 1]);
  for (int i = 0; i < batch_rank; ++i) {
    p.strides[0][i] *= M * N;
    p.strides[1][i] *= M * K;
    p.strides[2][i] *= K * N;
  }
  // Rows index (batch, m) with m the innermost dim: weights shared by every batch (b stride 0)
  // and a contiguous a then form one tall matrix, the common nn.Linear-as-MatMul case.
  p.dims[batch_rank] = M;
  p.strides[0][batch_rank] = N;
  p.strides[1][batch_rank] = K;
  p.strides[2][batch_rank] = 0;
  p.rank = batch_rank + 1;
  p.coalesce();
  if (M * N == 0) return;
  if (K == 0) {
    std::memset(out, 0, sizeof(float) * static_cast<size_t>(product(bdims, 0, batch_rank) * M * N));
    return;
  }
  // After coalescing, the last dim is (a run of) rows with strides N, K, 0 in out, a, b.
  const int64_t rows_inner = p.dims[p.rank - 1];
  const bool rows_flat = p.strides[0][p.rank - 1] == N && p.strides[1][p.rank - 1] == K &&
                         p.strides[2][p.rank - 1] == 0;
  const int64_t run = rows_flat ? rows_inner : 1;  // rows sharing one a/b/out base
  const int64_t groups = (product(p.dims, 0, p.rank)) / run;
  const int64_t task_rows = matmul_task_rows(run, be);
  const int64_t blocks_per_group = (run + task_rows - 1) / task_rows;
  const int64_t work = groups * blocks_per_group;
  const int64_t flops_per_block = task_rows * K * N;
  const int64_t grain = std::max<int64_t>(1, (1 << 18) / std::max<int64_t>(1, flops_per_block));
  parallel_for(be, work, grain, [&](int64_t w0, int64_t w1) {
    for (int64_t w = w0; w < w1; ++w) {
      const int64_t g = w / blocks_per_group, blk = w % blocks_per_group;
      int64_t off[3] = {0, 0, 0};
      // Group g indexes all plan dims except the trailing run (if flat) or all dims.
      int64_t idx = g;
      for (int i = p.rank - (rows_flat ? 2 : 1); i >= 0; --i) {
        const int64_t d = idx % p.dims[i];
        idx /= p.dims[i];
        for (int k = 0; k < 3; ++k) off[k] += d * p.strides[k][i];
      }
      const int64_t m0 = blk * task_rows, m1 = std::min(run, m0 + task_rows);
      // With !rows_flat, run == 1 and the group offset already points at the row.
      float* c = out + off[0];
      for (int64_t i = m0; i < m1; ++i) std::memset(c + i * N, 0, sizeof(float) * N);
      gemm_rows_f32(a + off[1], K, 1, b + off[2], N, 1, c, N, m0, m1, K, N, 1.0f);
    }
  });
}

// ONNX Gemm: Y[M, N] = alpha * A' * B' + beta * C, A' = transA ? A^T : A (A' is M x K),
// B' = transB ? B^T : B. C (optional, may be null) is broadcast to [M, N]: c_rs / c_cs are its
// row / column strides (0 = broadcast).
inline void gemm_f32(const float* A, bool trans_a, const float* B, bool trans_b, const float* C,
                     int64_t c_rs, int64_t c_cs, float* Y, int64_t M, int64_t K, int64_t N,
                     float alpha, float beta, const kiln_backend* be) {
  const int64_t a_si = trans_a ? 1 : K, a_sk = trans_a ? M : 1;
  const int64_t b_sk = trans_b ? 1 : N, b_sn = trans_b ? K : 1;
  const int64_t task_rows = matmul_task_rows(M, be);
  const int64_t blocks = (M + task_rows - 1) / task_rows;
  const int64_t grain = std::max<int64_t>(1, (1 << 18) / std::max<int64_t>(1, task_rows * K * N));
  parallel_for(be, blocks, grain, [&](int64_t b0, int64_t b1) {
    const int64_t m0 = b0 * task_rows, m1 = std::min(M, b1 * task_rows);
    for (int64_t i = m0; i < m1; ++i) {
      float* y = Y + i * N;
      if (C && beta != 0.0f)
        for (int64_t j = 0; j < N; ++j) y[j] = beta * C[i * c_rs + j * c_cs];
      else
        std::memset(y, 0, sizeof(float) * N);
    }
    if (K > 0) gemm_rows_f32(A, a_si, a_sk, B, b_sk, b_sn, Y, N, m0, m1, K, N, alpha);
  });
}

}  // namespace kiln::kernels
