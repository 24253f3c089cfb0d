// Fused self-attention (f32), the runtime side of the `Attention` op:
//   out[b, i, h*hd + :] = sum_j softmax_j(q_i . k_j * scale + mask[b, h, i, j]) v_j
// for every batch b, head h and query row i, reading Q, K and V in place from the [B, S, H]
// projections (row stride ldq/ldk/ldv, head h at column h*hd, so one packed [B, S, 3H] tensor
// works too) and writing [B, S, H]: the exporter's head transposes are just strides here.
//
// No [B, nh, S, S] score tensor: a task (batch, head, block of query rows) packs K^T once into
// kAttentionKeys-key panels on its stack, then walks its rows 6 at a time: a 6 x S score strip
// (register tile per panel, written out already scaled and masked, -inf past S), softmax in place
// (max pass, then one vector exp + sum pass), and the 6 x hd output accumulated from V rows read
// in place, scaled by 1 / sum once. Register tiles are sized per ISA so that the FMA latency is
// covered (Zen 5: 4 cycles x 2 zmm pipes needs >= 8 independent accumulators):
//   AVX-512: scores 6 x 32 keys (12 zmm), PV 6 x 64 columns (24 zmm, the whole head for hd 64);
//   AVX2:    scores 6 x 16 keys (12 ymm), PV 6 x 16 columns (12 ymm; 16 registers in all);
//   NEON:    scores 6 x 16 keys (24 q),   PV 6 x 16 columns (24 q; 32 registers).
// (GCC spills one or two of the NEON tiles' accumulators per step: untuned, only run under qemu.)
// Measured, BERT-base S = 128 and 384, one thread (docs/architecture.md has the table): 67-72%
// of the AVX-512 FMA peak (was 40-43%), 74-76% of the AVX2 peak (was 15-16%).
// Stack per task: S_pad * (2 hd + 6) floats (see attention_stack_bytes), 268 KB for S = 512,
// hd = 64; the compiler refuses shapes that need more than kAttentionMaxStackBytes.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <utility>

#include "kiln/kernels/common.h"
#include "kiln/kernels/matmul.h"
#include "kiln/kernels/parallel.h"

namespace kiln::kernels {

constexpr int kAttentionRows = 6;  // query rows per register tile
// Vectors (MatmulVec, the native width) per tile row: score tile and PV tile.
#if defined(__AVX512F__)
constexpr int kAttentionScoreVecs = 2, kAttentionPvVecs = 4;
#elif defined(__aarch64__)
constexpr int kAttentionScoreVecs = 4, kAttentionPvVecs = 4;
#else  // AVX2, and SSE (host builds without -march): 16 registers
constexpr int kAttentionScoreVecs = 2, kAttentionPvVecs = 2;
#endif
constexpr int64_t kAttentionKeys = kAttentionScoreVecs * kMatmulVecFloats;  // keys per K^T panel
// The widest panel of any ISA. The stack bound uses it because the compiler that checks it is
// built without the target's -march (its own kAttentionKeys may be narrower than model.so's).
constexpr int64_t kAttentionKeysMax = 32;
static_assert(kAttentionKeysMax % kAttentionKeys == 0, "the stack bound assumes this padding");
constexpr int64_t kAttentionMaxStackBytes = 4 << 20;

// Upper bound of one task's stack scratch (K^T panels + V rows + score strip + alignment) on any
// ISA.
inline int64_t attention_stack_bytes(int64_t seq, int64_t head_size) {
  const int64_t s_pad = (seq + kAttentionKeysMax - 1) / kAttentionKeysMax * kAttentionKeysMax;
  return s_pad * (2 * head_size + kAttentionRows) * 4 + 64;
}

// exp(x) in float, scalar or MatmulVec: Cody-Waite reduction x = n ln2 + r, |r| <= ln2/2, Cephes'
// degree-5 polynomial for e^r, 2^n through the exponent bits. Relative error < 2e-7 for
// x in [-87.3, 88] (the tests check every 997th float); exp(x) = 0 below ln(FLT_MIN) (no
// denormals), +inf above 88, NaN stays NaN. Softmax only feeds it x - max <= 0.
namespace exp_coef {
constexpr float kLo = -87.3365447f;  // ln(FLT_MIN)
constexpr float kHi = 88.0f;         // keeps n <= 127
constexpr float kLog2e = 1.44269504088896341f;
constexpr float kLn2Hi = 0.693359375f;
constexpr float kLn2Lo = -2.12194440e-4f;
constexpr float kP0 = 1.9875691500e-4f, kP1 = 1.3981999507e-3f, kP2 = 8.3334519073e-3f,
                kP3 = 4.1665795894e-2f, kP4 = 1.6666665459e-1f, kP5 = 5.0000001201e-1f;
}  // namespace exp_coef

typedef int32_t MatmulVecI __attribute__((vector_size(kMatmulVecFloats * sizeof(int32_t))));
typedef uint32_t MatmulVecU __attribute__((vector_size(kMatmulVecFloats * sizeof(uint32_t))));

namespace detail {
inline int32_t to_int(float x) {
  return static_cast<int32_t>(x);
}
inline MatmulVecI to_int(MatmulVec x) {
  return __builtin_convertvector(x, MatmulVecI);
}
inline float to_float(int32_t x) {
  return static_cast<float>(x);
}
inline MatmulVec to_float(MatmulVecI x) {
  return __builtin_convertvector(x, MatmulVec);
}
// The bits of x as a To of the same size: float <-> int32_t, MatmulVec <-> MatmulVecI.
template <class To, class From>
inline To bit_cast(From x) {
  static_assert(sizeof(To) == sizeof(From), "bit_cast between different sizes");
  To t;
  std::memcpy(&t, &x, sizeof(t));
  return t;
}
// e << 23, a float's exponent field, shifted as unsigned: e is negative where 2^n underflows, and
// a signed left shift of a negative value is undefined before C++20 (UBSan reports it).
inline int32_t exponent_bits(int32_t e) {
  return static_cast<int32_t>(static_cast<uint32_t>(e) << 23);
}
inline MatmulVecI exponent_bits(MatmulVecI e) {
  return bit_cast<MatmulVecI>(bit_cast<MatmulVecU>(e) << 23);
}
}  // namespace detail

// F = float or MatmulVec; the same operations in the same order for both.
template <class F>
inline F exp_f32(F x) {
  using namespace exp_coef;
  const F zero = F{} + 0.0f, lo = F{} + kLo, hi = F{} + kHi;
  const F xc = x < lo ? lo : (x > hi ? hi : x);
  F fx = xc * kLog2e;
  fx = fx + (fx >= zero ? zero + 0.5f : zero - 0.5f);  // round to nearest (truncation below)
  const auto n = detail::to_int(fx);
  const F nf = detail::to_float(n);
  F r = xc - nf * kLn2Hi;
  r = r - nf * kLn2Lo;
  F p = r * kP0 + kP1;
  p = p * r + kP2;
  p = p * r + kP3;
  p = p * r + kP4;
  p = p * r + kP5;
  F y = p * (r * r) + r + 1.0f;
  y = y * detail::bit_cast<F>(detail::exponent_bits(n + 127));
  y = x < lo ? zero : y;
  return x > hi ? zero + INFINITY : y;
}

// exp(x) for x <= 0 or NaN (softmax's x - max): exp_f32's reduction and polynomial, but n is
// rounded by adding 1.5 * 2^23 (n lands in the low mantissa bits; no compare, blend or
// float <-> int conversions) and there is no upper clamp: an AVX-512 exp loop is 24 instructions
// instead of 31 (GCC 12). That matters because the exp pass runs between the two FMA-bound
// products of attention_rows.
// Same error bound as exp_f32 on [-87.3, 0]; 0 below ln(FLT_MIN) and for -inf.
template <class F>
inline F exp_nonpos_f32(F x) {
  using namespace exp_coef;
  constexpr float kRound = 12582912.0f;  // 1.5 * 2^23, bits 0x4b400000
  const F fx = x * kLog2e + kRound;
  const F nf = fx - kRound;
  F r = x - nf * kLn2Hi;
  r = r - nf * kLn2Lo;
  F p = r * kP0 + kP1;
  p = p * r + kP2;
  p = p * r + kP3;
  p = p * r + kP4;
  p = p * r + kP5;
  const F y = p * (r * r) + r + 1.0f;
  // bits(fx) = 0x4b400000 + n for |n| < 2^22, so 2^n = (bits(fx) - 0x4b400000 + 127) << 23.
  using I = decltype(detail::to_int(fx));
  const F two_n =
      detail::bit_cast<F>(detail::exponent_bits(detail::bit_cast<I>(fx) - (0x4b400000 - 127)));
  return x < kLo ? F{} + 0.0f : y * two_n;
}

namespace detail {

struct AttentionArgs {
  const float *q, *k, *v;
  int64_t ldq, ldk, ldv;
  const float* mask;
  int64_t msb, msh, msq, msk;  // mask element strides (0 = broadcast) over b, h, i, j
  float* out;
  int64_t ldo;
  int64_t seq, num_heads, head_size, s_pad;
  float scale;
  bool empty_rows_zero;
};

// Horizontal op(x[0], x[1], ...) by halving: log2(width) vector ops instead of a serial chain.
// Halves by __builtin_shufflevector: a memcpy from &x would keep the accumulator in memory.
template <class V, class Op, size_t... I>
inline auto fold_halves(V x, Op op, std::index_sequence<I...>) {
  typedef float Half __attribute__((vector_size(sizeof(V) / 2)));
  constexpr size_t n = sizeof...(I);
  const Half lo = __builtin_shufflevector(x, x, I...);
  const Half hi = __builtin_shufflevector(x, x, (I + n)...);
  return op(lo, hi);
}
template <class V, class Op>
inline float reduce_lanes(V x, Op op) {
  if constexpr (sizeof(V) == 4 * sizeof(float))
    return op(op(x[0], x[1]), op(x[2], x[3]));
  else
    return reduce_lanes(fold_halves(x, op, std::make_index_sequence<sizeof(V) / 8>()), op);
}
inline float hmax(MatmulVec x) {
  return reduce_lanes(x, [](auto a, auto b) { return a > b ? a : b; });
}
inline float hsum(MatmulVec x) {
  return reduce_lanes(x, [](auto a, auto b) { return a + b; });
}

// x itself, but the compiler cannot fuse the product that made it into a later add (under
// -ffp-contract=fast): scores are rounded after the scale and again after the mask add, in
// PyTorch's order for its separate Mul/Div and Add.
inline MatmulVec rounded(MatmulVec x) {
#if defined(__x86_64__)
  __asm__("" : "+v"(x));
#elif defined(__aarch64__)
  __asm__("" : "+w"(x));
#endif
  return x;
}

// kt[p][d][c] = K[key kAttentionKeys * p + c][d] for this (b, h), zero past seq. 4 x 4 blocks
// are transposed in registers (4 loads, 8 shuffles, 4 stores per 16 floats): the scalar scatter
// was ~6% of the kernel's time at S = 128.
inline void attention_pack_kt(const AttentionArgs& a, const float* k, float* kt) {
  const int64_t hd = a.head_size, seq4 = a.seq / 4 * 4, hd4 = hd / 4 * 4;
  auto dst = [&](int64_t j) {
    return kt + (j / kAttentionKeys) * hd * kAttentionKeys + j % kAttentionKeys;
  };
  for (int64_t j = 0; j < seq4; j += 4) {  // kAttentionKeys % 4 == 0: a group stays in one panel
    const float* src = k + j * a.ldk;
    float* out = dst(j);
    for (int64_t d = 0; d < hd4; d += 4)
      transpose_4x4_32(src + d, a.ldk * 4, out + d * kAttentionKeys, kAttentionKeys * 4);
    for (int64_t d = hd4; d < hd; ++d)
      for (int c = 0; c < 4; ++c) out[d * kAttentionKeys + c] = src[c * a.ldk + d];
  }
  for (int64_t j = seq4; j < a.s_pad; ++j) {
    float* out = dst(j);
    for (int64_t d = 0; d < hd; ++d) out[d * kAttentionKeys] = j < a.seq ? k[j * a.ldk + d] : 0.0f;
  }
}

// sc[r][j] = (q_r . k_j) * scale + mask_r[j] for j < seq and -inf for seq <= j < s_pad, for the
// 6 rows qr[r] with mask rows mr[r] (null: no mask). The scale and mask are applied as the tile
// is written out, so softmax reads each row only twice (max, then exp + sum).
inline void attention_scores(const AttentionArgs& a, const float* const* qr, const float* const* mr,
                             const float* kt, float* sc) {
  constexpr int kVecs = kAttentionScoreVecs, kVf = kMatmulVecFloats;
  const int64_t hd = a.head_size;
  for (int64_t p = 0; p < a.s_pad / kAttentionKeys; ++p) {
    const float* b = kt + p * hd * kAttentionKeys;
    MatmulVec acc[kAttentionRows][kVecs];
#pragma GCC unroll 8
    for (int r = 0; r < kAttentionRows; ++r)
#pragma GCC unroll 4
      for (int v = 0; v < kVecs; ++v) acc[r][v] = MatmulVec{};
    for (int64_t d = 0; d < hd; ++d) {
      MatmulVec bv[kVecs];
#pragma GCC unroll 4
      for (int v = 0; v < kVecs; ++v)
        std::memcpy(&bv[v], b + d * kAttentionKeys + v * kVf, sizeof(bv[v]));
#pragma GCC unroll 8
      for (int r = 0; r < kAttentionRows; ++r) {
        const float x = qr[r][d];
#pragma GCC unroll 4
        for (int v = 0; v < kVecs; ++v) acc[r][v] += x * bv[v];
      }
    }
#pragma GCC unroll 8
    for (int r = 0; r < kAttentionRows; ++r) {
      const float* m = mr[r];
#pragma GCC unroll 4
      for (int v = 0; v < kVecs; ++v) {
        const int64_t j = p * kAttentionKeys + v * kVf;
        MatmulVec s = rounded(acc[r][v] * a.scale);
        if (j + kVf <= a.seq) {
          if (m && a.msk) {
            MatmulVec mv;
            std::memcpy(&mv, m + j, sizeof(mv));
            s += mv;
          } else if (m) {
            s += m[0];
          }
        } else {  // the last panel: keys past seq get -inf, exp(-inf) = 0
          for (int l = 0; l < kVf; ++l)
            s[l] = j + l < a.seq ? s[l] + (m ? m[(j + l) * a.msk] : 0.0f) : -INFINITY;
        }
        std::memcpy(sc + r * a.s_pad + j, &s, sizeof(s));
      }
    }
  }
}

// Softmax of the 6 strip rows in place: row[j] = exp(row[j] - max) over the whole padded row
// (s_pad is a multiple of the vector width), inv[r] = 1 / sum. The rows go through each loop
// together: six independent max / exp / sum chains overlap where one row's would stall (the
// row-at-a-time version took ~25% of the kernel at S = 128). A row whose every value is -inf
// gives NaN, as PyTorch's softmax does, or 0 with empty_rows_zero (what SDPA's exports make of
// that NaN with Where(IsNaN(p), 0, p)).
inline void attention_softmax(float* sc, int64_t s_pad, float* inv, bool empty_rows_zero) {
  constexpr int kVf = kMatmulVecFloats;
  MatmulVec vmax[kAttentionRows];
#pragma GCC unroll 8
  for (int r = 0; r < kAttentionRows; ++r) vmax[r] = MatmulVec{} - INFINITY;
  for (int64_t j = 0; j < s_pad; j += kVf) {
#pragma GCC unroll 8
    for (int r = 0; r < kAttentionRows; ++r) {
      MatmulVec x;
      std::memcpy(&x, sc + r * s_pad + j, sizeof(x));
      vmax[r] = x > vmax[r] ? x : vmax[r];
    }
  }
  MatmulVec mx[kAttentionRows], vsum[kAttentionRows];
#pragma GCC unroll 8
  for (int r = 0; r < kAttentionRows; ++r) {
    const float m = hmax(vmax[r]);
    mx[r] = MatmulVec{} + (m == -INFINITY ? 0.0f : m);  // all -inf: 0 / 0 below, NaN
    vsum[r] = MatmulVec{};
  }
  for (int64_t j = 0; j < s_pad; j += kVf) {
#pragma GCC unroll 8
    for (int r = 0; r < kAttentionRows; ++r) {
      MatmulVec x;
      std::memcpy(&x, sc + r * s_pad + j, sizeof(x));
      x = exp_nonpos_f32(x - mx[r]);
      vsum[r] += x;
      std::memcpy(sc + r * s_pad + j, &x, sizeof(x));
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < kAttentionRows; ++r) {
    const float sum = hsum(vsum[r]);
    inv[r] = empty_rows_zero && sum == 0.0f ? 0.0f : 1.0f / sum;
  }
}

// out_r[c0 .. c0 + kVecs * width) = inv[r] * sum_j sc[r][j] v_j[c0 ..] for r < rows.
template <int kVecs>
inline void attention_pv(const AttentionArgs& a, const float* v, const float* sc, const float* inv,
                         float* const* orow, int rows, int64_t c0) {
  MatmulVec acc[kAttentionRows][kVecs];
#pragma GCC unroll 8
  for (int r = 0; r < kAttentionRows; ++r)
#pragma GCC unroll 4
    for (int w = 0; w < kVecs; ++w) acc[r][w] = MatmulVec{};
  for (int64_t j = 0; j < a.seq; ++j) {
    MatmulVec bv[kVecs];  // one memcpy per vector: a whole-array copy keeps bv in memory
#pragma GCC unroll 4
    for (int w = 0; w < kVecs; ++w)
      std::memcpy(&bv[w], v + j * a.ldv + c0 + w * kMatmulVecFloats, sizeof(bv[w]));
#pragma GCC unroll 8
    for (int r = 0; r < kAttentionRows; ++r) {
      const float p = sc[r * a.s_pad + j];
#pragma GCC unroll 4
      for (int w = 0; w < kVecs; ++w) acc[r][w] += p * bv[w];
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < kAttentionRows; ++r) {  // constant indices only, so acc stays in registers
    if (r >= rows) break;
#pragma GCC unroll 4
    for (int w = 0; w < kVecs; ++w) {
      const MatmulVec o = acc[r][w] * inv[r];
      std::memcpy(orow[r] + c0 + w * kMatmulVecFloats, &o, sizeof(o));
    }
  }
}

// The same for the last head_size % width columns, in scalars.
inline void attention_pv_tail(const AttentionArgs& a, const float* v, const float* sc,
                              const float* inv, float* const* orow, int rows, int64_t c0) {
  const int64_t cols = a.head_size - c0;
  float acc[kAttentionRows][kMatmulVecFloats] = {};
  for (int64_t j = 0; j < a.seq; ++j) {
    const float* vr = v + j * a.ldv + c0;
    for (int r = 0; r < rows; ++r) {
      const float p = sc[r * a.s_pad + j];
      for (int64_t c = 0; c < cols; ++c) acc[r][c] += p * vr[c];
    }
  }
  for (int r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) orow[r][c0 + c] = acc[r][c] * inv[r];
}

// Query rows [i0, i1) of batch b, head h. kt: s_pad * hd floats, vp: s * hd floats, sc: 6 *
// s_pad floats.
inline void attention_rows(const AttentionArgs& args, int64_t b, int64_t h, int64_t i0, int64_t i1,
                           float* kt, float* vp, float* sc) {
  constexpr int64_t kVf = kMatmulVecFloats;
  const int64_t hd = args.head_size, s = args.seq;
  const float* q = args.q + b * s * args.ldq + h * hd;
  const float* mask = args.mask ? args.mask + b * args.msb + h * args.msh : nullptr;
  attention_pack_kt(args, args.k + b * s * args.ldk + h * hd, kt);
  // V's rows of this head, contiguous: read in place, rows ldv floats apart (3H in a packed QKV,
  // 9 KiB for BERT-base) fall into a few L1 sets and every 6-row PV pass reloads them from L2.
  const float* vsrc = args.v + b * s * args.ldv + h * hd;
  for (int64_t j = 0; j < s; ++j) std::memcpy(vp + j * hd, vsrc + j * args.ldv, hd * sizeof(float));
  AttentionArgs a = args;
  a.ldv = hd;
  const float* v = vp;
  for (int64_t i = i0; i < i1; i += kAttentionRows) {
    const int rows = static_cast<int>(i1 - i < kAttentionRows ? i1 - i : kAttentionRows);
    const float* qr[kAttentionRows];
    const float* mr[kAttentionRows];
    float* orow[kAttentionRows];
    for (int r = 0; r < kAttentionRows; ++r) {  // missing rows repeat the last one (not stored)
      const int64_t row = i + (r < rows ? r : rows - 1);
      qr[r] = q + row * a.ldq;
      mr[r] = mask ? mask + row * a.msq : nullptr;
      orow[r] = a.out + (b * s + row) * a.ldo + h * hd;
    }
    attention_scores(a, qr, mr, kt, sc);
    float inv[kAttentionRows];
    attention_softmax(sc, a.s_pad, inv, a.empty_rows_zero);
    int64_t c0 = 0;
    for (; c0 + kAttentionPvVecs * kVf <= hd; c0 += kAttentionPvVecs * kVf)
      attention_pv<kAttentionPvVecs>(a, v, sc, inv, orow, rows, c0);
    if (kAttentionPvVecs > 2 && c0 + 2 * kVf <= hd) {
      attention_pv<2>(a, v, sc, inv, orow, rows, c0);
      c0 += 2 * kVf;
    }
    if (c0 + kVf <= hd) {
      attention_pv<1>(a, v, sc, inv, orow, rows, c0);
      c0 += kVf;
    }
    if (c0 < hd) attention_pv_tail(a, v, sc, inv, orow, rows, c0);
  }
}

inline int64_t gcd64(int64_t x, int64_t y) {
  while (y) {
    const int64_t t = x % y;
    x = y;
    y = t;
  }
  return x;
}

}  // namespace detail

// q, k, v: row (token) strides ldq/ldk/ldv in floats, head h at column h * head_size.
// mask: additive, may be null; mask_dims = its shape right-aligned to rank 4 (each dim 1 or the
// full size of [batch, num_heads, seq, seq]), dense. out: [batch, seq, num_heads * head_size]
// with row stride ldo. Work items = (batch, head, block of query rows); the number of row blocks
// per head makes the item count a multiple of the thread count, so B = 1 with 5 heads on 2
// threads still splits evenly. empty_rows_zero: a query row whose scores are all -inf (every key
// masked with -inf) gives 0 instead of NaN.
inline void attention_f32(const kiln_backend* be, const float* q, const float* k, const float* v,
                          int64_t ldq, int64_t ldk, int64_t ldv, const float* mask,
                          const int64_t* mask_dims, float* out, int64_t ldo, int64_t batch,
                          int64_t seq, int64_t num_heads, int64_t head_size, float scale,
                          bool empty_rows_zero = false) {
  if (batch <= 0 || seq <= 0 || num_heads <= 0 || head_size <= 0) return;
  detail::AttentionArgs a{
      q,   k,   v,         ldq,       ldk, ldv,   mask,           0, 0, 0, 0, out,
      ldo, seq, num_heads, head_size, 0,   scale, empty_rows_zero};
  a.s_pad = (seq + kAttentionKeys - 1) / kAttentionKeys * kAttentionKeys;
  if (mask) {
    int64_t st[4];
    dense_strides(mask_dims, 4, st);
    a.msb = mask_dims[0] == 1 ? 0 : st[0];
    a.msh = mask_dims[1] == 1 ? 0 : st[1];
    a.msq = mask_dims[2] == 1 ? 0 : st[2];
    a.msk = mask_dims[3] == 1 ? 0 : st[3];
  }
  const int64_t heads = batch * num_heads;
  const int64_t threads = be && be->num_threads > 1 ? be->num_threads : 1;
  int64_t blocks = threads / detail::gcd64(heads, threads);
  if (blocks > seq) blocks = seq;
  const int64_t rows_per_block = (seq + blocks - 1) / blocks;
  const int64_t items = heads * blocks;
  const double flops = 4.0 * static_cast<double>(heads) * seq * seq * head_size;
  const int64_t grain = flops < (1 << 18) ? items : 1;
  const size_t scratch = static_cast<size_t>(a.s_pad * (2 * head_size + kAttentionRows));
  parallel_for(be, items, grain, [&](int64_t t0, int64_t t1) {
    float* kt = static_cast<float*>(__builtin_alloca(scratch * sizeof(float) + 64));
    kt = reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(kt) + 63) & ~uintptr_t{63});
    float* vp = kt + a.s_pad * head_size;
    float* sc = vp + a.s_pad * head_size;
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t bh = t / blocks, blk = t % blocks;
      const int64_t i0 = blk * rows_per_block;
      const int64_t i1 = i0 + rows_per_block < seq ? i0 + rows_per_block : seq;
      if (i0 < i1) detail::attention_rows(a, bh / num_heads, bh % num_heads, i0, i1, kt, vp, sc);
    }
  });
}

}  // namespace kiln::kernels
