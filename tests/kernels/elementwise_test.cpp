// Elementwise, broadcast, Where, Cast, Expand, Transpose vs naive references.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <limits>

#include "kiln/kernels/elementwise.h"
#include "test_util.h"

namespace kiln::kernels {
namespace {
using testing::broadcast_offset;
using testing::numel;
using testing::random_floats;
using testing::TestBackend;
using testing::unravel;
using Dims = std::vector<int64_t>;

struct BinaryCase {
  Dims a, b, out;
};

class BinaryTest : public ::testing::TestWithParam<BinaryCase> {};

TEST_P(BinaryTest, AddSubMulDivMatchReference) {
  const BinaryCase& c = GetParam();
  auto a = random_floats(numel(c.a), 1);
  auto b = random_floats(numel(c.b), 2, 0.5f, 2.f);
  TestBackend tb;
  std::vector<float> out(numel(c.out));
  auto check = [&](auto op, auto ref) {
    binary<decltype(op)>(a.data(), c.a.data(), int(c.a.size()), b.data(), c.b.data(),
                         int(c.b.size()), out.data(), c.out.data(), int(c.out.size()), tb.get());
    for (int64_t i = 0; i < numel(c.out); ++i) {
      auto idx = unravel(i, c.out);
      float want = ref(a[broadcast_offset(idx, c.a)], b[broadcast_offset(idx, c.b)]);
      if (std::isnan(want))
        ASSERT_TRUE(std::isnan(out[i])) << "at " << i;
      else
        ASSERT_EQ(out[i], want) << "at " << i;
    }
  };
  check(op::Add{}, [](float x, float y) { return x + y; });
  check(op::Sub{}, [](float x, float y) { return x - y; });
  check(op::Mul{}, [](float x, float y) { return x * y; });
  check(op::Div{}, [](float x, float y) { return x / y; });
  check(op::Pow{}, [](float x, float y) { return std::pow(x, y); });
}

TEST_P(BinaryTest, CompareGivesBool) {
  const BinaryCase& c = GetParam();
  auto a = random_floats(numel(c.a), 3);
  auto b = random_floats(numel(c.b), 3);  // same seed: some equal elements
  std::vector<uint8_t> out(numel(c.out));
  binary<op::Less>(a.data(), c.a.data(), int(c.a.size()), b.data(), c.b.data(), int(c.b.size()),
                   out.data(), c.out.data(), int(c.out.size()), nullptr);
  for (int64_t i = 0; i < numel(c.out); ++i) {
    auto idx = unravel(i, c.out);
    ASSERT_EQ(out[i], a[broadcast_offset(idx, c.a)] < b[broadcast_offset(idx, c.b)] ? 1 : 0);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, BinaryTest,
    ::testing::Values(BinaryCase{{7}, {7}, {7}}, BinaryCase{{13, 37}, {37}, {13, 37}},
                      BinaryCase{{13, 37}, {1}, {13, 37}}, BinaryCase{{}, {5, 3}, {5, 3}},
                      BinaryCase{{1, 7, 1}, {13, 1, 5}, {13, 7, 5}},
                      BinaryCase{{2, 1, 1, 37}, {2, 3, 37, 1}, {2, 3, 37, 37}},
                      BinaryCase{{3, 1, 7, 5}, {1, 4, 1, 5}, {3, 4, 7, 5}},
                      BinaryCase{{129, 257}, {129, 1}, {129, 257}},
                      BinaryCase{{4, 1, 1, 300}, {4, 12, 300, 300}, {4, 12, 300, 300}}));

TEST(Elementwise, IntegerOps) {
  Dims ad{2, 3}, bd{3}, od{2, 3};
  std::vector<int64_t> a{1, 2, 3, 4, 5, 6}, b{3, 2, 1}, out(6);
  std::vector<uint8_t> eq(6);
  binary<op::Mul>(a.data(), ad.data(), 2, b.data(), bd.data(), 1, out.data(), od.data(), 2,
                  nullptr);
  EXPECT_EQ(out, (std::vector<int64_t>{3, 4, 3, 12, 10, 6}));
  binary<op::Equal>(a.data(), ad.data(), 2, b.data(), bd.data(), 1, eq.data(), od.data(), 2,
                    nullptr);
  EXPECT_EQ(eq, (std::vector<uint8_t>{0, 1, 0, 0, 0, 0}));
}

TEST(Elementwise, UnaryOps) {
  auto x = random_floats(37 * 13, 4, -4.f, 4.f);
  std::vector<float> y(x.size());
  TestBackend tb;
  auto check = [&](auto op, auto ref, float tol) {
    unary<decltype(op)>(x.data(), y.data(), int64_t(x.size()), tb.get());
    for (size_t i = 0; i < x.size(); ++i) ASSERT_NEAR(y[i], ref(double(x[i])), tol) << x[i];
  };
  // Erf and Gelu use a rational approximation (relative error < 1e-6, see gemm/gelu.h); dense
  // sweeps below.
  check(
      op::Erf{}, [](double v) { return std::erf(v); }, 2e-6f);
  check(
      op::Tanh{}, [](double v) { return std::tanh(v); }, 1e-6f);
  check(
      op::Exp{}, [](double v) { return std::exp(v); }, 1e-4f);
  check(
      op::Neg{}, [](double v) { return -v; }, 0.f);
  check(
      op::Relu{}, [](double v) { return v > 0 ? v : 0; }, 0.f);
  check(
      op::Sigmoid{}, [](double v) { return 1 / (1 + std::exp(-v)); }, 1e-6f);
  check(
      op::Gelu{}, [](double v) { return 0.5 * v * (1 + std::erf(v / std::sqrt(2.0))); }, 4e-6f);
  check(
      op::Square{}, [](double v) { return v * v; }, 1e-5f);
  for (auto& v : x) v = std::fabs(v);
  check(
      op::Sqrt{}, [](double v) { return std::sqrt(v); }, 1e-6f);
  std::vector<uint8_t> b{0, 1, 1, 0}, nb(4);
  unary<op::Not>(b.data(), nb.data(), 4, nullptr);
  EXPECT_EQ(nb, (std::vector<uint8_t>{1, 0, 0, 1}));
}

// Every 997th float of both signs from 0 to +inf (4.3M values), then +-inf and NaN, run
// through unary<Op> (vector body and scalar tail) and checked against a double reference within
// rel * |ref| + abs_x * |x| + 1e-38 (the last term covers denormal results). Returns the worst
// relative error seen for |ref| >= 1e-30.
template <class Op>
double sweep(const std::function<double(double)>& ref, double rel, double abs_x) {
  std::vector<float> x;
  for (uint32_t bits = 0; bits < 0x7f800000u; bits += 997) {
    float v;
    std::memcpy(&v, &bits, 4);
    x.push_back(v);
    x.push_back(-v);
  }
  const float inf = std::numeric_limits<float>::infinity();
  for (float v : {inf, -inf, std::numeric_limits<float>::quiet_NaN()}) x.push_back(v);
  std::vector<float> y(x.size());
  TestBackend tb;
  unary<Op>(x.data(), y.data(), int64_t(x.size()), tb.get());
  double worst = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double want = ref(double(x[i]));
    if (std::isnan(want)) {
      EXPECT_TRUE(std::isnan(y[i])) << x[i];
      continue;
    }
    if (double(y[i]) == want) continue;  // also +-inf
    const double err = std::fabs(double(y[i]) - want);
    if (std::fabs(want) >= 1e-30) worst = std::max(worst, err / std::fabs(want));
    if (!(err <= rel * std::fabs(want) + abs_x * std::fabs(double(x[i])) + 1e-38)) {
      ADD_FAILURE() << "x " << x[i] << " got " << y[i] << " want " << want;
      return worst;
    }
  }
  return worst;
}

TEST(Elementwise, ErfDenseSweep) {
  const double worst = sweep<op::Erf>([](double v) { return std::erf(v); }, 1e-6, 0);
  std::printf("erf: worst relative error %.3g\n", worst);
}

TEST(Elementwise, TanhDenseSweep) {
  const double worst = sweep<op::Tanh>([](double v) { return std::tanh(v); }, 1e-6, 0);
  std::printf("tanh: worst relative error %.3g\n", worst);
}

// gelu(x) = h + h erf(x / sqrt 2) with h = x / 2 in float, as PyTorch evaluates it: for x << 0
// the sum cancels, so the error is bounded by erf's (a few 1e-7 relative) times |h| there, not
// relative to the (tiny) result.
TEST(Elementwise, GeluDenseSweep) {
  sweep<op::Gelu>([](double v) { return 0.5 * v * std::erfc(-v / std::sqrt(2.0)); }, 1e-6, 3e-7);
  sweep<op::GeluTanh>(
      [](double v) {
        return 0.5 * v * (1 + std::tanh(0.79788456080286536 * (v + 0.044715 * v * v * v)));
      },
      1e-6, 3e-7);
}

// The vector body and the scalar tail agree element for element at every offset and length.
TEST(Elementwise, VectorOpsMatchScalarAtEveryLength) {
  auto x = random_floats(300, 9, -6.f, 6.f);
  std::vector<float> y(x.size());
  for (int64_t n = 0; n <= 100; ++n)
    for (int64_t off : {0, 1, 3}) {
      unary<op::Tanh>(x.data() + off, y.data(), n, nullptr);
      for (int64_t i = 0; i < n; ++i) ASSERT_NEAR(y[i], tanh_f32(x[off + i]), 1e-7) << n;
      unary<op::Erf>(x.data() + off, y.data(), n, nullptr);
      for (int64_t i = 0; i < n; ++i) ASSERT_NEAR(y[i], gemm::erf_f32(x[off + i]), 1e-7) << n;
    }
}

TEST(Elementwise, Cast) {
  std::vector<float> x{-1.5f, 0.f, 2.7f, 3.f};
  std::vector<int64_t> i(4);
  std::vector<uint8_t> b(4);
  cast(x.data(), i.data(), 4, nullptr);
  EXPECT_EQ(i, (std::vector<int64_t>{-1, 0, 2, 3}));
  cast_to_bool(x.data(), b.data(), 4, nullptr);
  EXPECT_EQ(b, (std::vector<uint8_t>{1, 0, 1, 1}));
  std::vector<float> back(4);
  cast(i.data(), back.data(), 4, nullptr);
  EXPECT_EQ(back, (std::vector<float>{-1, 0, 2, 3}));
}

TEST(Elementwise, WhereBroadcasts) {
  Dims cd{7, 1}, xd{1}, yd{3, 7, 13}, od{3, 7, 13};
  std::vector<uint8_t> c(7);
  for (int i = 0; i < 7; ++i) c[i] = i % 3 == 0;
  std::vector<float> x{-1e4f}, y = random_floats(numel(yd), 5), out(numel(od));
  where(c.data(), cd.data(), 2, x.data(), xd.data(), 1, y.data(), yd.data(), 3, out.data(),
        od.data(), 3, nullptr);
  for (int64_t i = 0; i < numel(od); ++i) {
    auto idx = unravel(i, od);
    ASSERT_EQ(out[i], c[broadcast_offset(idx, cd)] ? x[0] : y[i]);
  }
}

TEST(Elementwise, Expand) {
  Dims id{7, 1}, od{2, 7, 13};
  auto x = random_floats(7, 6);
  std::vector<float> out(numel(od));
  expand(x.data(), id.data(), 2, out.data(), od.data(), 3, nullptr);
  for (int64_t i = 0; i < numel(od); ++i)
    ASSERT_EQ(out[i], x[broadcast_offset(unravel(i, od), id)]);
}

TEST(Elementwise, Transpose) {
  TestBackend tb;
  for (auto perm : std::vector<Dims>{{1, 0, 2, 3}, {0, 2, 1, 3}, {0, 2, 3, 1}, {3, 2, 1, 0}}) {
    Dims id{3, 7, 13, 5}, od(4);
    for (int i = 0; i < 4; ++i) od[i] = id[perm[i]];
    auto x = random_floats(numel(id), 7);
    std::vector<float> out(numel(od));
    transpose(x.data(), id.data(), 4, perm.data(), out.data(), tb.get());
    for (int64_t i = 0; i < numel(od); ++i) {
      auto oi = unravel(i, od);
      Dims ii(4);
      for (int k = 0; k < 4; ++k) ii[perm[k]] = oi[k];
      ASSERT_EQ(out[i], x[((ii[0] * 7 + ii[1]) * 13 + ii[2]) * 5 + ii[3]]);
    }
  }
}

TEST(Elementwise, RangeFillCopy) {
  std::vector<int64_t> r(5);
  range<int64_t>(3, -2, r.data(), 5);
  EXPECT_EQ(r, (std::vector<int64_t>{3, 1, -1, -3, -5}));
  std::vector<float> f(7);
  fill(f.data(), 7, 1.5f);
  EXPECT_EQ(f, std::vector<float>(7, 1.5f));
  std::vector<float> g(7);
  copy_bytes(f.data(), g.data(), 7 * sizeof(float), nullptr);
  EXPECT_EQ(f, g);
}

}  // namespace
}  // namespace kiln::kernels
