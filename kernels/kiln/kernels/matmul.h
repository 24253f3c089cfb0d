// Reference-quality f32 matrix products: batched MatMul with numpy batch broadcasting and ONNX
// Gemm. One row-panel core: 4 rows of C at a time, columns in blocks of kMatmulNc so the 4 C rows
// and the streamed B rows stay in L1/L2; the j loop is unit-stride for the auto-vectoriser.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "kiln/kernels/common.h"
#include "kiln/kernels/parallel.h"

namespace kiln::kernels {

constexpr int64_t kMatmulMr = 4;
constexpr int64_t kMatmulNc = 256;

// C[i, :] += alpha * sum_k A(i, k) * B(k, :) for rows [m0, m1). A(i, k) = A[i*a_si + k*a_sk];
// B(k, j) = B[k*b_sk + j*b_sn]; C row-major with leading dimension ldc.
inline void gemm_rows_f32(const float* A, int64_t a_si, int64_t a_sk, const float* B,
                          int64_t b_sk, int64_t b_sn, float* C, int64_t ldc, int64_t m0,
                          int64_t m1, int64_t K, int64_t N, float alpha) {
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
  for (int64_t j0 = 0; j0 < N; j0 += kMatmulNc) {
    const int64_t nb = std::min(kMatmulNc, N - j0);
    int64_t i = m0;
    for (; i + kMatmulMr <= m1; i += kMatmulMr) {
      float* __restrict c0 = C + i * ldc + j0;
      float* __restrict c1 = c0 + ldc;
      float* __restrict c2 = c1 + ldc;
      float* __restrict c3 = c2 + ldc;
      const float* a = A + i * a_si;
      for (int64_t k = 0; k < K; ++k) {
        const float* __restrict b = B + k * b_sk + j0;
        const float x0 = alpha * a[k * a_sk], x1 = alpha * a[a_si + k * a_sk],
                    x2 = alpha * a[2 * a_si + k * a_sk], x3 = alpha * a[3 * a_si + k * a_sk];
        for (int64_t j = 0; j < nb; ++j) {
          const float bj = b[j];
          c0[j] += x0 * bj;
          c1[j] += x1 * bj;
          c2[j] += x2 * bj;
          c3[j] += x3 * bj;
        }
      }
    }
    for (; i < m1; ++i) {
      float* __restrict c0 = C + i * ldc + j0;
      const float* a = A + i * a_si;
      for (int64_t k = 0; k < K; ++k) {
        const float* __restrict b = B + k * b_sk + j0;
        const float x0 = alpha * a[k * a_sk];
        for (int64_t j = 0; j < nb; ++j) c0[j] += x0 * b[j];
      }
    }
  }
}

// ONNX MatMul (numpy matmul) for f32. a: dims ad (rank ar >= 1), b: dims bd (rank br >= 1),
// out dense with the broadcast batch dims. 1-D operands follow numpy (prepend/append 1).
inline void matmul_f32(const float* a, const int64_t* ad, int ar, const float* b,
                       const int64_t* bd, int br, float* out, const kiln_backend* be) {
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
  const int64_t blocks_per_group = (run + kMatmulMr - 1) / kMatmulMr;
  const int64_t work = groups * blocks_per_group;
  const int64_t flops_per_block = kMatmulMr * K * N;
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
      const int64_t m0 = blk * kMatmulMr, m1 = std::min(run, m0 + kMatmulMr);
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
  const int64_t blocks = (M + kMatmulMr - 1) / kMatmulMr;
  const int64_t grain = std::max<int64_t>(1, (1 << 18) / std::max<int64_t>(1, kMatmulMr * K * N));
  parallel_for(be, blocks, grain, [&](int64_t b0, int64_t b1) {
    const int64_t m0 = b0 * kMatmulMr, m1 = std::min(M, b1 * kMatmulMr);
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
