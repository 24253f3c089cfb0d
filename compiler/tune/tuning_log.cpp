#include "compiler/tune/tuning_log.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <sstream>

#include "kiln/kernels/gemm/s8_pack.h"

namespace kiln::tune {

using json = nlohmann::json;
using ojson = nlohmann::ordered_json;

std::string ScheduleChoice::str() const {
  std::ostringstream s;
  s << variant << " mr" << mr << " p" << panels << " mc" << mc << " kc" << kc << " nc" << nc << " t"
    << threads;
  if (!prefetch) s << " pf0";
  return s.str();
}

std::string TuningLog::cpu_key() const {
  return cpu.is_object() ? cpu.value("key", "") : "";
}
std::string TuningLog::cpu_name() const {
  return cpu.is_object() ? cpu.value("name", "") : "";
}
std::string TuningLog::arch() const {
  return cpu.is_object() ? cpu.value("arch", "") : "";
}

std::string Task::str() const {
  std::ostringstream s;
  s << op << " " << M << "x" << N << "x" << K;
  if (weight_group) s << " g" << weight_group;
  return s.str();
}

ojson schedule_json(const ScheduleChoice& s) {
  return {{"variant", s.variant}, {"mr", s.mr}, {"panels", s.panels},   {"mc", s.mc},
          {"kc", s.kc},           {"nc", s.nc}, {"threads", s.threads}, {"prefetch", s.prefetch}};
}

namespace {

ojson timing_json(const Timing& t) {
  return {{"schedule", schedule_json(t.schedule)},
          {"median_ns", t.median_ns},
          {"min_ns", t.min_ns},
          {"spread", t.spread}};
}

// Field readers that name the place and the field on error.
class Reader {
 public:
  explicit Reader(std::string where) : where_(std::move(where)) {}

  Result<const json*> field(const json& j, const char* name, json::value_t type) const {
    auto it = j.find(name);
    if (it == j.end()) return Status::error(where_ + ": missing \"" + name + "\"");
    const bool ok =
        type == json::value_t::number_integer
            ? it->is_number_integer()
            : (type == json::value_t::number_float ? it->is_number() : it->type() == type);
    if (!ok) return Status::error(where_ + ": \"" + name + "\" has the wrong type");
    return &*it;
  }
  Result<int64_t> integer(const json& j, const char* name, int64_t lo, int64_t hi) const {
    KILN_ASSIGN_OR_RETURN(const json* v, field(j, name, json::value_t::number_integer));
    const int64_t x = v->get<int64_t>();
    if (x < lo || x > hi)
      return Status::error(where_ + ": \"" + name + "\" = " + std::to_string(x) +
                           " is out of range [" + std::to_string(lo) + ", " + std::to_string(hi) +
                           "]");
    return x;
  }
  Result<double> number(const json& j, const char* name) const {
    KILN_ASSIGN_OR_RETURN(const json* v, field(j, name, json::value_t::number_float));
    const double x = v->get<double>();
    if (!std::isfinite(x) || x < 0)
      return Status::error(where_ + ": \"" + name + "\" must be a finite number >= 0");
    return x;
  }
  Result<std::string> string(const json& j, const char* name) const {
    KILN_ASSIGN_OR_RETURN(const json* v, field(j, name, json::value_t::string));
    return v->get<std::string>();
  }
  Result<bool> boolean(const json& j, const char* name) const {
    KILN_ASSIGN_OR_RETURN(const json* v, field(j, name, json::value_t::boolean));
    return v->get<bool>();
  }
  const std::string& where() const { return where_; }

 private:
  std::string where_;
};

Result<ScheduleChoice> schedule_from_json(const json& j, const Reader& r) {
  if (!j.is_object()) return Status::error(r.where() + ": schedule must be an object");
  ScheduleChoice s;
  KILN_ASSIGN_OR_RETURN(s.variant, r.string(j, "variant"));
  if (s.variant.empty() || s.variant.size() > 32 ||
      s.variant.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789_") != std::string::npos)
    return Status::error(r.where() + ": bad variant name '" + s.variant + "'");
  KILN_ASSIGN_OR_RETURN(int64_t mr, r.integer(j, "mr", 1, 64));
  KILN_ASSIGN_OR_RETURN(int64_t panels, r.integer(j, "panels", 1, 8));
  KILN_ASSIGN_OR_RETURN(s.mc, r.integer(j, "mc", 1, 1 << 20));
  KILN_ASSIGN_OR_RETURN(s.kc, r.integer(j, "kc", 0, 1 << 20));
  KILN_ASSIGN_OR_RETURN(s.nc, r.integer(j, "nc", 0, 1 << 20));
  KILN_ASSIGN_OR_RETURN(int64_t threads, r.integer(j, "threads", 0, 1024));
  if (j.contains("prefetch")) {  // absent in logs of kiln before the prefetch choice: on
    KILN_ASSIGN_OR_RETURN(int64_t prefetch, r.integer(j, "prefetch", 0, 1));
    s.prefetch = static_cast<int>(prefetch);
  }
  s.mr = static_cast<int>(mr);
  s.panels = static_cast<int>(panels);
  s.threads = static_cast<int>(threads);
  return s;
}

Result<Timing> timing_from_json(const json& j, const Reader& r) {
  if (!j.is_object()) return Status::error(r.where() + ": timing must be an object");
  Timing t;
  KILN_ASSIGN_OR_RETURN(const json* s, r.field(j, "schedule", json::value_t::object));
  KILN_ASSIGN_OR_RETURN(t.schedule, schedule_from_json(*s, r));
  KILN_ASSIGN_OR_RETURN(t.median_ns, r.number(j, "median_ns"));
  KILN_ASSIGN_OR_RETURN(t.min_ns, r.number(j, "min_ns"));
  KILN_ASSIGN_OR_RETURN(t.spread, r.number(j, "spread"));
  return t;
}

}  // namespace

ojson to_json(const TuningLog& log) {
  ojson entries = ojson::array();
  for (const Entry& e : log.entries)
    entries.push_back({{"op", e.op},
                       {"M", e.M},
                       {"N", e.N},
                       {"K", e.K},
                       {"gelu", e.gelu},
                       {"residual", e.residual},
                       {"layer_norm", e.layer_norm},
                       {"weight_group", e.weight_group},
                       {"nodes", e.nodes},
                       {"default", timing_json(e.default_timing)},
                       {"best", timing_json(e.best)},
                       {"tuned", e.tuned},
                       {"gain", e.gain()},
                       {"measured", e.measured}});
  ojson j = {{"format", kTuningLogFormat},
             {"version", log.version},
             {"kiln_version", log.kiln_version},
             {"cpu", log.cpu},
             {"cache", log.cache},
             {"target", log.target},
             {"runner", log.runner},
             {"timings_meaningful", log.timings_meaningful},
             {"threads", log.threads},
             {"cpus", log.cpus},
             {"model", {{"file", log.model}, {"sha256", log.model_sha256}}},
             {"quantize", log.quantize},
             {"seq", log.seq},
             {"batch", log.batch},
             {"budget_seconds", log.budget_seconds},
             {"seconds", log.seconds},
             {"entries", entries}};
  return j;
}

Result<TuningLog> tuning_log_from_json(const json& j, const std::string& source) {
  Reader r(source);
  if (!j.is_object()) return Status::error(source + ": not a JSON object");
  KILN_ASSIGN_OR_RETURN(std::string format, r.string(j, "format"));
  if (format != kTuningLogFormat)
    return Status::error(source + ": \"format\" is '" + format + "', expected '" +
                         kTuningLogFormat + "' (a kiln tune log)");
  TuningLog log;
  KILN_ASSIGN_OR_RETURN(int64_t version, r.integer(j, "version", 0, 1 << 20));
  if (version != kTuningLogVersion)
    return Status::error(source + ": tuning log version " + std::to_string(version) +
                         ", this kiln reads version " + std::to_string(kTuningLogVersion) +
                         " (re-run kiln tune)");
  log.version = static_cast<int>(version);
  KILN_ASSIGN_OR_RETURN(const json* cpu, r.field(j, "cpu", json::value_t::object));
  log.cpu = *cpu;
  for (const char* k : {"arch", "key", "name"})
    if (!cpu->contains(k) || !(*cpu)[k].is_string() || (*cpu)[k].get<std::string>().empty())
      return Status::error(source + ": \"cpu\" lacks \"" + k + "\"");
  if (log.arch() != "x86_64" && log.arch() != "aarch64")
    return Status::error(source + ": unknown cpu arch '" + log.arch() + "'");
  if (auto c = j.find("cache"); c != j.end()) log.cache = *c;
  KILN_ASSIGN_OR_RETURN(log.target, r.string(j, "target"));
  KILN_ASSIGN_OR_RETURN(log.runner, r.string(j, "runner"));
  KILN_ASSIGN_OR_RETURN(log.timings_meaningful, r.boolean(j, "timings_meaningful"));
  KILN_ASSIGN_OR_RETURN(int64_t threads, r.integer(j, "threads", 1, 1024));
  log.threads = static_cast<int>(threads);
  log.kiln_version = j.value("kiln_version", "");
  if (auto m = j.find("model"); m != j.end() && m->is_object()) {
    log.model = m->value("file", "");
    log.model_sha256 = m->value("sha256", "");
  }
  log.quantize = j.value("quantize", "");
  KILN_ASSIGN_OR_RETURN(const json* entries, r.field(j, "entries", json::value_t::array));
  for (size_t i = 0; i < entries->size(); ++i) {
    const json& e = (*entries)[i];
    Reader er(source + ": entries[" + std::to_string(i) + "]");
    if (!e.is_object()) return Status::error(er.where() + ": not an object");
    Entry x;
    KILN_ASSIGN_OR_RETURN(x.op, er.string(e, "op"));
    if (x.op != "dense_f32" && x.op != "dense_s8")
      return Status::error(er.where() + ": unknown op '" + x.op + "'");
    KILN_ASSIGN_OR_RETURN(x.M, er.integer(e, "M", 1, 1 << 24));
    KILN_ASSIGN_OR_RETURN(x.N, er.integer(e, "N", 1, 1 << 24));
    KILN_ASSIGN_OR_RETURN(x.K, er.integer(e, "K", 1, 1 << 24));
    x.gelu = e.value("gelu", false);
    x.residual = e.value("residual", false);
    x.layer_norm = e.value("layer_norm", false);
    if (e.contains("weight_group")) {  // absent in logs of kiln before weight groups: 0
      KILN_ASSIGN_OR_RETURN(x.weight_group, er.integer(e, "weight_group", 0, 1 << 24));
      if (x.weight_group &&
          (x.op != "dense_s8" || !kernels::gemm::valid_s8_weight_group(x.weight_group)))
        return Status::error(er.where() + ": \"weight_group\" = " + std::to_string(x.weight_group) +
                             (x.op != "dense_s8"
                                  ? " on a " + x.op + " entry (INT8 only)"
                                  : " is not a multiple of 4 from 4 to " +
                                        std::to_string(kernels::gemm::kMaxS8WeightGroup)));
    }
    if (auto n = e.find("nodes"); n != e.end() && n->is_array())
      for (const json& s : *n)
        if (s.is_string()) x.nodes.push_back(s.get<std::string>());
    KILN_ASSIGN_OR_RETURN(const json* d, er.field(e, "default", json::value_t::object));
    KILN_ASSIGN_OR_RETURN(x.default_timing, timing_from_json(*d, er));
    KILN_ASSIGN_OR_RETURN(const json* b, er.field(e, "best", json::value_t::object));
    KILN_ASSIGN_OR_RETURN(x.best, timing_from_json(*b, er));
    KILN_ASSIGN_OR_RETURN(x.tuned, er.boolean(e, "tuned"));
    x.measured = static_cast<int>(e.value("measured", 0));
    for (const Entry& prev : log.entries)
      if (prev.op == x.op && prev.M == x.M && prev.N == x.N && prev.K == x.K &&
          prev.weight_group == x.weight_group)
        return Status::error(er.where() + ": duplicate entry for " + x.str());
    log.entries.push_back(std::move(x));
  }
  return log;
}

Result<TuningLog> read_tuning_log(const std::string& path) {
  std::ifstream f(path);
  if (!f) return Status::error(path + ": cannot open the tuning log");
  json j = json::parse(f, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Status::error(path + ": not valid JSON (a kiln tune log?)");
  return tuning_log_from_json(j, path);
}

Status write_tuning_log(const TuningLog& log, const std::string& path) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp);
    if (!f) return Status::error(path + ": cannot write");
    f << to_json(log).dump(1) << "\n";
    if (!f) return Status::error(path + ": write failed");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0)
    return Status::error(path + ": cannot rename " + tmp);
  return Status::ok();
}

std::vector<TunedRow> tuned_rows(const TuningLog& log, const std::string& op, int64_t N, int64_t K,
                                 int64_t weight_group) {
  std::vector<const Entry*> es;
  bool any_tuned = false;
  for (const Entry& e : log.entries)
    if (e.op == op && e.N == N && e.K == K && e.weight_group == weight_group) {
      es.push_back(&e);
      any_tuned |= e.tuned;
    }
  if (!any_tuned) return {};
  std::sort(es.begin(), es.end(), [](const Entry* a, const Entry* b) { return a->M < b->M; });
  std::vector<TunedRow> rows;
  for (size_t i = 0; i < es.size(); ++i) {
    TunedRow r;
    r.schedule = es[i]->tuned ? es[i]->best.schedule : es[i]->default_timing.schedule;
    if (i + 1 < es.size())
      r.max_m = static_cast<int64_t>(std::sqrt(static_cast<double>(es[i]->M) * es[i + 1]->M));
    rows.push_back(r);
  }
  return rows;
}

}  // namespace kiln::tune
