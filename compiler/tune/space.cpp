#include "compiler/tune/space.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <set>
#include <sstream>

namespace kiln::tune {

using json = nlohmann::json;

namespace {

constexpr int kNr = 16;  // kernels/gemm/types.h: columns per packed panel

int64_t ceil_div(int64_t a, int64_t b) {
  return (a + b - 1) / b;
}

int64_t json_int(const json& j, const char* k) {
  auto it = j.find(k);
  return it != j.end() && it->is_number_integer() ? it->get<int64_t>() : 0;
}

// kernels/gemm/driver.h make_plan, for the numbers the model needs.
struct Plan {
  int64_t m_tiles, n_tiles, m_groups, n_groups, k_blocks, kc;
  int threads;
};

// The thread caps below the pool's count worth a measurement: 1, half (4+ threads) and all but
// one (3+ threads).
std::set<int> thread_caps(int pool_threads) {
  std::set<int> caps;
  if (pool_threads > 1) caps.insert(1);
  if (pool_threads >= 4) caps.insert(pool_threads / 2);
  if (pool_threads >= 3) caps.insert(pool_threads - 1);
  return caps;
}

Plan plan(const Task& t, const ScheduleChoice& s, int pool_threads) {
  constexpr double kMinParallelFlops = 1 << 18;  // driver.h: smaller GEMMs stay on the caller
  Plan p;
  const bool parallel = pool_threads > 1 && t.flops() >= kMinParallelFlops;
  p.threads = parallel ? (s.threads > 0 ? std::min(s.threads, pool_threads) : pool_threads) : 1;
  p.m_tiles = ceil_div(t.M, s.mr);
  p.n_tiles = ceil_div(t.N, kNr * s.panels);
  const int64_t per_group = std::max<int64_t>(1, s.mc / s.mr);
  p.m_groups = ceil_div(p.m_tiles, per_group);
  const int64_t nc_tiles = s.nc > 0 ? std::max<int64_t>(1, s.nc / (kNr * s.panels)) : p.n_tiles;
  const int64_t step = p.threads / std::gcd(p.m_groups, int64_t{p.threads});
  p.n_groups = ceil_div(p.n_tiles, nc_tiles);
  p.n_groups = std::min(p.n_tiles, ceil_div(p.n_groups, step) * step);
  p.kc = s.kc > 0 ? std::min(s.kc, t.K) : t.K;
  p.k_blocks = ceil_div(t.K, p.kc);
  return p;
}

// Lanes of one FMA (FP32) or dot-product (INT8) register of the variant, relative units.
double variant_rate(const std::string& op, const std::string& v) {
  const bool s8 = op == "dense_s8";
  if (is_avx512_variant(v)) return s8 ? 64 : 16;
  if (v == "avxvnni") return 32;
  if (v == "avx2") return s8 ? 16 : 8;  // s8: vpmaddwd on widened int16
  if (v == "neondot") return 16;
  if (v == "neon" || v == "neon_a76") return s8 ? 8 : 4;
  return 1;  // ref
}

struct McaRate {
  const char* op;
  const char* variant;
  const char* core;  // llvm-mca -mcpu
  double macs_per_cycle;
};
constexpr McaRate kMcaRates[] = {
#include "compiler/tune/mca_rates.inc"
};

// The llvm-mca model of an Arm core named by its MIDR, or "" (x86, unknown cores: see
// bench/mca_rates.py for why x86 has no rows).
std::string mca_core(const json& cpu) {
  if (cpu.value("arch", "") != "aarch64" || json_int(cpu, "implementer") != 0x41) return "";
  switch (json_int(cpu, "part")) {
    case 0xd03:
      return "cortex-a53";
    case 0xd05:
      return "cortex-a55";
    case 0xd07:  // Cortex-A57
    case 0xd08:
      return "cortex-a57";  // Cortex-A72 (Pi 4): LLVM models it as an A57
    case 0xd0b:             // Cortex-A76 (Pi 5): LLVM's A76 model is its A57 one
    case 0xd0c:
      return "neoverse-n1";
    default:
      return "";
  }
}

// Multiply-adds per cycle of the variant's K loop on this core: llvm-mca's figure where
// mca_rates.inc has one, else two pipes of the variant's lanes.
double macs_per_cycle(const std::string& op, const std::string& variant, const json& cpu) {
  const std::string core = mca_core(cpu);
  for (const McaRate& r : kMcaRates)
    if (op == r.op && variant == r.variant && core == r.core) return r.macs_per_cycle;
  return 2 * variant_rate(op, variant);
}

}  // namespace

bool is_avx512_variant(const std::string& name) {
  return name.rfind("avx512", 0) == 0;
}

Result<ProbeInfo> probe_info_from_json(const json& r) {
  if (!r.is_object()) return Status::error("probe response is not a JSON object");
  if (auto e = r.find("error"); e != r.end())
    return Status::error("probe: " + (e->is_string() ? e->get<std::string>() : e->dump()));
  ProbeInfo p;
  auto cpu = r.find("cpu");
  if (cpu == r.end() || !cpu->is_object() || !cpu->contains("key"))
    return Status::error("probe response has no \"cpu\" identity");
  p.cpu = *cpu;
  if (auto c = r.find("cache"); c != r.end() && c->is_object()) {
    p.cache = *c;
    p.l1d = json_int(*c, "l1d");
    p.l2 = json_int(*c, "l2");
    p.l3 = json_int(*c, "l3");
  }
  p.threads = static_cast<int>(std::max<int64_t>(1, json_int(r, "threads")));
  if (auto c = r.find("cpus"); c != r.end() && c->is_array())
    for (const json& x : *c)
      if (x.is_number_integer()) p.cpus.push_back(x.get<int>());
  auto vs = r.find("variants");
  if (vs == r.end() || !vs->is_object()) return Status::error("probe response has no \"variants\"");
  for (const char* op : {"dense_f32", "dense_s8"}) {
    auto rows = vs->find(op);
    if (rows == vs->end() || !rows->is_array()) continue;
    for (const json& row : *rows) {
      if (!row.is_object() || !row.contains("schedule")) continue;
      VariantInfo v;
      v.name = row.value("name", "");
      v.supported = row.value("supported", false);
      const json& s = row["schedule"];
      v.schedule.variant = v.name;
      v.schedule.mr = static_cast<int>(json_int(s, "mr"));
      v.schedule.panels = static_cast<int>(json_int(s, "panels"));
      v.schedule.mc = json_int(s, "mc");
      v.schedule.kc = json_int(s, "kc");
      v.schedule.nc = json_int(s, "nc");
      v.schedule.threads = static_cast<int>(json_int(s, "threads"));
      v.schedule.prefetch = s.contains("prefetch") ? static_cast<int>(json_int(s, "prefetch")) : 1;
      if (v.name.empty() || v.schedule.mr < 1 || v.schedule.panels < 1 || v.schedule.mc < 1)
        return Status::error("probe response: bad variant row " + row.dump());
      p.variants[op].push_back(v);
    }
  }
  return p;
}

double predicted_seconds(const Task& t, const ScheduleChoice& s, const ProbeInfo& p) {
  const Plan pl = plan(t, s, p.threads);
  const bool s8 = t.op == "dense_s8";
  // Compute: the slowest thread's items, each tile at the efficiency of its row count (a tile of
  // R rows loads the B row once for R FMAs: R / (R + 2)) and of its padded columns.
  const double rows_per_tile = static_cast<double>(t.M) / pl.m_tiles;
  const double row_eff = (rows_per_tile / (rows_per_tile + 2)) / (s.mr / (s.mr + 2.0));
  const double col_eff = static_cast<double>(t.N) / (pl.n_tiles * kNr * s.panels);
  const int64_t items = pl.m_groups * pl.n_groups;
  const double balance = static_cast<double>(ceil_div(items, pl.threads)) * pl.threads / items;
  const double peak = 3e9 * 2 * macs_per_cycle(t.op, s.variant, p.cpu);  // 3 GHz, MAC = 2 ops
  double seconds = t.flops() / (peak * pl.threads) * balance / (row_eff * col_eff);
  // Memory: every row group streams its column groups' B from L3 / DRAM (~20 GB/s a core), an A
  // block beyond half of L2 is re-read from L3 for each column tile, and a K split re-reads and
  // re-writes C once per extra block.
  const double a_elem = s8 ? (s.variant == "avx2" ? 2 : 1) : 4, b_elem = s8 ? 1 : 4;
  const double bw = 20e9 * pl.threads;
  seconds += static_cast<double>(pl.m_groups) * t.N * t.K * b_elem / bw;
  const double a_block = static_cast<double>(std::min(s.mc, t.M)) * pl.kc * a_elem;
  const int64_t l2 = p.l2 > 0 ? p.l2 : (1 << 20);
  if (a_block > 0.5 * l2)
    seconds += (a_block - 0.5 * l2) / a_block * t.M * t.K * a_elem * pl.n_tiles / (4 * bw);
  const double b_tile = static_cast<double>(pl.kc) * kNr * s.panels * b_elem;
  const int64_t l1 = p.l1d > 0 ? p.l1d : (32 << 10);
  if (b_tile > l1) seconds *= 1.05;  // the B tile is re-read from L2 by each row tile
  seconds += (pl.k_blocks - 1) * 2.0 * t.M * t.N * 4 / (4 * bw);
  if (pl.threads > 1) seconds += 5e-6;  // waking the pool
  return seconds;
}

Result<std::vector<ScheduleChoice>> candidates(const Task& t, const ProbeInfo& p,
                                               const SpaceOptions& o) {
  auto rows = p.variants.find(t.op);
  std::vector<const VariantInfo*> usable;
  if (rows != p.variants.end())
    for (const VariantInfo& v : rows->second)
      if (v.supported && !(o.no_avx512 && is_avx512_variant(v.name))) usable.push_back(&v);
  if (usable.empty())
    return Status::error("the probe has no " + t.op + " kernel variant this CPU supports" +
                         std::string(o.no_avx512 ? " without AVX-512" : ""));
  const ScheduleChoice def = usable.front()->schedule;  // what dispatch picks: first supported
  const int64_t l2 = p.l2 > 0 ? p.l2 : (1 << 20);

  struct Scored {
    ScheduleChoice s;
    double seconds;
  };
  std::vector<Scored> all;
  // Points that give the driver the same plan (mc 28 and 112 at M = 16: one row group either
  // way) are one point: timing both would only measure noise.
  auto plan_key = [&](const ScheduleChoice& s) {
    const Plan pl = plan(t, s, p.threads);
    return s.variant + "/" + std::to_string(s.mr) + "/" + std::to_string(s.panels) + "/" +
           std::to_string(pl.m_groups) + "/" + std::to_string(pl.n_groups) + "/" +
           std::to_string(pl.k_blocks) + "/" + std::to_string(pl.threads) +
           (s.prefetch && pl.n_tiles > pl.n_groups ? "/pf" : "");  // no next tile: no prefetch
  };
  std::set<std::string> seen = {plan_key(def)};
  for (const VariantInfo* v : usable) {
    const ScheduleChoice& base = v->schedule;
    std::vector<int> panel_options = {base.panels};
    if (base.panels > 1) panel_options.push_back(1);
    for (int panels : panel_options) {
      const int mr = base.mr;
      const int64_t m_max = ceil_div(t.M, mr) * mr;
      // mc: A blocks of 1/8 .. all of L2, the default, and all rows in one group.
      std::set<int64_t> mcs = {std::min(base.mc, m_max), m_max};
      const double a_elem = t.op == "dense_s8" ? 1 : 4;
      for (double frac : {0.125, 0.25, 0.5, 1.0}) {
        const int64_t rows_fit = static_cast<int64_t>(frac * l2 / (a_elem * t.K));
        const int64_t mc = std::clamp<int64_t>(rows_fit / mr * mr, mr, m_max);
        mcs.insert(mc);
      }
      std::set<int64_t> kcs = {base.kc};
      if (t.op == "dense_f32")  // INT8 never blocks K (its accumulators stay in registers)
        for (int64_t kc : {0, 256, 512, 1024})
          if (kc == 0 || kc < t.K) kcs.insert(kc);
      std::set<int64_t> ncs = {0, base.nc};
      const int64_t tile_cols = int64_t{kNr} * panels;
      for (int64_t parts : {2, 4, 8})
        if (t.N >= parts * tile_cols)
          ncs.insert(ceil_div(ceil_div(t.N, parts), tile_cols) * tile_cols);
      // Thread caps: all, one, half and all but one (a Pi 5's four cores share 2 MB of L3, and
      // the fourth thread may cost more than it brings on a GEMM that streams its weight).
      std::set<int> threads = thread_caps(p.threads);
      threads.insert(0);
      for (int64_t mc : mcs)
        for (int64_t kc : kcs)
          for (int64_t nc : ncs)
            for (int th : threads) {
              ScheduleChoice s{v->name, mr, panels, mc, kc, nc, th};
              if (!seen.insert(plan_key(s)).second) continue;
              all.push_back({s, predicted_seconds(t, s, p)});
            }
    }
  }
  std::stable_sort(all.begin(), all.end(),
                   [](const Scored& a, const Scored& b) { return a.seconds < b.seconds; });
  std::vector<ScheduleChoice> out;
  std::set<std::string> out_plans;
  auto push = [&](const ScheduleChoice& s) {  // false: the list is full or has this plan
    if (out.size() >= o.max_candidates || !out_plans.insert(plan_key(s)).second) return false;
    out.push_back(s);
    return true;
  };
  push(def);
  // Every other variant's own default next: the table's measured point for that kernel, which the
  // model may rank below its own guesses (on a Zen 4 at M 1024 and K 1536 the model's best AVX2
  // point blocks K at 256, while AVX2's default, one K block, beats AVX-512's default by 5 %).
  std::vector<ScheduleChoice> variant_defaults = {def};
  for (const VariantInfo* v : usable) {
    if (v->name == "ref") continue;  // the portable reference kernel: its best point suffices
    ScheduleChoice s = v->schedule;
    s.mc = std::min(s.mc, ceil_div(t.M, s.mr) * s.mr);
    if (push(s)) variant_defaults.push_back(s);
  }
  // Then those defaults without the software prefetch of the next column tile: the model cannot
  // tell what it is worth (on a Zen 4 it gains 2-4 % at M 1024 and costs as much at M 128, K 3072).
  for (ScheduleChoice s : variant_defaults) {
    s.prefetch = 0;
    push(s);
  }
  auto add_best = [&](auto&& matches) {
    for (const Scored& c : all)
      if (matches(c.s) && push(c.s)) return;
  };
  // The best point of each variant and of each thread count first: what the model knows least
  // (how well a CPU runs each ISA: Zen 4 executes AVX-512 as two 256-bit halves; what waking a
  // second core costs next to a small GEMM), then the best of the rest.
  for (const VariantInfo* v : usable)
    add_best([&](const ScheduleChoice& s) { return s.variant == v->name; });
  for (int th : thread_caps(p.threads))
    add_best([&](const ScheduleChoice& s) { return s.threads == th; });
  for (const Scored& c : all) push(c.s);
  return out;
}

}  // namespace kiln::tune
