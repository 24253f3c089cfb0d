// Types shared by the packed FP32 GEMM driver, its micro-kernels and its dispatch table: the
// fused epilogue, the arguments of one micro-kernel call, and the schedule (tile and blocking
// parameters as plain data, so a tuner can search them).
#pragma once

#include <cstdint>

namespace kiln::kernels::gemm {

// Width of a packed B panel (floats). Every ISA streams the same layout (see pack.h).
constexpr int kNr = 16;
// Largest micro-kernel row count any variant uses; sizes the driver's scratch tiles.
constexpr int kMaxMr = 16;
// Largest tile width (two adjacent panels).
constexpr int kMaxTileCols = 2 * kNr;

// Applied to each C tile after its last K block, while it is still in registers, in this order:
//   c = A*B;  c += bias[n];  c = gelu(c) (exact erf);  c += residual[m, n].
// BERT's FFN-up is gelu(x W1 + b1) (bias + gelu) and the sublayer outputs are (x W + b) + res
// (bias + residual), so this order covers both.
// Then, with layer_norm set, each finished row of C (all N columns) is replaced by
// LayerNorm(row) * ln_scale + ln_bias (BERT's post-LN sublayer output, passes/
// fuse_dense_layer_norm.cpp). That needs whole rows, so the driver runs it outside the
// micro-kernels: per work item when an item owns whole rows, else as a second pass (driver.h).
struct Epilogue {
  const float* bias = nullptr;      // [N] or null
  const float* residual = nullptr;  // [M, ldr] or null; may be C itself (see driver.h)
  int64_t ldr = 0;
  bool gelu = false;
  bool layer_norm = false;
  const float* ln_scale = nullptr;  // [N] or null (1)
  const float* ln_bias = nullptr;   // [N] or null (0)
  float ln_epsilon = 0.0f;
};

// One micro-kernel call: C[rows, 16*panels] (+)= A[rows, k] * B[k, 16*panels], then the epilogue
// if `last`. A is row-major (lda); b points at the first row of the first panel, the second panel
// starts b_panel_stride floats later. prefetch (or null) is a slice of the next column tile's
// panels: the kernel prefetches it into L2 as it goes, advancing prefetch_step floats per k.
struct TileArgs {
  int64_t k;
  const float* a;
  int64_t lda;
  const float* b;
  int64_t b_panel_stride;
  const float* prefetch;
  int64_t prefetch_step;
  float* c;
  int64_t ldc;
  bool accumulate;  // add to C (K blocks after the first) instead of overwriting it
  bool last;        // last K block: apply the epilogue below
  const float* bias;
  const float* residual;
  int64_t ldr;
  bool gelu;
};

// A micro-kernel instantiation for a fixed (rows, panels).
using TileFn = void (*)(const TileArgs&);

// How the driver walks the problem. mr/panels pick the micro-kernel tile (rows x 16*panels);
// M is cut into ceil(M/mr) row tiles of balanced height (M = 16, mr = 14 gives 8 + 8, not
// 14 + 2). mc: rows per work item (its row tiles share each column tile's B rows while they are
// in L1/L2); kc: K block (0 = all of K); nc: columns per work item (0 = all of N), which bounds
// the C block an item revisits once per K block. threads: at most this many threads for the call
// (0 = all of the backend's), for shapes too small to feed every core (a tuner's choice).
// prefetch: 1 = every row tile prefetches its slice of the next column tile's B into L2 as it
// runs, 0 = none (the hardware prefetchers alone; 2-4 % faster on some Zen 4 shapes, slower on
// others: a tuner's choice).
struct Schedule {
  int mr = 4;
  int panels = 1;
  int64_t mc = 128;
  int64_t kc = 0;
  int64_t nc = 0;
  int threads = 0;
  int prefetch = 1;
};

}  // namespace kiln::kernels::gemm
