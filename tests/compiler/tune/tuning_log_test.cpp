#include "compiler/tune/tuning_log.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

namespace kiln::tune {
namespace {

Entry entry(const char* op, int64_t M, int64_t N, int64_t K, bool tuned, int64_t best_mc) {
  Entry e;
  e.op = op;
  e.M = M;
  e.N = N;
  e.K = K;
  e.nodes = {"/layer.0/Dense"};
  e.default_timing = {{"avx512", 14, 2, 112, 0, 0, 0}, 1000, 990, 0.02};
  e.best = tuned ? Timing{{"avx2", 6, 1, best_mc, 0, 384, 1}, 900, 880, 0.03} : e.default_timing;
  e.tuned = tuned;
  e.measured = 12;
  return e;
}

TuningLog sample() {
  TuningLog log;
  log.kiln_version = "0.0.0-test";
  log.cpu = {{"arch", "x86_64"}, {"key", "x86_64/GenuineIntel/6/143/avx2,fma"}, {"name", "Xeon"}};
  log.target = "native";
  log.runner = "local";
  log.threads = 2;
  log.entries = {
      entry("dense_f32", 128, 768, 768, true, 42), entry("dense_f32", 16, 768, 768, false, 0),
      entry("dense_f32", 512, 768, 768, true, 336), entry("dense_s8", 128, 768, 768, false, 0)};
  return log;
}

TEST(TuningLog, RoundTripsThroughJson) {
  const TuningLog log = sample();
  auto back = tuning_log_from_json(nlohmann::json::parse(to_json(log).dump()), "t.json");
  ASSERT_TRUE(back) << back.status().message();
  EXPECT_EQ(back->cpu_key(), log.cpu_key());
  EXPECT_EQ(back->threads, 2);
  ASSERT_EQ(back->entries.size(), log.entries.size());
  EXPECT_TRUE(back->entries[0].best.schedule == log.entries[0].best.schedule);
  EXPECT_EQ(back->entries[0].best.schedule.threads, 1);
  EXPECT_NEAR(back->entries[0].gain(), 1000.0 / 900 - 1, 1e-12);
  EXPECT_EQ(back->entries[0].nodes, log.entries[0].nodes);
}

TEST(TuningLog, RowsSortByMWithGeometricBoundaries) {
  const auto rows = tuned_rows(sample(), "dense_f32", 768, 768);
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0].max_m, 45);                   // sqrt(16 * 128)
  EXPECT_EQ(rows[0].schedule.variant, "avx512");  // M 16 was not tuned: its default
  EXPECT_EQ(rows[1].max_m, 256);                  // sqrt(128 * 512)
  EXPECT_EQ(rows[1].schedule.mc, 42);
  EXPECT_EQ(rows[2].max_m, -1);
  EXPECT_EQ(rows[2].schedule.mc, 336);
  EXPECT_TRUE(tuned_rows(sample(), "dense_s8", 768, 768).empty()) << "nothing tuned: defaults";
  EXPECT_TRUE(tuned_rows(sample(), "dense_f32", 768, 3072).empty());
}

std::string error_of(nlohmann::json j) {
  auto r = tuning_log_from_json(j, "t.json");
  return r ? "" : r.status().message();
}

TEST(TuningLog, BadLogsAreRefusedNamingTheField) {
  const nlohmann::json good = to_json(sample());
  EXPECT_EQ(error_of(good), "");
  auto with = [&](auto edit) {
    nlohmann::json j = good;
    edit(j);
    return error_of(j);
  };
  EXPECT_NE(with([](auto& j) { j["format"] = "kiln"; }).find("kiln tune log"), std::string::npos);
  EXPECT_NE(with([](auto& j) { j["version"] = 2; }).find("version 2"), std::string::npos);
  EXPECT_NE(with([](auto& j) { j.erase("cpu"); }).find("\"cpu\""), std::string::npos);
  EXPECT_NE(with([](auto& j) { j["cpu"]["arch"] = "riscv64"; }).find("riscv64"), std::string::npos);
  EXPECT_NE(with([](auto& j) { j["entries"][1]["op"] = "conv"; }).find("entries[1]: unknown op"),
            std::string::npos);
  EXPECT_NE(with([](auto& j) {
              j["entries"][0]["best"]["schedule"]["mc"] = -3;
            }).find("entries[0]: \"mc\" = -3 is out of range"),
            std::string::npos);
  EXPECT_NE(with([](auto& j) {
              j["entries"][0]["best"]["schedule"]["variant"] = "a\"; rm";
            }).find("bad variant name"),
            std::string::npos);
  EXPECT_NE(with([](auto& j) { j["entries"][2]["M"] = 128; }).find("duplicate"), std::string::npos);
  EXPECT_NE(
      with([](auto& j) { j["entries"][0]["tuned"] = 1; }).find("\"tuned\" has the wrong type"),
      std::string::npos);
}

TEST(TuningLog, PrefetchOffRoundTripsAndOldLogsMeanOn) {
  TuningLog log = sample();
  log.entries[0].best.schedule.prefetch = 0;
  const nlohmann::json j = to_json(log);
  auto back = tuning_log_from_json(nlohmann::json::parse(j.dump()), "t.json");
  ASSERT_TRUE(back) << back.status().message();
  EXPECT_EQ(back->entries[0].best.schedule.prefetch, 0);
  EXPECT_EQ(back->entries[0].best.schedule.str(), "avx2 mr6 p1 mc42 kc0 nc384 t1 pf0");
  EXPECT_EQ(tuned_rows(*back, "dense_f32", 768, 768)[1].schedule.prefetch, 0);
  nlohmann::json old = j;  // a log of kiln before the prefetch choice
  old["entries"][0]["best"]["schedule"].erase("prefetch");
  auto on = tuning_log_from_json(old, "t.json");
  ASSERT_TRUE(on) << on.status().message();
  EXPECT_EQ(on->entries[0].best.schedule.prefetch, 1);
  nlohmann::json bad = j;
  bad["entries"][0]["best"]["schedule"]["prefetch"] = 2;
  EXPECT_NE(error_of(bad).find("entries[0]: \"prefetch\" = 2 is out of range [0, 1]"),
            std::string::npos)
      << error_of(bad);
}

TEST(TuningLog, WeightGroupsAreTheirOwnEntries) {
  // The grouped INT8 kernel is another task than the per-channel one of the same shape: its
  // rows reach only Dense nodes with that group, and an old log (no field) means per channel.
  TuningLog log = sample();
  Entry grouped = entry("dense_s8", 128, 768, 768, true, 56);
  grouped.weight_group = 64;
  log.entries.push_back(grouped);
  EXPECT_EQ(grouped.str(), "dense_s8 128x768x768 g64");
  auto back = tuning_log_from_json(nlohmann::json::parse(to_json(log).dump()), "t.json");
  ASSERT_TRUE(back) << back.status().message();
  EXPECT_EQ(back->entries[3].weight_group, 0);
  EXPECT_EQ(back->entries[4].weight_group, 64);
  EXPECT_TRUE(tuned_rows(*back, "dense_s8", 768, 768).empty()) << "per channel: not tuned";
  const auto rows = tuned_rows(*back, "dense_s8", 768, 768, 64);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].schedule.mc, 56);
  EXPECT_TRUE(tuned_rows(*back, "dense_s8", 768, 768, 128).empty());

  nlohmann::json j = to_json(log);
  j["entries"][3].erase("weight_group");
  EXPECT_EQ(error_of(j), "");
  j["entries"][4]["weight_group"] = 0;
  EXPECT_NE(error_of(j).find("entries[4]: duplicate entry for dense_s8 128x768x768"),
            std::string::npos)
      << error_of(j);
  j["entries"][4]["weight_group"] = 6;
  EXPECT_NE(error_of(j).find("entries[4]: \"weight_group\" = 6 is not a multiple of 4"),
            std::string::npos)
      << error_of(j);
  j["entries"][4]["weight_group"] = 64;
  j["entries"][0]["weight_group"] = 64;
  EXPECT_NE(error_of(j).find("entries[0]: \"weight_group\" = 64 on a dense_f32 entry"),
            std::string::npos)
      << error_of(j);
}

TEST(TuningLog, ReadsWhatItWritesAndNamesUnreadableFiles) {
  const std::string path = ::testing::TempDir() + "/kiln_tuning_log_test.json";
  ASSERT_TRUE(write_tuning_log(sample(), path));
  auto back = read_tuning_log(path);
  ASSERT_TRUE(back) << back.status().message();
  EXPECT_EQ(back->entries.size(), 4u);
  std::ofstream(path) << "{ not json";
  EXPECT_NE(read_tuning_log(path).status().message().find("not valid JSON"), std::string::npos);
  std::remove(path.c_str());
  EXPECT_NE(read_tuning_log(path).status().message().find("cannot open"), std::string::npos);
}

}  // namespace
}  // namespace kiln::tune
