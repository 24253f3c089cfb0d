// `kiln tune`'s command line: parses and checks the options into TuneArgs, finds the probe for
// the target, makes the runner (compiler/tune/runner.h) and either asks the probe who it runs on
// (--identify) or hands over to run_tuning (tune_run.cpp).
#include "tools/kiln/tune_cmd.h"

#include <CLI/CLI.hpp>

#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <string>
#include <type_traits>

#include "compiler/target/target.h"
#include "compiler/tune/process.h"
#include "compiler/util/install_layout.h"
#include "tools/kiln/binaries.h"
#include "tools/kiln/compile.h"

namespace kiln::tools {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

// Ctrl-C / SIGTERM: the probe run in progress is killed and the runner still removes its
// directory on the board (runner destructor) before kiln exits.
void on_interrupt(int) {
  kiln::tune::interrupt_children();
}

void catch_interrupts() {
  struct sigaction sa = {};
  sa.sa_handler = on_interrupt;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

int fail(const std::string& message) {
  if (kiln::tune::interrupted()) {
    std::fprintf(stderr, "kiln tune: interrupted\n");
    return 130;
  }
  std::fprintf(stderr, "kiln tune: error: %s\n", message.c_str());
  return 1;
}

// "90s", "5m", "1.5h", "300" (seconds) -> seconds; <= 0 on a bad value.
double parse_budget(const std::string& s) {
  static const std::regex kBudget("^([0-9]+(\\.[0-9]+)?)([smh]?)$");
  std::smatch m;
  if (!std::regex_match(s, m, kBudget)) return -1;
  const double v = std::stod(m[1]);
  const std::string unit = m[3];
  return unit == "h" ? v * 3600 : unit == "m" ? v * 60 : v;
}

// "0-3,6" -> {0, 1, 2, 3, 6}; an error names the bad part.
Result<std::vector<int>> parse_cpus(const std::string& s) {
  static const std::regex kRange("^([0-9]{1,4})(-([0-9]{1,4}))?$");
  std::set<int> cpus;
  size_t pos = 0;
  while (pos <= s.size()) {
    size_t end = s.find(',', pos);
    if (end == std::string::npos) end = s.size();
    const std::string part = s.substr(pos, end - pos);
    std::smatch m;
    if (!std::regex_match(part, m, kRange))
      return Status::error("--cpus '" + s + "': '" + part +
                           "' is not a core number or range (e.g. --cpus 0-3 or --cpus 4,5)");
    const int lo = std::stoi(m[1]), hi = m[3].matched ? std::stoi(m[3]) : lo;
    if (hi < lo) return Status::error("--cpus '" + s + "': range '" + part + "' runs backwards");
    for (int c = lo; c <= hi; ++c) cpus.insert(c);
    pos = end + 1;
  }
  return std::vector<int>(cpus.begin(), cpus.end());
}

// kiln-tune-probe for `arch`: in the installed package next to kiln, in this build tree
// (tools/tune-probe/) for the host's architecture; for aarch64 in $KILN_AARCH64_BUILD_DIR,
// $KILN_AARCH64_RUNTIME_DIR or build-aarch64/ beside this build tree. Checked to be an ELF file
// for `arch`.
Result<std::string> find_probe(const std::string& arch, const std::string& given) {
  const std::string package = util::installed_package_dir();
  std::vector<fs::path> candidates;
  std::string how;
  if (!given.empty()) {
    candidates = {given};
  } else if (arch == host_arch()) {
    if (!package.empty()) candidates.push_back(fs::path(package) / "kiln-tune-probe");
    candidates.push_back(kiln_build_root() / "tools" / "tune-probe" / "kiln-tune-probe");
    how = "build it with cmake --build BUILD --target kiln-tune-probe, or give --probe PATH";
  } else if (arch == "aarch64") {
    for (const char* env : {"KILN_AARCH64_BUILD_DIR", "KILN_AARCH64_RUNTIME_DIR"})
      if (const char* dir = std::getenv(env); dir && *dir) {
        candidates.push_back(fs::path(dir) / "tools" / "tune-probe" / "kiln-tune-probe");
        candidates.push_back(fs::path(dir) / "kiln-tune-probe");
      }
    if (package.empty())
      candidates.push_back(kiln_build_root().parent_path() / "build-aarch64" / "tools" /
                           "tune-probe" / "kiln-tune-probe");
    how =
        "build it with scripts/build.sh --aarch64, set KILN_AARCH64_BUILD_DIR, or give --probe "
        "PATH";
  } else {
    return Status::error("no kiln-tune-probe for " + arch + " targets: give --probe PATH");
  }
  for (const fs::path& p : candidates) {
    std::error_code ec;
    if (!fs::is_regular_file(p, ec)) continue;
    const std::string got = elf_arch(p);
    // A script stands in for the probe in tests; an ELF file must be for the target.
    if (!got.empty() && got != arch)
      return Status::error("probe '" + p.string() + "' is " + got + ", the target needs " + arch);
    return fs::absolute(p, ec).string();
  }
  if (!given.empty()) return Status::error("--probe " + given + ": no such file");
  std::string looked;
  for (const fs::path& p : candidates) looked += (looked.empty() ? "" : ", ") + p.string();
  return Status::error("kiln-tune-probe for " + arch + " not found (looked at " + looked +
                       "): " + how);
}

// 49152 -> "48 KiB", 2097152 -> "2 MiB"; 0 -> "unknown" (the probe's "could not read").
std::string bytes_text(const json& v) {
  if (!v.is_number()) return v.is_string() ? v.get<std::string>() : v.dump();
  const double b = v.get<double>();
  char buf[32];
  if (b <= 0)
    return "unknown";
  else if (b >= 1 << 20)
    std::snprintf(buf, sizeof buf, "%g MiB", b / (1 << 20));
  else if (b >= 1024)
    std::snprintf(buf, sizeof buf, "%g KiB", b / 1024);
  else
    std::snprintf(buf, sizeof buf, "%.0f B", b);
  return buf;
}

std::string value_text(const json& v) {
  return v.is_string() ? v.get<std::string>() : v.dump();
}

std::string hex(const json& v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%x", v.is_number_integer() ? v.get<unsigned>() : 0u);
  return buf;
}

// "Cortex-A76 (aarch64, MIDR implementer 0x41 part 0xd0b r4p1)", "AMD EPYC ... (x86_64,
// AuthenticAMD family 25 model 17 stepping 1)".
std::string cpu_text(const json& cpu) {
  if (!cpu.is_object()) return value_text(cpu);
  std::string name = cpu.value("name", std::string());
  std::string details = cpu.value("arch", std::string());
  auto add = [&](const std::string& d) { details += (details.empty() ? "" : ", ") + d; };
  if (cpu.value("implementer", 0) != 0 || cpu.value("part", 0) != 0)
    add("MIDR implementer " + hex(cpu["implementer"]) + " part " + hex(cpu["part"]) + " r" +
        std::to_string(cpu.value("variant", 0)) + "p" + std::to_string(cpu.value("revision", 0)));
  else if (cpu.value("family", 0) != 0)
    add(cpu.value("vendor", std::string()) + " family " + std::to_string(cpu.value("family", 0)) +
        " model " + std::to_string(cpu.value("model", 0)) + " stepping " +
        std::to_string(cpu.value("stepping", 0)));
  return (name.empty() ? "(no name)" : name) + (details.empty() ? "" : " (" + details + ")");
}

// {"dense_f32": [{"name", "supported", ...}, ...]} + {"dense_f32": default name} ->
// one line per op: "dense_f32: avx512 (default), avx2; not on this CPU: neondot".
std::vector<std::string> variants_text(const json& variants, const json& defaults) {
  std::vector<std::string> lines;
  if (!variants.is_object()) return {value_text(variants)};
  for (const auto& [op, rows] : variants.items()) {
    const std::string def =
        defaults.is_object() && defaults.contains(op) ? value_text(defaults[op]) : "";
    std::string yes, no;
    for (const json& row : rows.is_array() ? rows : json::array({rows})) {
      const std::string name = row.is_object() ? row.value("name", row.dump()) : value_text(row);
      const bool supported = !row.is_object() || row.value("supported", true);
      std::string& list = supported ? yes : no;
      list += (list.empty() ? "" : ", ") + name + (name == def ? " (default)" : "");
    }
    lines.push_back(op + ": " + (yes.empty() ? "none" : yes) +
                    (no.empty() ? "" : "; not on this CPU: " + no));
  }
  return lines;
}

// The probe's identify answer for a person: CPU, its tuning-log key and features, caches, kernel
// variants, threads, then anything else it said (tools/tune-probe/probe.h has the fields).
void print_identify(const json& r, const kiln::tune::Runner& runner) {
  std::set<std::string> shown = {"protocol", "kiln_version", "default"};
  auto take = [&](const char* key) -> const json* {
    auto it = r.find(key);
    if (it == r.end()) return nullptr;
    shown.insert(key);
    return &*it;
  };
  auto line = [](const char* label, const std::string& text) {
    std::printf("  %-10s %s\n", label, text.c_str());
  };
  std::printf(
      "kiln tune: probe on %s%s\n", runner.describe().c_str(),
      r.contains("kiln_version") ? (" (kiln " + value_text(r["kiln_version"]) + ")").c_str() : "");
  if (const json* cpu = take("cpu")) {
    line("cpu:", cpu_text(*cpu));
    if (cpu->is_object() && cpu->contains("key")) line("key:", value_text((*cpu)["key"]));
    if (cpu->is_object() && cpu->contains("features"))
      line("features:", value_text((*cpu)["features"]));
  }
  if (const json* key = take("key")) line("key:", value_text(*key));
  for (const char* k : {"cache", "caches"})
    if (const json* cache = take(k)) {
      std::string text;
      if (cache->is_object())
        for (const auto& [level, size] : cache->items())
          text += (text.empty() ? "" : ", ") +
                  (level.size() > 1 && level[0] == 'l' ? "L" + level.substr(1) : level) + " " +
                  bytes_text(size);
      else
        text = value_text(*cache);
      line("caches:", text);
    }
  if (const json* variants = take("variants")) {
    const json defaults = r.value("default", json::object());
    const char* label = "variants:";
    for (const std::string& l : variants_text(*variants, defaults)) {
      line(label, l);
      label = "";
    }
  }
  if (const json* threads = take("threads")) {
    std::string text = value_text(*threads);
    if (const json* cpus = take("cpus"); cpus && cpus->is_array() && !cpus->empty()) {
      std::string list;
      for (const json& c : *cpus) list += (list.empty() ? "" : ",") + value_text(c);
      text += " (cpus " + list + ")";
    }
    line("threads:", text);
  }
  for (const auto& [k, v] : r.items())
    if (!shown.count(k) && !(v.is_array() && v.empty()))
      std::printf("  %-10s %s\n", (k + ":").c_str(), value_text(v).c_str());
}

}  // namespace

int tune_main(int argc, char** argv) {
  CLI::App app{
      "kiln tune: measure kernel schedules for a model on the target CPU (this machine, or a "
      "board over ssh) and write a tuning log for `kiln compile --tuning-log`"};
  app.name("kiln tune");
  TuneArgs a;
  std::string seq, batch, threads;
  app.add_option("model", a.model, "ONNX model file (not needed with --identify)");
  app.add_option("--target", a.target,
                 "native | x86-64-v3 | x86-64-v4 | aarch64 | rpi4 | rpi5 (default native)");
  app.add_option("--runner", a.runner,
                 "where the probe runs: local (default) | ssh://[user@]host[:port] (a board, "
                 "key authentication only; the probe is copied to a temporary directory there "
                 "and removed afterwards) | qemu:<cpu> (tests only: timings meaningless)");
  app.add_option("--probe", a.probe,
                 "kiln-tune-probe built for the target (default: the one next to kiln, or in "
                 "the aarch64 build for aarch64 targets)");
  app.add_option("--ssh-config", a.ssh_config, "ssh_config file for ssh and scp (ssh -F FILE)");
  app.add_option("--budget", a.budget, "time budget: 90s, 5m, 1h (default 5m)");
  app.add_option("--seq", seq, "sequence lengths to tune for, e.g. 128 or 16,128");
  app.add_option("--batch", batch, "batch sizes to tune for, e.g. 1 or 1,8");
  app.add_option("--threads", threads,
                 "the thread count the model will run with (default: every core the probe may "
                 "use); each GEMM may still be given fewer");
  app.add_option("--cpus", a.cpus, "pin the probe to these cores, e.g. 0-3 or 4,5");
  add_quantize_options(app, a.int8);
  app.add_option("--tokenizer", a.tokenizer, "tokenizer.json to read --calibrate FILE.txt with");
  app.add_option("--vocab", a.vocab, "vocab.txt (WordPiece) to read --calibrate FILE.txt with");
  app.add_flag("--cased", a.cased, "--vocab is cased (no lower-casing)");
  app.add_option("-o,--output", a.output, "the tuning log to write (tuning.json)");
  app.add_flag("--identify", a.identify,
               "only ask the probe which CPU it runs on (name, tuning-log key, caches, kernel "
               "variants, threads)");
  app.add_flag("--json", a.json, "with --identify: print the probe's JSON response as it is");
  app.add_flag("-v,--verbose", a.verbose, "print every candidate's time");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  a.budget_seconds = parse_budget(a.budget);
  if (a.budget_seconds <= 0)
    return fail("--budget '" + a.budget + "': expected a duration such as 90s, 5m or 1h");
  auto int_list = [](const std::string& s, const char* option,
                     auto* out) -> Status {  // "16,128" -> {16, 128}, each >= 1
    static const std::regex kList("^[0-9]{1,9}(,[0-9]{1,9})*$");
    if (s.empty()) return Status::ok();
    if (!std::regex_match(s, kList))
      return Status::error(std::string(option) + " '" + s +
                           "': expected positive numbers separated by commas");
    size_t pos = 0;
    while (pos < s.size()) {
      size_t end = s.find(',', pos);
      if (end == std::string::npos) end = s.size();
      const long long v = std::stoll(s.substr(pos, end - pos));
      if (v < 1) return Status::error(std::string(option) + " '" + s + "': values start at 1");
      out->push_back(static_cast<typename std::decay_t<decltype(*out)>::value_type>(v));
      pos = end + 1;
    }
    return Status::ok();
  };
  for (Status s : {int_list(seq, "--seq", &a.seq), int_list(batch, "--batch", &a.batch),
                   int_list(threads, "--threads", &a.threads)})
    if (!s) return fail(s.message());
  if (!a.cpus.empty()) {
    auto cpus = parse_cpus(a.cpus);
    if (!cpus) return fail(cpus.status().message());
    a.cpu_list = cpus.value();
  }
  if (const std::string e = check_quantize_args(a.int8); !e.empty()) return fail(e);
  if (!a.tokenizer.empty() && !a.vocab.empty())
    return fail("--vocab and --tokenizer both give the tokenizer: choose one");
  if (a.json && !a.identify) return fail("--json goes with --identify");
  if (!a.identify) {
    if (a.model.empty()) return fail("give MODEL.onnx to tune (or --identify)");
    if (a.output.empty()) return fail("give -o tuning.json, the tuning log to write");
  }
  if (const char* t = std::getenv("KILN_TUNE_PROBE_TIMEOUT"); t && *t) {
    char* end = nullptr;
    const long v = std::strtol(t, &end, 10);
    if (*end || v < 1 || v > 86400)
      return fail(std::string("KILN_TUNE_PROBE_TIMEOUT='") + t + "': expected seconds, 1..86400");
    a.probe_timeout_seconds = int(v);
  }
  auto target = kiln::target::target_from_name(a.target);
  if (!target) return fail(target.status().message());
  a.target_arch = target->arch;
  if (a.runner == "local" && a.target_arch != host_arch())
    return fail("--runner local runs the probe on this " + host_arch() + " machine, but --target " +
                a.target + " is " + a.target_arch +
                ": use --runner ssh://user@board (or qemu:<cpu> in tests)");
  if (a.runner.rfind("qemu:", 0) == 0 && a.target_arch != "aarch64")
    return fail("--runner " + a.runner + " emulates aarch64; --target " + a.target + " is " +
                a.target_arch);
  auto probe = find_probe(a.target_arch, a.probe);
  if (!probe) return fail(probe.status().message());
  a.probe = probe.value();

  kiln::tune::RunnerOptions o;
  o.url = a.runner;
  o.probe = a.probe;
  o.ssh_config = a.ssh_config;
  o.timeout_seconds = a.probe_timeout_seconds;
  catch_interrupts();
  auto runner = kiln::tune::make_runner(o);
  if (!runner) return fail(runner.status().message());
  if (!a.identify) return run_tuning(a, *runner.value());

  auto response = runner.value()->run(json{{"protocol", "kiln-tune-probe/1"}});
  if (!response) return fail(response.status().message());
  if (a.json)
    std::printf("%s\n", response->dump(2).c_str());
  else
    print_identify(response.value(), *runner.value());
  return 0;
}

}  // namespace kiln::tools
