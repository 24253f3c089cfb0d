// tuned.h / s8_tuned.h: the tuned entry points use a row's variant and schedule when they may, and
// the plain entry points' default otherwise (not the tuned CPU, a forced variant, a variant not
// built or not supported). The ctest entries GemmTuned.EnvForces* rerun ForcedVariantFallsBack
// with KILN_GEMM_VARIANT / KILN_GEMM_S8_VARIANT set.
#include "kiln/kernels/gemm/s8_tuned.h"

#include <gtest/gtest.h>

#include <cstdlib>

#include "gemm_problem.h"

namespace kiln::kernels::gemm::testing {
namespace {

// An odd but valid schedule: small row groups, a K split, a column bound, two threads.
Schedule odd_schedule(const Schedule& s) {
  Schedule o = s;
  o.mr = std::max(1, s.mr / 2);
  o.mc = 3 * o.mr;
  o.kc = 40;
  o.nc = 48;
  o.threads = 2;
  return o;
}

// The last supported variant that is not the default (the reference on most CPUs), else the
// default.
template <class Table>
const typename Table::Row& other_variant(const Table& t) {
  const typename Table::Row* r = &t.chosen();
  for (const auto& v : t)
    if (v.supported() && &v != &t.chosen()) r = &v;
  return *r;
}

struct Calls {
  const Problem& p;
  const kiln_backend* be;
  std::vector<float> f32_tuned(const TunedSchedule* rows, int count, bool cpu) const {
    std::vector<float> C(p.M * p.N);
    gemm_f32_packed_tuned(rows, count, cpu, be, p.M, p.N, p.K, p.A.data(), p.K, p.packed.data(),
                          C.data(), p.N, p.ep);
    return C;
  }
  std::vector<float> f32_plain() const {
    std::vector<float> C(p.M * p.N);
    gemm_f32_packed(be, p.M, p.N, p.K, p.A.data(), p.K, p.packed.data(), C.data(), p.N, p.ep);
    return C;
  }
  std::vector<float> s8_tuned(const TunedSchedule* rows, int count, bool cpu) const {
    std::vector<float> C(p.M * p.N);
    gemm_s8_packed_tuned(rows, count, cpu, be, p.M, p.N, p.K, p.A.data(), p.K, p.s8, C.data(), p.N,
                         p.ep);
    return C;
  }
  std::vector<float> s8_plain() const {
    std::vector<float> C(p.M * p.N);
    gemm_s8_packed(be, p.M, p.N, p.K, p.A.data(), p.K, p.s8, C.data(), p.N, p.ep);
    return C;
  }
};

bool forced() {
  return detail::env_set("KILN_GEMM_VARIANT") || detail::env_set("KILN_GEMM_S8_VARIANT");
}

TEST(GemmTuned, UsesTheRowsVariantAndSchedule) {
  if (forced()) GTEST_SKIP() << "a variant is forced through the environment";
  PoolBackend pool(3);
  const Problem p(37, 120, 100, false);
  const Calls c{p, &pool.be};
  const Variant& f = other_variant(gemm_f32_table());
  const TunedSchedule f_rows[] = {{1 << 20, f.name, odd_schedule(f.schedule)}};
  EXPECT_TRUE(
      same_bytes(c.f32_tuned(f_rows, 1, true), p.run(f, odd_schedule(f.schedule), &pool.be)))
      << f.name;
  const S8Variant& q = other_variant(gemm_s8_table());
  const TunedSchedule q_rows[] = {{1 << 20, q.name, odd_schedule(q.schedule)}};
  EXPECT_TRUE(same_bytes(c.s8_tuned(q_rows, 1, true), p.run(q, odd_schedule(q.schedule), &pool.be)))
      << q.name;
}

TEST(GemmTuned, FallsBackToTheDefault) {
  PoolBackend pool(2);
  const Problem p(21, 70, 50, true);
  const Calls c{p, &pool.be};
  const std::vector<float> f_plain = c.f32_plain(), q_plain = c.s8_plain();
  const Variant& f = other_variant(gemm_f32_table());
  const S8Variant& q = other_variant(gemm_s8_table());
  const TunedSchedule f_rows[] = {{1 << 20, f.name, odd_schedule(f.schedule)}};
  const TunedSchedule q_rows[] = {{1 << 20, q.name, odd_schedule(q.schedule)}};
  // Not the CPU the log was tuned on.
  EXPECT_TRUE(same_bytes(c.f32_tuned(f_rows, 1, false), f_plain));
  EXPECT_TRUE(same_bytes(c.s8_tuned(q_rows, 1, false), q_plain));
  // A variant this binary does not have.
  const TunedSchedule unknown[] = {{1 << 20, "avx1024", odd_schedule(f.schedule)}};
  EXPECT_TRUE(same_bytes(c.f32_tuned(unknown, 1, true), f_plain));
  EXPECT_TRUE(same_bytes(c.s8_tuned(unknown, 1, true), q_plain));
  // No rows at all, a null name.
  EXPECT_TRUE(same_bytes(c.f32_tuned(nullptr, 0, true), f_plain));
  const TunedSchedule unnamed[] = {{1 << 20, nullptr, odd_schedule(f.schedule)}};
  EXPECT_TRUE(same_bytes(c.s8_tuned(unnamed, 1, true), q_plain));
  // Variants this CPU lacks (under qemu as a Cortex-A72: neon_a76 and neondot; on x86 whatever
  // the CPU does not have).
  for (const Variant& v : gemm_f32_table()) {
    if (v.supported()) continue;
    const TunedSchedule rows[] = {{1 << 20, v.name, v.schedule}};
    EXPECT_TRUE(same_bytes(c.f32_tuned(rows, 1, true), f_plain)) << v.name;
  }
  for (const S8Variant& v : gemm_s8_table()) {
    if (v.supported()) continue;
    const TunedSchedule rows[] = {{1 << 20, v.name, v.schedule}};
    EXPECT_TRUE(same_bytes(c.s8_tuned(rows, 1, true), q_plain)) << v.name;
  }
}

// Run with KILN_GEMM_VARIANT / KILN_GEMM_S8_VARIANT set by ctest: tuning never overrides them.
TEST(GemmTuned, ForcedVariantFallsBack) {
  if (!forced()) GTEST_SKIP() << "needs KILN_GEMM_VARIANT or KILN_GEMM_S8_VARIANT";
  const Problem p(21, 70, 50, false);
  const Calls c{p, nullptr};
  for (const Variant& v : gemm_f32_table()) {
    if (!v.supported() || !detail::env_set("KILN_GEMM_VARIANT")) continue;
    const TunedSchedule rows[] = {{1 << 20, v.name, odd_schedule(v.schedule)}};
    EXPECT_TRUE(same_bytes(c.f32_tuned(rows, 1, true), c.f32_plain())) << v.name;
  }
  for (const S8Variant& v : gemm_s8_table()) {
    if (!v.supported() || !detail::env_set("KILN_GEMM_S8_VARIANT")) continue;
    const TunedSchedule rows[] = {{1 << 20, v.name, odd_schedule(v.schedule)}};
    EXPECT_TRUE(same_bytes(c.s8_tuned(rows, 1, true), c.s8_plain())) << v.name;
  }
}

// Rows by M: the first row with M <= max_m, else the last. Told apart by their thread caps: a cap
// of 1 never calls parallel_for.
TEST(GemmTuned, PicksTheRowByM) {
  if (forced()) GTEST_SKIP() << "a variant is forced through the environment";
  const Variant& f = gemm_f32_variant();
  const S8Variant& q = gemm_s8_variant();
  Schedule one = f.schedule, all = f.schedule, q_one = q.schedule, q_all = q.schedule;
  one.threads = q_one.threads = 1;
  one.mc = all.mc = f.schedule.mr;
  q_one.mc = q_all.mc = q.schedule.mr;
  const TunedSchedule f_rows[] = {{8, f.name, one}, {64, f.name, all}, {128, f.name, one}};
  const TunedSchedule q_rows[] = {{8, q.name, q_one}, {64, q.name, q_all}, {128, q.name, q_one}};
  struct Case {
    int64_t M;
    bool parallel;
  };
  for (const Case& k : {Case{5, false}, Case{8, false}, Case{9, true}, Case{64, true},
                        Case{100, false}, Case{300, false}}) {
    const Problem p(k.M, 200, 300, false);
    CountingBackend fb(4), qb(4);
    Calls{p, &fb.be}.f32_tuned(f_rows, 3, true);
    Calls{p, &qb.be}.s8_tuned(q_rows, 3, true);
    EXPECT_EQ(fb.calls > 0, k.parallel) << "M=" << k.M;
    EXPECT_EQ(qb.calls > 0, k.parallel) << "M=" << k.M;
  }
}

}  // namespace
}  // namespace kiln::kernels::gemm::testing
