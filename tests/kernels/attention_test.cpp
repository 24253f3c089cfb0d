// attention_f32 and its vector exps against plain-loop references: odd sequence lengths, head
// counts and head sizes (not multiples of any vector width, and wider than one PV tile), packed
// and separate Q/K/V, every mask broadcast shape (finfo.min, -10000 and -inf padding, a fully
// padded row), batch 3, 1 and 2 threads. Built once per ISA the kernel has tiles for (see
// CMakeLists.txt): KILN_TEST_VEC_FLOATS then names the vector width the build must have.
#include <gtest/gtest.h>

#include <cfloat>
#include <cmath>
#include <cstring>

#include "kiln/kernels/attention.h"
#include "test_util.h"

namespace kiln::kernels {
namespace {
using testing::random_floats;

// Mask shape right-aligned to [B, nh, S, S]; values as the exporter computes them in float.
enum class MaskKind {
  kNone,
  kPadFinfo,     // [B, 1, 1, S]: finfo.min padding, batch 2 fully padded
  kPadTenK,      // [B, 1, 1, S]: -10000 padding (every row keeps >= 1 key)
  kSquareFinfo,  // [B, 1, S, S]: causal, one fully masked query row
  kPerHead,      // [nh, S, S] random
  kPadInf,       // [B, 1, 1, S]: -inf padding (every row keeps >= 1 key)
  kKeysOnly,     // [S]: -inf padding shared by every batch, head and row
  kFull,         // [B, nh, S, S] random
  kPerQuery,     // [B, 1, S, 1] random: broadcast over keys
  kCount
};

struct Case {
  int64_t batch, seq, heads, hd;
  MaskKind mask;
  bool packed;
};

struct Inputs {
  std::vector<float> qkv;  // packed [B, S, 3H] or q | k | v each [B, S, ld]
  const float *q, *k, *v;
  int64_t ldq, ldk, ldv;
  std::vector<float> mask;
  int64_t mask_dims[4] = {1, 1, 1, 1};
};

Inputs make_inputs(const Case& c, uint32_t seed) {
  Inputs in;
  const int64_t h = c.heads * c.hd, rows = c.batch * c.seq;
  if (c.packed) {
    in.qkv = random_floats(rows * 3 * h, seed);
    in.q = in.qkv.data();
    in.k = in.q + h;
    in.v = in.q + 2 * h;
    in.ldq = in.ldk = in.ldv = 3 * h;
  } else {  // separate tensors with padded rows (ld = H + 3) to exercise the strides
    const int64_t ld = h + 3;
    in.qkv = random_floats(3 * rows * ld, seed);
    in.q = in.qkv.data();
    in.k = in.q + rows * ld;
    in.v = in.k + rows * ld;
    in.ldq = in.ldk = in.ldv = ld;
  }
  const float fmin = -FLT_MAX;
  auto keep = [&](int64_t b, int64_t j) {  // batch 1 padded after 3/4, batch 2 fully padded
    if (b == 1) return j < std::max<int64_t>(1, c.seq * 3 / 4);
    return b != 2;
  };
  auto keep_some = [&](int64_t b, int64_t j) {  // padded after 3/4, after 1/2 in batch 2
    return j < std::max<int64_t>(1, c.seq * (b == 2 ? 2 : 3) / 4);
  };
  switch (c.mask) {
    case MaskKind::kNone:
      break;
    case MaskKind::kPadFinfo:
      in.mask_dims[0] = c.batch;
      in.mask_dims[3] = c.seq;
      for (int64_t b = 0; b < c.batch; ++b)
        for (int64_t j = 0; j < c.seq; ++j) in.mask.push_back((1.0f - keep(b, j)) * fmin);
      break;
    case MaskKind::kPadTenK:  // fully padded -10000 rows: TenThousandPaddedRowIsNearUniform
      in.mask_dims[0] = c.batch;
      in.mask_dims[3] = c.seq;
      for (int64_t b = 0; b < c.batch; ++b)
        for (int64_t j = 0; j < c.seq; ++j) in.mask.push_back((1.0f - keep_some(b, j)) * -1e4f);
      break;
    case MaskKind::kSquareFinfo:  // [B, 1, S, S]: causal, query row 0 of batch 0 fully masked
      in.mask_dims[0] = c.batch;
      in.mask_dims[2] = in.mask_dims[3] = c.seq;
      for (int64_t b = 0; b < c.batch; ++b)
        for (int64_t i = 0; i < c.seq; ++i)
          for (int64_t j = 0; j < c.seq; ++j)
            in.mask.push_back((j <= i && !(b == 0 && i == 0)) ? 0.0f : fmin);
      break;
    case MaskKind::kPerHead:  // [nh, S, S] random, broadcast over batch
      in.mask_dims[1] = c.heads;
      in.mask_dims[2] = in.mask_dims[3] = c.seq;
      in.mask = random_floats(c.heads * c.seq * c.seq, seed + 1, -3.f, 1.f);
      break;
    case MaskKind::kPadInf:
      in.mask_dims[0] = c.batch;
      in.mask_dims[3] = c.seq;
      for (int64_t b = 0; b < c.batch; ++b)
        for (int64_t j = 0; j < c.seq; ++j) in.mask.push_back(keep_some(b, j) ? 0.0f : -INFINITY);
      break;
    case MaskKind::kKeysOnly:
      in.mask_dims[3] = c.seq;
      for (int64_t j = 0; j < c.seq; ++j) in.mask.push_back(keep_some(0, j) ? 0.0f : -INFINITY);
      break;
    case MaskKind::kFull:
      in.mask_dims[0] = c.batch;
      in.mask_dims[1] = c.heads;
      in.mask_dims[2] = in.mask_dims[3] = c.seq;
      in.mask = random_floats(c.batch * c.heads * c.seq * c.seq, seed + 2, -3.f, 1.f);
      break;
    case MaskKind::kPerQuery:
      in.mask_dims[0] = c.batch;
      in.mask_dims[2] = c.seq;
      in.mask = random_floats(c.batch * c.seq, seed + 3, -3.f, 1.f);
      break;
    case MaskKind::kCount:
      break;
  }
  return in;
}

// PyTorch's float semantics for the scores (scale, then the float mask add, so finfo.min
// absorbs the scores of a fully padded row), then double.
std::vector<double> reference(const Case& c, const Inputs& in, float scale) {
  const int64_t h = c.heads * c.hd;
  std::vector<double> out(c.batch * c.seq * h);
  std::vector<float> s(c.seq);
  std::vector<double> e(c.seq);
  int64_t ms[4];
  dense_strides(in.mask_dims, 4, ms);
  for (int k = 0; k < 4; ++k)
    if (in.mask_dims[k] == 1) ms[k] = 0;
  for (int64_t b = 0; b < c.batch; ++b)
    for (int64_t hh = 0; hh < c.heads; ++hh)
      for (int64_t i = 0; i < c.seq; ++i) {
        const float* q = in.q + (b * c.seq + i) * in.ldq + hh * c.hd;
        float mx = -INFINITY;
        for (int64_t j = 0; j < c.seq; ++j) {
          const float* k = in.k + (b * c.seq + j) * in.ldk + hh * c.hd;
          double dot = 0;
          for (int64_t d = 0; d < c.hd; ++d) dot += double(q[d]) * k[d];
          s[j] = static_cast<float>(dot) * scale;
          if (!in.mask.empty()) s[j] += in.mask[b * ms[0] + hh * ms[1] + i * ms[2] + j * ms[3]];
          mx = std::max(mx, s[j]);
        }
        double sum = 0;
        for (int64_t j = 0; j < c.seq; ++j) sum += e[j] = std::exp(double(s[j]) - mx);
        for (int64_t d = 0; d < c.hd; ++d) {
          double acc = 0;
          for (int64_t j = 0; j < c.seq; ++j)
            acc += e[j] / sum * in.v[(b * c.seq + j) * in.ldv + hh * c.hd + d];
          out[(b * c.seq + i) * h + hh * c.hd + d] = acc;
        }
      }
  return out;
}

std::vector<float> run(const Case& c, const Inputs& in, float scale, const kiln_backend* be,
                       bool empty_rows_zero = false) {
  const int64_t h = c.heads * c.hd;
  std::vector<float> out(c.batch * c.seq * h, NAN);
  attention_f32(be, in.q, in.k, in.v, in.ldq, in.ldk, in.ldv,
                in.mask.empty() ? nullptr : in.mask.data(), in.mask_dims, out.data(), h, c.batch,
                c.seq, c.heads, c.hd, scale, empty_rows_zero);
  return out;
}

#ifdef KILN_TEST_VEC_FLOATS
// This build's kernel really has the vector width (and so the register tiles) it is meant to test.
TEST(Attention, BuiltForTheIntendedVectorWidth) {
  EXPECT_EQ(kMatmulVecFloats, KILN_TEST_VEC_FLOATS);
}
#endif

// Sequence lengths around the key panel widths (8, 16, 32) and head sizes around the PV tile
// widths (16, 32, 64 columns; hd 80 = one full tile + a narrower one; 30, 36 and 60 leave scalar
// columns, 30 also a K^T pack tail past its 4 x 4 blocks). Mask kinds cycle so that each meets
// several shapes.
TEST(Attention, MatchesReferenceOnOddShapes) {
  testing::TestBackend two;
  two.threads = 2;
  two.be.num_threads = 2;
  const int kinds = static_cast<int>(MaskKind::kCount);
  int index = 0;
  for (int64_t batch : {1, 3})
    for (int64_t seq : {1, 2, 7, 13, 17, 33, 64, 128})
      for (int64_t heads : {1, 3, 5})
        for (int64_t hd : {12, 30, 36, 60, 64, 80}) {
          if (heads == 5 && seq > 33) continue;  // keeps the double reference quick under qemu
          const Case c{batch, seq, heads, hd, static_cast<MaskKind>(index % kinds), index % 2 == 1};
          ++index;
          const Inputs in = make_inputs(c, static_cast<uint32_t>(index));
          const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
          const std::vector<double> want = reference(c, in, scale);
          for (const kiln_backend* be : {static_cast<const kiln_backend*>(nullptr), two.get()}) {
            const std::vector<float> got = run(c, in, scale, be);
            double max_err = 0;
            for (size_t e = 0; e < want.size(); ++e) {
              ASSERT_TRUE(std::isfinite(got[e])) << e;
              max_err = std::max(max_err, std::fabs(got[e] - want[e]));
            }
            EXPECT_LT(max_err, 2e-5)
                << "B " << batch << " S " << seq << " heads " << heads << " hd " << hd << " mask "
                << static_cast<int>(c.mask) << (c.packed ? " packed" : " separate")
                << (be ? " 2 threads" : " 1 thread");
          }
        }
}

// A row whose every score is -inf gives NaN, as torch.softmax does; other rows are unaffected.
TEST(Attention, AllMinusInfinityRowIsNanLikePyTorch) {
  const Case c{2, 5, 2, 12, MaskKind::kPadFinfo, false};
  Inputs in = make_inputs(c, 7);
  for (int64_t j = 0; j < c.seq; ++j) in.mask[j] = -INFINITY;  // batch 0: every key masked
  const std::vector<float> got = run(c, in, 0.25f, nullptr);
  const int64_t per_batch = c.seq * c.heads * c.hd;
  for (int64_t e = 0; e < per_batch; ++e) ASSERT_TRUE(std::isnan(got[e])) << e;
  for (int64_t e = per_batch; e < 2 * per_batch; ++e) ASSERT_TRUE(std::isfinite(got[e])) << e;
}

// With empty_rows_zero (SDPA's Where(IsNaN(p), 0, p) fused in) that row is 0 and the others are
// exactly what they are without the flag.
TEST(Attention, AllMinusInfinityRowIsZeroBehindSdpaGuard) {
  const Case c{2, 5, 2, 12, MaskKind::kPadFinfo, false};
  Inputs in = make_inputs(c, 7);
  for (int64_t j = 0; j < c.seq; ++j) in.mask[j] = -INFINITY;
  const std::vector<float> plain = run(c, in, 0.25f, nullptr);
  const std::vector<float> got = run(c, in, 0.25f, nullptr, true);
  const int64_t per_batch = c.seq * c.heads * c.hd;
  for (int64_t e = 0; e < per_batch; ++e) ASSERT_EQ(got[e], 0.0f) << e;
  for (int64_t e = per_batch; e < 2 * per_batch; ++e) ASSERT_EQ(got[e], plain[e]) << e;
}

// A fully padded row under a finfo.min mask attends uniformly (the mean of V), not NaN.
TEST(Attention, FinfoMinPaddedRowIsUniform) {
  const Case c{1, 9, 1, 20, MaskKind::kPadFinfo, true};
  Inputs in = make_inputs(c, 9);
  for (float& m : in.mask) m = -FLT_MAX;
  const std::vector<float> got = run(c, in, 0.125f, nullptr);
  for (int64_t i = 0; i < c.seq; ++i)
    for (int64_t d = 0; d < c.hd; ++d) {
      double mean = 0;
      for (int64_t j = 0; j < c.seq; ++j) mean += in.v[j * in.ldv + d];
      ASSERT_NEAR(got[i * c.hd + d], mean / c.seq, 1e-6) << i << "," << d;
    }
}

// A row whose every key is -10000-padded attends almost uniformly. Its float scores are only
// known to half an ulp of 10000 (4.9e-4), in the kernel as in PyTorch, so the weights carry
// ~5e-4 relative noise that the double reference does not have: a looser bound than above.
TEST(Attention, TenThousandPaddedRowIsNearUniform) {
  const Case c{1, 128, 2, 36, MaskKind::kPadTenK, false};
  Inputs in = make_inputs(c, 11);
  for (float& m : in.mask) m = -10000.0f;
  const float scale = 1.0f / 6.0f;
  const std::vector<double> want = reference(c, in, scale);
  const std::vector<float> got = run(c, in, scale, nullptr);
  for (size_t e = 0; e < want.size(); ++e) ASSERT_NEAR(got[e], want[e], 5e-4) << e;
}

// Work items: B = 1 with 5 heads on 2 threads is still an even split.
TEST(Attention, TwoThreadsGetEvenWork) {
  struct Recorder {
    int threads = 2;
    int64_t n = -1;
  } rec;
  kiln_backend be{KILN_ABI_VERSION, 2, &rec,
                  [](void* pool, int64_t n, int64_t, kiln_task_fn fn, void* ctx) {
                    static_cast<Recorder*>(pool)->n = n;
                    fn(ctx, 0, n);
                  }};
  const Case c{1, 64, 5, 64, MaskKind::kNone, false};
  const Inputs in = make_inputs(c, 3);
  run(c, in, 0.125f, &be);
  ASSERT_GT(rec.n, 0);
  EXPECT_EQ(rec.n % 2, 0) << rec.n;
}

double exp_rel_error(float x, float got) {
  const double want = std::exp(double(x));
  return want == 0 ? std::fabs(got) : std::fabs(got - want) / want;
}

TEST(Attention, VectorExpIsAccurate) {
  double worst_scalar = 0, worst_vec = 0;
  const float lo = -87.0f, hi = 88.0f;
  std::vector<float> xs;
  for (uint64_t bits = 0; bits <= 0xffffffffu; bits += 997) {  // every 997th float in range
    const uint32_t b32 = static_cast<uint32_t>(bits);
    float x;
    std::memcpy(&x, &b32, 4);
    if (x >= lo && x <= hi) xs.push_back(x);
  }
  for (float x : {0.0f, -0.0f, 1e-30f, -1e-30f, -0.34657359f, 0.34657359f, -87.0f, 88.0f})
    xs.push_back(x);
  for (size_t i = 0; i < xs.size(); i += kMatmulVecFloats) {
    MatmulVec v{};
    for (int l = 0; l < kMatmulVecFloats; ++l) v[l] = xs[std::min(i + l, xs.size() - 1)];
    const MatmulVec e = exp_f32(v);
    for (int l = 0; l < kMatmulVecFloats; ++l) {
      worst_vec = std::max(worst_vec, exp_rel_error(v[l], e[l]));
      worst_scalar = std::max(worst_scalar, exp_rel_error(v[l], exp_f32(v[l])));
    }
  }
  RecordProperty("worst_relative_error", std::to_string(worst_vec));
  EXPECT_LT(worst_scalar, 2e-7);
  EXPECT_LT(worst_vec, 2e-7);
  EXPECT_EQ(exp_f32(-INFINITY), 0.0f);
  EXPECT_EQ(exp_f32(-100.0f), 0.0f);
  EXPECT_EQ(exp_f32(100.0f), INFINITY);
  EXPECT_TRUE(std::isnan(exp_f32(NAN)));
  EXPECT_EQ(exp_f32(0.0f), 1.0f);
}

// The softmax exp (x <= 0 only) has exp_f32's accuracy on [ln(FLT_MIN), 0] and its edges.
TEST(Attention, NonPositiveExpIsAccurate) {
  std::vector<float> xs;
  for (uint64_t bits = 0x80000000u; bits <= 0xffffffffu; bits += 997) {  // every 997th x <= 0
    const uint32_t b32 = static_cast<uint32_t>(bits);
    float x;
    std::memcpy(&x, &b32, 4);
    if (x >= -87.3f) xs.push_back(x);
  }
  for (float x : {0.0f, -0.0f, -1e-30f, -0.34657359f, -0.6931472f, -87.0f, -87.3f}) xs.push_back(x);
  double worst_scalar = 0, worst_vec = 0;
  for (size_t i = 0; i < xs.size(); i += kMatmulVecFloats) {
    MatmulVec v{};
    for (int l = 0; l < kMatmulVecFloats; ++l) v[l] = xs[std::min(i + l, xs.size() - 1)];
    const MatmulVec e = exp_nonpos_f32(v);
    for (int l = 0; l < kMatmulVecFloats; ++l) {
      worst_vec = std::max(worst_vec, exp_rel_error(v[l], e[l]));
      worst_scalar = std::max(worst_scalar, exp_rel_error(v[l], exp_nonpos_f32(v[l])));
    }
  }
  EXPECT_LT(worst_scalar, 2e-7);
  EXPECT_LT(worst_vec, 2e-7);
  EXPECT_EQ(exp_nonpos_f32(0.0f), 1.0f);
  EXPECT_EQ(exp_nonpos_f32(-INFINITY), 0.0f);
  EXPECT_EQ(exp_nonpos_f32(-88.0f), 0.0f);
  EXPECT_EQ(exp_nonpos_f32(-FLT_MAX), 0.0f);
  EXPECT_TRUE(std::isnan(exp_nonpos_f32(NAN)));
  const MatmulVec specials = MatmulVec{} - INFINITY;
  EXPECT_EQ(exp_nonpos_f32(specials)[0], 0.0f);
}

// The compiler checks attention_stack_bytes (built without the target's -march): it must bound
// the scratch attention_f32 allocates on this ISA, whose key panels may be wider.
TEST(Attention, StackBoundCoversThisIsasScratch) {
  for (int64_t seq : {1, 7, 16, 17, 31, 32, 33, 128, 384, 511, 512})
    for (int64_t hd : {12, 36, 64, 80}) {
      const int64_t s_pad = (seq + kAttentionKeys - 1) / kAttentionKeys * kAttentionKeys;
      EXPECT_GE(attention_stack_bytes(seq, hd),
                s_pad * (hd + kAttentionRows) * int64_t{sizeof(float)} + 64)
          << seq << " " << hd;
    }
  EXPECT_LE(attention_stack_bytes(512, 64), kAttentionMaxStackBytes);
}

}  // namespace
}  // namespace kiln::kernels
