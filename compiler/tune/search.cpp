#include "compiler/tune/search.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <tuple>

#include "compiler/ir/ops.h"
#include "compiler/quantize/quantize.h"

namespace kiln::tune {

using json = nlohmann::json;

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// The candidates' results of a one-task probe answer, checked against the request.
Result<const json*> task_results(const json& response, size_t candidates, const Task& t) {
  auto results = response.find("results");
  if (results == response.end() || !results->is_array() || results->size() != 1 ||
      !(*results)[0].is_object() || !(*results)[0].contains("candidates") ||
      !(*results)[0]["candidates"].is_array() || (*results)[0]["candidates"].size() != candidates ||
      (*results)[0].value("weight_group", int64_t{0}) != t.weight_group)
    return Status::error(t.str() + ": the probe's answer does not match the request: " +
                         response.dump().substr(0, 300));
  return &(*results)[0]["candidates"];
}

Result<Timing> timing_of(const json& c, const ScheduleChoice& s) {
  if (!c.is_object()) return Status::error("probe result is not an object");
  if (auto e = c.find("error"); e != c.end())
    return Status::error(e->is_string() ? e->get<std::string>() : e->dump());
  Timing t;
  t.schedule = s;
  for (auto [key, out] : {std::pair{"median_ns", &t.median_ns}, std::pair{"min_ns", &t.min_ns},
                          std::pair{"spread", &t.spread}}) {
    auto it = c.find(key);
    if (it == c.end() || !it->is_number() || !std::isfinite(it->get<double>()) ||
        it->get<double>() < 0)
      return Status::error(std::string("probe result lacks a valid \"") + key + "\"");
    *out = it->get<double>();
  }
  if (t.median_ns <= 0) return Status::error("probe result has median_ns 0");
  return t;
}

}  // namespace

std::string gemm_op(const ir::Node& dense) {
  return quantize::is_quantized(dense) ? "dense_s8" : "dense_f32";
}

Result<std::vector<Task>> dense_tasks(const ir::Graph& g, const std::vector<int64_t>& batches,
                                      const std::vector<int64_t>& seqs) {
  std::vector<Task> tasks;
  std::map<std::tuple<std::string, int64_t, int64_t, int64_t, int64_t>, size_t> index;
  for (int64_t batch : batches)
    for (int64_t seq : seqs) {
      std::vector<int64_t> sym(ir::kMaxSymbols, seq);
      for (size_t s = 0; s < g.symbols.size() && s < sym.size(); ++s)
        if (g.symbols[s].max > 0) sym[s] = std::min(seq, g.symbols[s].max);
      if (int b = g.symbol_index("batch"); b >= 0) sym[b] = batch;
      for (const auto& n : g.nodes()) {
        if (n->op != ir::Op::kDense) continue;
        using In = ir::DenseIn;
        const ir::Value* x = n->inputs[In::kX];
        const ir::Value* w = n->inputs[In::kWeight];
        if (!x || !x->shape || x->shape->empty() || !w || !w->constant ||
            w->constant->dims.size() != 2)
          return Status::error("node '" + n->name + "' (Dense): no shaped input or 2-D weight");
        int64_t M = 1;
        for (size_t d = 0; d + 1 < x->shape->size(); ++d) M *= (*x->shape)[d].eval(sym.data());
        Task t;
        t.op = gemm_op(*n);
        t.M = M;
        t.K = w->constant->dims[0];
        t.N = w->constant->dims[1];
        auto has = [&](size_t i) { return n->inputs.size() > i && n->inputs[i]; };
        t.gelu = n->attr_int("gelu", 0) != 0;
        t.residual = has(In::kResidual);
        t.layer_norm = has(In::kLnScale);
        t.weight_group = quantize::weight_group(*n);  // 0 unless INT8 (mixed precision drops it)
        if (t.M < 1 || t.N < 1 || t.K < 1) continue;
        auto key = std::make_tuple(t.op, t.M, t.N, t.K, t.weight_group);
        auto [it, fresh] = index.emplace(key, tasks.size());
        if (fresh) tasks.push_back(t);
        Task& task = tasks[it->second];
        if (std::find(task.nodes.begin(), task.nodes.end(), n->name) == task.nodes.end())
          task.nodes.push_back(n->name);
        task.gelu |= t.gelu;  // the slowest epilogue of the nodes that share the shape
        task.residual |= t.residual;
        task.layer_norm |= t.layer_norm;
      }
    }
  // Biggest first: the progress bar's ETA and a short budget go where the time is.
  std::stable_sort(tasks.begin(), tasks.end(), [](const Task& a, const Task& b) {
    return a.flops() * a.nodes.size() > b.flops() * b.nodes.size();
  });
  return tasks;
}

json probe_request(const std::vector<Task>& tasks,
                   const std::vector<std::vector<ScheduleChoice>>& candidates,
                   const SearchOptions& o, double min_time_ms) {
  json ts = json::array();
  for (size_t i = 0; i < tasks.size(); ++i) {
    const Task& t = tasks[i];
    json cs = json::array();
    for (const ScheduleChoice& s : candidates[i]) cs.push_back(json(schedule_json(s)));
    ts.push_back({{"id", "t" + std::to_string(i)},
                  {"op", t.op},
                  {"M", t.M},
                  {"N", t.N},
                  {"K", t.K},
                  {"gelu", t.gelu},
                  {"residual", t.residual},
                  {"layer_norm", t.layer_norm},
                  {"candidates", cs}});
    if (t.weight_group) ts.back()["weight_group"] = t.weight_group;
  }
  json r = {{"protocol", "kiln-tune-probe/1"},
            {"min_time_ms", std::llround(min_time_ms)},
            {"max_rounds", 400},
            {"tasks", ts}};
  if (o.threads > 0) r["threads"] = o.threads;
  if (!o.cpus.empty()) r["cpus"] = o.cpus;
  return r;
}

Result<TuningLog> search(const std::vector<Task>& tasks, const ProbeInfo& info,
                         const SearchOptions& o, const ProbeFn& run) {
  const auto start = Clock::now();
  TuningLog log;
  log.cpu = info.cpu;
  log.cache = info.cache;
  log.threads = info.threads;
  log.cpus = info.cpus;
  log.budget_seconds = o.budget_seconds;
  Progress progress;
  progress.total = tasks.size();
  double flops_left = 0;
  for (const Task& t : tasks) flops_left += t.flops();
  for (size_t i = 0; i < tasks.size(); ++i) {
    const Task& t = tasks[i];
    KILN_ASSIGN_OR_RETURN(std::vector<ScheduleChoice> cands, candidates(t, info, o.space));
    Entry e;
    static_cast<Task&>(e) = t;
    e.default_timing.schedule = e.best.schedule = cands.front();
    // Each task's share of what is left of the budget, in proportion to its work; the probe
    // stops a task's rounds after min_time (at least 5 rounds), so a short budget only makes
    // the medians noisier.
    const double left = o.budget_seconds - seconds_since(start);
    const double share = flops_left > 0 ? t.flops() / flops_left : 1.0 / (tasks.size() - i);
    flops_left -= t.flops();
    if (left > 1) {
      const double min_time_ms = std::clamp(0.6 * left * share * 1e3, 100.0, 4000.0);
      KILN_ASSIGN_OR_RETURN(json response, run(probe_request({t}, {cands}, o, min_time_ms)));
      KILN_ASSIGN_OR_RETURN(const json* results, task_results(response, cands.size(), t));
      const json& rs = *results;
      auto def = timing_of(rs[0], cands[0]);
      if (!def)
        return Status::error(
            t.str() + ": the default schedule failed on the probe: " + def.status().message());
      e.default_timing = e.best = *def;
      if (o.on_candidate) o.on_candidate(t, cands[0], def);
      for (size_t c = 1; c < cands.size(); ++c) {
        auto tc = timing_of(rs[c], cands[c]);
        if (o.on_candidate) o.on_candidate(t, cands[c], tc);
        if (!tc) continue;  // an unsupported or wrong candidate is skipped, never chosen
        ++e.measured;
        if (tc->median_ns < e.best.median_ns) e.best = *tc;
      }
      ++e.measured;
      auto clearly_faster = [&](const Timing& best, const Timing& base) {
        return best.median_ns < (1 - o.min_gain) * base.median_ns && best.min_ns < base.min_ns;
      };
      bool faster = clearly_faster(e.best, e.default_timing);
      if (faster) {
        // The winner of many candidates is partly the luckiest: a second probe run times it
        // against the default alone, and only a gain seen twice is kept.
        const std::vector<ScheduleChoice> pair = {cands[0], e.best.schedule};
        KILN_ASSIGN_OR_RETURN(json again, run(probe_request({t}, {pair}, o, min_time_ms / 2)));
        KILN_ASSIGN_OR_RETURN(const json* rs2, task_results(again, pair.size(), t));
        auto d2 = timing_of((*rs2)[0], pair[0]);
        auto b2 = timing_of((*rs2)[1], pair[1]);
        faster = d2 && b2 && clearly_faster(*b2, *d2);
        if (faster) {  // the log keeps the confirming run's numbers (fewer candidates, fairer)
          e.default_timing = *d2;
          e.best = *b2;
        }
      }
      if (!faster) e.best = e.default_timing;
      e.tuned = faster;
      if (e.tuned && e.gain() > progress.best_gain) {
        progress.best_gain = e.gain();
        progress.best_task = t.str();
      }
    }
    log.entries.push_back(e);
    progress.done = i + 1;
    progress.elapsed_seconds = seconds_since(start);
    progress.eta_seconds =
        progress.done < progress.total && flops_left > 0
            ? progress.elapsed_seconds / (progress.done) * (progress.total - progress.done)
            : 0;
    if (o.on_progress) o.on_progress(progress);
  }
  log.seconds = seconds_since(start);
  return log;
}

}  // namespace kiln::tune
