// INT8 GEMM (s8_*.h): packing, weight and activation quantization, dispatch, and every variant of
// the dispatch table (s8_variants.inc) forced in turn:
//   - the int32 path exactly, on rows quantized by hand (odd shapes, extremes that would saturate
//     an int16 pair sum or come within 0.4% of int32's range);
//   - the float path against a float64 emulation of the documented scheme (s8_quantize.h,
//     s8_pack.h), with every epilogue, strides and 1-2 threads.
// A variant that the CPU lacks is skipped, and says so.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "gemm_tester.h"
#include "kiln/kernels/gemm/s8_dispatch.h"

namespace kiln::kernels::gemm::testing {
namespace {

// A 64-byte aligned byte buffer (model.params gives the compiler's blobs that alignment).
class AlignedBytes {
 public:
  explicit AlignedBytes(size_t n, uint8_t fill = 0xA5) : store_(n + 64, fill) {}
  uint8_t* get() {
    uint8_t* p = store_.data();
    return p + (64 - reinterpret_cast<uintptr_t>(p) % 64) % 64;
  }

 private:
  std::vector<uint8_t> store_;
};

// Packs int8 weights q (K x N, row-major) with the given scales; returns the view (blob kept in
// *storage).
PackedS8 pack(const std::vector<int8_t>& q, const std::vector<float>& scale, int64_t K, int64_t N,
              std::unique_ptr<AlignedBytes>* storage) {
  *storage = std::make_unique<AlignedBytes>(packed_b_s8_bytes(K, N));
  EXPECT_TRUE(pack_b_s8(q.data(), scale.data(), K, N, false, (*storage)->get()));
  return packed_s8_view((*storage)->get(), K, N);
}

// ---- Packing and weight quantization. ----

TEST(S8Pack, LayoutIsC4PanelsOf16) {
  const int64_t K = 5, N = 20;
  std::vector<int8_t> q(K * N), qt(N * K);
  std::vector<float> scale(N);
  auto val = [](int64_t k, int64_t n) { return int8_t((k * 20 + n) * 7 % 256 - 128); };
  for (int64_t k = 0; k < K; ++k)
    for (int64_t n = 0; n < N; ++n) q[k * N + n] = qt[n * K + k] = val(k, n);
  for (int64_t n = 0; n < N; ++n) scale[n] = 0.5f + n;
  const int64_t kp = 8, np = 32;
  ASSERT_EQ(packed_b_s8_bytes(K, N), size_t(np * kp + np * 8));
  for (bool trans : {false, true}) {
    AlignedBytes blob(packed_b_s8_bytes(K, N));
    ASSERT_TRUE(pack_b_s8(trans ? qt.data() : q.data(), scale.data(), K, N, trans, blob.get()));
    const PackedS8 v = packed_s8_view(blob.get(), K, N);
    for (int64_t n = 0; n < np; ++n) {
      int32_t sum = 0;
      for (int64_t k = 0; k < kp; ++k) {
        const int8_t want = n < N && k < K ? val(k, n) : 0;
        sum += want;
        const int64_t at = (n / 16) * kp * 16 + (k / 4) * 64 + (n % 16) * 4 + k % 4;
        ASSERT_EQ(v.data[at], want) << "k " << k << " n " << n << " trans " << trans;
      }
      EXPECT_EQ(v.colsum[n], sum) << n;
      EXPECT_EQ(v.scale[n], n < N ? scale[n] : 0.f) << n;
    }
  }
  EXPECT_FALSE(pack_b_s8(q.data(), scale.data(), kMaxKS8 + 1, 1, false, nullptr));
}

TEST(S8Pack, QuantizeWeightsPerChannelRoundsHalfToEven) {
  // Column 0 has absmax 127 (scale 1): ties round to even. Column 1 is all zero (scale 1, q 0).
  // Column 2 has absmax 0.5 (scale 0.5 / 127).
  const std::vector<float> c0 = {0.5f, 1.5f, 2.5f, -0.5f, -2.5f, 127.f, -127.f, 3.49f};
  const std::vector<int8_t> q0 = {0, 2, 2, 0, -2, 127, -127, 3};
  const int64_t K = int64_t(c0.size()), N = 3;
  std::vector<float> w(K * N), scale(N);
  for (int64_t k = 0; k < K; ++k)
    w[k * N] = c0[k], w[k * N + 1] = 0.f, w[k * N + 2] = -0.5f * k / 7;
  std::vector<int8_t> q(K * N);
  quantize_b_s8(w.data(), K, N, false, q.data(), scale.data());
  EXPECT_EQ(scale[0], 1.f);
  EXPECT_EQ(scale[1], 1.f);
  EXPECT_EQ(scale[2], 0.5f / 127.f);
  for (int64_t k = 0; k < K; ++k) {
    EXPECT_EQ(q[k * N], q0[k]) << k;
    EXPECT_EQ(q[k * N + 1], 0);
    EXPECT_EQ(q[k * N + 2], int8_t(std::nearbyint(-0.5f * k / 7 / (0.5f / 127.f)))) << k;
  }
  // quantize_pack_b_s8 = quantize_b_s8 + pack_b_s8, also transposed.
  std::vector<float> wt(N * K);
  for (int64_t k = 0; k < K; ++k)
    for (int64_t n = 0; n < N; ++n) wt[n * K + k] = w[k * N + n];
  AlignedBytes a(packed_b_s8_bytes(K, N)), b(packed_b_s8_bytes(K, N));
  ASSERT_TRUE(pack_b_s8(q.data(), scale.data(), K, N, false, a.get()));
  ASSERT_TRUE(quantize_pack_b_s8(wt.data(), K, N, true, b.get()));
  EXPECT_EQ(std::memcmp(a.get(), b.get(), packed_b_s8_bytes(K, N)), 0);
}

TEST(S8Pack, WeightGroupsAlongK) {
  // K = 10 in groups of 4: groups [0, 4), [4, 8), [8, 10); column n's rows scaled by 10^(k / 4).
  const int64_t K = 10, N = 3, G = 4;
  std::vector<float> w(K * N);
  for (int64_t k = 0; k < K; ++k)
    for (int64_t n = 0; n < N; ++n)
      w[k * N + n] = std::pow(10.f, float(k / G)) * float(int(k + n) % 5 - 2) * (n + 1);
  ASSERT_EQ(s8_weight_groups(K, G), 3);
  EXPECT_EQ(s8_weight_groups(K, 0), 1);
  EXPECT_EQ(s8_weight_groups(K, 12), 1);  // one group covers K: per channel
  EXPECT_EQ(effective_s8_weight_group(K, 12), 0);
  EXPECT_FALSE(valid_s8_weight_group(6));
  EXPECT_FALSE(valid_s8_weight_group(kMaxS8WeightGroup + 4));
  std::vector<int8_t> q(K * N);
  std::vector<float> scale(3 * N);
  quantize_b_s8(w.data(), K, N, false, q.data(), scale.data(), G);
  for (int64_t g = 0; g < 3; ++g)
    for (int64_t n = 0; n < N; ++n) {
      float absmax = 0;
      for (int64_t k = g * G; k < std::min(K, g * G + G); ++k)
        absmax = std::fmax(absmax, std::fabs(w[k * N + n]));
      EXPECT_EQ(scale[g * N + n], absmax / 127.f) << g << " " << n;
      for (int64_t k = g * G; k < std::min(K, g * G + G); ++k)
        EXPECT_EQ(q[k * N + n], int8_t(std::nearbyint(w[k * N + n] / scale[g * N + n])));
    }
  ASSERT_EQ(packed_b_s8_bytes(K, N, G), size_t(16 * 12 + 16 * 4 * 3 + 16 * 4));
  AlignedBytes blob(packed_b_s8_bytes(K, N, G));
  ASSERT_TRUE(quantize_pack_b_s8(w.data(), K, N, false, blob.get(), G));
  const PackedS8 v = packed_s8_view(blob.get(), K, N, nullptr, G);
  EXPECT_EQ(v.group, G);
  EXPECT_EQ(v.scale_stride, 16);
  EXPECT_EQ(v.colsum, nullptr);
  for (int64_t n = 0; n < 16; ++n) {
    double zsum = 0;
    for (int64_t g = 0; g < 3; ++g) {
      EXPECT_EQ(v.scale[g * 16 + n], n < N ? scale[g * N + n] : 0.f);
      int32_t sum = 0;
      for (int64_t k = g * G; n < N && k < std::min(K, g * G + G); ++k) sum += q[k * N + n];
      zsum += n < N ? double(scale[g * N + n]) * sum : 0.0;
    }
    EXPECT_EQ(v.zsum[n], float(zsum)) << n;
  }
  EXPECT_FALSE(pack_b_s8(q.data(), scale.data(), K, N, false, blob.get(), 6));
}

// ---- Activation quantization. ----

// The documented scheme (s8_quantize.h header), written out again independently.
struct Quantized {
  std::vector<int32_t> q;
  float scale;
  int32_t z;
};
Quantized quantize_by_definition(const float* x, int64_t K) {
  float lo = 0, hi = 0;
  for (int64_t k = 0; k < K; ++k) lo = std::min(lo, x[k]), hi = std::max(hi, x[k]);
  Quantized r;
  r.scale = (hi - lo) / 255.0f;
  if (!(r.scale >= 1.17549435e-38f)) r.scale = 1.0f;
  const float inv = 1.0f / r.scale;
  r.z = int32_t(std::min(127.f, std::max(-128.f, std::nearbyint(-128.0f - lo * inv))));
  for (int64_t k = 0; k < K; ++k)
    r.q.push_back(std::min(127, std::max(-128, int32_t(std::nearbyint(x[k] * inv)) + r.z)));
  return r;
}

struct QuantizerCase {
  std::string name;
  ActFormat format;
  QuantizeRowsFn fn;
  bool supported;
};
// Every quantizer in every format (the variants use some of them).
template <ActFormat F>
void add_quantizers(std::vector<QuantizerCase>* v, const char* format) {
  const std::string f = format;
  v->push_back({"ref " + f, F, quantize_rows_ref<F>, true});
#if defined(__x86_64__)
  v->push_back({"avx512 " + f, F, quantize_rows_avx512<F>, cpu::avx512f()});
  v->push_back({"avx2 " + f, F, quantize_rows_avx2<F>, cpu::avx2_fma()});
#endif
#if defined(__aarch64__)
  v->push_back({"neon " + f, F, quantize_rows_neon<F>, true});
#endif
}
std::vector<QuantizerCase> quantizers() {
  std::vector<QuantizerCase> v;
  add_quantizers<ActFormat::kS8>(&v, "s8");
  add_quantizers<ActFormat::kU8>(&v, "u8");
  add_quantizers<ActFormat::kS16>(&v, "s16");
  return v;
}

int32_t stored_value(ActFormat f, const uint8_t* row, int64_t k) {
  if (f == ActFormat::kS16) {
    int16_t v;
    std::memcpy(&v, row + 2 * k, 2);
    return v;
  }
  return f == ActFormat::kU8 ? int32_t(row[k]) - 128 : int32_t(int8_t(row[k]));
}

// Every quantizer (SIMD ones included) gives the definition's bytes, zero padding, scale and zero
// point, on rows with ties, both range ends, all-zero, one-signed and tiny rows.
// With `smooth` (K floats), the definition applied to x[k] * smooth[k].
void check_quantizers(const std::vector<float>& A, int64_t rows, int64_t K,
                      const std::vector<float>& smooth = {}) {
  for (const QuantizerCase& c : quantizers()) {
    if (!c.supported) continue;
    const int64_t ld = s8_act_row_bytes(c.format, K);
    AlignedBytes out(rows * ld, 0x5A);
    std::vector<float> scale(rows);
    std::vector<int32_t> zp(rows);
    c.fn(A.data(), K, rows, K, smooth.empty() ? nullptr : smooth.data(), out.get(), ld,
         scale.data(), zp.data());
    for (int64_t r = 0; r < rows; ++r) {
      std::vector<float> x(A.begin() + r * K, A.begin() + (r + 1) * K);
      for (int64_t k = 0; k < K && !smooth.empty(); ++k) x[k] *= smooth[k];
      const Quantized want = quantize_by_definition(x.data(), K);
      ASSERT_EQ(scale[r], want.scale) << c.name << " row " << r << " K " << K;
      ASSERT_EQ(zp[r], want.z + act_format_offset(c.format)) << c.name << " row " << r;
      const uint8_t* row = out.get() + r * ld;
      for (int64_t k = 0; k < K; ++k)
        ASSERT_EQ(stored_value(c.format, row, k), want.q[k])
            << c.name << " row " << r << " k " << k << " x " << A[r * K + k];
      for (int64_t b = K * act_format_bytes(c.format); b < ld; ++b)
        ASSERT_EQ(row[b], 0) << c.name << ": padding byte " << b << " of row " << r;
    }
  }
}

TEST(S8Quantize, AllImplementationsMatchTheDefinition) {
  std::mt19937 g(3);
  std::normal_distribution<float> nd(0.f, 1.f);
  for (int64_t K : {1, 3, 15, 16, 17, 31, 32, 33, 63, 64, 65, 79, 100, 128, 143, 768, 3072}) {
    const int64_t rows = 8;
    std::vector<float> A(rows * K);
    for (auto& x : A) x = nd(g) * 3.f;
    for (int64_t k = 0; k < K; ++k) {
      A[1 * K + k] = 0.f;                            // all zero
      A[2 * K + k] = std::fabs(A[2 * K + k]);        // non-negative (z = -128)
      A[3 * K + k] = -std::fabs(A[3 * K + k]);       // non-positive (z = 127)
      A[4 * K + k] = float(k % 256) - 128.f;         // scale 1 when both ends are present
      A[5 * K + k] = (float(k % 7) - 3.f) * 1e-39f;  // subnormal range: scale falls back to 1
      A[6 * K + k] = float(k % 256) - 127.5f;        // exact halves
      // x * inv rounds to a half for most k (scale 0.37): a fused multiply-add (one rounding)
      // would round a third of them the other way.
      A[7 * K + k] = (float(k % 256) - 127.5f) * 0.37f;
    }
    check_quantizers(A, rows, K);
  }
}

// Smoothing multiplies each channel before anything else: the same bytes as the definition on
// x[k] * m[k], in every quantizer, over the SIMD bodies and the scalar tails (m = 0.5 on the tie
// rows keeps their halves).
TEST(S8Quantize, SmoothingScalesEachChannelFirst) {
  std::mt19937 g(5);
  std::normal_distribution<float> nd(0.f, 1.f);
  std::uniform_real_distribution<float> ud(-3.f, 2.f);
  for (int64_t K : {1, 5, 16, 17, 33, 64, 100, 384, 1536}) {
    const int64_t rows = 4;
    std::vector<float> A(rows * K), m(K);
    for (auto& x : A) x = nd(g) * 3.f;
    for (auto& f : m) f = std::pow(10.f, ud(g));
    for (int64_t k = 0; k < K; k += 7) A[k] *= 60.f;  // outlier channels in row 0
    for (int64_t k = 0; k < K; ++k) A[3 * K + k] = 0.f;
    check_quantizers(A, rows, K, m);
    std::vector<float> halves(2 * K), m_half(K, 0.5f);
    for (int64_t k = 0; k < K; ++k)
      halves[k] = 2.f * (float(k % 256) - 127.5f), halves[K + k] = float(k % 9) - 4.f;
    check_quantizers(halves, 2, K, m_half);
  }
}

TEST(S8Quantize, RoundsHalfToEvenAndClamps) {
  // lo = -128, hi = 127: scale 1, z 0, so q = rne(x).
  const std::vector<float> row = {-128.f, 127.f, 0.5f, 1.5f, 2.5f, -0.5f, -1.5f, 126.5f, -127.5f};
  const std::vector<int32_t> want = {-128, 127, 0, 2, 2, 0, -2, 126, -128};
  const int64_t K = int64_t(row.size());
  for (const QuantizerCase& c : quantizers()) {
    if (!c.supported) continue;
    const int64_t ld = s8_act_row_bytes(c.format, K);
    AlignedBytes out(ld);
    float scale;
    int32_t zp;
    c.fn(row.data(), K, 1, K, nullptr, out.get(), ld, &scale, &zp);
    EXPECT_EQ(scale, 1.f) << c.name;
    EXPECT_EQ(zp, act_format_offset(c.format)) << c.name;
    for (int64_t k = 0; k < K; ++k)
      EXPECT_EQ(stored_value(c.format, out.get(), k), want[k]) << c.name << " x " << row[k];
  }
  // Long rows, so the SIMD bodies (not only the scalar tails) see the ties too.
  std::vector<float> A(2 * 100);
  for (int64_t k = 0; k < 100; ++k) A[k] = float(k % 256) - 127.5f, A[100 + k] = k * 0.5f - 25.f;
  A[0] = -128.f, A[1] = 127.f;
  check_quantizers(A, 2, 100);
}

// ---- Dispatch. ----

TEST(S8Dispatch, DefaultIsBestSupported) {
  if (std::getenv("KILN_GEMM_S8_VARIANT")) GTEST_SKIP() << "KILN_GEMM_S8_VARIANT is set";
  for (const S8Variant& v : gemm_s8_table())
    if (v.supported()) {
      EXPECT_EQ(&gemm_s8_variant(), &v);
      return;
    }
  FAIL() << "no supported variant";
}

// Pi 4 (Cortex-A72, no asimddp) gets neon and never the SDOT kernel; Pi 5 (A76) gets neondot.
// ctest runs this under qemu with QEMU_CPU=cortex-a72 and =cortex-a76 and KILN_EXPECT_S8_VARIANT
// set accordingly (tests/kernels/gemm/CMakeLists.txt).
TEST(S8Dispatch, PicksByHwcap) {
  if (std::getenv("KILN_GEMM_S8_VARIANT")) GTEST_SKIP() << "KILN_GEMM_S8_VARIANT is set";
  const char* want = std::getenv("KILN_EXPECT_S8_VARIANT");
  if (!want) GTEST_SKIP() << "run with KILN_EXPECT_S8_VARIANT set (ctest S8Dispatch.Cortex*)";
  EXPECT_STREQ(gemm_s8_variant().name, want);
}

TEST(S8Dispatch, EnvOverride) {
  const char* env = std::getenv("KILN_GEMM_S8_VARIANT");
  if (!env) GTEST_SKIP() << "run with KILN_GEMM_S8_VARIANT set (ctest S8Dispatch.EnvForcesRef)";
  EXPECT_STREQ(gemm_s8_variant().name, env);
}

TEST(S8Dispatch, EntryPointAndWorkspace) {
  const int64_t M = 5, N = 17, K = 9;
  std::vector<float> A(M * K), W(K * N, 0.25f), C1(M * N), C2(M * N);
  for (int64_t i = 0; i < M * K; ++i) A[i] = float(i % 5) - 2.f;
  AlignedBytes blob(packed_b_s8_bytes(K, N));
  ASSERT_TRUE(quantize_pack_b_s8(W.data(), K, N, false, blob.get()));
  const PackedS8 B = packed_s8_view(blob.get(), K, N);
  gemm_s8_packed(nullptr, M, N, K, A.data(), K, B, C1.data(), N, Epilogue{});
  AlignedBytes ws(gemm_s8_workspace_bytes(M, K));
  gemm_s8_packed(nullptr, M, N, K, A.data(), K, B, C2.data(), N, Epilogue{}, ws.get());
  for (int64_t m = 0; m < M; ++m) {
    double want = 0;
    for (int64_t k = 0; k < K; ++k) want += 0.25 * A[m * K + k];
    for (int64_t n = 0; n < N; ++n) {
      EXPECT_NEAR(C1[m * N + n], want, 0.02) << m << " " << n;  // A's steps are exact here
      EXPECT_EQ(C1[m * N + n], C2[m * N + n]);
    }
  }
}

// ---- Every variant. ----

class S8VariantTest : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override {
    v_ = gemm_s8_table().find(GetParam());
    if (!v_->supported()) GTEST_SKIP() << v_->name << " s8 GEMM skipped: CPU lacks " << v_->needs;
  }

  // The int32 path: A already quantized (q[m, k], zero point z[m]), unit scales, so
  // C = float(sum_k (q - z) * w) exactly (the int32 result is exact and converts like the int64).
  // aq(m, k) and w(k, n) give the values; checks every element and that nothing past N is written.
  template <class AQ, class WQ, class ZP>
  void check_exact(int64_t M, int64_t N, int64_t K, AQ aq, WQ wq, ZP zpf, int threads = 1) {
    const S8KernelTable& kt = v_->kernels();
    std::vector<int8_t> w(K * N);
    for (int64_t k = 0; k < K; ++k)
      for (int64_t n = 0; n < N; ++n) w[k * N + n] = wq(k, n);
    std::unique_ptr<AlignedBytes> blob;
    const PackedS8 B = pack(w, std::vector<float>(N, 1.f), K, N, &blob);
    const int64_t ld = s8_act_row_bytes(kt.format, K);
    AlignedBytes rows(M * ld, 0);
    std::vector<float> scale(M, 1.f);
    std::vector<int32_t> zp(M);
    std::vector<int32_t> q(M * K);
    for (int64_t m = 0; m < M; ++m) {
      zp[m] = zpf(m) + act_format_offset(kt.format);
      for (int64_t k = 0; k < K; ++k) {
        const int32_t v = q[m * K + k] = aq(m, k);
        uint8_t* p = rows.get() + m * ld;
        if (kt.format == ActFormat::kS16) {
          const int16_t s = int16_t(v);
          std::memcpy(p + 2 * k, &s, 2);
        } else {
          p[k] = uint8_t(v + act_format_offset(kt.format));
        }
      }
    }
    const int64_t ldc = N + 3;
    const float kSentinel = -12345.f;
    std::vector<float> C(M * ldc, kSentinel);
    ThreadBackend be(threads);
    gemm_s8_quantized_with(kt, v_->schedule, be.get(), M, N, K,
                           QuantizedRows{rows.get(), ld, scale.data(), zp.data()}, B, C.data(), ldc,
                           Epilogue{});
    int failures = 0;
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = 0; n < ldc; ++n) {
        if (n >= N) {
          ASSERT_EQ(C[m * ldc + n], kSentinel) << "wrote past N at " << m << ", " << n;
          continue;
        }
        int64_t sum = 0;
        for (int64_t k = 0; k < K; ++k) sum += int64_t(q[m * K + k] - zpf(m)) * w[k * N + n];
        if (C[m * ldc + n] != float(sum) && ++failures <= 5)
          ADD_FAILURE() << v_->name << " C(" << m << ", " << n << ") = " << C[m * ldc + n]
                        << ", want " << sum << " [M=" << M << " N=" << N << " K=" << K
                        << " threads=" << threads << "]";
      }
    ASSERT_EQ(failures, 0);
  }

  const S8Variant* v_ = nullptr;
};

TEST_P(S8VariantTest, ExactIntegerSums) {
  std::mt19937 g(11);
  std::uniform_int_distribution<int> byte(-128, 127);
  for (int64_t M : {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 37, 129})
    for (int64_t N : {1, 15, 16, 17, 33, 100})
      for (int64_t K : {1, 3, 4, 5, 7, 37, 768}) {
        std::vector<int32_t> a(M * K), z(M);
        std::vector<int8_t> w(K * N);
        for (auto& x : a) x = byte(g);
        for (auto& x : z) x = byte(g);
        for (auto& x : w) x = int8_t(byte(g));
        check_exact(
            M, N, K, [&](int64_t m, int64_t k) { return a[m * K + k]; },
            [&](int64_t k, int64_t n) { return w[k * N + n]; }, [&](int64_t m) { return z[m]; },
            M * N * K > 50000 ? 2 : 1);
      }
}

TEST_P(S8VariantTest, TwoThreads) {
  for (int64_t M : {2, 16, 37, 129})
    for (int64_t N : {17, 100, 768})
      check_exact(
          M, N, 300, [](int64_t m, int64_t k) { return int32_t((m * 31 + k * 7) % 256 - 128); },
          [](int64_t k, int64_t n) { return int8_t((k * 13 + n * 5) % 256 - 128); },
          [](int64_t m) { return int32_t(m % 256 - 128); }, 2);
}

// Every product at its largest magnitude, summed over long K: an int16 pair sum would saturate
// (2 * 255 * 128 > 32767 for u8 x s8, as vpmaddubsw computes) and K = kMaxKS8 comes within 0.4%
// of int32's range. (q - z) = +-255 reaches both ends of the u8 activations of the VNNI kernel
// (255 and 0) and of int8 (127, -128).
TEST_P(S8VariantTest, ExtremesDoNotSaturate) {
  struct Act {
    int32_t q, z;
  } acts[] = {{127, -128}, {-128, 127}, {127, 127}, {-128, -128}, {127, 0}, {-128, 0}};
  for (int8_t wv : {int8_t(-128), int8_t(127), int8_t(-127)})
    for (const Act& a : acts)
      for (int64_t K : {4, 5, 768, 3072})
        check_exact(
            3, 33, K, [&](int64_t, int64_t) { return a.q; }, [&](int64_t, int64_t) { return wv; },
            [&](int64_t) { return a.z; });
  // Alternating signs within each group of 4 (pair sums of opposite extremes).
  check_exact(
      7, 17, 768, [](int64_t m, int64_t k) { return k % 2 ? 127 : -128; },
      [](int64_t k, int64_t) { return int8_t(k % 3 ? -128 : 127); }, [](int64_t m) { return 0; });
  // The longest K: sum = 255 * -128 * 65536 = -2139095040 (int32 min is -2147483648).
  check_exact(
      2, 16, kMaxKS8, [](int64_t, int64_t) { return 127; },
      [](int64_t, int64_t) { return int8_t(-128); }, [](int64_t) { return -128; });
  check_exact(
      2, 16, kMaxKS8, [](int64_t, int64_t) { return -128; },
      [](int64_t, int64_t) { return int8_t(-128); }, [](int64_t) { return 127; });
}

// The float path: quantize A per row, int8 GEMM, dequantize, epilogue; against the same scheme
// computed in float64 (weights and activations quantized by the documented definitions, then
// double sums, scales, bias, erf GELU and residual). Also checks the error of the whole scheme
// against the exact float GEMM stays at the few-percent level quantization gives.
struct FloatCase {
  int64_t M, N, K;
  bool bias = false, gelu = false, residual = false, in_place = false;
  int64_t lda_pad = 0, ldc_pad = 0;
  int threads = 1;
  // Every 11th input channel 40x the others (its weights / 40, so x W keeps its size), and with
  // `smooth` the driver's activation smoothing m[k] = sqrt(max |W[k, :]| / max |A[:, k]|) (B
  // packed from W[k, :] / m[k]).
  bool outliers = false, smooth = false;
  // Weight scales per group of `group` k (s8_pack.h; 0: per channel). With `spread_rows` the first
  // half of W's rows is 16x the second (A's columns / 16, so x W keeps its size): what smoothing
  // leaves in a trained model's weights, and what one scale per column rounds away.
  int64_t group = 0;
  bool spread_rows = false;
  double max_error = 0.03;  // relative Frobenius error vs the exact float GEMM
};

void check_float_path(const S8Variant& v, const FloatCase& fc, uint32_t seed,
                      double* error = nullptr) {
  const int64_t M = fc.M, N = fc.N, K = fc.K;
  const int64_t lda = K + fc.lda_pad, ldc = N + fc.ldc_pad;
  std::mt19937 g(seed);
  std::normal_distribution<float> nd(0.f, 1.f);
  std::vector<float> A(M * lda, std::nanf("")), W(K * N), bias(N), res(M * ldc);
  for (int64_t m = 0; m < M; ++m) {
    const float row_scale = 0.2f + 0.3f * float(m % 7);
    for (int64_t k = 0; k < K; ++k) A[m * lda + k] = row_scale * nd(g);
  }
  for (auto& x : W) x = 0.05f * nd(g);
  for (auto& x : bias) x = nd(g);
  for (auto& x : res) x = nd(g);
  for (int64_t k = 3; fc.outliers && k < K; k += 11) {
    for (int64_t m = 0; m < M; ++m) A[m * lda + k] *= 40.f;
    for (int64_t n = 0; n < N; ++n) W[k * N + n] /= 40.f;
  }
  for (int64_t k = 0; fc.spread_rows && k < K / 2; ++k) {
    for (int64_t m = 0; m < M; ++m) A[m * lda + k] /= 16.f;
    for (int64_t n = 0; n < N; ++n) W[k * N + n] *= 16.f;
  }
  std::vector<float> smooth(K, 1.f), Ws = W;  // Ws: what is quantized and packed
  for (int64_t k = 0; fc.smooth && k < K; ++k) {
    float amax = 0, wmax = 0;
    for (int64_t m = 0; m < M; ++m) amax = std::fmax(amax, std::fabs(A[m * lda + k]));
    for (int64_t n = 0; n < N; ++n) wmax = std::fmax(wmax, std::fabs(W[k * N + n]));
    if (amax > 0 && wmax > 0) smooth[k] = std::sqrt(wmax / amax);
    for (int64_t n = 0; n < N; ++n) Ws[k * N + n] = W[k * N + n] / smooth[k];
  }
  // Weights: the compiler's quantization.
  const int64_t G = effective_s8_weight_group(K, fc.group), span = G ? G : std::max<int64_t>(K, 1);
  std::vector<int8_t> wq(K * N);
  std::vector<float> ws(s8_weight_groups(K, fc.group) * N);
  quantize_b_s8(Ws.data(), K, N, false, wq.data(), ws.data(), fc.group);
  AlignedBytes blob(packed_b_s8_bytes(K, N, fc.group));
  ASSERT_TRUE(pack_b_s8(wq.data(), ws.data(), K, N, false, blob.get(), fc.group));
  const PackedS8 B =
      packed_s8_view(blob.get(), K, N, fc.smooth ? smooth.data() : nullptr, fc.group);
  const float kSentinel = -12345.f;
  std::vector<float> C(M * ldc, kSentinel);
  if (fc.in_place) C = res;
  Epilogue ep;
  ep.bias = fc.bias ? bias.data() : nullptr;
  ep.residual = fc.in_place ? C.data() : fc.residual ? res.data() : nullptr;
  ep.ldr = ldc;
  ep.gelu = fc.gelu;
  ThreadBackend be(fc.threads);
  gemm_s8_packed_with(v.kernels(), v.schedule, be.get(), M, N, K, A.data(), lda, B, C.data(), ldc,
                      ep);
  int failures = 0;
  double err2 = 0, ref2 = 0;
  for (int64_t m = 0; m < M; ++m) {
    std::vector<float> x(A.begin() + m * lda, A.begin() + m * lda + K);
    for (int64_t k = 0; k < K; ++k) x[k] *= smooth[k];
    const Quantized qa = quantize_by_definition(x.data(), K);
    for (int64_t n = 0; n < ldc; ++n) {
      const float got = C[m * ldc + n];
      if (n >= N) {
        ASSERT_EQ(got, fc.in_place ? res[m * ldc + n] : kSentinel) << "wrote past N";
        continue;
      }
      // Per group: the exact integer sum times the group's scale. Per channel (one group) the
      // kernels convert the exact sum once and round the scale product once (2^-24 relative
      // each); with groups they add the groups in float and subtract the zero-point term last,
      // so each rounding is relative to the sums before the correction: stored values up to
      // |q| + 128 (the u8 offset) times |w| (`mag`).
      double y = 0, exact = 0, mag = 0;
      for (int64_t k0 = 0; k0 < K; k0 += span) {
        int64_t sum = 0, raw = 0, colsum = 0;
        for (int64_t k = k0; k < std::min(K, k0 + span); ++k) {
          sum += int64_t(qa.q[k] - qa.z) * wq[k * N + n];
          raw += int64_t(std::abs(qa.q[k]) + 128) * std::abs(wq[k * N + n]);
          colsum += wq[k * N + n];
        }
        const double w_scale = ws[(k0 / span) * N + n];
        y += w_scale * double(sum);
        mag += w_scale * double(raw + std::abs(qa.z + 128) * std::abs(colsum));
      }
      for (int64_t k = 0; k < K; ++k) exact += double(A[m * lda + k]) * W[k * N + n];
      y *= double(qa.scale);
      double tol = G ? 1.2e-7 * (double(K) / G + 3) * double(qa.scale) * mag + 2.5e-7 * std::fabs(y)
                     : 2.5e-7 * std::fabs(y) + 1e-30;
      if (fc.bias) y += bias[n], exact += bias[n], tol += 1.2e-7 * std::fabs(y);
      if (fc.gelu) {
        tol = tol * 1.13 + 2e-6 * (std::fabs(gelu_f64(y)) + 0.5 * std::fabs(y));
        y = gelu_f64(y), exact = gelu_f64(exact);
      }
      if (fc.residual) {
        y += res[m * ldc + n], exact += res[m * ldc + n];
        tol += 1.2e-7 * (std::fabs(y) + 1);
      }
      err2 += (got - exact) * (got - exact), ref2 += exact * exact;
      if (!(std::fabs(got - y) <= tol) && ++failures <= 5)
        ADD_FAILURE() << v.name << " C(" << m << ", " << n << ") = " << got << ", want " << y
                      << " (tol " << tol << ") [M=" << M << " N=" << N << " K=" << K
                      << " bias=" << fc.bias << " gelu=" << fc.gelu << " res=" << fc.residual
                      << " in_place=" << fc.in_place << " threads=" << fc.threads
                      << " group=" << fc.group << "]";
    }
  }
  ASSERT_EQ(failures, 0);
  if (error) *error = ref2 > 0 ? std::sqrt(err2 / ref2) : 0.0;
  if (K >= 37 && ref2 > 0) {
    EXPECT_LT(std::sqrt(err2 / ref2), fc.max_error)
        << "quantization error vs the float GEMM, M=" << M << " N=" << N << " K=" << K
        << " outliers=" << fc.outliers << " smooth=" << fc.smooth << " group=" << fc.group;
  }
}

// Outlier channels: without smoothing x W loses most of its precision (the other channels get
// ~1/40 of the int8 steps); with it, the error is back at the outlier-free level. Exact against
// the emulation either way, threaded too.
TEST_P(S8VariantTest, SmoothingRestoresAccuracyWithOutlierChannels) {
  uint32_t seed = 300;
  for (int64_t M : {1, 6, 29})
    for (int64_t K : {37, 768}) {
      FloatCase plain{M, 48, K};
      plain.outliers = true, plain.max_error = 1.0;
      double plain_error = 0, smoothed_error = 0;
      check_float_path(*v_, plain, seed, &plain_error);
      FloatCase smoothed = plain;
      smoothed.smooth = true, smoothed.max_error = 0.03;
      smoothed.threads = M > 6 ? 2 : 1;
      check_float_path(*v_, smoothed, seed++, &smoothed_error);
      EXPECT_GT(plain_error, 3 * smoothed_error) << "M=" << M << " K=" << K;
    }
}

TEST_P(S8VariantTest, FloatPathMatchesEmulation) {
  uint32_t seed = 1;
  for (int64_t M : {1, 5, 13, 37})
    for (int64_t N : {1, 17, 33, 100})
      for (int64_t K : {1, 37, 768}) check_float_path(*v_, {M, N, K}, seed++);
}

// Weight groups along K: every group count and tail (K not a multiple of the group or of 4, one
// group, a group of 4 k), edge tiles, epilogues and threads, against the emulation.
TEST_P(S8VariantTest, WeightGroupsMatchEmulation) {
  uint32_t seed = 400;
  for (int64_t group : {4, 8, 128})
    for (int64_t M : {1, 6, 13, 37})
      for (int64_t K : {1, 37, 129, 300, 768}) {
        FloatCase fc{M, M == 13 ? 100 : 33, K};
        fc.group = group;
        fc.bias = fc.gelu = M == 6;
        fc.residual = fc.in_place = M == 37;
        fc.threads = M > 6 ? 2 : 1;
        check_float_path(*v_, fc, seed++);
      }
}

// Rows of W 16x apart (the first half of K): one scale per column leaves the small half a
// sixteenth of the int8 steps (weight-side error 0.095 of x W's norm); groups of 128 give each half
// its own (0.007). The activations' own error (their small half, ~0.08) is the same in both and
// now dominates, so the whole GEMM's error drops ~1.5x, not 14x.
TEST_P(S8VariantTest, WeightGroupsRestoreAccuracyWhenRowsDiffer) {
  uint32_t seed = 500;
  for (int64_t M : {1, 14, 29}) {
    FloatCase plain{M, 48, 768};
    plain.spread_rows = true, plain.max_error = 1.0;
    double plain_error = 0, grouped_error = 0;
    check_float_path(*v_, plain, seed, &plain_error);
    FloatCase grouped = plain;
    grouped.group = 128, grouped.max_error = 0.1;
    grouped.threads = M > 1 ? 2 : 1;
    check_float_path(*v_, grouped, seed++, &grouped_error);
    EXPECT_GT(plain_error, 1.3 * grouped_error) << "M=" << M;
  }
}

TEST_P(S8VariantTest, Epilogues) {
  uint32_t seed = 100;
  for (int e = 0; e < 8; ++e)
    for (int64_t M : {1, 6, 13})
      for (int64_t N : {15, 33, 100}) {
        FloatCase fc{M, N, 37};
        fc.bias = e & 1, fc.gelu = e & 2, fc.residual = e & 4;
        check_float_path(*v_, fc, seed++);
      }
  // K = 0: epilogue(0).
  FloatCase zero_k{7, 33, 0};
  zero_k.bias = zero_k.gelu = zero_k.residual = true;
  check_float_path(*v_, zero_k, seed++);
}

TEST_P(S8VariantTest, StridesInPlaceResidualAndThreads) {
  uint32_t seed = 200;
  for (int threads : {1, 2})
    for (int64_t M : {1, 16, 37, 129})
      for (int64_t N : {17, 100}) {
        FloatCase fc{M, N, 300};
        fc.bias = fc.gelu = true;
        fc.residual = fc.in_place = (M % 2 == 1);
        fc.lda_pad = 5, fc.ldc_pad = 3, fc.threads = threads;
        check_float_path(*v_, fc, seed++);
      }
  FloatCase big{16, 768, 768};
  big.bias = true, big.threads = 2;
  check_float_path(*v_, big, seed++);
}

// Other schedules than the default: every row count, one or two panels, tiny mc and nc, with and
// without the next column tile's prefetch.
TEST_P(S8VariantTest, Schedules) {
  const S8KernelTable& kt = v_->kernels();
  for (int mr = 1; mr <= kt.max_rows; ++mr)
    for (int panels = 1; panels <= kt.max_panels; ++panels)
      for (int64_t mc : {1, 40})
        for (int64_t nc : {0, 16})
          for (int64_t group : {0, 8}) {
            std::vector<float> A(37 * 45), W(45 * 49), C(37 * 49), bias(49);
            for (size_t i = 0; i < A.size(); ++i) A[i] = float(int(i * 7 % 19) - 9);
            for (size_t i = 0; i < W.size(); ++i) W[i] = float(int(i * 5 % 23) - 11) / 11.f;
            for (size_t i = 0; i < bias.size(); ++i) bias[i] = 0.25f * i;
            AlignedBytes blob(packed_b_s8_bytes(45, 49, group));
            ASSERT_TRUE(quantize_pack_b_s8(W.data(), 45, 49, false, blob.get(), group));
            const PackedS8 B = packed_s8_view(blob.get(), 45, 49, nullptr, group);
            std::vector<float> want(C.size());
            const S8Variant& ref = gemm_s8_table().reference();
            Epilogue ep;
            ep.bias = bias.data();
            gemm_s8_packed_with(ref.kernels(), ref.schedule, nullptr, 37, 49, 45, A.data(), 45, B,
                                want.data(), 49, ep);
            ThreadBackend be(nc ? 2 : 1);
            gemm_s8_packed_with(kt, Schedule{mr, panels, mc, 0, nc, 0, mc == 1 ? 0 : 1}, be.get(),
                                37, 49, 45, A.data(), 45, B, C.data(), 49, ep);
            for (size_t i = 0; i < C.size(); ++i)
              ASSERT_NEAR(C[i], want[i], 1e-5f * (std::fabs(want[i]) + 1))
                  << "mr " << mr << " panels " << panels << " mc " << mc << " nc " << nc
                  << " group " << group;
          }
}

INSTANTIATE_TEST_SUITE_P(Variants, S8VariantTest,
                         ::testing::ValuesIn(variant_names(gemm_s8_table())),
                         [](const ::testing::TestParamInfo<const char*>& i) {
                           return std::string(i.param);
                         });

}  // namespace
}  // namespace kiln::kernels::gemm::testing
