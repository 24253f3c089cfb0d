// The threaded INT8 GEMM driver over B packed by s8_pack.h, generic over micro-kernel tables:
//   C[M, N] = epilogue(scale_a[m] * scale_w[n] * sum_k (qa[m, k] - z[m]) * qw[k, n])
// (bias, gelu, residual as in the FP32 GEMM, types.h Epilogue).
//
// Two steps per call: (1) quantize A's rows (s8_quantize.h, per row, in the variant's ActFormat)
// into a workspace, in parallel over rows; (2) the FP32 driver's plan and item walk (driver.h:
// balanced row tiles, work items = row groups x column groups, a count that is a multiple of the
// thread count, prefetch of the next column tile's B into L2, narrow column tiles through
// zero-padded scratch), with S8TileArgs instead of TileArgs. K is never blocked: a tile's int32
// accumulators stay in registers over all of K (a BERT panel is at most 3072 x 16 bytes = 48 KiB),
// so Schedule::kc is ignored.
// Workspace: gemm_s8_workspace_bytes(M, K), caller-provided or a thread_local buffer that only
// grows (no allocation per call once it is big enough).
#pragma once

#include <cstdint>
#include <vector>

#include "kiln/backend.h"
#include "kiln/kernels/gemm/driver.h"
#include "kiln/kernels/gemm/s8_pack.h"
#include "kiln/kernels/gemm/s8_quantize.h"
#include "kiln/kernels/gemm/s8_types.h"
#include "kiln/kernels/parallel.h"

namespace kiln::kernels::gemm {

// A micro-kernel's instantiations plus how its activations are quantized and stored.
struct S8KernelTable : BasicKernelTable<S8TileFn> {
  ActFormat format = ActFormat::kS8;
  QuantizeRowsFn quantize = nullptr;
};

template <class Kernel, ActFormat F, QuantizeRowsFn Quantize>
const S8KernelTable& s8_kernel_table() {
  static const S8KernelTable t = [] {
    S8KernelTable s;
    static_cast<BasicKernelTable<S8TileFn>&>(s) = kernel_table<Kernel>();
    s.format = F;
    s.quantize = Quantize;
    return s;
  }();
  return t;
}

// Bytes of one quantized row of K values: K rounded up to 16 values, then to a cache line.
inline int64_t s8_act_row_bytes(ActFormat f, int64_t K) {
  const int64_t bytes = (K + 15) / 16 * 16 * act_format_bytes(f);
  return bytes < 64 ? 64 : (bytes + 63) / 64 * 64;
}

// Workspace for any variant: quantized rows (int16 at worst), M scales and M zero points, and
// slack to align it to 64 bytes.
inline size_t gemm_s8_workspace_bytes(int64_t M, int64_t K) {
  return static_cast<size_t>(M * (s8_act_row_bytes(ActFormat::kS16, K) + 8) + 64);
}

// A quantized by rows: row m at data + m * ld (ld bytes), its scale and zero point (+ format
// offset).
struct QuantizedRows {
  const uint8_t* data;
  int64_t ld;
  const float* scale;
  const int32_t* zp;
};

namespace detail {

// One work item: row tiles [t0, t1) x column tiles [j0, j1).
inline void run_s8_item(const Plan& p, const S8KernelTable& kt, int64_t t0, int64_t t1, int64_t j0,
                        int64_t j1, const QuantizedRows& qa, const PackedS8& B, float* C,
                        int64_t ldc, const Epilogue& ep) {
  const int64_t tile_cols = kNr * p.panels;
  const int64_t kp = s8_padded_k(p.K);
  const int64_t panel_stride = kp * kNr;
  for (int64_t j = j0; j < j1; ++j) {
    const int64_t n0 = j * tile_cols;
    const int64_t cols = std::min(tile_cols, p.N - n0);
    const int panels = static_cast<int>((cols + kNr - 1) / kNr);
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t r0 = row_of_tile(p, t);
      const int rows = static_cast<int>(row_of_tile(p, t + 1) - r0);
      S8TileArgs a;
      a.groups = kp / 4;
      a.a = qa.data + r0 * qa.ld;
      a.lda = qa.ld;
      a.b = B.data + (n0 / kNr) * panel_stride;
      a.b_panel_stride = panel_stride;
      a.prefetch = t == t0 && j + 1 < j1 ? a.b + p.panels * panel_stride : nullptr;
      a.a_scale = qa.scale + r0;
      a.a_zp = qa.zp + r0;
      a.w_scale = B.scale + n0;
      a.colsum = B.colsum + n0;
      a.c = C + r0 * ldc + n0;
      a.ldc = ldc;
      a.accumulate = false;
      a.bias = ep.bias ? ep.bias + n0 : nullptr;
      a.residual = ep.residual ? ep.residual + r0 * ep.ldr + n0 : nullptr;
      a.ldr = ep.ldr;
      a.gelu = ep.gelu;
      const S8TileFn fn = kt.fn[rows - 1][panels - 1];
      if (cols == kNr * panels)
        fn(a);
      else
        run_narrow_tile(fn, a, rows, cols);
    }
  }
}

// Below ~2^18 MAC (a few microseconds on a Pi 4 core) waking other threads costs more than it
// saves (as in the FP32 driver).
inline bool s8_parallel(const kiln_backend* be, int64_t M, int64_t N, int64_t K) {
  return be && be->parallel_for && be->num_threads > 1 && 2.0 * M * N * K >= double(1 << 18);
}

}  // namespace detail

// Step (2) alone, on rows already quantized in kt.format: the driver's int32 path, which the
// tests check exactly.
inline void gemm_s8_quantized_with(const S8KernelTable& kt, const Schedule& s,
                                   const kiln_backend* be, int64_t M, int64_t N, int64_t K,
                                   const QuantizedRows& qa, const PackedS8& B, float* C,
                                   int64_t ldc, const Epilogue& ep) {
  if (M <= 0 || N <= 0) return;
  const bool parallel = detail::s8_parallel(be, M, N, K);
  Schedule sched = s;
  sched.kc = 0;
  const detail::Plan p = detail::make_plan(sched, kt, parallel ? be->num_threads : 1, M, N, K);
  // LayerNorm epilogue as in the FP32 driver: per item when items own whole rows.
  const bool ln_in_item = ep.layer_norm && p.n_groups == 1;
  parallel_for(parallel ? be : nullptr, p.m_groups * p.n_groups, 1, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t g = i / p.n_groups, h = i % p.n_groups;
      const int64_t t0 = detail::split_point(p.m_tiles, p.m_groups, g);
      const int64_t t1 = detail::split_point(p.m_tiles, p.m_groups, g + 1);
      detail::run_s8_item(p, kt, t0, t1, detail::split_point(p.n_tiles, p.n_groups, h),
                          detail::split_point(p.n_tiles, p.n_groups, h + 1), qa, B, C, ldc, ep);
      if (ln_in_item)
        detail::layer_norm_rows(ep, C, ldc, N, detail::row_of_tile(p, t0),
                                detail::row_of_tile(p, t1));
    }
  });
  if (ep.layer_norm && !ln_in_item) detail::layer_norm_pass(ep, be, parallel, C, ldc, M, N);
}

// C[M, N] = epilogue(dequant(quantize(A) * B)). A row-major, lda >= K floats; C ldc >= N;
// ep.residual may be C itself (same ld); `be` may be null (one thread). workspace: null (a
// thread_local buffer) or gemm_s8_workspace_bytes(M, K) bytes. B.K must be K, B.N must be N.
inline void gemm_s8_packed_with(const S8KernelTable& kt, const Schedule& s, const kiln_backend* be,
                                int64_t M, int64_t N, int64_t K, const float* A, int64_t lda,
                                const PackedS8& B, float* C, int64_t ldc, const Epilogue& ep,
                                void* workspace = nullptr) {
  if (M <= 0 || N <= 0) return;
  uint8_t* ws = static_cast<uint8_t*>(workspace);
  if (!ws) {
    thread_local std::vector<uint8_t> buffer;
    const size_t need = gemm_s8_workspace_bytes(M, K);
    if (buffer.size() < need) buffer.resize(need);
    ws = buffer.data();
  }
  ws += (64 - reinterpret_cast<uintptr_t>(ws) % 64) % 64;
  const int64_t ld = s8_act_row_bytes(kt.format, K);
  float* scale = reinterpret_cast<float*>(ws + M * ld);
  int32_t* zp = reinterpret_cast<int32_t*>(scale + M);
  const bool parallel = detail::s8_parallel(be, M, N, K) && M * K >= (1 << 14);
  parallel_for(parallel ? be : nullptr, M, 8, [&](int64_t m0, int64_t m1) {
    kt.quantize(A + m0 * lda, lda, m1 - m0, K, ws + m0 * ld, ld, scale + m0, zp + m0);
  });
  gemm_s8_quantized_with(kt, s, be, M, N, K, QuantizedRows{ws, ld, scale, zp}, B, C, ldc, ep);
}

}  // namespace kiln::kernels::gemm
