// Reads model.json into a ModelDesc, checking every field, index, dtype, shape expression and the
// arena plan, so that nothing later in the runtime can index out of range on a corrupt artifact.
#include <cstring>
#include <set>

#include <nlohmann/json.hpp>

#include "artifact/graph_checksum.h"
#include "kiln/backend.h"
#include "runtime/artifact_file.h"
#include "runtime/dtype.h"
#include "runtime/model_desc.h"

namespace kiln::rt {
namespace {

using nlohmann::json;

// Thrown inside this file only; parse_model_json turns it into a Status.
struct JsonError {
  kiln_status code;
  std::string message;
};

[[noreturn]] void fail(const std::string& where, const std::string& what) {
  throw JsonError{KILN_ERROR_CORRUPT, where + ": " + what};
}

const json& member(const json& obj, const char* key, const std::string& where) {
  auto it = obj.find(key);
  if (it == obj.end()) fail(where, std::string("missing field '") + key + "'");
  return *it;
}

std::string get_string(const json& obj, const char* key, const std::string& where) {
  const json& v = member(obj, key, where);
  if (!v.is_string()) fail(where + "." + key, "expected a string, got " + v.dump());
  return v.get<std::string>();
}

std::string get_name(const json& obj, const std::string& where) {
  std::string s = get_string(obj, "name", where);
  if (s.empty()) fail(where + ".name", "empty name");
  return s;
}

int64_t as_int(const json& v, const std::string& where, int64_t lo, int64_t hi) {
  if (!v.is_number_integer()) fail(where, "expected an integer, got " + v.dump());
  if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX))
    fail(where, "value " + v.dump() + " is out of range");
  int64_t x = v.get<int64_t>();
  if (x < lo || x > hi)
    fail(where, "value " + std::to_string(x) + " is out of range [" + std::to_string(lo) + ", " +
                    std::to_string(hi) + "]");
  return x;
}

int64_t get_int(const json& obj, const char* key, const std::string& where, int64_t lo,
                int64_t hi) {
  return as_int(member(obj, key, where), where + "." + key, lo, hi);
}

const json& get_array(const json& obj, const char* key, const std::string& where) {
  const json& v = member(obj, key, where);
  if (!v.is_array()) fail(where + "." + key, "expected an array");
  return v;
}

const json& get_object(const json& obj, const char* key, const std::string& where) {
  const json& v = member(obj, key, where);
  if (!v.is_object()) fail(where + "." + key, "expected an object");
  return v;
}

bool is_identifier(const std::string& s) {
  if (s.empty() || std::isdigit(static_cast<unsigned char>(s[0]))) return false;
  for (char c : s)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') return false;
  return true;
}

// A file name inside the artifact directory: no path separators, not "." or "..".
std::string get_file_name(const json& obj, const char* key, const std::string& where) {
  std::string s = get_string(obj, key, where);
  if (s.empty() || s == "." || s == ".." || s.find('/') != std::string::npos ||
      s.find('\0') != std::string::npos)
    fail(where + "." + key, "'" + s + "' is not a file name inside the artifact directory");
  return s;
}

constexpr int kMaxRank = 16;
constexpr int64_t kMaxCount = int64_t{1} << 31;

void parse_symbols(const json& root, ModelDesc* m) {
  const json& syms = get_array(root, "symbols", "model.json");
  if (syms.size() > KILN_MAX_SYMBOLS)
    fail("symbols", std::to_string(syms.size()) + " symbols, at most " +
                        std::to_string(KILN_MAX_SYMBOLS) + " are supported");
  for (size_t i = 0; i < syms.size(); ++i) {
    std::string where = "symbols[" + std::to_string(i) + "]";
    if (!syms[i].is_object()) fail(where, "expected an object");
    SymbolDesc s;
    s.name = get_string(syms[i], "name", where);
    if (!is_identifier(s.name)) fail(where + ".name", "'" + s.name + "' is not an identifier");
    for (const auto& o : m->symbols)
      if (o.name == s.name) fail(where + ".name", "duplicate symbol '" + s.name + "'");
    s.max = get_int(syms[i], "max", where, 0, INT64_MAX);
    m->symbols.push_back(s);
    m->symbol_names.push_back(s.name);
  }
}

void parse_target(const json& root, ModelDesc* m) {
  const json& t = get_object(root, "target", "model.json");
  m->target_name = get_string(t, "name", "target");
  m->target_arch = get_string(t, "arch", "target");
  if (t.contains("cpu") && t["cpu"].is_string()) m->target_cpu = t["cpu"].get<std::string>();
  const json& f = get_array(t, "features", "target");
  for (size_t i = 0; i < f.size(); ++i) {
    if (!f[i].is_string()) fail("target.features[" + std::to_string(i) + "]", "expected a string");
    m->features.push_back(f[i].get<std::string>());
  }
}

void parse_params(const json& root, ModelDesc* m) {
  const json& p = get_object(root, "params", "model.json");
  m->params_file = get_file_name(p, "file", "params");
  m->params_bytes = static_cast<uint64_t>(get_int(p, "bytes", "params", 0, INT64_MAX));
  m->params_count = get_int(p, "count", "params", 0, kMaxCount);
  if (p.contains("table_crc32")) {
    m->has_table_crc = true;
    m->table_crc32 = static_cast<uint32_t>(get_int(p, "table_crc32", "params", 0, UINT32_MAX));
  }
}

// Optional (additive): model.so's size and CRC-32, checked before dlopen (model_load.cpp).
void parse_library_checksum(const json& root, ModelDesc* m) {
  if (!root.contains("library_bytes") && !root.contains("library_crc32")) return;
  m->has_library_checksum = true;
  m->library_bytes = static_cast<uint64_t>(
      get_int(root, "library_bytes", "model.json", 1, static_cast<int64_t>(kMaxLibraryBytes)));
  m->library_crc32 =
      static_cast<uint32_t>(get_int(root, "library_crc32", "model.json", 0, UINT32_MAX));
}

void parse_arena(const json& root, ModelDesc* m) {
  const json& a = get_object(root, "arena", "model.json");
  m->arena_bytes = static_cast<uint64_t>(get_int(a, "bytes", "arena", 0, INT64_MAX));
  if (a.contains("alignment")) {
    int64_t al = get_int(a, "alignment", "arena", 1, 4096);
    if (al & (al - 1)) fail("arena.alignment", std::to_string(al) + " is not a power of two");
    m->arena_alignment = static_cast<uint64_t>(al);
  }
  if (a.contains("scale") && !a["scale"].is_null()) {
    std::string scale = get_string(a, "scale", "arena");
    for (size_t i = 0; i < m->symbols.size(); ++i)
      if (m->symbols[i].name == scale) m->arena_scale = static_cast<int>(i);
    if (m->arena_scale < 0) fail("arena.scale", "unknown symbol '" + scale + "'");
  }
}

Storage parse_storage(const std::string& s, const std::string& where) {
  if (s == "input") return Storage::kInput;
  if (s == "output") return Storage::kOutput;
  if (s == "param") return Storage::kParam;
  if (s == "arena") return Storage::kArena;
  fail(where, "unknown storage '" + s + "' (expected input, output, param or arena)");
}

void parse_tensors(const json& root, ModelDesc* m) {
  const json& ts = get_array(root, "tensors", "model.json");
  if (static_cast<int64_t>(ts.size()) > kMaxCount) fail("tensors", "too many tensors");
  for (size_t i = 0; i < ts.size(); ++i) {
    const json& j = ts[i];
    std::string where = "tensors[" + std::to_string(i) + "]";
    if (!j.is_object()) fail(where, "expected an object");
    TensorDesc t;
    t.name = get_name(j, where);
    where += " '" + t.name + "'";
    std::string dt = get_string(j, "dtype", where);
    if (!parse_dtype(dt, &t.dtype)) fail(where + ".dtype", "unknown dtype '" + dt + "'");
    const json& shape = get_array(j, "shape", where);
    if (shape.size() > kMaxRank) fail(where + ".shape", "rank " + std::to_string(shape.size()));
    for (size_t k = 0; k < shape.size(); ++k) {
      std::string dw = where + ".shape[" + std::to_string(k) + "]";
      SymDim d;
      if (shape[k].is_number_integer()) {
        d.coef = as_int(shape[k], dw, 0, INT64_MAX);
      } else if (shape[k].is_string()) {
        std::string err;
        if (!parse_sym_dim(shape[k].get<std::string>(), m->symbol_names, &d, &err)) fail(dw, err);
      } else {
        fail(dw, "expected an integer or a symbolic expression, got " + shape[k].dump());
      }
      t.shape.push_back(d);
    }
    t.storage = parse_storage(get_string(j, "storage", where), where + ".storage");
    if (t.storage == Storage::kArena) {
      t.offset = static_cast<uint64_t>(get_int(j, "offset", where, 0, INT64_MAX));
    } else {
      t.index = get_int(j, "index", where, 0, kMaxCount);
    }
    m->tensors.push_back(std::move(t));
  }
}

void parse_io(const json& root, const char* key, Storage storage, std::vector<IoDesc>* out,
              ModelDesc* m) {
  const json& arr = get_array(root, key, "model.json");
  const int64_t nt = static_cast<int64_t>(m->tensors.size());
  for (size_t i = 0; i < arr.size(); ++i) {
    std::string where = std::string(key) + "[" + std::to_string(i) + "]";
    if (!arr[i].is_object()) fail(where, "expected an object");
    IoDesc io;
    io.name = get_name(arr[i], where);
    io.tensor = static_cast<int>(get_int(arr[i], "tensor", where, 0, nt - 1));
    for (const auto& o : *out)
      if (o.name == io.name) fail(where, "duplicate name '" + io.name + "'");
    const TensorDesc& t = m->tensors[io.tensor];
    if (t.storage != storage || t.index != static_cast<int64_t>(i))
      fail(where, "tensor " + std::to_string(io.tensor) + " '" + t.name +
                      "' does not have storage " +
                      (storage == Storage::kInput ? "input" : "output") + " with index " +
                      std::to_string(i));
    out->push_back(io);
  }
}

void parse_nodes(const json& root, ModelDesc* m) {
  const json& ns = get_array(root, "nodes", "model.json");
  const int64_t nt = static_cast<int64_t>(m->tensors.size());
  for (size_t i = 0; i < ns.size(); ++i) {
    const json& j = ns[i];
    std::string where = "nodes[" + std::to_string(i) + "]";
    if (!j.is_object()) fail(where, "expected an object");
    NodeDesc n;
    n.name = get_name(j, where);
    where += " '" + n.name + "'";
    n.op = get_string(j, "op", where);
    n.kernel = get_string(j, "kernel", where);
    if (!is_identifier(n.kernel))
      fail(where + ".kernel", "'" + n.kernel + "' is not a symbol name");
    const json& ins = get_array(j, "inputs", where);
    for (size_t k = 0; k < ins.size(); ++k)
      n.inputs.push_back(static_cast<int>(
          as_int(ins[k], where + ".inputs[" + std::to_string(k) + "]", -1, nt - 1)));
    const json& outs = get_array(j, "outputs", where);
    for (size_t k = 0; k < outs.size(); ++k) {
      std::string ow = where + ".outputs[" + std::to_string(k) + "]";
      int t = static_cast<int>(as_int(outs[k], ow, 0, nt - 1));
      Storage s = m->tensors[t].storage;
      if (s == Storage::kParam || s == Storage::kInput)
        fail(ow, "tensor " + std::to_string(t) + " '" + m->tensors[t].name + "' is a read-only " +
                     (s == Storage::kParam ? "param" : "input"));
      n.outputs.push_back(t);
    }
    if (j.contains("attrs")) n.attrs = j["attrs"].dump();
    if (j.contains("schedule")) n.schedule = j["schedule"].dump();
    m->nodes.push_back(std::move(n));
  }
}

void parse_tokenizer(const json& root, ModelDesc* m) {
  if (!root.contains("tokenizer") || root["tokenizer"].is_null()) return;
  const json& t = get_object(root, "tokenizer", "model.json");
  TokenizerDesc& d = m->tokenizer;
  d.present = true;
  d.type = get_string(t, "type", "tokenizer");
  if (d.type == "tokenizer_json") {
    d.vocab_file = get_file_name(t, "file", "tokenizer");
    d.model = get_string(t, "model", "tokenizer");
    d.vocab_size = get_int(t, "vocab_size", "tokenizer", 1, kMaxCount);
    d.vocab_crc32 = static_cast<uint32_t>(get_int(t, "crc32", "tokenizer", 0, UINT32_MAX));
    return;
  }
  if (d.type != "bert_wordpiece")
    throw JsonError{KILN_ERROR_INCOMPATIBLE, "tokenizer.type: '" + d.type +
                                                 "' is not supported (this runtime knows "
                                                 "bert_wordpiece and tokenizer_json)"};
  d.vocab_file = get_file_name(t, "vocab", "tokenizer");
  d.vocab_size = get_int(t, "vocab_size", "tokenizer", 1, kMaxCount);
  d.vocab_crc32 = static_cast<uint32_t>(get_int(t, "vocab_crc32", "tokenizer", 0, UINT32_MAX));
  const json& lower = member(t, "lower_case", "tokenizer");
  if (!lower.is_boolean()) fail("tokenizer.lower_case", "expected true or false");
  d.lower_case = lower.get<bool>();
  if (t.contains("max_chars_per_word"))
    d.max_chars_per_word = get_int(t, "max_chars_per_word", "tokenizer", 1, 1 << 20);
  for (auto [key, field] : {std::pair<const char*, std::string*>{"cls_token", &d.cls},
                            {"sep_token", &d.sep},
                            {"unk_token", &d.unk},
                            {"pad_token", &d.pad}})
    if (t.contains(key)) *field = get_string(t, key, "tokenizer");
}

void parse_pooling(const json& root, ModelDesc* m) {
  if (!root.contains("pooling") || root["pooling"].is_null()) return;
  const json& p = get_object(root, "pooling", "model.json");
  PoolingDesc& d = m->pooling;
  d.present = true;
  d.mode = get_string(p, "mode", "pooling");
  d.output = get_string(p, "output", "pooling");
  const json& normalize = member(p, "normalize", "pooling");
  if (!normalize.is_boolean()) fail("pooling.normalize", "expected true or false");
  d.normalize = normalize.get<bool>();
}

// Cross-field checks: storage indices, symbol binding, arena bounds.
void check_plan(ModelDesc* m) {
  for (size_t i = 0; i < m->tensors.size(); ++i) {
    const TensorDesc& t = m->tensors[i];
    std::string where = "tensors[" + std::to_string(i) + "] '" + t.name + "'";
    if (t.storage == Storage::kInput && (t.index >= static_cast<int64_t>(m->inputs.size()) ||
                                         m->inputs[t.index].tensor != static_cast<int>(i)))
      fail(where, "input index " + std::to_string(t.index) + " does not name this tensor");
    if (t.storage == Storage::kOutput && (t.index >= static_cast<int64_t>(m->outputs.size()) ||
                                          m->outputs[t.index].tensor != static_cast<int>(i)))
      fail(where, "output index " + std::to_string(t.index) + " does not name this tensor");
    if (t.storage == Storage::kParam && t.index >= m->params_count)
      fail(where, "param index " + std::to_string(t.index) + " is out of range (params.count " +
                      std::to_string(m->params_count) + ")");
  }
  // Every symbol a shape uses must be bound by an input dim that is exactly that symbol.
  std::vector<bool> bound(m->symbols.size(), false);
  for (const IoDesc& in : m->inputs)
    for (const SymDim& d : m->tensors[in.tensor].shape)
      if (d.single_symbol() >= 0) bound[d.single_symbol()] = true;
  for (const TensorDesc& t : m->tensors)
    for (const SymDim& d : t.shape)
      for (size_t s = 0; s < m->symbols.size(); ++s)
        if (d.uses(static_cast<int>(s)) && !bound[s])
          fail("tensor '" + t.name + "'", "symbol '" + m->symbols[s].name +
                                              "' is not a dimension of any input, so it cannot "
                                              "be bound");
  // Arena tensors fit the plan at the maxima with the scale symbol at 1.
  int64_t sym[KILN_MAX_SYMBOLS] = {};
  bool bounded[KILN_MAX_SYMBOLS] = {};
  for (size_t s = 0; s < m->symbols.size(); ++s) {
    sym[s] = static_cast<int>(s) == m->arena_scale ? 1 : m->symbols[s].max;
    bounded[s] = static_cast<int>(s) == m->arena_scale || m->symbols[s].max > 0;
  }
  // Any tensor's size at the maxima must fit int64 (shapes with unbounded symbols are checked
  // at run time).
  for (const TensorDesc& t : m->tensors) {
    int64_t at_max[KILN_MAX_SYMBOLS] = {};
    bool all_bounded = true;
    for (size_t s = 0; s < m->symbols.size(); ++s) {
      at_max[s] = m->symbols[s].max;
      for (const SymDim& d : t.shape)
        if (d.uses(static_cast<int>(s)) && m->symbols[s].max == 0) all_bounded = false;
    }
    int64_t numel = 0;
    uint64_t bytes = 0;
    if (all_bounded &&
        (!shape_numel(t.shape, at_max, &numel) ||
         __builtin_mul_overflow(static_cast<uint64_t>(numel), dtype_size(t.dtype), &bytes) ||
         bytes > static_cast<uint64_t>(INT64_MAX)))
      fail("tensor '" + t.name + "'", "size at the symbols' maxima overflows");
  }
  for (const TensorDesc& t : m->tensors) {
    if (t.storage != Storage::kArena) continue;
    std::string where = "tensor '" + t.name + "'";
    bool all_bounded = true;
    for (const SymDim& d : t.shape) {
      for (size_t s = 0; s < m->symbols.size(); ++s)
        if (d.uses(static_cast<int>(s)) && !bounded[s]) all_bounded = false;
      if (m->arena_scale >= 0 && d.pow[m->arena_scale] > 1)
        fail(where, "arena tensor is not linear in the scale symbol '" +
                        m->symbols[m->arena_scale].name + "'");
    }
    if (!all_bounded)
      fail(where, "arena tensor depends on an unbounded symbol (max 0) other than the scale");
    int64_t numel = 0;
    uint64_t end = 0;
    if (!shape_numel(t.shape, sym, &numel) ||
        __builtin_mul_overflow(static_cast<uint64_t>(numel), dtype_size(t.dtype), &end) ||
        __builtin_add_overflow(end, t.offset, &end) || end > m->arena_bytes)
      fail(where, "arena offset " + std::to_string(t.offset) + " + size does not fit arena.bytes " +
                      std::to_string(m->arena_bytes));
  }
}

std::string describe_position(const std::string& text, size_t byte) {
  size_t line = 1, col = 1;
  for (size_t i = 0; i < byte && i < text.size(); ++i) {
    if (text[i] == '\n') {
      ++line;
      col = 1;
    } else {
      ++col;
    }
  }
  return "line " + std::to_string(line) + ", column " + std::to_string(col) + " (byte " +
         std::to_string(byte) + ")";
}

}  // namespace

bool shape_numel(const std::vector<SymDim>& shape, const int64_t* sym, int64_t* out) {
  int64_t n = 1;
  for (const SymDim& d : shape) {
    int64_t v;
    if (!d.eval(sym, &v) || __builtin_mul_overflow(n, v, &n)) return false;
  }
  *out = n;
  return true;
}

Status parse_model_json(const std::string& path, ModelDesc* out) {
  std::string text;
  KILN_RT_TRY(read_artifact_file(path, kMaxModelJsonBytes, &text));
  json root;
  try {
    root = json::parse(text);
  } catch (const json::parse_error& e) {
    std::string what = e.what();
    // nlohmann's message starts with "[json.exception.parse_error.101] parse error at ...".
    size_t p = what.find("] ");
    if (p != std::string::npos) what = what.substr(p + 2);
    return error(KILN_ERROR_CORRUPT, path + ": invalid JSON at " +
                                         describe_position(text, e.byte ? e.byte - 1 : 0) + ": " +
                                         what);
  } catch (const std::exception& e) {
    return error(KILN_ERROR_CORRUPT, path + ": invalid JSON: " + e.what());
  }
  ModelDesc m;
  try {
    if (!root.is_object()) fail("model.json", "the top level is not an object");
    if (!root.contains("format") || root["format"] != "kiln")
      fail("format", "not a kiln artifact (expected \"format\": \"kiln\")");
    int64_t version = get_int(root, "format_version", "model.json", 0, INT64_MAX);
    if (version != KILN_FORMAT_VERSION) {
      // Say which side to update: a newer artifact needs a newer runtime, an older one a
      // recompile (the runtime reads one format; the compiler's version names the release).
      std::string from;
      if (root.contains("compiler") && root["compiler"].is_object() &&
          root["compiler"].contains("version") && root["compiler"]["version"].is_string())
        from = root["compiler"]["version"].get<std::string>();
      const std::string fix =
          version > KILN_FORMAT_VERSION
              ? "; it was compiled by kiln " + (from.empty() ? std::string("(unknown)") : from) +
                    ": upgrade the runtime to that version (pip install -U kiln-runtime, or the "
                    "libkiln_runtime.so of a bundle made by that kiln)"
              : "; recompile the model with kiln " KILN_VERSION;
      throw JsonError{KILN_ERROR_INCOMPATIBLE,
                      "format version " + std::to_string(version) + ", this runtime reads " +
                          std::to_string(KILN_FORMAT_VERSION) + " (kiln " KILN_VERSION ")" + fix};
    }
    if (root.contains("abi_version")) {
      int64_t abi = get_int(root, "abi_version", "model.json", 0, INT64_MAX);
      if (abi != KILN_ABI_VERSION)
        throw JsonError{KILN_ERROR_INCOMPATIBLE, "ABI version " + std::to_string(abi) +
                                                     ", this runtime implements " +
                                                     std::to_string(KILN_ABI_VERSION)};
    }
    if (root.contains("compiler") && root["compiler"].is_object() &&
        root["compiler"].contains("version") && root["compiler"]["version"].is_string())
      m.compiler_version = root["compiler"]["version"].get<std::string>();
    if (root.contains("compiler") && root["compiler"].is_object() &&
        root["compiler"].contains("fusions") && root["compiler"]["fusions"].is_array())
      for (const auto& f : root["compiler"]["fusions"]) {  // only shown by inspect: skip odd ones
        if (!f.is_object() || !f.contains("op") || !f["op"].is_string() || !f.contains("fused") ||
            !f["fused"].is_number_integer() || !f.contains("replaced") ||
            !f["replaced"].is_number_integer())
          continue;
        m.fusions.push_back(
            {f["op"].get<std::string>(), f["fused"].get<int64_t>(), f["replaced"].get<int64_t>()});
      }
    parse_target(root, &m);
    if (root.contains("library")) m.library = get_file_name(root, "library", "model.json");
    parse_library_checksum(root, &m);
    parse_params(root, &m);
    parse_symbols(root, &m);
    parse_arena(root, &m);
    parse_tensors(root, &m);
    parse_io(root, "inputs", Storage::kInput, &m.inputs, &m);
    parse_io(root, "outputs", Storage::kOutput, &m.outputs, &m);
    parse_nodes(root, &m);
    parse_tokenizer(root, &m);
    parse_pooling(root, &m);
    check_plan(&m);
    if (root.contains("graph_crc32")) {
      m.has_graph_crc32 = true;
      m.graph_crc32 =
          static_cast<uint32_t>(get_int(root, "graph_crc32", "model.json", 0, UINT32_MAX));
    }
    m.computed_graph_crc32 = artifact::graph_checksum(root);
  } catch (const JsonError& e) {
    return error(e.code, path + ": " + e.message);
  } catch (const std::exception& e) {
    return error(KILN_ERROR_CORRUPT, path + ": " + e.what());
  }
  *out = std::move(m);
  return ok_status();
}

}  // namespace kiln::rt
