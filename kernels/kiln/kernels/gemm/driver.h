// The blocked, threaded FP32 GEMM driver over pre-packed B (pack.h), generic over micro-kernel
// tables: C[M, N] = epilogue(A[M, K] * B[K, N]).
//
// Blocking: work item = (group of row tiles <= mc rows, group of column tiles <= nc columns);
// items go to parallel_for. Within an item:
//   for each K block [k0, k1):  for each column tile (16 or 32 columns = 1 or 2 panels):
//     for each row tile: micro-kernel
// so a column tile's B rows (K block x 64 or 128 bytes) are reused from L1/L2 by every row tile,
// the item's rows of A stay in L2, and every row tile of a column tile prefetches its slice of
// the next column tile's B into L2 (B comes from L3 or DRAM: 2.4-9.4 MB for BERT-base).
// A is not packed: the micro-kernels broadcast straight from A's rows (from a row-padded copy
// only when lda would put a tile's rows into one L1 set, see a_copy_ld). Measured on the build host
// (AVX-512, M=168 K=768, % of peak): packing A into k-major row panels gave 45% vs ~100% at N=32,
// 82% vs 87% at N=768 (docs/architecture.md, "GEMM kernels").
// Threads: the column-group count is rounded so that the item count is a multiple of the thread
// count: M = 16 on 2 threads splits N in two. Schedule::threads caps the count for one call.
// Edges: M is cut into balanced row tiles (every height is instantiated); a column tile narrower
// than the kernel's is computed in a zero-padded scratch tile and copied out; K = 0 gives
// epilogue(0).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <type_traits>
#include <utility>
#include <vector>

#include "kiln/backend.h"
#include "kiln/kernels/gemm/types.h"
#include "kiln/kernels/normalization.h"
#include "kiln/kernels/parallel.h"

namespace kiln::kernels::gemm {

// Every instantiation of one micro-kernel: fn[rows - 1][panels - 1]. Fn is the micro-kernel's
// pointer type (TileFn for FP32, S8TileFn for the INT8 kernels in s8_driver.h).
template <class Fn>
struct BasicKernelTable {
  int max_rows = 0;
  int max_panels = 0;
  Fn fn[kMaxMr][2] = {};
};
using KernelTable = BasicKernelTable<TileFn>;

template <class Kernel, int... R>
auto make_kernel_table(std::integer_sequence<int, R...>) {
  static_assert(Kernel::kMaxRows <= kMaxMr, "raise kMaxMr");
  using Fn = std::remove_const_t<decltype(Kernel::template kTile<1, 1>)>;
  BasicKernelTable<Fn> t;
  t.max_rows = Kernel::kMaxRows;
  t.max_panels = Kernel::kMaxPanels;
  ((t.fn[R][0] = Kernel::template kTile<R + 1, 1>), ...);
  if constexpr (Kernel::kMaxPanels == 2) ((t.fn[R][1] = Kernel::template kTile<R + 1, 2>), ...);
  return t;
}

template <class Kernel>
const auto& kernel_table() {
  static const auto t =
      make_kernel_table<Kernel>(std::make_integer_sequence<int, Kernel::kMaxRows>{});
  return t;
}

namespace detail {

// [begin, end) of part i when n things are cut into `parts` parts that differ by at most one.
inline int64_t split_point(int64_t n, int64_t parts, int64_t i) {
  return (n / parts) * i + std::min(i, n % parts);
}

struct Plan {
  int64_t M, N, K;
  int mr, panels;
  int64_t m_tiles, n_tiles;  // row tiles (balanced heights <= mr), column tiles (16*panels cols)
  int64_t m_groups, n_groups;
  int64_t k_blocks;
  bool prefetch;  // Schedule::prefetch
};

template <class Table>
Plan make_plan(const Schedule& s, const Table& kt, int threads, int64_t M, int64_t N, int64_t K) {
  Plan p;
  p.M = M;
  p.N = N;
  p.K = K;
  p.mr = std::max(1, std::min(s.mr, kt.max_rows));
  p.panels = std::max(1, std::min(s.panels, kt.max_panels));
  p.m_tiles = (M + p.mr - 1) / p.mr;
  p.n_tiles = (N + kNr * p.panels - 1) / (kNr * p.panels);
  const int64_t tiles_per_group = std::max<int64_t>(1, s.mc / p.mr);
  p.m_groups = (p.m_tiles + tiles_per_group - 1) / tiles_per_group;
  // Column groups: at most nc columns each, and a count that makes the item count a multiple of
  // the thread count (when there are enough column tiles).
  const int64_t tile_cols = kNr * p.panels;
  const int64_t nc_tiles = s.nc > 0 ? std::max<int64_t>(1, s.nc / tile_cols) : p.n_tiles;
  const int64_t t = std::max(1, threads);
  const int64_t step = t / std::gcd(p.m_groups, t);  // n_groups multiple of this balances threads
  p.n_groups = (p.n_tiles + nc_tiles - 1) / nc_tiles;
  p.n_groups = std::min(p.n_tiles, (p.n_groups + step - 1) / step * step);
  const int64_t kc = s.kc > 0 ? std::min(s.kc, K) : K;
  p.k_blocks = kc > 0 ? (K + kc - 1) / kc : 1;
  p.prefetch = s.prefetch != 0;
  return p;
}

inline int64_t row_of_tile(const Plan& p, int64_t tile) {
  return split_point(p.M, p.m_tiles, tile);
}

// A column tile narrower than the kernel's (cols < 16 * panels): run the kernel on zero-padded
// scratch copies of C, bias and residual, then copy the `cols` columns out. Args is TileArgs or
// S8TileArgs (same c, ldc, accumulate, bias, residual, ldr fields).
template <class Args>
void run_narrow_tile(void (*fn)(const Args&), Args a, int rows, int64_t cols) {
  alignas(64) float cbuf[kMaxMr * kMaxTileCols] = {};
  alignas(64) float rbuf[kMaxMr * kMaxTileCols] = {};
  alignas(64) float bbuf[kMaxTileCols] = {};
  for (int r = 0; r < rows; ++r) {
    if (a.accumulate) std::memcpy(cbuf + r * kMaxTileCols, a.c + r * a.ldc, cols * 4);
    if (a.residual) std::memcpy(rbuf + r * kMaxTileCols, a.residual + r * a.ldr, cols * 4);
  }
  if (a.bias) std::memcpy(bbuf, a.bias, cols * 4);
  float* c_out = a.c;
  const int64_t ldc = a.ldc;
  a.c = cbuf;
  a.ldc = kMaxTileCols;
  if (a.bias) a.bias = bbuf;
  if (a.residual) a.residual = rbuf, a.ldr = kMaxTileCols;
  fn(a);
  for (int r = 0; r < rows; ++r) std::memcpy(c_out + r * ldc, cbuf + r * kMaxTileCols, cols * 4);
}

// L1d geometry for a_copy_ld: x86 (Intel since Sandy Bridge, AMD Zen) has 64 sets of 64-byte
// lines (a 4 KiB way) and 8-12 ways; Cortex-A72 / A76 have 256 sets (a 16 KiB way), 2 / 4 ways.
// kMaxARowsPerSet: on Zen 5 (12 ways) the 8-row tiles of M = 16 at K = 3072 run as fast in one set
// as spread out, so copying them only costs time (2-3 %); 14 rows lose 7-10 %.
#if defined(__aarch64__)
constexpr int64_t kL1Sets = 256;
constexpr int kMaxARowsPerSet = 1;
#else
constexpr int64_t kL1Sets = 64;
constexpr int kMaxARowsPerSet = 8;
#endif

// Leading dimension of the copy of A that a work item reads instead of A, or 0 to read A in
// place. The micro-kernel walks a tile's `rows` rows of A in lockstep, one broadcast per row and k;
// when lda * 4 bytes is a multiple of the L1 way (K = 1024, 2048, 3072 on x86), all the rows fall
// into one L1 set, overflow its ways, and every broadcast misses L1 (AVX-512, M = 512 K = 3072 N =
// 768: 83 % of peak, 90 % with lda padded by 16). The copy's rows are an odd number of lines apart,
// so up to kL1Sets consecutive rows land in distinct sets. The copy costs one pass over the item's
// A per K block, against 2 * (item columns) FLOP per element.
inline int64_t a_copy_ld(int rows, int64_t lda, int64_t kc) {
  int worst = 0;
  for (int r = 0; r < rows; ++r) {
    int same = 0;
    for (int q = 0; q < rows; ++q) same += (q * lda / 16) % kL1Sets == (r * lda / 16) % kL1Sets;
    worst = std::max(worst, same);
  }
  if (worst <= kMaxARowsPerSet || kc <= 0) return 0;
  const int64_t lines = (kc + 15) / 16;
  return (lines | 1) * 16;
}

// One work item: row tiles [t0, t1) x column tiles [j0, j1), all of K.
inline void run_item(const Plan& p, const KernelTable& kt, int64_t t0, int64_t t1, int64_t j0,
                     int64_t j1, const float* A, int64_t lda, const float* packed_b, float* C,
                     int64_t ldc, const Epilogue& ep) {
  const int64_t tile_cols = kNr * p.panels;
  const int64_t panel_stride = p.K * kNr;
  const int64_t item_r0 = row_of_tile(p, t0), item_rows = row_of_tile(p, t1) - item_r0;
  // Grows to the largest item this thread has run, then stays (no allocation per call).
  thread_local std::vector<float> a_copy;
  for (int64_t kb = 0; kb < p.k_blocks; ++kb) {
    const int64_t k0 = split_point(p.K, p.k_blocks, kb);
    const int64_t kc = split_point(p.K, p.k_blocks, kb + 1) - k0;
    const bool last = kb + 1 == p.k_blocks;
    // Row tiles are balanced, so the first is the tallest.
    const int64_t copy_ld = a_copy_ld(static_cast<int>(row_of_tile(p, 1)), lda, kc);
    if (copy_ld > 0) {
      if (a_copy.size() < static_cast<size_t>(item_rows * copy_ld))
        a_copy.resize(item_rows * copy_ld);
      for (int64_t r = 0; r < item_rows; ++r)
        std::memcpy(a_copy.data() + r * copy_ld, A + (item_r0 + r) * lda + k0, kc * 4);
    }
    // The next column tile's rows [k0, k1) go into L2 spread over this column tile's row tiles:
    // each prefetches its slice at step floats per k (a whole number >= 16 / tiles, so the
    // slices cover the kc lines of each panel). From one row tile the whole next tile had to
    // arrive within that tile's K loop (measured in docs/measurements.md, "GEMM (FP32)").
    const int64_t tiles = t1 - t0;
    const int64_t step = (kNr + tiles - 1) / tiles;
    const int64_t slice = kc * step;
    for (int64_t j = j0; j < j1; ++j) {
      const int64_t n0 = j * tile_cols;
      const int64_t cols = std::min(tile_cols, p.N - n0);
      const int panels = static_cast<int>((cols + kNr - 1) / kNr);
      const bool partial = cols < kNr * panels;
      for (int64_t t = t0; t < t1; ++t) {
        const int64_t r0 = row_of_tile(p, t);
        const int rows = static_cast<int>(row_of_tile(p, t + 1) - r0);
        TileArgs a;
        a.k = kc;
        a.a = copy_ld > 0 ? a_copy.data() + (r0 - item_r0) * copy_ld : A + r0 * lda + k0;
        a.lda = copy_ld > 0 ? copy_ld : lda;
        a.b = packed_b + (n0 / kNr) * panel_stride + k0 * kNr;
        a.b_panel_stride = panel_stride;
        const int64_t pf_offset = (t - t0) * slice;
        a.prefetch = p.prefetch && j + 1 < j1 && pf_offset < kc * kNr
                         ? a.b + p.panels * panel_stride + pf_offset
                         : nullptr;
        a.prefetch_step = step;
        a.c = C + r0 * ldc + n0;
        a.ldc = ldc;
        a.accumulate = kb > 0;
        a.last = last;
        a.bias = last && ep.bias ? ep.bias + n0 : nullptr;
        a.residual = last && ep.residual ? ep.residual + r0 * ep.ldr + n0 : nullptr;
        a.ldr = ep.ldr;
        a.gelu = last && ep.gelu;
        const TileFn fn = kt.fn[rows - 1][panels - 1];
        if (!partial) {
          fn(a);
          continue;
        }
        run_narrow_tile(fn, a, rows, cols);
      }
    }
  }
}

}  // namespace detail

namespace detail {

// Epilogue::layer_norm on rows [r0, r1) of C (N columns), in place.
inline void layer_norm_rows(const Epilogue& ep, float* C, int64_t ldc, int64_t N, int64_t r0,
                            int64_t r1) {
  for (int64_t r = r0; r < r1; ++r)
    layernorm_row_f32(C + r * ldc, ep.ln_scale, ep.ln_bias, C + r * ldc, N, ep.ln_epsilon);
}

// The threads one GEMM call uses: all of the backend's, or Schedule::threads when it asks for
// fewer. count 1 runs inline (be null). With a cap below the backend's count, grain() makes
// parallel_for cut a loop into at most `count` chunks (the pool runs min(threads, ceil(n /
// grain)) of them), so only `count` threads ever work on the call.
struct CallThreads {
  const kiln_backend* be = nullptr;  // null: one thread
  int count = 1;

  int64_t grain(int64_t n, int64_t min_grain = 1) const {
    if (!be || count >= be->num_threads) return min_grain;
    return std::max(min_grain, (n + count - 1) / count);
  }
};

// `big_enough`: the problem is worth waking other threads for.
inline CallThreads call_threads(const Schedule& s, const kiln_backend* be, bool big_enough) {
  if (!be || !be->parallel_for || !big_enough || be->num_threads <= 1) return {};
  const int n = s.threads > 0 ? std::min(s.threads, int{be->num_threads}) : int{be->num_threads};
  if (n <= 1) return {};
  return {be, n};
}

// The LayerNorm epilogue after a plan that split N across items: a second pass over rows.
inline void layer_norm_pass(const Epilogue& ep, const CallThreads& th, float* C, int64_t ldc,
                            int64_t M, int64_t N) {
  parallel_for(th.be, M, th.grain(M, grain_rows(N)),
               [&](int64_t r0, int64_t r1) { layer_norm_rows(ep, C, ldc, N, r0, r1); });
}

}  // namespace detail

// C[M, N] = epilogue(A[M, K] * B), B packed by pack_b_f32(B, K, N, ...). A row-major with leading
// dimension lda >= K, C with ldc >= N. ep.residual may be C itself (same pointer and ld: the
// in-place residual add; K is then not blocked, since partial sums would overwrite the residual);
// any other overlap of C with A or the residual is undefined. `be` may be null (one thread).
// ep.layer_norm: a work item that owns whole rows (one column group) normalises them as soon as
// it has computed them, while they are still in L2; a plan that splits N runs a second pass.
inline void gemm_f32_packed_with(const KernelTable& kt, const Schedule& s, const kiln_backend* be,
                                 int64_t M, int64_t N, int64_t K, const float* A, int64_t lda,
                                 const float* packed_b, float* C, int64_t ldc, const Epilogue& ep) {
  if (M <= 0 || N <= 0) return;
  // Below ~2^18 FLOP (a few microseconds on a Pi 4 core) waking other threads costs more than
  // it saves.
  constexpr double kMinParallelFlops = 1 << 18;
  const detail::CallThreads th = detail::call_threads(s, be, 2.0 * M * N * K >= kMinParallelFlops);
  Schedule sched = s;
  if (ep.residual == C && ep.ldr == ldc) sched.kc = 0;
  const detail::Plan p = detail::make_plan(sched, kt, th.count, M, N, K);
  const int64_t items = p.m_groups * p.n_groups;
  const bool ln_in_item = ep.layer_norm && p.n_groups == 1;
  parallel_for(th.be, items, th.grain(items), [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t g = i / p.n_groups, h = i % p.n_groups;
      const int64_t t0 = detail::split_point(p.m_tiles, p.m_groups, g);
      const int64_t t1 = detail::split_point(p.m_tiles, p.m_groups, g + 1);
      detail::run_item(p, kt, t0, t1, detail::split_point(p.n_tiles, p.n_groups, h),
                       detail::split_point(p.n_tiles, p.n_groups, h + 1), A, lda, packed_b, C, ldc,
                       ep);
      if (ln_in_item)
        detail::layer_norm_rows(ep, C, ldc, N, detail::row_of_tile(p, t0),
                                detail::row_of_tile(p, t1));
    }
  });
  if (ep.layer_norm && !ln_in_item) detail::layer_norm_pass(ep, th, C, ldc, M, N);
}

}  // namespace kiln::kernels::gemm
