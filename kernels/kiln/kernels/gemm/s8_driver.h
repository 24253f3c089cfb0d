// The threaded INT8 GEMM driver over B packed by s8_pack.h, generic over micro-kernel tables:
//   C[M, N] = epilogue(scale_a[m] * scale_w[n] * sum_k (qa[m, k] - z[m]) * qw[k, n])
// (bias, gelu, residual as in the FP32 GEMM, types.h Epilogue).
//
// Two steps per call: (1) quantize A's rows (s8_quantize.h, per row, in the variant's ActFormat)
// into a workspace, one row tile at a time and in parallel over tiles, each tile interleaved by
// groups of 4 k the way the micro-kernels read it (s8_types.h: one pointer walks the tile, so the
// k loop needs no register per row; with a pointer per row GCC ran out of registers, kept the
// loop counter on the stack and reached 53-60 % of the vpdpbusd peak); (2) the FP32 driver's plan
// and item walk (driver.h: balanced row tiles, work items = row groups x column groups, a count
// that is a multiple of the thread count, prefetch of the next column tile's B into L2, narrow
// column tiles through zero-padded scratch), with S8TileArgs instead of TileArgs. K is never
// blocked: a tile's int32 accumulators stay in registers over all of K (a BERT panel is at most
// 3072 x 16 bytes = 48 KiB), so Schedule::kc is ignored.
// Workspace: gemm_s8_workspace_bytes(M, K), caller-provided or a thread_local buffer that only
// grows (no allocation per call once it is big enough).
#pragma once

#include <cstdint>
#include <vector>

#include "kiln/backend.h"
#include "kiln/kernels/common.h"
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

// Bytes of one quantized row of K values: K rounded up to 16 values, then to a cache line (the
// row-major rows that quantize_rows writes).
inline int64_t s8_act_row_bytes(ActFormat f, int64_t K) {
  const int64_t bytes = (K + 15) / 16 * 16 * act_format_bytes(f);
  return bytes < 64 ? 64 : (bytes + 63) / 64 * 64;
}

// Workspace for any variant: the interleaved tiles (M rows of K padded to 4, int16 at worst), M
// scales and M zero points, and slack to align it to 64 bytes.
inline size_t gemm_s8_workspace_bytes(int64_t M, int64_t K) {
  return static_cast<size_t>(M * (s8_act_row_bytes(ActFormat::kS16, K) + 8) + 64);
}

// A quantized by rows, row-major: row m at data + m * ld (ld bytes), its scale and zero point (+
// format offset).
struct QuantizedRows {
  const uint8_t* data;
  int64_t ld;
  const float* scale;
  const int32_t* zp;
};

namespace detail {

// Row tile t of the plan in the micro-kernels' layout starts at row_of_tile(t) * tile_row_bytes:
// every plan's tiles fit in M rows' worth.
inline int64_t tile_row_bytes(ActFormat f, int64_t K) {
  return s8_padded_k(K) * act_format_bytes(f);
}

// Copies `rows` row-major quantized rows (ld bytes apart) into the micro-kernels' layout: group g
// (4 values, U bytes) of row r at out + (g * rows + r) * U. Blocks of 16 / U rows x 16 / U groups
// are transposed in 16-byte registers (common.h transpose_4x4_32 for U = 4); a copy per group was
// ~2 % of an INT8 BERT run.
template <int U>
void interleave_rows(const uint8_t* in, int64_t ld, int rows, int64_t groups, uint8_t* out) {
  static_assert(U == 4 || U == 8, "groups of 4 values of 1 or 2 bytes");
  constexpr int kB = 16 / U;  // rows and groups per block
  typedef uint64_t V2 __attribute__((vector_size(16)));
  const int rows_b = rows / kB * kB;
  const int64_t groups_b = groups / kB * kB;
  for (int r = 0; r < rows_b; r += kB) {
    for (int64_t g = 0; g < groups_b; g += kB) {
      const uint8_t* src = in + r * ld + g * U;
      uint8_t* dst = out + (g * rows + r) * U;
      if constexpr (U == 4) {
        transpose_4x4_32(src, ld, dst, rows * U);
      } else {
        V2 r0, r1;
        std::memcpy(&r0, src, 16);
        std::memcpy(&r1, src + ld, 16);
        const V2 c0 = __builtin_shuffle(r0, r1, V2{0, 2});
        const V2 c1 = __builtin_shuffle(r0, r1, V2{1, 3});
        std::memcpy(dst, &c0, 16);
        std::memcpy(dst + rows * U, &c1, 16);
      }
    }
  }
  // What the blocks left: the last groups of the block rows, every group of the last rows.
  for (int r = 0; r < rows; ++r)
    for (int64_t g = r < rows_b ? groups_b : 0; g < groups; ++g)
      std::memcpy(out + (g * rows + r) * U, in + r * ld + g * U, U);
}

inline void interleave_tile(ActFormat f, const uint8_t* in, int64_t ld, int rows, int64_t K,
                            uint8_t* out) {
  if (f == ActFormat::kS16)
    interleave_rows<8>(in, ld, rows, s8_padded_k(K) / 4, out);
  else
    interleave_rows<4>(in, ld, rows, s8_padded_k(K) / 4, out);
}

// Quantized A ready for the micro-kernels: the plan's row tiles interleaved (tile_row_bytes).
struct TiledRows {
  const uint8_t* data;
  const float* scale;
  const int32_t* zp;
};

// One work item: row tiles [t0, t1) x column tiles [j0, j1).
inline void run_s8_item(const Plan& p, const S8KernelTable& kt, int64_t t0, int64_t t1, int64_t j0,
                        int64_t j1, const TiledRows& qa, const PackedS8& B, float* C, int64_t ldc,
                        const Epilogue& ep) {
  const int64_t tile_cols = kNr * p.panels;
  const int64_t kp = s8_padded_k(p.K);
  const int64_t panel_stride = kp * kNr;
  const int64_t row_bytes = tile_row_bytes(kt.format, p.K);
  // Every row tile prefetches its own slice of the next column tile's panels, at step bytes per
  // group (ceil(64 / tiles), so the tiles cover each panel's kp / 4 lines), as in driver.h: the
  // next tile arrives over the whole column tile's time. From one row tile it had to arrive within
  // that tile's K loop (~1 us for K = 768 on one AVX-512 core: tens of GB/s from L3 or DRAM).
  const int64_t tiles = t1 - t0;
  const int64_t step = (64 + tiles - 1) / tiles;
  const int64_t slice = kp / 4 * step;  // bytes of a panel each row tile prefetches
  for (int64_t j = j0; j < j1; ++j) {
    const int64_t n0 = j * tile_cols;
    const int64_t cols = std::min(tile_cols, p.N - n0);
    const int panels = static_cast<int>((cols + kNr - 1) / kNr);
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t r0 = row_of_tile(p, t);
      const int rows = static_cast<int>(row_of_tile(p, t + 1) - r0);
      S8TileArgs a;
      a.groups = kp / 4;
      a.a = qa.data + r0 * row_bytes;
      a.b = B.data + (n0 / kNr) * panel_stride;
      a.b_panel_stride = panel_stride;
      const int64_t pf_offset = (t - t0) * slice;
      a.prefetch = p.prefetch && j + 1 < j1 && pf_offset < panel_stride
                       ? a.b + p.panels * panel_stride + pf_offset
                       : nullptr;
      a.prefetch_step = step;
      a.a_scale = qa.scale + r0;
      a.a_zp = qa.zp + r0;
      a.w_scale = B.scale + n0;
      a.colsum = B.colsum ? B.colsum + n0 : nullptr;
      a.group_steps = B.group / 4;
      a.w_scale_stride = B.scale_stride;
      a.w_zsum = B.zsum ? B.zsum + n0 : nullptr;
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
// saves (as in the FP32 driver). Schedule::threads caps the count (driver.h call_threads).
inline CallThreads s8_threads(const Schedule& s, const kiln_backend* be, int64_t M, int64_t N,
                              int64_t K) {
  return call_threads(s, be, 2.0 * M * N * K >= double(1 << 18));
}

inline Plan s8_plan(const S8KernelTable& kt, const Schedule& s, const CallThreads& th, int64_t M,
                    int64_t N, int64_t K) {
  Schedule sched = s;
  sched.kc = 0;
  return make_plan(sched, kt, th.count, M, N, K);
}

// Step (2) on tiles laid out for plan p.
inline void run_s8_plan(const Plan& p, const S8KernelTable& kt, const CallThreads& th,
                        const TiledRows& qa, const PackedS8& B, float* C, int64_t ldc,
                        const Epilogue& ep) {
  // LayerNorm epilogue as in the FP32 driver: per item when items own whole rows.
  const bool ln_in_item = ep.layer_norm && p.n_groups == 1;
  const int64_t items = p.m_groups * p.n_groups;
  parallel_for(th.be, items, th.grain(items), [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t g = i / p.n_groups, h = i % p.n_groups;
      const int64_t t0 = split_point(p.m_tiles, p.m_groups, g);
      const int64_t t1 = split_point(p.m_tiles, p.m_groups, g + 1);
      run_s8_item(p, kt, t0, t1, split_point(p.n_tiles, p.n_groups, h),
                  split_point(p.n_tiles, p.n_groups, h + 1), qa, B, C, ldc, ep);
      if (ln_in_item) layer_norm_rows(ep, C, ldc, p.N, row_of_tile(p, t0), row_of_tile(p, t1));
    }
  });
  if (ep.layer_norm && !ln_in_item) layer_norm_pass(ep, th, C, ldc, p.M, p.N);
}

// A buffer of at least `bytes`, 64-byte aligned: `workspace` when given, else a thread_local one
// that only grows.
inline uint8_t* s8_workspace(void* workspace, size_t bytes) {
  uint8_t* ws = static_cast<uint8_t*>(workspace);
  if (!ws) {
    thread_local std::vector<uint8_t> buffer;
    if (buffer.size() < bytes + 64) buffer.resize(bytes + 64);
    ws = buffer.data();
  }
  return ws + (64 - reinterpret_cast<uintptr_t>(ws) % 64) % 64;
}

}  // namespace detail

// Step (2) alone, on rows already quantized in kt.format (row-major): the driver's int32 path,
// which the tests check exactly.
inline void gemm_s8_quantized_with(const S8KernelTable& kt, const Schedule& s,
                                   const kiln_backend* be, int64_t M, int64_t N, int64_t K,
                                   const QuantizedRows& qa, const PackedS8& B, float* C,
                                   int64_t ldc, const Epilogue& ep) {
  if (M <= 0 || N <= 0) return;
  const detail::CallThreads th = detail::s8_threads(s, be, M, N, K);
  const detail::Plan p = detail::s8_plan(kt, s, th, M, N, K);
  std::vector<uint8_t> buffer(M * detail::tile_row_bytes(kt.format, K) + 64);
  uint8_t* tiles = detail::s8_workspace(buffer.data(), buffer.size() - 64);
  for (int64_t t = 0; t < p.m_tiles; ++t) {
    const int64_t r0 = detail::row_of_tile(p, t);
    detail::interleave_tile(kt.format, qa.data + r0 * qa.ld, qa.ld,
                            static_cast<int>(detail::row_of_tile(p, t + 1) - r0), K,
                            tiles + r0 * detail::tile_row_bytes(kt.format, K));
  }
  detail::run_s8_plan(p, kt, th, detail::TiledRows{tiles, qa.scale, qa.zp}, B, C, ldc, ep);
}

// C[M, N] = epilogue(dequant(quantize(A) * B)). A row-major, lda >= K floats; C ldc >= N;
// ep.residual may be C itself (same ld); `be` may be null (one thread). workspace: null (a
// thread_local buffer) or gemm_s8_workspace_bytes(M, K) bytes. B.K must be K, B.N must be N.
inline void gemm_s8_packed_with(const S8KernelTable& kt, const Schedule& s, const kiln_backend* be,
                                int64_t M, int64_t N, int64_t K, const float* A, int64_t lda,
                                const PackedS8& B, float* C, int64_t ldc, const Epilogue& ep,
                                void* workspace = nullptr) {
  if (M <= 0 || N <= 0) return;
  uint8_t* ws = detail::s8_workspace(workspace, gemm_s8_workspace_bytes(M, K) - 64);
  const int64_t row_bytes = detail::tile_row_bytes(kt.format, K);
  float* scale = reinterpret_cast<float*>(ws + M * row_bytes);
  int32_t* zp = reinterpret_cast<int32_t*>(scale + M);
  const detail::CallThreads th = detail::s8_threads(s, be, M, N, K);
  const detail::Plan p = detail::s8_plan(kt, s, th, M, N, K);
  // Each tile's rows are quantized row-major into a small per-thread scratch (L1-resident), then
  // interleaved into the workspace.
  const int64_t ld = s8_act_row_bytes(kt.format, K);
  const bool parallel_quantize = M * K >= (1 << 14);
  parallel_for(parallel_quantize ? th.be : nullptr, p.m_tiles, th.grain(p.m_tiles),
               [&](int64_t t0, int64_t t1) {
                 thread_local std::vector<uint8_t> scratch;
                 if (scratch.size() < static_cast<size_t>(kMaxMr * ld)) scratch.resize(kMaxMr * ld);
                 for (int64_t t = t0; t < t1; ++t) {
                   const int64_t r0 = detail::row_of_tile(p, t);
                   const int rows = static_cast<int>(detail::row_of_tile(p, t + 1) - r0);
                   kt.quantize(A + r0 * lda, lda, rows, K, B.act_smooth, scratch.data(), ld,
                               scale + r0, zp + r0);
                   detail::interleave_tile(kt.format, scratch.data(), ld, rows, K,
                                           ws + r0 * row_bytes);
                 }
               });
  detail::run_s8_plan(p, kt, th, detail::TiledRows{ws, scale, zp}, B, C, ldc, ep);
}

}  // namespace kiln::kernels::gemm
