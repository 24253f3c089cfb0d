// kiln_soak: a long-running test of the runtime through the C ABI alone (issue 15, item 3).
//
// Phase 1 (soak): one model, loaded once, runs RUNS times on inputs of mixed batch and sequence
// length (seeded, so every soak sees the same sequence). The process's resident set
// (/proc/self/statm) and open descriptors (/proc/self/fd) are sampled before the load, after it,
// after the warm-up and every INTERVAL runs to the end, and printed as a curve. It fails when the
// RSS of any sample after the warm-up exceeds the warm-up's by more than --max-rss-growth percent,
// when the descriptor count ever differs from the count after the load, or when a run fails,
// gives non-finite outputs, or a fixed probe input (run right after the load and again at every
// sample) stops giving bit-identical outputs.
//
// Phase 2 (concurrency): THREADS threads, each with its own loaded model (1 thread in its pool),
// run PER_THREAD runs each at once, every output compared bit for bit with a single-threaded
// reference computed beforehand by one more model.
//
// usage: kiln_soak DIR [--runs N] [--warmup N] [--interval N] [--max-batch B] [--max-seq S]
//                      [--vocab V] [--model-threads T] [--threads N] [--per-thread N]
//                      [--max-rss-growth PERCENT] [--seed S]
// Exit code 0 when everything held, 1 otherwise (the reason is printed).
#include <dirent.h>
#include <unistd.h>

#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "kiln/c_api.h"

namespace {

// ASan keeps freed memory in its quarantine (256 MB by default), so the RSS grows with every
// allocation until that fills: the RSS criterion means nothing there (LSan checks leaks instead).
#if defined(__SANITIZE_ADDRESS__)
constexpr bool kRssMeaningful = false;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kRssMeaningful = false;
#else
constexpr bool kRssMeaningful = true;
#endif
#else
constexpr bool kRssMeaningful = true;
#endif

struct Options {
  std::string dir;
  int64_t runs = 100000;
  int64_t warmup = 0;    // 0 = runs / 20, at least 200
  int64_t interval = 0;  // 0 = runs / 20
  int64_t max_batch = 4;
  int64_t max_seq = 64;
  int64_t vocab = 100;
  int64_t model_threads = 2;
  int64_t threads = 4;
  int64_t per_thread = 500;
  int64_t seed = 1;
  double max_rss_growth = 5.0;
};

struct Sample {
  const char* label;
  int64_t runs;
  double seconds;
  int64_t rss_kib;
  int fds;
};

int64_t rss_kib() {
  long pages = 0, resident = 0;
  if (FILE* f = std::fopen("/proc/self/statm", "r")) {
    if (std::fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
    std::fclose(f);
  }
  return static_cast<int64_t>(resident) * sysconf(_SC_PAGESIZE) / 1024;
}

// Open descriptors, not counting the one that lists them.
int open_fds() {
  DIR* d = opendir("/proc/self/fd");
  if (!d) return -1;
  int n = 0;
  while (const dirent* e = readdir(d))
    if (e->d_name[0] != '.') ++n;
  closedir(d);
  return n - 1;
}

// One input case: every model input as int64 [batch, seq], filled by its name's role.
struct Case {
  int64_t batch = 0, seq = 0;
  std::vector<std::vector<int64_t>> inputs;  // per model input
};

Case make_case(const kiln_model* m, int64_t batch, int64_t seq, int64_t vocab, std::mt19937& rng) {
  Case c;
  c.batch = batch;
  c.seq = seq;
  for (int32_t i = 0; i < kiln_model_num_inputs(m); ++i) {
    kiln_tensor_info info;
    kiln_model_input_info(m, i, &info);
    const std::string name = info.name;
    std::vector<int64_t> v(static_cast<size_t>(batch * seq));
    for (int64_t b = 0; b < batch; ++b) {
      // Rows after the first are padded at the end by a random amount (at least one token left).
      const int64_t len = b == 0 ? seq : 1 + static_cast<int64_t>(rng() % seq);
      for (int64_t s = 0; s < seq; ++s) {
        int64_t& x = v[b * seq + s];
        if (name.find("mask") != std::string::npos)
          x = s < len ? 1 : 0;
        else if (name.find("type") != std::string::npos)
          x = static_cast<int64_t>(rng() % 2);
        else
          x = static_cast<int64_t>(rng() % vocab);
      }
    }
    c.inputs.push_back(std::move(v));
  }
  return c;
}

using Outputs = std::vector<std::vector<unsigned char>>;

// Runs `c`; on success fills `out` (when given) with every output's bytes and returns "",
// else the reason.
std::string run_case(kiln_model* m, const Case& c, Outputs* out) {
  const int64_t shape[2] = {c.batch, c.seq};
  for (int32_t i = 0; i < static_cast<int32_t>(c.inputs.size()); ++i)
    if (kiln_model_set_input(m, i, KILN_INT64, shape, 2, c.inputs[i].data()) != KILN_OK)
      return std::string("set_input: ") + kiln_last_error();
  if (kiln_model_run(m) != KILN_OK) return std::string("run: ") + kiln_last_error();
  if (out) out->clear();
  for (int32_t i = 0; i < kiln_model_num_outputs(m); ++i) {
    kiln_tensor_info info;
    if (kiln_model_get_output(m, i, &info) != KILN_OK)
      return std::string("get_output: ") + kiln_last_error();
    if (info.rank < 1 || info.shape[0] != c.batch) return std::string(info.name) + ": wrong shape";
    if (info.dtype == KILN_FLOAT32) {
      const float* f = static_cast<const float*>(info.data);
      for (size_t k = 0; k < info.nbytes / sizeof(float); ++k)
        if (!std::isfinite(f[k])) return std::string(info.name) + ": non-finite output";
    }
    if (out) {
      const auto* p = static_cast<const unsigned char*>(info.data);
      out->emplace_back(p, p + info.nbytes);
    }
  }
  return "";
}

kiln_model* load(const Options& o, int64_t threads) {
  kiln_load_options lo{static_cast<int32_t>(threads), 1};
  kiln_model* m = nullptr;
  if (kiln_model_load(o.dir.c_str(), &lo, &m) != KILN_OK) {
    std::fprintf(stderr, "kiln_soak: load %s: %s\n", o.dir.c_str(), kiln_last_error());
    return nullptr;
  }
  return m;
}

// A few fixed cases (the largest shape among them) and their outputs from `m`.
struct Probes {
  std::vector<Case> cases;
  std::vector<Outputs> outputs;
};

bool make_probes(const Options& o, kiln_model* m, Probes* p) {
  std::mt19937 rng(static_cast<uint32_t>(o.seed + 1000));
  const int64_t shapes[][2] = {{1, 1}, {1, o.max_seq}, {o.max_batch, o.max_seq}, {2, 7}, {3, 13}};
  for (const auto& s : shapes) {
    p->cases.push_back(make_case(m, std::min<int64_t>(s[0], o.max_batch),
                                 std::min<int64_t>(s[1], o.max_seq), o.vocab, rng));
    p->outputs.emplace_back();
    const std::string err = run_case(m, p->cases.back(), &p->outputs.back());
    if (!err.empty()) {
      std::fprintf(stderr, "kiln_soak: probe run: %s\n", err.c_str());
      return false;
    }
  }
  return true;
}

// "" when every probe still gives its recorded outputs.
std::string check_probes(kiln_model* m, const Probes& p) {
  Outputs got;
  for (size_t i = 0; i < p.cases.size(); ++i) {
    const std::string err = run_case(m, p.cases[i], &got);
    if (!err.empty()) return err;
    if (got != p.outputs[i])
      return "probe " + std::to_string(i) + " (batch " + std::to_string(p.cases[i].batch) +
             ", seq " + std::to_string(p.cases[i].seq) + "): outputs differ from the reference";
  }
  return "";
}

void print_sample(const Sample& s) {
  std::printf("soak: %-8s runs %8" PRId64 "  t %7.1f s  rss %7" PRId64 " KiB  fds %d\n", s.label,
              s.runs, s.seconds, s.rss_kib, s.fds);
  std::fflush(stdout);
}

bool soak(const Options& o) {
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<Sample> curve;
  auto sample = [&](const char* label, int64_t runs) {
    const double t = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    curve.push_back({label, runs, t, rss_kib(), open_fds()});
    print_sample(curve.back());
  };
  sample("start", 0);
  kiln_model* m = load(o, o.model_threads);
  if (!m) return false;
  sample("loaded", 0);
  const int fds_loaded = curve.back().fds;

  Probes probes;
  if (!make_probes(o, m, &probes)) return false;
  std::mt19937 rng(static_cast<uint32_t>(o.seed));
  std::string error;
  int64_t done = 0, positions = 0;
  const int64_t warmup = o.warmup > 0 ? o.warmup : std::max<int64_t>(200, o.runs / 20);
  const int64_t interval = o.interval > 0 ? o.interval : std::max<int64_t>(1, o.runs / 20);
  int64_t warm_rss = 0;
  bool ok = true;
  for (; done < o.runs && error.empty(); ++done) {
    if (done == warmup) {
      sample("warm", done);
      warm_rss = curve.back().rss_kib;
    } else if (done > warmup && (done - warmup) % interval == 0) {
      error = check_probes(m, probes);
      sample("", done);
    }
    const int64_t batch = 1 + static_cast<int64_t>(rng() % o.max_batch);
    const int64_t seq = 1 + static_cast<int64_t>(rng() % o.max_seq);
    const Case c = make_case(m, batch, seq, o.vocab, rng);
    positions += batch * seq;
    if (error.empty()) error = run_case(m, c, nullptr);
    if (!error.empty()) error = "run " + std::to_string(done) + ": " + error;
  }
  if (error.empty()) error = check_probes(m, probes);
  sample("end", done);
  kiln_model_free(m);
  sample("freed", done);
  const Sample& end = curve[curve.size() - 2];
  std::printf("soak: %" PRId64 " runs (%" PRId64 " positions) in %.1f s; rss start %" PRId64
              " KiB, loaded %" PRId64 " KiB, warm %" PRId64 " KiB, end %" PRId64
              " KiB (%+.2f %% after warm-up), fds loaded %d, end %d, freed %d\n",
              done, positions, end.seconds, curve[0].rss_kib, curve[1].rss_kib, warm_rss,
              end.rss_kib, warm_rss ? 100.0 * (end.rss_kib - warm_rss) / warm_rss : 0.0, fds_loaded,
              end.fds, curve.back().fds);
  if (!error.empty()) {
    std::printf("soak: FAILED: %s\n", error.c_str());
    ok = false;
  }
  if (!kRssMeaningful) std::printf("soak: RSS not checked: ASan's quarantine holds freed memory\n");
  for (const Sample& s : curve) {
    if (kRssMeaningful && s.runs > warmup && warm_rss > 0 &&
        s.rss_kib > warm_rss * (1 + o.max_rss_growth / 100)) {
      std::printf("soak: FAILED: rss %" PRId64 " KiB after %" PRId64
                  " runs is more than %.1f %% above the warm-up's %" PRId64 " KiB\n",
                  s.rss_kib, s.runs, o.max_rss_growth, warm_rss);
      ok = false;
      break;
    }
  }
  for (size_t i = 1; i + 1 < curve.size(); ++i) {
    if (curve[i].fds != fds_loaded) {
      std::printf("soak: FAILED: %d open descriptors after %" PRId64 " runs, %d after the load\n",
                  curve[i].fds, curve[i].runs, fds_loaded);
      ok = false;
      break;
    }
  }
  if (curve.back().fds != curve[0].fds) {
    std::printf("soak: FAILED: %d open descriptors after the free, %d before the load\n",
                curve.back().fds, curve[0].fds);
    ok = false;
  }
  return ok;
}

bool concurrency(const Options& o) {
  if (o.threads <= 0) return true;
  kiln_model* ref_model = load(o, 1);
  if (!ref_model) return false;
  Probes ref;
  std::mt19937 rng(static_cast<uint32_t>(o.seed + 2000));
  for (int i = 0; i < 16; ++i)
    ref.cases.push_back(make_case(ref_model, 1 + static_cast<int64_t>(rng() % o.max_batch),
                                  1 + static_cast<int64_t>(rng() % o.max_seq), o.vocab, rng));
  for (const Case& c : ref.cases) {
    ref.outputs.emplace_back();
    const std::string err = run_case(ref_model, c, &ref.outputs.back());
    if (!err.empty()) {
      std::printf("concurrency: FAILED: reference run: %s\n", err.c_str());
      kiln_model_free(ref_model);
      return false;
    }
  }
  kiln_model_free(ref_model);

  std::vector<std::string> errors(static_cast<size_t>(o.threads));
  std::vector<int64_t> runs(static_cast<size_t>(o.threads), 0);
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<std::thread> pool;
  for (int t = 0; t < o.threads; ++t) {
    pool.emplace_back([&, t] {
      kiln_model* m = load(o, 1);
      if (!m) {
        errors[t] = "load failed";
        return;
      }
      Outputs got;
      for (int64_t r = 0; r < o.per_thread && errors[t].empty(); ++r) {
        const size_t k = static_cast<size_t>(r * 7 + t * 5) % ref.cases.size();
        errors[t] = run_case(m, ref.cases[k], &got);
        if (errors[t].empty() && got != ref.outputs[k])
          errors[t] = "case " + std::to_string(k) + ": outputs differ from the reference";
        runs[t] = r + 1;
      }
      kiln_model_free(m);
    });
  }
  for (std::thread& th : pool) th.join();
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  bool ok = true;
  int64_t total = 0;
  for (int t = 0; t < o.threads; ++t) {
    total += runs[t];
    if (!errors[t].empty()) {
      std::printf("concurrency: FAILED: thread %d after %" PRId64 " runs: %s\n", t, runs[t],
                  errors[t].c_str());
      ok = false;
    }
  }
  std::printf("concurrency: %" PRId64 " threads, a model each, %" PRId64
              " runs in %.1f s, every output bit-identical to the single-threaded reference: %s\n",
              o.threads, total, secs, ok ? "yes" : "no");
  return ok;
}

bool parse(int argc, char** argv, Options* o) {
  const struct {
    const char* name;
    int64_t* value;
  } flags[] = {{"--runs", &o->runs},
               {"--warmup", &o->warmup},
               {"--interval", &o->interval},
               {"--max-batch", &o->max_batch},
               {"--max-seq", &o->max_seq},
               {"--vocab", &o->vocab},
               {"--model-threads", &o->model_threads},
               {"--threads", &o->threads},
               {"--per-thread", &o->per_thread},
               {"--seed", &o->seed}};
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a[0] != '-') {
      o->dir = a;
      continue;
    }
    if (i + 1 >= argc) return false;
    char* end = nullptr;
    const double x = std::strtod(argv[++i], &end);
    if (*end || x < 0) return false;
    bool known = a == "--max-rss-growth";
    if (known) o->max_rss_growth = x;
    for (const auto& f : flags)
      if (a == f.name) {
        *f.value = static_cast<int64_t>(x);
        known = true;
      }
    if (!known) return false;
  }
  return !o->dir.empty() && o->max_batch >= 1 && o->max_seq >= 1 && o->vocab >= 1;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (!parse(argc, argv, &o)) {
    std::fprintf(stderr,
                 "usage: kiln_soak DIR [--runs N] [--warmup N] [--interval N] [--max-batch B] "
                 "[--max-seq S] [--vocab V] [--model-threads T] [--threads N] [--per-thread N] "
                 "[--max-rss-growth PERCENT] [--seed S]\n");
    return 2;
  }
  const bool soak_ok = soak(o);
  const bool threads_ok = concurrency(o);
  return soak_ok && threads_ok ? 0 : 1;
}
