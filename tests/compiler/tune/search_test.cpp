#include "compiler/tune/search.h"

#include <gtest/gtest.h>

#include <functional>

#include "probe_fixture.h"

namespace kiln::tune {
namespace {

using json = nlohmann::json;

Task task(int64_t M, int64_t N, int64_t K) {
  Task t;
  t.op = "dense_f32";
  t.M = M;
  t.N = N;
  t.K = K;
  t.nodes = {"n"};
  return t;
}

// A probe whose time for a schedule comes from `cost` (ns); `fail` marks candidates as errors.
ProbeFn fake_probe(std::function<double(const json&)> cost,
                   std::function<bool(const json&)> fail = nullptr, int* calls = nullptr) {
  return [=](const json& request) -> Result<json> {
    if (calls) ++*calls;
    EXPECT_EQ(request["protocol"], "kiln-tune-probe/1");
    json results = json::array();
    for (const json& t : request["tasks"]) {
      json cs = json::array();
      for (const json& c : t["candidates"]) {
        if (fail && fail(c)) {
          cs.push_back({{"error", "variant not supported"}});
          continue;
        }
        const double ns = cost(c);
        cs.push_back({{"median_ns", ns},
                      {"min_ns", ns * 0.99},
                      {"max_ns", ns * 1.1},
                      {"spread", 0.01},
                      {"runs", 9},
                      {"max_rel_diff", 0}});
      }
      results.push_back({{"id", t["id"]}, {"candidates", cs}});
    }
    return json{{"protocol", "kiln-tune-probe/1"}, {"results", results}};
  };
}

SearchOptions quick() {
  SearchOptions o;
  o.budget_seconds = 60;
  return o;
}

TEST(TuneSearch, PicksTheFastestCandidateWhenClearlyFaster) {
  // avx2 runs twice as fast as everything else on this imaginary CPU.
  auto cost = [](const json& c) { return c["variant"] == "avx2" ? 500.0 : 1000.0; };
  auto log = search({task(128, 768, 768)}, testing::identify(), quick(), fake_probe(cost));
  ASSERT_TRUE(log) << log.status().message();
  ASSERT_EQ(log->entries.size(), 1u);
  const Entry& e = log->entries[0];
  EXPECT_TRUE(e.tuned);
  EXPECT_EQ(e.best.schedule.variant, "avx2");
  EXPECT_EQ(e.default_timing.schedule.variant, "avx512");
  EXPECT_NEAR(e.gain(), 1.0, 1e-9);
  EXPECT_GE(e.measured, 3);
  EXPECT_EQ(log->cpu["name"], "Test CPU");
}

TEST(TuneSearch, KeepsTheDefaultUnlessAGainClearsTheThreshold) {
  // Every other schedule is 1 % faster: within noise, so the default stays.
  auto cost = [](const json& c) {
    return c["mc"] == 112 && c["variant"] == "avx512" ? 1000.0 : 990.0;
  };
  auto log = search({task(128, 768, 768)}, testing::identify(), quick(), fake_probe(cost));
  ASSERT_TRUE(log);
  EXPECT_FALSE(log->entries[0].tuned);
  EXPECT_TRUE(log->entries[0].best.schedule == log->entries[0].default_timing.schedule);
}

TEST(TuneSearch, FailedCandidatesAreSkippedAndAFailedDefaultIsAnError) {
  auto cost = [](const json& c) { return c["variant"] == "avx2" ? 100.0 : 1000.0; };
  auto avx2_fails = [](const json& c) { return c["variant"] == "avx2"; };
  auto log =
      search({task(64, 384, 384)}, testing::identify(), quick(), fake_probe(cost, avx2_fails));
  ASSERT_TRUE(log);
  EXPECT_NE(log->entries[0].best.schedule.variant, "avx2");
  auto all_fail = [](const json&) { return true; };
  auto bad = search({task(64, 384, 384)}, testing::identify(), quick(), fake_probe(cost, all_fail));
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.status().message().find("default schedule failed"), std::string::npos);
  EXPECT_NE(bad.status().message().find("dense_f32 64x384x384"), std::string::npos);
}

TEST(TuneSearch, AGainTheConfirmingRunDoesNotSeeIsDropped) {
  // The first run favours avx2 by 2x; the confirming run (two candidates) sees them equal.
  auto probe = [](const json& request) -> Result<json> {
    const json& cands = request["tasks"][0]["candidates"];
    const bool confirming = cands.size() == 2;
    json cs = json::array();
    for (const json& c : cands) {
      const double ns = !confirming && c["variant"] == "avx2" ? 500.0 : 1000.0;
      cs.push_back({{"median_ns", ns}, {"min_ns", ns}, {"spread", 0.01}});
    }
    return json{{"results", {{{"id", "t0"}, {"candidates", cs}}}}};
  };
  auto log = search({task(128, 768, 768)}, testing::identify(), quick(), probe);
  ASSERT_TRUE(log) << log.status().message();
  EXPECT_FALSE(log->entries[0].tuned);
  EXPECT_EQ(log->entries[0].best.schedule.variant, "avx512");
}

TEST(TuneSearch, AMismatchedProbeAnswerIsAnError) {
  ProbeFn broken = [](const json&) -> Result<json> { return json{{"results", json::array()}}; };
  auto log = search({task(8, 32, 32)}, testing::identify(), quick(), broken);
  ASSERT_FALSE(log);
  EXPECT_NE(log.status().message().find("does not match the request"), std::string::npos);
}

TEST(TuneSearch, ProgressCountsEveryTaskAndAnExhaustedBudgetKeepsDefaults) {
  std::vector<Task> tasks = {task(128, 3072, 768), task(128, 768, 3072), task(16, 768, 768)};
  int calls = 0, reports = 0;
  SearchOptions o = quick();
  o.on_progress = [&](const Progress& p) {
    ++reports;
    EXPECT_EQ(p.total, 3u);
    EXPECT_EQ(p.done, static_cast<size_t>(reports));
  };
  auto cost = [](const json& c) { return c["threads"] == 1 ? 100.0 : 1000.0; };
  auto log = search(tasks, testing::identify(), o, fake_probe(cost, nullptr, &calls));
  ASSERT_TRUE(log);
  EXPECT_EQ(calls, 6) << "each tuned GEMM is confirmed by a second run";
  EXPECT_EQ(reports, 3);
  for (const Entry& e : log->entries) EXPECT_EQ(e.best.schedule.threads, 1);
  o.budget_seconds = 0;  // nothing may be measured: every entry keeps its default
  calls = reports = 0;
  log = search(tasks, testing::identify(), o, fake_probe(cost, nullptr, &calls));
  ASSERT_TRUE(log);
  EXPECT_EQ(calls, 0);
  for (const Entry& e : log->entries) EXPECT_FALSE(e.tuned);
}

TEST(TuneSearch, RequestCarriesTheTaskAndThePinning) {
  SearchOptions o;
  o.threads = 2;
  o.cpus = {0, 1};
  Task t = task(128, 768, 768);
  t.gelu = true;
  const json r = probe_request({t}, {{ScheduleChoice{"avx2", 6, 1, 336, 0, 0, 0}}}, o, 250);
  EXPECT_EQ(r["threads"], 2);
  EXPECT_EQ(r["cpus"], json({0, 1}));
  EXPECT_EQ(r["min_time_ms"], 250);
  EXPECT_EQ(r["tasks"][0]["gelu"], true);
  EXPECT_EQ(r["tasks"][0]["candidates"][0]["mc"], 336);
}

}  // namespace
}  // namespace kiln::tune
