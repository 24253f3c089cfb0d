// The tuning run of `kiln tune`: the model's Dense GEMMs (the compile driver's graph, stopped
// before code generation), the probe's identity through the runner, the search with a progress
// line, and the tuning log (compiler/tune/).
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <string>

#include "compiler/driver/compile.h"
#include "compiler/target/target.h"
#include "compiler/tune/process.h"
#include "compiler/tune/search.h"
#include "compiler/tune/tuning_log.h"
#include "compiler/util/sha256.h"
#include "tools/kiln/tune_cmd.h"

namespace kiln::tools {

namespace {

int fail(const std::string& message) {
  std::fprintf(stderr, "kiln tune: error: %s\n", message.c_str());
  return 1;
}

std::string clock_str(double seconds) {
  const int s = static_cast<int>(seconds + 0.5);
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%d:%02d", s / 60, s % 60);
  return buf;
}

// "[tune] 3/8  best gain 7.1 % (dense_f32 128x3072x768)  0:41, ETA 1:02": rewritten in place on
// a terminal, one line per task otherwise (CI logs).
void show_progress(const tune::Progress& p) {
  const bool tty = isatty(STDERR_FILENO) != 0;
  std::string line = "[tune] " + std::to_string(p.done) + "/" + std::to_string(p.total) + " GEMMs";
  char gain[96];
  std::snprintf(gain, sizeof(gain), "  best gain %.1f %%", 100 * p.best_gain);
  line += gain;
  if (!p.best_task.empty()) line += " (" + p.best_task + ")";
  line += "  " + clock_str(p.elapsed_seconds);
  if (p.done < p.total) line += ", ETA " + clock_str(p.eta_seconds);
  std::fprintf(stderr, tty ? "\r%s\033[K%s" : "%s%s", line.c_str(),
               tty && p.done < p.total ? "" : "\n");
  std::fflush(stderr);
}

}  // namespace

int run_tuning(const TuneArgs& a, tune::Runner& runner) {
  if (a.output.empty()) return fail("-o tuning.json is required");
  if (a.threads.size() > 1)
    return fail(
        "--threads takes one count (the one the model will run with); tune once per "
        "count");
  auto target = target::target_from_name(a.target);
  if (!target) return fail(target.status().message());

  // The GEMMs: the model through import, passes and quantization, as kiln compile runs it.
  std::vector<tune::Task> tasks;
  // Without --seq: 128, or the model's longest sequence when it is shorter (the compile's default
  // maximum, min(512, its positions), is what the graph is built for then).
  std::vector<int64_t> seqs = a.seq.empty() ? std::vector<int64_t>{128} : a.seq;
  const std::vector<int64_t> batches = a.batch.empty() ? std::vector<int64_t>{1} : a.batch;
  CompileOptions co;
  co.model = a.model;
  co.target = a.target;
  TokenizerJson tokenizer;
  if (!a.tokenizer.empty())
    if (Status s = read_tokenizer_json(a.tokenizer, &tokenizer); !s) return fail(s.message());
  QuantizeSetup quantize;
  if (Status s =
          quantize.apply(a.int8, a.tokenizer.empty() ? nullptr : &tokenizer, a.vocab, a.cased, &co);
      !s)
    return fail(s.message());
  if (!a.seq.empty())
    for (int64_t s : seqs) co.max_seq = std::max(co.max_seq, s);
  co.graph_only = [&](const ir::Graph& g) -> Status {
    if (a.seq.empty())
      for (const ir::Symbol& s : g.symbols)
        if (s.name != "batch" && s.max > 0) seqs[0] = std::min(seqs[0], s.max);
    KILN_ASSIGN_OR_RETURN(tasks, tune::dense_tasks(g, batches, seqs));
    return Status::ok();
  };
  auto compiled = compile(co);
  if (!compiled) return fail(compiled.status().message());
  if (tasks.empty()) return fail(a.model + ": no Dense GEMM to tune");
  if (tune::interrupted()) return 130;

  tune::SearchOptions o;
  o.budget_seconds = a.budget_seconds;
  o.threads = a.threads.empty() ? 0 : a.threads[0];
  o.cpus = a.cpu_list;
  o.space.no_avx512 = !target::builds_avx512(*target);
  // A longer budget measures more of the space: one candidate per second of each GEMM's share
  // (the probe needs about that for BERT-size GEMMs), at least 12, at most 40.
  o.space.max_candidates = static_cast<size_t>(
      std::clamp(a.budget_seconds / static_cast<double>(tasks.size()), 12.0, 40.0));
  o.on_progress = show_progress;
  if (a.verbose)
    o.on_candidate = [](const tune::Task& t, const tune::ScheduleChoice& s,
                        const Result<tune::Timing>& r) {
      if (r)
        std::fprintf(stderr, "\n  %s  %-36s %10.1f us (min %.1f, spread %.2f)", t.str().c_str(),
                     s.str().c_str(), r.value().median_ns / 1e3, r.value().min_ns / 1e3,
                     r.value().spread);
      else
        std::fprintf(stderr, "\n  %s  %-36s %s", t.str().c_str(), s.str().c_str(),
                     r.status().message().c_str());
    };
  nlohmann::json identify = {{"protocol", "kiln-tune-probe/1"}};
  if (o.threads > 0) identify["threads"] = o.threads;
  if (!o.cpus.empty()) identify["cpus"] = o.cpus;
  auto answer = runner.run(identify);
  if (!answer) return fail(answer.status().message());
  auto info = tune::probe_info_from_json(*answer);
  if (!info) return fail(info.status().message());
  const std::string arch = info->cpu.value("arch", "");
  if (arch != target->arch)
    return fail("the probe runs on " + arch + " (" + info->cpu.value("name", "") +
                "), but target '" + a.target + "' is " + target->arch);
  size_t nodes = 0;
  for (const tune::Task& t : tasks) nodes += t.nodes.size();
  std::fprintf(stderr,
               "[tune] %s: %zu distinct GEMMs (%zu Dense nodes x %zu shapes) on %s, %d "
               "threads, via %s, budget %s\n",
               std::filesystem::path(a.model).filename().c_str(), tasks.size(),
               nodes / std::max<size_t>(1, seqs.size() * batches.size()),
               seqs.size() * batches.size(), info->cpu.value("name", "?").c_str(), info->threads,
               runner.describe().c_str(), clock_str(a.budget_seconds).c_str());
  if (!runner.timings_meaningful())
    std::fprintf(stderr, "[tune] emulated: the timings are meaningless (tests only)\n");

  auto log = tune::search(tasks, *info, o,
                          [&](const nlohmann::json& request) { return runner.run(request); });
  if (tune::interrupted()) return 130;
  if (!log) return fail(log.status().message());
  log->kiln_version = KILN_VERSION;
  log->target = a.target;
  log->runner = runner.describe();
  log->timings_meaningful = runner.timings_meaningful();
  log->model = std::filesystem::path(a.model).filename().string();
  if (auto sha = util::sha256_file(a.model)) log->model_sha256 = *sha;
  log->quantize = a.int8.quantize;
  log->seq = seqs;
  log->batch = batches;
  if (auto s = tune::write_tuning_log(*log, a.output); !s) return fail(s.message());

  size_t tuned = 0;
  for (const tune::Entry& e : log->entries) {
    tuned += e.tuned;
    char gain[32] = "default kept";
    if (e.tuned) std::snprintf(gain, sizeof(gain), "%.1f %% faster", 100 * e.gain());
    const std::string group = e.weight_group ? "g" + std::to_string(e.weight_group) : "";
    std::printf("  %-10s M %5lld N %5lld K %5lld %-4s %-34s %9.1f us -> %9.1f us  %s\n",
                e.op.c_str(), static_cast<long long>(e.M), static_cast<long long>(e.N),
                static_cast<long long>(e.K), group.c_str(), e.best.schedule.str().c_str(),
                e.default_timing.median_ns / 1e3, e.best.median_ns / 1e3, gain);
  }
  std::printf("kiln tune: %zu of %zu GEMMs tuned in %.0f s -> %s (kiln compile --tuning-log %s)\n",
              tuned, log->entries.size(), log->seconds, a.output.c_str(), a.output.c_str());
  return 0;
}

}  // namespace kiln::tools
