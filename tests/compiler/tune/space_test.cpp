#include "compiler/tune/space.h"

#include <gtest/gtest.h>

#include <set>

#include "probe_fixture.h"

namespace kiln::tune {
namespace {

Task task(const char* op, int64_t M, int64_t N, int64_t K) {
  Task t;
  t.op = op;
  t.M = M;
  t.N = N;
  t.K = K;
  return t;
}

TEST(TuneSpace, DefaultFirstThenValidPointsOfEverySupportedVariant) {
  const ProbeInfo p = testing::identify();
  for (const Task& t : {task("dense_f32", 128, 2304, 768), task("dense_f32", 16, 384, 1536),
                        task("dense_s8", 128, 3072, 768), task("dense_s8", 1, 64, 40)}) {
    auto c = candidates(t, p, SpaceOptions{});
    ASSERT_TRUE(c) << c.status().message();
    ASSERT_GE(c->size(), 3u) << t.str();
    EXPECT_LE(c->size(), SpaceOptions{}.max_candidates);
    EXPECT_EQ((*c)[0].variant, t.op == "dense_f32" ? "avx512" : "avx512vnni") << t.str();
    EXPECT_EQ((*c)[0].mc, t.op == "dense_f32" ? 112 : 336);
    bool other_variant = false;
    for (const ScheduleChoice& s : *c) {
      EXPECT_NE(s.variant, "avxvnni") << "unsupported variant offered";
      EXPECT_GE(s.mr, 1);
      EXPECT_GE(s.panels, 1);
      EXPECT_GE(s.mc, s.mr) << s.str();
      EXPECT_EQ(s.mc % s.mr, 0) << s.str() << " in " << t.str();
      EXPECT_GE(s.kc, 0);
      EXPECT_GE(s.nc, 0);
      EXPECT_TRUE(s.threads == 0 || s.threads == 1) << s.str();
      if (t.op == "dense_s8") {
        EXPECT_EQ(s.kc, 0) << "INT8 never blocks K";
      }
      other_variant |= s.variant != (*c)[0].variant;
      for (const ScheduleChoice& o : *c)
        if (&o != &s) {
          EXPECT_FALSE(o == s) << "duplicate " << s.str();
        }
    }
    EXPECT_TRUE(other_variant) << t.str();
    // Second: the other SIMD variant's own default schedule (mc 336 or all of M, one K block),
    // whatever the model thinks of it.
    ASSERT_GE(c->size(), 2u);
    EXPECT_EQ((*c)[1].variant, "avx2") << t.str();
    EXPECT_EQ((*c)[1].mc, std::min<int64_t>(336, (t.M + 5) / 6 * 6)) << (*c)[1].str();
    EXPECT_EQ((*c)[1].kc, 0) << (*c)[1].str();
    EXPECT_EQ((*c)[1].threads, 0) << (*c)[1].str();
    // Then those defaults without the next column tile's prefetch.
    ScheduleChoice no_prefetch = (*c)[0];
    no_prefetch.prefetch = 0;
    EXPECT_EQ((*c)[2], no_prefetch) << (*c)[2].str() << " in " << t.str();
  }
}

TEST(TuneSpace, OneColumnTilePerItemHasNothingToPrefetch) {
  // N 32 is one 14x32 tile: prefetch on and off are one plan, measured once.
  auto c = candidates(task("dense_f32", 128, 32, 768), testing::identify(1), SpaceOptions{});
  ASSERT_TRUE(c);
  for (const ScheduleChoice& s : *c)
    if (s.variant == "avx512" && s.panels == 2) EXPECT_EQ(s.prefetch, 1) << s.str();
}

TEST(TuneSpace, SchedulesWithTheSamePlanAreOnePoint) {
  // M = 16 on avx512 (mr 14): any mc >= 28 is one row group, so only one such mc is offered
  // per (variant, panels, nc, kc, threads, prefetch).
  auto c = candidates(task("dense_f32", 16, 1536, 384), testing::identify(), SpaceOptions{});
  ASSERT_TRUE(c);
  for (const ScheduleChoice& a : *c)
    for (const ScheduleChoice& b : *c)
      if (&a != &b && a.variant == b.variant && a.panels == b.panels && a.kc == b.kc &&
          a.nc == b.nc && a.threads == b.threads && a.prefetch == b.prefetch) {
        EXPECT_FALSE(a.mc >= 28 && b.mc >= 28) << a.str() << " and " << b.str();
      }
}

TEST(TuneSpace, NoAvx512TargetNeverGetsAvx512) {
  SpaceOptions o;
  o.no_avx512 = true;
  for (const char* op : {"dense_f32", "dense_s8"}) {
    auto c = candidates(task(op, 128, 768, 768), testing::identify(), o);
    ASSERT_TRUE(c);
    EXPECT_EQ((*c)[0].variant, "avx2") << op << ": x86-64-v3's default";
    for (const ScheduleChoice& s : *c) EXPECT_EQ(s.variant.rfind("avx512", 0), std::string::npos);
  }
}

TEST(TuneSpace, SingleThreadProbeOffersNoThreadCap) {
  auto c = candidates(task("dense_f32", 128, 768, 768), testing::identify(1), SpaceOptions{});
  ASSERT_TRUE(c);
  for (const ScheduleChoice& s : *c) EXPECT_EQ(s.threads, 0);
}

TEST(TuneSpace, FourThreadsAlsoTryThreeTwoAndOne) {
  // A Pi 5's four cores share 2 MB of L3: each cap's best point is measured, 3 included.
  auto c = candidates(task("dense_f32", 128, 3072, 768), testing::identify(4), SpaceOptions{});
  ASSERT_TRUE(c);
  std::set<int> caps;
  for (const ScheduleChoice& s : *c) caps.insert(s.threads);
  EXPECT_EQ(caps, (std::set<int>{0, 1, 2, 3}));
}

TEST(TuneSpace, NoSupportedVariantIsAnError) {
  ProbeInfo p = testing::identify();
  for (VariantInfo& v : p.variants["dense_s8"]) v.supported = false;
  auto c = candidates(task("dense_s8", 8, 16, 16), p, SpaceOptions{});
  ASSERT_FALSE(c);
  EXPECT_NE(c.status().message().find("dense_s8"), std::string::npos);
}

TEST(TuneSpace, ModelPrefersFewerThreadsForTinyGemmsAndAllForBigOnes) {
  const ProbeInfo p = testing::identify(2);
  ScheduleChoice all{"avx512", 14, 2, 112, 0, 0, 0}, one = all;
  one.threads = 1;
  // 2 * 16 * 64 * 64 FLOP: below the driver's parallel threshold, both run on one thread.
  const Task tiny = task("dense_f32", 16, 64, 64);
  EXPECT_DOUBLE_EQ(predicted_seconds(tiny, all, p), predicted_seconds(tiny, one, p));
  const Task big = task("dense_f32", 512, 3072, 768);
  EXPECT_LT(predicted_seconds(big, all, p), 0.7 * predicted_seconds(big, one, p));
}

// An Arm core the probe names by MIDR, with the aarch64 INT8 rows (s8_variants.inc).
ProbeInfo arm_core(unsigned implementer, unsigned part) {
  ProbeInfo p;
  p.cpu = {{"arch", "aarch64"}, {"key", "arm"}, {"implementer", implementer}, {"part", part}};
  p.threads = 1;
  p.variants["dense_s8"] = {{"neondot", true, {"neondot", 6, 1, 240, 0, 0, 0}},
                            {"neon", true, {"neon", 6, 1, 240, 0, 0, 0}}};
  return p;
}

TEST(TuneSpace, ArmCoresAreRankedByTheLlvmMcaRateOfTheirKLoops) {
  // mca_rates.inc (bench/mca_rates.py): the 6x16 sdot loop against the smull + sadalp one,
  // 25.6 vs 7.1 multiply-adds a cycle on Neoverse N1 (the Pi 5's A76), 6.5 vs 2.3 on an A55.
  // A core without rows falls back to vector lanes: 16 vs 8. Same blocking, so the predicted
  // times are in the inverse ratio of the rates.
  const Task t = task("dense_s8", 128, 768, 768);
  auto ratio = [&](const ProbeInfo& p) {
    const ScheduleChoice dot = p.variants.at("dense_s8")[0].schedule;
    const ScheduleChoice neon = p.variants.at("dense_s8")[1].schedule;
    return predicted_seconds(t, dot, p) / predicted_seconds(t, neon, p);
  };
  const double a76 = ratio(arm_core(0x41, 0xd0b)), a55 = ratio(arm_core(0x41, 0xd05));
  const double unknown = ratio(arm_core(0x41, 0xd4f)), other = ratio(arm_core(0x61, 0xd0b));
  EXPECT_GT(a76, 0.2);
  EXPECT_LT(a76, 0.45);
  EXPECT_GT(a55, 0.3);
  EXPECT_LT(a55, 0.45);
  EXPECT_GT(unknown, 0.5);  // lanes alone: the rate halves, the memory terms stay
  EXPECT_LT(unknown, 0.8);
  EXPECT_DOUBLE_EQ(other, unknown) << "only Arm Ltd parts map to llvm-mca models";
  EXPECT_LT(a76, unknown);
}

TEST(TuneSpace, ProbeAnswerErrorsAreNamed) {
  EXPECT_NE(probe_info_from_json({{"error", "bad request"}}).status().message().find("bad request"),
            std::string::npos);
  EXPECT_FALSE(probe_info_from_json(nlohmann::json::array()));
  auto j = testing::identify_answer();
  j["variants"]["dense_f32"][0]["schedule"]["mr"] = 0;
  EXPECT_NE(probe_info_from_json(j).status().message().find("bad variant row"), std::string::npos);
}

}  // namespace
}  // namespace kiln::tune
