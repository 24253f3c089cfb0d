// kiln-tune-probe's protocol (probe.h): read the request, pin, start the pool, identify the CPU and
// its caches, run the tasks (measure.h), answer.
#include "probe.h"

#include <sched.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <istream>
#include <iterator>
#include <memory>
#include <ostream>
#include <string>

#include <nlohmann/json.hpp>

#include "kiln/kernels/cpu_identity.h"
#include "measure.h"
#include "request.h"
#include "runtime/thread_pool.h"

namespace kiln::tune_probe {
namespace {

using nlohmann::json;

constexpr size_t kMaxRequestBytes = size_t{16} << 20;

json cpu_json() {
  const kernels::CpuIdentity& id = kernels::cpu_identity();
  return {{"arch", id.arch},         {"vendor", id.vendor},     {"family", id.family},
          {"model", id.model},       {"stepping", id.stepping}, {"implementer", id.implementer},
          {"part", id.part},         {"variant", id.variant},   {"revision", id.revision},
          {"features", id.features}, {"key", id.key},           {"name", id.name}};
}

// "48K" / "2048K" / "32M" (sysfs cache sizes) in bytes; 0 if unreadable.
int64_t read_size_file(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "r");
  if (!f) return 0;
  char text[64] = {};
  const bool ok = std::fgets(text, sizeof(text), f) != nullptr;
  std::fclose(f);
  if (!ok) return 0;
  char* end = nullptr;
  const long long v = std::strtoll(text, &end, 10);
  if (end == text || v < 0 || v > (1ll << 40)) return 0;
  const char unit = *end;
  return unit == 'K' ? v << 10 : unit == 'M' ? v << 20 : unit == 'G' ? v << 30 : v;
}

std::string read_word_file(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "r");
  if (!f) return "";
  char text[64] = {};
  const bool ok = std::fgets(text, sizeof(text), f) != nullptr;
  std::fclose(f);
  if (!ok) return "";
  std::string s = text;
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// Cache sizes of `cpu` from sysfs (index*/level, type, size), else sysconf (glibc reads cpuid on
// x86; 0 on most aarch64 systems). Under qemu-user these are the host's.
json cache_json(int cpu) {
  int64_t l1d = 0, l2 = 0, l3 = 0;
  const std::string dir = "/sys/devices/system/cpu/cpu" + std::to_string(cpu) + "/cache/index";
  for (int i = 0; i < 16; ++i) {
    const std::string base = dir + std::to_string(i) + "/";
    const std::string level = read_word_file(base + "level");
    if (level.empty()) continue;
    const std::string type = read_word_file(base + "type");
    const int64_t size = read_size_file(base + "size");
    if (level == "1" && type == "Data") l1d = size;
    if (level == "2" && type != "Instruction") l2 = size;
    if (level == "3" && type != "Instruction") l3 = size;
  }
#if defined(_SC_LEVEL1_DCACHE_SIZE)
  if (!l1d) l1d = std::max(0l, sysconf(_SC_LEVEL1_DCACHE_SIZE));
  if (!l2) l2 = std::max(0l, sysconf(_SC_LEVEL2_CACHE_SIZE));
  if (!l3) l3 = std::max(0l, sysconf(_SC_LEVEL3_CACHE_SIZE));
#endif
  return {{"l1d", l1d}, {"l2", l2}, {"l3", l3}};
}

std::vector<int> cpus_of(const cpu_set_t& set) {
  std::vector<int> cpus;
  for (int c = 0; c < CPU_SETSIZE; ++c)
    if (CPU_ISSET(c, &set)) cpus.push_back(c);
  return cpus;
}

std::string list_text(const std::vector<int>& v) {
  std::string s;
  for (int x : v) s += (s.empty() ? "" : ",") + std::to_string(x);
  return s;
}

// Pins the process to `wanted` (empty: leave it) before any thread starts, so the pool's threads
// inherit the mask. Returns the error, or "" with *cpus = the CPUs the process now runs on.
std::string pin(const std::vector<int>& wanted, std::vector<int>* cpus) {
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  if (sched_getaffinity(0, sizeof(allowed), &allowed) != 0) {
    if (!wanted.empty())
      return std::string("cpus: cannot read this process's CPU mask: ") + std::strerror(errno);
    cpus->clear();
    return "";
  }
  if (wanted.empty()) {
    *cpus = cpus_of(allowed);
    return "";
  }
  cpu_set_t set;
  CPU_ZERO(&set);
  for (int c : wanted) {
    if (c >= CPU_SETSIZE || !CPU_ISSET(c, &allowed))
      return "cpus: cpu " + std::to_string(c) + " is not available (this process may run on " +
             list_text(cpus_of(allowed)) + ")";
    CPU_SET(c, &set);
  }
  if (sched_setaffinity(0, sizeof(set), &set) != 0)
    return "cpus: cannot pin to " + list_text(wanted) + ": " + std::strerror(errno);
  *cpus = cpus_of(set);
  return "";
}

int refuse(std::ostream& out, std::ostream& err, const std::string& message, int code) {
  // The message may quote the request's bytes (a parse error's "last read"): never throw on them.
  out << json{{"protocol", kProtocol}, {"error", message}}.dump(-1, ' ', false,
                                                                json::error_handler_t::replace)
      << "\n";
  err << "kiln-tune-probe: " << message << "\n";
  return code;
}

int serve(std::istream& in, std::ostream& out, std::ostream& err) {
  std::string text;
  char chunk[65536];
  while (in.read(chunk, sizeof(chunk)) || in.gcount() > 0) {
    text.append(chunk, static_cast<size_t>(in.gcount()));
    if (text.size() > kMaxRequestBytes)
      return refuse(out, err,
                    "request larger than " + std::to_string(kMaxRequestBytes >> 20) + " MiB", 2);
  }
  Request req;
  if (std::string e = parse_request(text, &req); !e.empty()) return refuse(out, err, e, 2);
  std::vector<int> cpus;
  if (std::string e = pin(req.cpus, &cpus); !e.empty()) return refuse(out, err, e, 2);
  const int threads =
      req.threads > 0 ? req.threads : std::max<int>(1, static_cast<int>(cpus.size()));
  // One thread: no pool, as the runtime does (model.so then never leaves the calling thread).
  std::unique_ptr<rt::ThreadPool> pool;
  if (threads > 1) pool = std::make_unique<rt::ThreadPool>(threads, rt::PoolKind::kSpin);
  const kiln_backend be{KILN_ABI_VERSION, threads, pool.get(), &rt::ThreadPool::parallel_for_entry};
  json answer = {{"protocol", kProtocol},
                 {"kiln_version", KILN_VERSION},
                 {"cpu", cpu_json()},
                 {"threads", threads},
                 {"cpus", cpus},
                 {"cache", cache_json(cpus.empty() ? 0 : cpus.front())},
                 {"variants", variants_json()},
                 {"default", defaults_json()}};
  json results = json::array();
  const TimingOptions options{req.min_time_ms, req.max_rounds};
  for (const TaskRequest& t : req.tasks) results.push_back(measure_task(t, &be, options));
  answer["results"] = std::move(results);
  // Task ids and variant names come from the request: replace invalid UTF-8 instead of throwing.
  out << answer.dump(-1, ' ', false, json::error_handler_t::replace) << "\n";
  out.flush();
  return 0;
}

}  // namespace

int tune_probe_main(std::istream& in, std::ostream& out, std::ostream& err) {
  try {
    return serve(in, out, err);
  } catch (const std::exception& e) {
    return refuse(out, err, std::string("internal error: ") + e.what(), 1);
  }
}

}  // namespace kiln::tune_probe
