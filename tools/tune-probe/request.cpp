// Request parsing for kiln-tune-probe (request.h). Every check names the field at fault:
// "tasks[0].candidates[2].mc: must be an integer in 1..1099511627776".
#include "request.h"

#include <algorithm>
#include <set>

#include "kiln/kernels/gemm/s8_pack.h"

namespace kiln::tune_probe {
namespace {

using nlohmann::json;

// Reads an integer field in [lo, hi] into *v; returns the error ("" when fine).
template <class T>
std::string get_int(const json& obj, const char* key, const std::string& where, int64_t lo,
                    int64_t hi, T* v) {
  const json& x = obj.at(key);
  const std::string name = where + key;
  const std::string range = std::to_string(lo) + ".." + std::to_string(hi);
  if (!x.is_number_integer()) return name + ": must be an integer in " + range;
  // Unsigned values above int64's range compare as huge positive numbers.
  if (x.is_number_unsigned() && x.get<uint64_t>() > static_cast<uint64_t>(hi))
    return name + ": must be an integer in " + range + ", got " + x.dump();
  const int64_t i = x.get<int64_t>();
  if (i < lo || i > hi) return name + ": must be an integer in " + range + ", got " + x.dump();
  *v = static_cast<T>(i);
  return "";
}

std::string get_bool(const json& obj, const char* key, const std::string& where, bool* v) {
  const json& x = obj.at(key);
  if (!x.is_boolean()) return where + key + ": must be true or false";
  *v = x.get<bool>();
  return "";
}

// The first key of obj not in `known`, as an error.
std::string unknown_key(const json& obj, const std::string& where,
                        std::initializer_list<const char*> known) {
  for (auto it = obj.begin(); it != obj.end(); ++it) {
    bool ok = false;
    for (const char* k : known) ok = ok || it.key() == k;
    if (!ok) {
      std::string list;
      for (const char* k : known) list += std::string(list.empty() ? "" : ", ") + k;
      return where + it.key() + ": unknown field (known: " + list + ")";
    }
  }
  return "";
}

// Keeps quoted text from the request short in messages.
std::string quoted(const std::string& s) {
  return "'" + (s.size() <= 64 ? s : s.substr(0, 64) + "...") + "'";
}

constexpr int64_t kMaxBlock = int64_t{1} << 40;

CandidateRequest parse_candidate(const json& c, const std::string& where) {
  CandidateRequest r;
  if (!c.is_object()) {
    r.error = where.substr(0, where.size() - 1) + ": must be an object";
    return r;
  }
  r.error =
      unknown_key(c, where, {"variant", "mr", "panels", "mc", "kc", "nc", "threads", "prefetch"});
  if (!r.error.empty()) return r;
  if (!c.contains("variant") || !c.at("variant").is_string()) {
    r.error = where + "variant: must be a string naming a kernel variant";
    return r;
  }
  r.variant = c.at("variant").get<std::string>();
  struct Field {
    const char* key;
    int64_t lo, hi;
    bool* has;
    int* i;
    int64_t* l;
  };
  const Field fields[] = {
      {"mr", 1, 1024, &r.has_mr, &r.mr, nullptr},
      {"panels", 1, 1024, &r.has_panels, &r.panels, nullptr},
      {"mc", 1, kMaxBlock, &r.has_mc, nullptr, &r.mc},
      {"kc", 0, kMaxBlock, &r.has_kc, nullptr, &r.kc},
      {"nc", 0, kMaxBlock, &r.has_nc, nullptr, &r.nc},
      {"threads", 0, kMaxThreads, &r.has_threads, &r.threads, nullptr},
      {"prefetch", 0, 1, &r.has_prefetch, &r.prefetch, nullptr},
  };
  for (const Field& f : fields) {
    if (!c.contains(f.key)) continue;
    r.error =
        f.i ? get_int(c, f.key, where, f.lo, f.hi, f.i) : get_int(c, f.key, where, f.lo, f.hi, f.l);
    if (!r.error.empty()) return r;
    *f.has = true;
  }
  return r;
}

TaskRequest parse_task(const json& t, const std::string& where, size_t index) {
  TaskRequest r;
  r.id = std::to_string(index);
  if (!t.is_object()) {
    r.error = where.substr(0, where.size() - 1) + ": must be an object";
    return r;
  }
  if (t.contains("id")) {
    if (!t.at("id").is_string()) {
      r.error = where + "id: must be a string";
      return r;
    }
    r.id = t.at("id").get<std::string>().substr(0, 256);
  }
  r.error = unknown_key(t, where,
                        {"id", "op", "M", "N", "K", "bias", "gelu", "residual", "layer_norm",
                         "weight_group", "candidates"});
  if (!r.error.empty()) return r;
  if (!t.contains("op") || !t.at("op").is_string()) {
    r.error = where + "op: must be \"dense_f32\" or \"dense_s8\"";
    return r;
  }
  const std::string op = t.at("op").get<std::string>();
  if (op == "dense_f32") {
    r.op = Op::kDenseF32;
  } else if (op == "dense_s8") {
    r.op = Op::kDenseS8;
  } else {
    r.error = where + "op: unknown op " + quoted(op) + " (known: dense_f32, dense_s8)";
    return r;
  }
  for (const char* key : {"M", "N", "K"}) {
    if (!t.contains(key)) {
      r.error = where + key + ": missing (an integer in 1.." + std::to_string(kMaxDim) + ")";
      return r;
    }
  }
  if (!(r.error = get_int(t, "M", where, 1, kMaxDim, &r.M)).empty() ||
      !(r.error = get_int(t, "N", where, 1, kMaxDim, &r.N)).empty() ||
      !(r.error = get_int(t, "K", where, 1, kMaxDim, &r.K)).empty())
    return r;
  if (r.M * r.K * 4 > kMaxOperandBytes || r.K * r.N * 4 > kMaxOperandBytes) {
    r.error = where + "M, N, K: M*K or K*N floats are over " +
              std::to_string(kMaxOperandBytes >> 20) + " MiB (M=" + std::to_string(r.M) +
              " N=" + std::to_string(r.N) + " K=" + std::to_string(r.K) + ")";
    return r;
  }
  for (auto [key, v] : {std::pair<const char*, bool*>{"bias", &r.bias},
                        {"gelu", &r.gelu},
                        {"residual", &r.residual},
                        {"layer_norm", &r.layer_norm}})
    if (t.contains(key) && !(r.error = get_bool(t, key, where, v)).empty()) return r;
  if (t.contains("weight_group")) {
    namespace gemm = kiln::kernels::gemm;
    if (!(r.error = get_int(t, "weight_group", where, 0, gemm::kMaxS8WeightGroup, &r.weight_group))
             .empty())
      return r;
    if (r.weight_group && (r.op != Op::kDenseS8 || !gemm::valid_s8_weight_group(r.weight_group))) {
      r.error = where + "weight_group: " +
                (r.op != Op::kDenseS8
                     ? std::string("only for op \"dense_s8\"")
                     : "must be 0 or a multiple of 4 (got " + std::to_string(r.weight_group) + ")");
      return r;
    }
  }
  if (!t.contains("candidates") || !t.at("candidates").is_array() || t.at("candidates").empty()) {
    r.error = where + "candidates: must be a non-empty array (candidate 0 is the default)";
    return r;
  }
  const json& cs = t.at("candidates");
  if (cs.size() > static_cast<size_t>(kMaxCandidates)) {
    r.error = where + "candidates: more than " + std::to_string(kMaxCandidates);
    return r;
  }
  for (size_t i = 0; i < cs.size(); ++i)
    r.candidates.push_back(
        parse_candidate(cs[i], where + "candidates[" + std::to_string(i) + "]."));
  if (task_bytes(r) > kMaxTaskBytes) {
    r.error = where.substr(0, where.size() - 1) + ": needs " + std::to_string(task_bytes(r) >> 20) +
              " MiB with " + std::to_string(r.candidates.size()) + " candidates, over the " +
              std::to_string(kMaxTaskBytes >> 20) + " MiB limit (fewer candidates or smaller M*N)";
    r.candidates.clear();
  }
  return r;
}

std::string parse_json(const json& j, Request* out) {
  if (!j.is_object()) return "the request must be a JSON object";
  if (!j.contains("protocol") || !j.at("protocol").is_string())
    return std::string("protocol: missing (expected \"") + kProtocol + "\")";
  const std::string protocol = j.at("protocol").get<std::string>();
  if (protocol != kProtocol)
    return "protocol: " + quoted(protocol) + " is not supported (this probe speaks \"" + kProtocol +
           "\")";
  std::string e =
      unknown_key(j, "", {"protocol", "threads", "cpus", "min_time_ms", "max_rounds", "tasks"});
  if (!e.empty()) return e;
  if (j.contains("threads") &&
      !(e = get_int(j, "threads", "", 0, kMaxThreads, &out->threads)).empty())
    return e;
  if (j.contains("max_rounds") &&
      !(e = get_int(j, "max_rounds", "", 1, 1000000, &out->max_rounds)).empty())
    return e;
  if (j.contains("min_time_ms")) {
    const json& x = j.at("min_time_ms");
    if (!x.is_number() || !(x.get<double>() >= 0) || !(x.get<double>() <= 3600e3))
      return "min_time_ms: must be a number in 0..3600000";
    out->min_time_ms = x.get<double>();
  }
  if (j.contains("cpus")) {
    const json& cpus = j.at("cpus");
    if (!cpus.is_array()) return "cpus: must be an array of CPU numbers";
    std::set<int> seen;
    for (size_t i = 0; i < cpus.size(); ++i) {
      int cpu = 0;
      const json holder = {{"x", cpus[i]}};
      if (!(e = get_int(holder, "x", "", 0, 1023, &cpu)).empty())
        return "cpus[" + std::to_string(i) + "]: must be an integer in 0..1023";
      if (!seen.insert(cpu).second) return "cpus: cpu " + std::to_string(cpu) + " is listed twice";
      out->cpus.push_back(cpu);
    }
  }
  if (j.contains("tasks")) {
    const json& tasks = j.at("tasks");
    if (!tasks.is_array()) return "tasks: must be an array";
    if (tasks.size() > static_cast<size_t>(kMaxTasks))
      return "tasks: more than " + std::to_string(kMaxTasks);
    for (size_t i = 0; i < tasks.size(); ++i)
      out->tasks.push_back(parse_task(tasks[i], "tasks[" + std::to_string(i) + "].", i));
  }
  return "";
}

}  // namespace

const char* op_name(Op op) {
  return op == Op::kDenseF32 ? "dense_f32" : "dense_s8";
}

int64_t task_bytes(const TaskRequest& t) {
  const int64_t c = static_cast<int64_t>(t.candidates.size());
  // A, W, the packed weight (about W again), bias/LN vectors, residual, reference and one C per
  // candidate, the INT8 workspace (about A again).
  return 4 * (2 * t.M * t.K + 2 * t.K * t.N + 4 * t.N + (c + 2) * t.M * t.N) + 64 * 1024;
}

std::string parse_request(const std::string& text, Request* out) {
  *out = Request{};
  json j;
  try {
    j = json::parse(text);
  } catch (const std::exception& e) {  // parse_error, or out_of_range.406 for 1e999999
    return std::string("malformed JSON: ") + e.what();
  }
  try {
    return parse_json(j, out);
  } catch (const std::exception& e) {  // a type nlohmann refused: a bug here, not a crash
    *out = Request{};
    return std::string("bad request: ") + e.what();
  }
}

}  // namespace kiln::tune_probe
