// kiln-tune-probe's protocol (tools/tune-probe/probe.h) through tune_probe_main, on small shapes:
// identification, timing a few schedules, the errors that name their field, refused requests, and
// inputs that must not crash it.
#include "probe.h"

#include <gtest/gtest.h>

#include <cmath>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "kiln/kernels/cpu_identity.h"
#include "kiln/kernels/gemm/variant_names.h"

namespace kiln::tune_probe {
namespace {

using nlohmann::json;

struct Answer {
  int rc;
  std::string out, err;
  json j;
};

Answer ask(const std::string& request) {
  std::istringstream in(request);
  std::ostringstream out, err;
  Answer a;
  a.rc = tune_probe_main(in, out, err);
  a.out = out.str();
  a.err = err.str();
  // Exactly one line of JSON on stdout.
  EXPECT_EQ(a.out.find('\n'), a.out.size() - 1) << a.out;
  a.j = json::parse(a.out, nullptr, false);
  EXPECT_FALSE(a.j.is_discarded()) << a.out;
  return a;
}

Answer ask(const json& request) {
  return ask(request.dump());
}

json request(json tasks = json::array()) {
  return {{"protocol", "kiln-tune-probe/1"},
          {"threads", 2},
          {"min_time_ms", 5},
          {"max_rounds", 10},
          {"tasks", tasks}};
}

json task(const std::string& op, json candidates) {
  return {{"id", "t"}, {"op", op},     {"M", 8},           {"N", 48},
          {"K", 40},   {"gelu", true}, {"residual", true}, {"candidates", candidates}};
}

std::string names(const json& rows) {
  std::string s;
  for (const json& r : rows) s += " " + r.at("name").get<std::string>();
  return s;
}

// The first candidate's error in the first task ("" if it ran).
std::string candidate_error(const Answer& a, size_t i = 0) {
  const json& c = a.j.at("results").at(0).at("candidates").at(i);
  return c.value("error", "");
}

TEST(TuneProbe, IdentifiesTheCpuAndTheVariants) {
  const Answer a = ask(json{{"protocol", "kiln-tune-probe/1"}});
  ASSERT_EQ(a.rc, 0) << a.err;
  EXPECT_EQ(a.j.at("protocol"), "kiln-tune-probe/1");
  EXPECT_EQ(a.j.at("cpu").at("key"), kernels::cpu_identity().key);
  EXPECT_EQ(a.j.at("cpu").at("name"), kernels::cpu_identity().name);
  EXPECT_GE(a.j.at("threads").get<int>(), 1);
  EXPECT_EQ(a.j.at("threads").get<size_t>(), a.j.at("cpus").size());
  EXPECT_TRUE(a.j.at("results").empty());
  for (const char* k : {"l1d", "l2", "l3"}) EXPECT_GE(a.j.at("cache").at(k).get<int64_t>(), 0);
  const json& v = a.j.at("variants");
  EXPECT_EQ(names(v.at("dense_f32")), kernels::gemm::kGemmF32VariantNames);
  EXPECT_EQ(names(v.at("dense_s8")), kernels::gemm::kGemmS8VariantNames);
  // The default is the first supported row (no KILN_GEMM_*VARIANT in the test's environment).
  for (const char* op : {"dense_f32", "dense_s8"}) {
    std::string first;
    for (const json& r : v.at(op)) {
      if (r.at("supported").get<bool>() && first.empty()) first = r.at("name");
      for (const char* f : {"mr", "panels", "mc", "kc", "nc", "threads", "prefetch"})
        EXPECT_TRUE(r.at("schedule").at(f).is_number_integer());
      EXPECT_FALSE(r.at("kernel").get<std::string>().empty());
    }
    EXPECT_EQ(a.j.at("default").at(op), first) << op;
  }
}

TEST(TuneProbe, TimesCandidatesAndChecksThem) {
  const Answer id = ask(json{{"protocol", "kiln-tune-probe/1"}});
  // The INT8 task once per channel and once with weight scales per 8 rows of K (K 40: 5 groups).
  for (auto [op, group] :
       {std::pair<const char*, int>{"dense_f32", 0}, {"dense_s8", 0}, {"dense_s8", 8}}) {
    const std::string def = id.j.at("default").at(op);
    json cands = json::array({{{"variant", def}},
                              {{"variant", def}, {"mc", 4}, {"threads", 1}},
                              {{"variant", "ref"}, {"mr", 3}, {"kc", 16}, {"nc", 16}},
                              {{"variant", def}, {"panels", 1}, {"threads", 2}, {"prefetch", 0}}});
    json t = task(op, cands);
    t["layer_norm"] = true;
    if (group) t["weight_group"] = group;
    const Answer a = ask(request({t}));
    ASSERT_EQ(a.rc, 0) << a.err;
    const json& r = a.j.at("results").at(0);
    EXPECT_EQ(r.at("id"), "t");
    EXPECT_EQ(r.value("weight_group", 0), group) << "the grouped blob was measured";
    ASSERT_EQ(r.at("candidates").size(), 4u) << r.dump();
    for (const json& c : r.at("candidates")) {
      ASSERT_FALSE(c.contains("error")) << op << ": " << c.dump();
      const int64_t lo = c.at("min_ns"), med = c.at("median_ns"), hi = c.at("max_ns");
      EXPECT_GT(lo, 0);
      EXPECT_LE(lo, med);
      EXPECT_LE(med, hi);
      EXPECT_GE(c.at("runs").get<int>(), 5);
      EXPECT_LE(c.at("runs").get<int>(), 10);
      EXPECT_TRUE(std::isfinite(c.at("spread").get<double>()));
      EXPECT_LE(c.at("max_rel_diff").get<double>(), op == std::string("dense_f32") ? 1e-3 : 1e-4);
    }
    EXPECT_EQ(r.at("candidates").at(0).at("max_rel_diff"), 0.0);
    EXPECT_EQ(r.at("candidates").at(1).at("schedule").at("mc"), 4);
    EXPECT_EQ(r.at("candidates").at(2).at("variant"), "ref");
    EXPECT_EQ(r.at("candidates").at(0).at("schedule").at("prefetch"), 1);
    EXPECT_EQ(r.at("candidates").at(3).at("schedule").at("prefetch"), 0);
  }
}

TEST(TuneProbe, VariantErrorsNameTheVariant) {
  const Answer id = ask(json{{"protocol", "kiln-tune-probe/1"}});
  const Answer a = ask(request({task("dense_f32", {{{"variant", "ref"}}, {{"variant", "nope"}}})}));
  ASSERT_EQ(a.rc, 0);
  EXPECT_EQ(candidate_error(a), "");
  std::string built;
  for (const json& r : id.j.at("variants").at("dense_f32"))
    built += (built.empty() ? "" : ", ") + r.at("name").get<std::string>();
  EXPECT_EQ(candidate_error(a, 1),
            "variant 'nope' is not built into this probe (built: " + built + ")");
  // Variants this CPU lacks (under qemu as a Cortex-A72: neon_a76, neondot).
  for (const char* op : {"dense_f32", "dense_s8"})
    for (const json& r : id.j.at("variants").at(op)) {
      if (r.at("supported").get<bool>()) continue;
      const std::string name = r.at("name");
      const Answer u = ask(request({task(op, {{{"variant", "ref"}}, {{"variant", name}}})}));
      EXPECT_EQ(candidate_error(u, 1), "variant '" + name +
                                           "' is not supported by this CPU (needs " +
                                           r.at("needs").get<std::string>() + ")");
      EXPECT_EQ(candidate_error(u, 0), "");
    }
}

TEST(TuneProbe, BadFieldsAreNamed) {
  struct Case {
    json candidate;
    std::string error;
  };
  const Case cases[] = {
      {{{"variant", "ref"}, {"mr", 0}},
       "tasks[0].candidates[1].mr: must be an integer in 1..1024, got 0"},
      {{{"variant", "ref"}, {"panels", -2}},
       "tasks[0].candidates[1].panels: must be an integer in 1..1024, got -2"},
      {{{"variant", "ref"}, {"mc", 0}},
       "tasks[0].candidates[1].mc: must be an integer in 1..1099511627776, got 0"},
      {{{"variant", "ref"}, {"kc", -1}},
       "tasks[0].candidates[1].kc: must be an integer in 0..1099511627776, got -1"},
      {{{"variant", "ref"}, {"nc", 1.5}},
       "tasks[0].candidates[1].nc: must be an integer in 0..1099511627776"},
      {{{"variant", "ref"}, {"threads", -1}},
       "tasks[0].candidates[1].threads: must be an integer in 0..1024, got -1"},
      {{{"variant", "ref"}, {"prefetch", 2}},
       "tasks[0].candidates[1].prefetch: must be an integer in 0..1, got 2"},
      {{{"variant", 7}},
       "tasks[0].candidates[1].variant: must be a string naming a kernel variant"},
      {{{"variant", "ref"}, {"mcc", 1}},
       "tasks[0].candidates[1].mcc: unknown field (known: variant, mr, panels, mc, kc, nc, "
       "threads, prefetch)"},
      {json::array(), "tasks[0].candidates[1]: must be an object"},
  };
  for (const Case& c : cases) {
    const Answer a = ask(request({task("dense_s8", {{{"variant", "ref"}}, c.candidate})}));
    ASSERT_EQ(a.rc, 0) << a.err;
    EXPECT_EQ(candidate_error(a, 0), "") << "only the bad candidate fails";
    EXPECT_EQ(candidate_error(a, 1), c.error);
  }
  struct TaskCase {
    const char* key;
    json value;
    std::string error;
  };
  const TaskCase tasks[] = {
      {"op", "dense_f64", "tasks[0].op: unknown op 'dense_f64' (known: dense_f32, dense_s8)"},
      {"M", 0, "tasks[0].M: must be an integer in 1..65536, got 0"},
      {"N", 65537, "tasks[0].N: must be an integer in 1..65536, got 65537"},
      {"K", "40", "tasks[0].K: must be an integer in 1..65536"},
      {"gelu", 1, "tasks[0].gelu: must be true or false"},
      {"weight_group", 64, "tasks[0].weight_group: only for op \"dense_s8\""},
      {"weight_group", 1024, "tasks[0].weight_group: must be an integer in 0..512, got 1024"},
      {"candidates", json::array(),
       "tasks[0].candidates: must be a non-empty array (candidate 0 is the default)"},
  };
  for (const TaskCase& c : tasks) {
    json t = task("dense_f32", {{{"variant", "ref"}}});
    t[c.key] = c.value;
    const Answer a = ask(request({t, task("dense_f32", {{{"variant", "ref"}}})}));
    ASSERT_EQ(a.rc, 0) << a.err;
    EXPECT_EQ(a.j.at("results").at(0).value("error", ""), c.error);
    EXPECT_FALSE(a.j.at("results").at(1).contains("error")) << "only the bad task fails";
  }
  json odd_group = task("dense_s8", {{{"variant", "ref"}}});
  odd_group["weight_group"] = 6;
  EXPECT_EQ(ask(request({odd_group})).j.at("results").at(0).value("error", ""),
            "tasks[0].weight_group: must be 0 or a multiple of 4 (got 6)");
  json big = task("dense_f32", {{{"variant", "ref"}}});
  big["M"] = 65536;
  big["K"] = 65536;
  EXPECT_EQ(ask(request({big})).j.at("results").at(0).value("error", ""),
            "tasks[0].M, N, K: M*K or K*N floats are over 256 MiB (M=65536 N=48 K=65536)");
}

TEST(TuneProbe, RefusesBadRequests) {
  struct Case {
    std::string request;
    std::string error_prefix;
  };
  const Case cases[] = {
      {"{\"protocol\": \"kiln-tune-probe/1\", ", "malformed JSON"},
      {"", "malformed JSON"},
      {"[]", "the request must be a JSON object"},
      {"{\"protocol\": \"kiln-tune-probe/2\"}",
       "protocol: 'kiln-tune-probe/2' is not supported (this probe speaks \"kiln-tune-probe/1\")"},
      {"{}", "protocol: missing"},
      {"{\"protocol\": \"kiln-tune-probe/1\", \"cpus\": [1023]}",
       "cpus: cpu 1023 is not available"},
      {"{\"protocol\": \"kiln-tune-probe/1\", \"cpus\": [0, 0]}", "cpus: cpu 0 is listed twice"},
      {"{\"protocol\": \"kiln-tune-probe/1\", \"threads\": -1}",
       "threads: must be an integer in 0..1024"},
      {"{\"protocol\": \"kiln-tune-probe/1\", \"min_time_ms\": -1}",
       "min_time_ms: must be a number"},
      {"{\"protocol\": \"kiln-tune-probe/1\", \"tasks\": {}}", "tasks: must be an array"},
      {"{\"protocol\": \"kiln-tune-probe/1\", \"task\": []}", "task: unknown field"},
      {"{\"protocol\": \"kiln-tune-probe/1\", \"threads\": 1e999999}", "malformed JSON"},
  };
  for (const Case& c : cases) {
    const Answer a = ask(c.request);
    EXPECT_EQ(a.rc, 2) << c.request;
    EXPECT_EQ(a.j.value("protocol", ""), "kiln-tune-probe/1");
    const std::string error = a.j.value("error", "");
    EXPECT_EQ(error.rfind(c.error_prefix, 0), 0u) << c.request << " -> " << error;
    EXPECT_NE(a.err.find(error), std::string::npos) << "stderr repeats the message";
  }
}

TEST(TuneProbe, SurvivesOddInputs) {
  const std::string odd[] = {
      std::string(100000, '['),
      "{\"protocol\": \"kiln-tune-probe/1\", \"tasks\": [null, 1, \"x\", [], {}]}",
      "{\"protocol\": \"kiln-tune-probe/1\", \"tasks\": [{\"id\": \"\xff\xfe\", \"op\": 1}]}",
      "{\"protocol\": \"kiln-tune-probe/1\", \"tasks\": [{\"op\": \"dense_f32\", \"M\": "
      "18446744073709551615, \"N\": 1, \"K\": 1}]}",
      "{\"protocol\": \"kiln-tune-probe/1\", \"cpus\": [-1]}",
      "{\"protocol\": \"kiln-tune-probe/1\", \"max_rounds\": 0}",
      std::string("{\"protocol\": \"kiln-tune-probe/1\"}\0garbage", 42),
  };
  for (const std::string& s : odd) {
    const Answer a = ask(s);
    EXPECT_TRUE(a.rc == 0 || a.rc == 2) << s.substr(0, 80);
  }
  // Every task of a mixed list is answered, in order, by id.
  json tasks = json::array();
  for (int i = 0; i < 3; ++i) {
    json t = task(i == 1 ? "dense_s8" : "dense_f32", {{{"variant", "ref"}}});
    t["id"] = "t" + std::to_string(i);
    if (i == 2) t["M"] = -4;
    tasks.push_back(t);
  }
  const Answer a = ask(request(tasks));
  ASSERT_EQ(a.j.at("results").size(), 3u);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(a.j.at("results").at(i).at("id"), "t" + std::to_string(i));
}

}  // namespace
}  // namespace kiln::tune_probe
