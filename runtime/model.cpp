// Model: load (validate json, params, CPU, model.so), set_input, run (bind symbols, plan on a new
// shape, call nodes). See docs/architecture.md, "Runtime".
#include "runtime/model.h"

#include <dlfcn.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>

#include <nlohmann/json.hpp>

#include "runtime/cpu_features.h"
#include "runtime/dtype.h"

namespace kiln::rt {

// ---- AlignedBuffer ----

AlignedBuffer::~AlignedBuffer() {
  std::free(data_);
}

AlignedBuffer::AlignedBuffer(AlignedBuffer&& o) noexcept : data_(o.data_), capacity_(o.capacity_) {
  o.data_ = nullptr;
  o.capacity_ = 0;
}

bool AlignedBuffer::reserve(size_t bytes, size_t alignment) {
  if (bytes < 64) bytes = 64;  // never hand a node a null pointer
  if (data_ && bytes <= capacity_) return true;
  if (alignment < 64) alignment = 64;
  size_t rounded = (bytes + alignment - 1) / alignment * alignment;
  if (rounded < bytes) return false;
  void* p = std::aligned_alloc(alignment, rounded);
  if (!p) return false;
  std::free(data_);
  data_ = static_cast<uint8_t*>(p);
  capacity_ = rounded;
  return true;
}

// ---- helpers ----

namespace {

std::string shape_str(const std::vector<SymDim>& shape, const std::vector<std::string>& names) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + shape[i].str(names);
  return s + "]";
}

std::string dims_str(const int64_t* dims, int rank) {
  std::string s = "[";
  for (int i = 0; i < rank; ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
  return s + "]";
}

std::string canonical_arch(const std::string& a) {
  if (a == "arm64" || a == "armv8" || a == "aarch64") return "aarch64";
  if (a == "x86-64" || a == "amd64" || a == "x64" || a == "x86_64") return "x86_64";
  return a;
}

}  // namespace

// ---- load ----

Status Model::load(const std::string& dir, const kiln_load_options* opts,
                   std::unique_ptr<Model>* out) {
  std::unique_ptr<Model> m(new Model());
  KILN_RT_TRY(m->load_impl(dir, opts));
  *out = std::move(m);
  return ok_status();
}

Model::~Model() {
  pool_.reset();
  if (library_) dlclose(library_);
}

Status Model::load_impl(const std::string& dir, const kiln_load_options* opts) {
  dir_ = dir.empty() ? "." : dir;
  struct stat st;
  if (stat(dir_.c_str(), &st) != 0)
    return error(KILN_ERROR_IO, "artifact directory '" + dir_ + "': " + std::strerror(errno));
  if (!S_ISDIR(st.st_mode))
    return error(KILN_ERROR_IO, "'" + dir_ +
                                    "' is not a directory (expected an artifact "
                                    "directory with model.json, model.so, model.params)");
  KILN_RT_TRY(parse_model_json(dir_ + "/model.json", &desc_));
  KILN_RT_TRY(check_target());
  const bool verify = !opts || opts->verify_params != 0;
  KILN_RT_TRY(params_.open(dir_ + "/" + desc_.params_file, verify));
  KILN_RT_TRY(check_params());
  KILN_RT_TRY(load_library());
  KILN_RT_TRY(load_tokenizer());

  inputs_.resize(desc_.inputs.size());
  outputs_.resize(desc_.outputs.size());
  auto declared = [&](const TensorDesc& t) {
    std::vector<int64_t> d;
    for (const SymDim& s : t.shape) d.push_back(s.is_constant() ? s.coef : -1);
    return d;
  };
  for (size_t i = 0; i < inputs_.size(); ++i) {
    inputs_[i].declared = declared(desc_.tensors[desc_.inputs[i].tensor]);
    inputs_[i].shape = inputs_[i].declared;
  }
  for (size_t i = 0; i < outputs_.size(); ++i) {
    outputs_[i].declared = declared(desc_.tensors[desc_.outputs[i].tensor]);
    outputs_[i].shape = outputs_[i].declared;
  }
  tensor_ptrs_.assign(desc_.tensors.size(), nullptr);
  for (size_t i = 0; i < desc_.tensors.size(); ++i) {
    const TensorDesc& t = desc_.tensors[i];
    if (t.storage == Storage::kParam)
      tensor_ptrs_[i] = const_cast<uint8_t*>(params_.data() + params_.entries()[t.index].offset);
  }
  size_t total = 0;
  for (const NodeDesc& n : desc_.nodes) {
    node_tensor_begin_.push_back(total);
    total += n.inputs.size() + n.outputs.size();
  }
  node_tensors_.assign(total, nullptr);

  backend_.abi_version = KILN_ABI_VERSION;
  backend_.parallel_for = &ThreadPool::parallel_for_entry;
  KILN_RT_TRY(set_num_threads(default_num_threads(opts ? opts->num_threads : 0)));
  const char* profile = std::getenv("KILN_PROFILE");
  set_profiling(profile && *profile && std::strcmp(profile, "0") != 0);
  build_describe();
  return ok_status();
}

Status Model::check_target() const {
  const std::string want = canonical_arch(desc_.target_arch), have = host_arch();
  if (want != have)
    return error(KILN_ERROR_INCOMPATIBLE, dir_ + ": artifact is built for " + want + " (target " +
                                              desc_.target_name + "), this runtime is " + have);
  for (const std::string& f : desc_.features) {
    switch (host_feature(f)) {
      case FeatureState::kPresent:
        break;
      case FeatureState::kAbsent:
        return error(KILN_ERROR_INCOMPATIBLE, dir_ + ": artifact needs CPU feature '" + f +
                                                  "' which this CPU lacks (target " +
                                                  desc_.target_name + ")");
      case FeatureState::kUnknown:
        return error(KILN_ERROR_INCOMPATIBLE, dir_ + ": artifact needs CPU feature '" + f +
                                                  "' which this runtime does not know on " + have);
    }
  }
  return ok_status();
}

Status Model::check_params() {
  const std::string file = dir_ + "/" + desc_.params_file;
  const auto& entries = params_.entries();
  if (static_cast<int64_t>(entries.size()) != desc_.params_count)
    return error(KILN_ERROR_CORRUPT, file + ": " + std::to_string(entries.size()) +
                                         " tensors, model.json says " +
                                         std::to_string(desc_.params_count));
  if (desc_.params_bytes != params_.file_bytes())
    return error(KILN_ERROR_CORRUPT, file + ": " + std::to_string(params_.file_bytes()) +
                                         " bytes, model.json says " +
                                         std::to_string(desc_.params_bytes));
  if (desc_.has_table_crc && desc_.table_crc32 != params_.table_crc32())
    return error(KILN_ERROR_CORRUPT, file +
                                         ": table checksum differs from model.json's "
                                         "params.table_crc32 (files from different builds?)");
  for (const TensorDesc& t : desc_.tensors) {
    if (t.storage != Storage::kParam) continue;
    const ParamEntry& e = entries[t.index];
    bool match = e.dtype == t.dtype && e.dims.size() == t.shape.size();
    for (size_t k = 0; match && k < t.shape.size(); ++k)
      match = t.shape[k].is_constant() && t.shape[k].coef == e.dims[k];
    if (!match)
      return error(KILN_ERROR_CORRUPT,
                   file + ": param " + std::to_string(t.index) + " '" + e.name + "' is " +
                       dtype_name(e.dtype) + dims_str(e.dims.data(), int(e.dims.size())) +
                       " but model.json tensor '" + t.name + "' is " + dtype_name(t.dtype) +
                       shape_str(t.shape, desc_.symbol_names));
  }
  return ok_status();
}

Status Model::load_library() {
  const std::string path = dir_ + "/" + desc_.library;
  struct stat st;
  if (stat(path.c_str(), &st) != 0)
    return error(KILN_ERROR_IO, "cannot open '" + path + "': " + std::strerror(errno));
  dlerror();
  library_ = dlopen(path.c_str(), RTLD_LOCAL | RTLD_NOW);
  if (!library_) {
    const char* e = dlerror();
    return error(KILN_ERROR_INCOMPATIBLE,
                 "cannot load '" + path + "': " + (e ? e : "unknown dlopen error"));
  }
  auto abi = reinterpret_cast<kiln_model_abi_version_fn>(dlsym(library_, "kiln_model_abi_version"));
  if (!abi)
    return error(KILN_ERROR_CORRUPT, path +
                                         ": does not export kiln_model_abi_version (not a "
                                         "kiln model library?)");
  uint32_t v = abi();
  if (v != KILN_ABI_VERSION)
    return error(KILN_ERROR_INCOMPATIBLE, path + ": ABI version " + std::to_string(v) +
                                              ", this runtime implements " +
                                              std::to_string(KILN_ABI_VERSION));
  auto target = reinterpret_cast<kiln_model_target_fn>(dlsym(library_, "kiln_model_target"));
  if (!target) return error(KILN_ERROR_CORRUPT, path + ": does not export kiln_model_target");
  const char* t = target();
  if (!t || desc_.target_name != t)
    return error(KILN_ERROR_CORRUPT, path + ": built for target '" + std::string(t ? t : "") +
                                         "' but model.json says '" + desc_.target_name + "'");
  KILN_RT_TRY(check_graph_checksum(path));
  // Optional: a model.so from before kiln_model_kernel_variant simply does not export it.
  auto variant =
      reinterpret_cast<kiln_model_kernel_variant_fn>(dlsym(library_, "kiln_model_kernel_variant"));
  if (const char* v = variant ? variant() : nullptr) kernel_variant_ = v;
  for (const NodeDesc& n : desc_.nodes) {
    auto fn = reinterpret_cast<kiln_node_fn>(dlsym(library_, n.kernel.c_str()));
    if (!fn)
      return error(KILN_ERROR_CORRUPT, path + ": does not export kernel '" + n.kernel +
                                           "' of node '" + n.name + "' (" + n.op + ")");
    node_fns_.push_back(fn);
  }
  return ok_status();
}

// model.so bakes in model.json's shapes and tensor slots: both must come from one compile, and
// model.json must not have been edited since (artifact/graph_checksum.h). A library without
// kiln_model_graph_crc32 (hand-written test fixtures) is not checked.
Status Model::check_graph_checksum(const std::string& path) const {
  using Fn = uint32_t (*)();
  auto fn = reinterpret_cast<Fn>(dlsym(library_, "kiln_model_graph_crc32"));
  if (!fn) return ok_status();
  const uint32_t so = fn();
  const std::string json = dir_ + "/model.json";
  if (!desc_.has_graph_crc32)
    return error(KILN_ERROR_CORRUPT, json + ": no graph_crc32, but " + path +
                                         " was compiled for graph checksum " + std::to_string(so) +
                                         " (model.json was edited?)");
  if (desc_.computed_graph_crc32 != desc_.graph_crc32)
    return error(KILN_ERROR_CORRUPT,
                 json +
                     ": the graph sections (symbols, params, arena, tensors, inputs, outputs, "
                     "nodes) have checksum " +
                     std::to_string(desc_.computed_graph_crc32) + " but graph_crc32 says " +
                     std::to_string(desc_.graph_crc32) +
                     ": the file was edited after compilation; recompile the model");
  if (so != desc_.graph_crc32)
    return error(KILN_ERROR_CORRUPT, path + " was compiled for graph checksum " +
                                         std::to_string(so) + " but " + json + " has " +
                                         std::to_string(desc_.graph_crc32) +
                                         ": model.json and model.so come from different compiles");
  return ok_status();
}

// ---- inputs and outputs ----

int Model::input_index(const char* name) const {
  for (size_t i = 0; name && i < desc_.inputs.size(); ++i)
    if (desc_.inputs[i].name == name) return static_cast<int>(i);
  return -1;
}

int Model::output_index(const char* name) const {
  for (size_t i = 0; name && i < desc_.outputs.size(); ++i)
    if (desc_.outputs[i].name == name) return static_cast<int>(i);
  return -1;
}

Status Model::input_info(int index, kiln_tensor_info* out) const {
  if (index < 0 || index >= num_inputs())
    return error(KILN_ERROR_INVALID_ARGUMENT, "input index " + std::to_string(index) +
                                                  " is out of range (the model has " +
                                                  std::to_string(num_inputs()) + " inputs)");
  const TensorDesc& t = desc_.tensors[desc_.inputs[index].tensor];
  *out = kiln_tensor_info{
      desc_.inputs[index].name.c_str(), t.dtype, static_cast<int32_t>(t.shape.size()),
      inputs_[index].declared.data(),   nullptr, 0};
  return ok_status();
}

Status Model::output_info(int index, kiln_tensor_info* out) const {
  if (index < 0 || index >= num_outputs())
    return error(KILN_ERROR_INVALID_ARGUMENT, "output index " + std::to_string(index) +
                                                  " is out of range (the model has " +
                                                  std::to_string(num_outputs()) + " outputs)");
  const TensorDesc& t = desc_.tensors[desc_.outputs[index].tensor];
  *out = kiln_tensor_info{
      desc_.outputs[index].name.c_str(), t.dtype, static_cast<int32_t>(t.shape.size()),
      outputs_[index].declared.data(),   nullptr, 0};
  return ok_status();
}

Status Model::set_input(int index, kiln_dtype dtype, const int64_t* shape, int rank,
                        const void* data) {
  if (index < 0 || index >= num_inputs())
    return error(KILN_ERROR_INVALID_ARGUMENT, "input index " + std::to_string(index) +
                                                  " is out of range (the model has " +
                                                  std::to_string(num_inputs()) + " inputs)");
  const IoDesc& io = desc_.inputs[index];
  const TensorDesc& t = desc_.tensors[io.tensor];
  const std::string who = "input '" + io.name + "'";
  const bool widen = t.dtype == KILN_INT64 && dtype == KILN_INT32;
  if (dtype != t.dtype && !widen)
    return error(KILN_ERROR_INVALID_ARGUMENT,
                 who + ": dtype " + dtype_name(dtype) + ", expected " + dtype_name(t.dtype));
  if (rank != static_cast<int>(t.shape.size()))
    return error(KILN_ERROR_INVALID_ARGUMENT, who + ": rank " + std::to_string(rank) +
                                                  ", expected " + std::to_string(t.shape.size()) +
                                                  " " + shape_str(t.shape, desc_.symbol_names));
  if (rank > 0 && !shape) return error(KILN_ERROR_INVALID_ARGUMENT, who + ": shape is NULL");
  int64_t numel = 1;
  for (int i = 0; i < rank; ++i) {
    if (shape[i] < 0)
      return error(KILN_ERROR_INVALID_ARGUMENT,
                   who + ": negative dimension in shape " + dims_str(shape, rank));
    if (t.shape[i].is_constant() && t.shape[i].coef != shape[i])
      return error(KILN_ERROR_INVALID_ARGUMENT,
                   who + ": shape " + dims_str(shape, rank) + ", dimension " + std::to_string(i) +
                       " must be " + std::to_string(t.shape[i].coef) + " (declared " +
                       shape_str(t.shape, desc_.symbol_names) + ")");
    if (__builtin_mul_overflow(numel, shape[i], &numel))
      return error(KILN_ERROR_INVALID_ARGUMENT,
                   who + ": shape " + dims_str(shape, rank) + " is too large");
  }
  size_t nbytes = 0;
  if (__builtin_mul_overflow(static_cast<size_t>(numel), dtype_size(t.dtype), &nbytes))
    return error(KILN_ERROR_INVALID_ARGUMENT,
                 who + ": shape " + dims_str(shape, rank) + " is too large");
  if (nbytes > 0 && !data) return error(KILN_ERROR_INVALID_ARGUMENT, who + ": data is NULL");
  IoState& in = inputs_[index];
  if (!in.buffer.reserve(nbytes))
    return error(KILN_ERROR_RUNTIME,
                 who + ": cannot allocate " + std::to_string(nbytes) + " bytes");
  if (widen) {
    const int32_t* src = static_cast<const int32_t*>(data);
    int64_t* dst = reinterpret_cast<int64_t*>(in.buffer.data());
    for (int64_t i = 0; i < numel; ++i) dst[i] = src[i];
  } else if (nbytes) {
    std::memcpy(in.buffer.data(), data, nbytes);
  }
  in.shape.assign(shape, shape + rank);
  in.nbytes = nbytes;
  in.set = true;
  return ok_status();
}

// ---- run ----

Status Model::bind_symbols(int64_t* sym) const {
  const size_t ns = desc_.symbols.size();
  int bound_by[KILN_MAX_SYMBOLS];
  for (size_t s = 0; s < KILN_MAX_SYMBOLS; ++s) {
    sym[s] = 0;
    bound_by[s] = -1;
  }
  for (size_t i = 0; i < inputs_.size(); ++i) {
    const TensorDesc& t = desc_.tensors[desc_.inputs[i].tensor];
    for (size_t k = 0; k < t.shape.size(); ++k) {
      int s = t.shape[k].single_symbol();
      if (s < 0) continue;
      int64_t v = inputs_[i].shape[k];
      if (bound_by[s] < 0) {
        sym[s] = v;
        bound_by[s] = static_cast<int>(i);
      } else if (sym[s] != v) {
        return error(KILN_ERROR_INVALID_ARGUMENT,
                     "inputs '" + desc_.inputs[bound_by[s]].name + "' and '" +
                         desc_.inputs[i].name + "' disagree on " + desc_.symbols[s].name + ": " +
                         std::to_string(sym[s]) + " vs " + std::to_string(v));
      }
    }
  }
  for (size_t s = 0; s < ns; ++s) {
    if (bound_by[s] < 0) continue;  // unused symbol (load checked that used ones are bindable)
    const std::string who = "input '" + desc_.inputs[bound_by[s]].name + "': ";
    if (sym[s] < 1)
      return error(KILN_ERROR_INVALID_ARGUMENT,
                   who + desc_.symbols[s].name + " = " + std::to_string(sym[s]) + ", must be >= 1");
    if (desc_.symbols[s].max > 0 && sym[s] > desc_.symbols[s].max)
      return error(KILN_ERROR_INVALID_ARGUMENT,
                   who + desc_.symbols[s].name + " = " + std::to_string(sym[s]) +
                       " exceeds the compiled maximum " + std::to_string(desc_.symbols[s].max));
  }
  // Input dims that are expressions ("2*seq") must agree with the bound symbols.
  for (size_t i = 0; i < inputs_.size(); ++i) {
    const TensorDesc& t = desc_.tensors[desc_.inputs[i].tensor];
    for (size_t k = 0; k < t.shape.size(); ++k) {
      const SymDim& d = t.shape[k];
      if (d.is_constant() || d.single_symbol() >= 0) continue;
      int64_t v = 0;
      if (!d.eval(sym, &v) || v != inputs_[i].shape[k])
        return error(KILN_ERROR_INVALID_ARGUMENT,
                     "input '" + desc_.inputs[i].name + "': dimension " + std::to_string(k) +
                         " is " + std::to_string(inputs_[i].shape[k]) + ", expected " +
                         d.str(desc_.symbol_names) + " = " + std::to_string(v));
    }
  }
  return ok_status();
}

Status Model::plan(const int64_t* sym) {
  const int64_t scale = desc_.arena_scale >= 0 ? sym[desc_.arena_scale] : 1;
  uint64_t arena_bytes = 0;
  if (__builtin_mul_overflow(static_cast<uint64_t>(scale), desc_.arena_bytes, &arena_bytes) ||
      arena_bytes > SIZE_MAX / 2)
    return error(KILN_ERROR_INVALID_ARGUMENT, "the arena (" + std::to_string(desc_.arena_bytes) +
                                                  " bytes x " + std::to_string(scale) +
                                                  ") is too large");
  if (!arena_.reserve(arena_bytes, desc_.arena_alignment))
    return error(KILN_ERROR_RUNTIME,
                 "cannot allocate " + std::to_string(arena_bytes) + " bytes for the arena");
  for (size_t i = 0; i < outputs_.size(); ++i) {
    const TensorDesc& t = desc_.tensors[desc_.outputs[i].tensor];
    IoState& o = outputs_[i];
    int64_t numel = 0;
    size_t nbytes = 0;
    if (!shape_numel(t.shape, sym, &numel) ||
        __builtin_mul_overflow(static_cast<size_t>(numel), dtype_size(t.dtype), &nbytes))
      return error(KILN_ERROR_INVALID_ARGUMENT,
                   "output '" + desc_.outputs[i].name + "' would be too large");
    if (!o.buffer.reserve(nbytes))
      return error(KILN_ERROR_RUNTIME, "cannot allocate " + std::to_string(nbytes) +
                                           " bytes for output '" + desc_.outputs[i].name + "'");
    o.nbytes = nbytes;
    o.shape.resize(t.shape.size());
    for (size_t k = 0; k < t.shape.size(); ++k) t.shape[k].eval(sym, &o.shape[k]);
  }
  for (size_t i = 0; i < desc_.tensors.size(); ++i) {
    const TensorDesc& t = desc_.tensors[i];
    switch (t.storage) {
      case Storage::kInput:
        tensor_ptrs_[i] = inputs_[t.index].buffer.data();
        break;
      case Storage::kOutput:
        tensor_ptrs_[i] = outputs_[t.index].buffer.data();
        break;
      case Storage::kArena:
        tensor_ptrs_[i] = arena_.data() + static_cast<uint64_t>(scale) * t.offset;
        break;
      case Storage::kParam:
        break;  // fixed at load
    }
  }
  for (size_t n = 0; n < desc_.nodes.size(); ++n) {
    const NodeDesc& node = desc_.nodes[n];
    void** p = node_tensors_.data() + node_tensor_begin_[n];
    for (int t : node.inputs) *p++ = t >= 0 ? tensor_ptrs_[t] : nullptr;
    for (int t : node.outputs) *p++ = tensor_ptrs_[t];
  }
  std::memcpy(planned_sym_, sym, sizeof planned_sym_);
  planned_inputs_.resize(inputs_.size());
  for (size_t i = 0; i < inputs_.size(); ++i) planned_inputs_[i] = inputs_[i].buffer.data();
  planned_ = true;
  ++plan_count_;
  return ok_status();
}

Status Model::run() {
  has_run_ = false;
  for (size_t i = 0; i < inputs_.size(); ++i)
    if (!inputs_[i].set)
      return error(KILN_ERROR_STATE, "input '" + desc_.inputs[i].name +
                                         "' is not set (call kiln_model_set_input before run)");
  int64_t sym[KILN_MAX_SYMBOLS];
  KILN_RT_TRY(bind_symbols(sym));
  bool same = planned_ && std::memcmp(sym, planned_sym_, sizeof sym) == 0;
  for (size_t i = 0; same && i < inputs_.size(); ++i)
    same = planned_inputs_[i] == inputs_[i].buffer.data();
  if (!same) KILN_RT_TRY(plan(sym));
  std::memcpy(sym_, sym, sizeof sym_);
  KILN_RT_TRY(profiling_ ? call_nodes<true>() : call_nodes<false>());
  has_run_ = true;
  return ok_status();
}

// Calls every node in order; kTimed adds the profile's clock reads around each call.
template <bool kTimed>
Status Model::call_nodes() {
  using Clock = std::chrono::steady_clock;
  const Clock::time_point run_start = kTimed ? Clock::now() : Clock::time_point();
  for (size_t n = 0; n < node_fns_.size(); ++n) {
    node_error_[0] = '\0';
    kiln_call call{&backend_, node_tensors_.data() + node_tensor_begin_[n], sym_, node_error_,
                   sizeof node_error_};
    const Clock::time_point t0 = kTimed ? Clock::now() : Clock::time_point();
    if (node_fns_[n](&call) != 0) return node_failed(n);
    if (kTimed) profile_node_time_[n] += Clock::now() - t0;
  }
  if (kTimed) {
    profile_run_time_ += Clock::now() - run_start;
    ++profile_runs_;
  }
  return ok_status();
}

Status Model::node_failed(size_t n) {
  node_error_[sizeof node_error_ - 1] = '\0';
  const NodeDesc& node = desc_.nodes[n];
  std::string message = node_error_[0] ? node_error_ : "failed";
  // Generated code names its node itself; do not say it twice.
  const std::string own = "node '" + node.name + "': ";
  if (message.compare(0, own.size(), own) == 0) message.erase(0, own.size());
  return error(KILN_ERROR_RUNTIME, "node '" + node.name + "' (" + node.op + "): " + message);
}

// ---- profile ----

void Model::set_profiling(bool on) {
  profiling_ = on;
  if (!on) return;
  profile_runs_ = 0;
  profile_run_time_ = {};
  profile_node_time_.assign(node_fns_.size(), {});
}

const char* Model::profile_json() {
  using nlohmann::json;
  auto ms = [](std::chrono::steady_clock::duration d) {
    return std::chrono::duration<double, std::milli>(d).count();
  };
  struct OpTotal {
    int64_t nodes = 0;
    std::chrono::steady_clock::duration time{};
  };
  std::map<std::string, OpTotal> ops;
  json nodes = json::array();
  for (size_t n = 0; n < desc_.nodes.size(); ++n) {
    const NodeDesc& node = desc_.nodes[n];
    const auto t = n < profile_node_time_.size() ? profile_node_time_[n]
                                                 : std::chrono::steady_clock::duration{};
    OpTotal& op = ops[node.op];
    ++op.nodes;
    op.time += t;
    nodes.push_back(
        {{"name", node.name}, {"op", node.op}, {"calls", profile_runs_}, {"ms", ms(t)}});
  }
  json op_list = json::array();
  for (const auto& [name, op] : ops)
    op_list.push_back({{"op", name},
                       {"nodes", op.nodes},
                       {"calls", op.nodes * profile_runs_},
                       {"ms", ms(op.time)}});
  std::stable_sort(op_list.begin(), op_list.end(), [](const json& a, const json& b) {
    return a["ms"].get<double>() > b["ms"].get<double>();
  });
  json j = {
      {"enabled", profiling_},           {"runs", profile_runs_}, {"run_ms", ms(profile_run_time_)},
      {"threads", backend_.num_threads}, {"ops", op_list},        {"nodes", nodes}};
  profile_ = j.dump();
  return profile_.c_str();
}

Status Model::get_output(int index, kiln_tensor_info* out) const {
  if (index < 0 || index >= num_outputs())
    return error(KILN_ERROR_INVALID_ARGUMENT, "output index " + std::to_string(index) +
                                                  " is out of range (the model has " +
                                                  std::to_string(num_outputs()) + " outputs)");
  if (!has_run_)
    return error(KILN_ERROR_STATE, "output '" + desc_.outputs[index].name +
                                       "' is not available: kiln_model_run has not succeeded");
  const IoState& o = outputs_[index];
  const TensorDesc& t = desc_.tensors[desc_.outputs[index].tensor];
  *out = kiln_tensor_info{desc_.outputs[index].name.c_str(),
                          t.dtype,
                          static_cast<int32_t>(o.shape.size()),
                          o.shape.data(),
                          o.buffer.data(),
                          o.nbytes};
  return ok_status();
}

Status Model::set_num_threads(int n) {
  if (n < 0 || n > 1024)
    return error(KILN_ERROR_INVALID_ARGUMENT,
                 "num_threads " + std::to_string(n) + " is out of range [0, 1024]");
  n = default_num_threads(n);
  if (n == backend_.num_threads) return ok_status();
  pool_.reset();
  if (n > 1) pool_.reset(new ThreadPool(n));
  backend_.num_threads = n;
  backend_.pool = pool_.get();
  return ok_status();
}

// ---- describe ----

void Model::build_describe() {
  using nlohmann::json;
  const auto& names = desc_.symbol_names;
  auto shape_json = [&](const std::vector<SymDim>& shape) {
    json a = json::array();
    for (const SymDim& d : shape) {
      if (d.is_constant())
        a.push_back(d.coef);
      else
        a.push_back(d.str(names));
    }
    return a;
  };
  json j;
  j["format_version"] = KILN_FORMAT_VERSION;
  j["compiler_version"] = desc_.compiler_version;
  j["dir"] = dir_;
  json features = json::array();
  for (const std::string& f : desc_.features)
    features.push_back({{"name", f}, {"host_has", host_feature(f) == FeatureState::kPresent}});
  j["target"] = {{"name", desc_.target_name},
                 {"arch", desc_.target_arch},
                 {"cpu", desc_.target_cpu},
                 {"features", features}};
  j["host"] = {{"arch", host_arch()}, {"features", host_features()}};
  j["kernel_variant"] = kernel_variant_.empty() ? json(nullptr) : json(kernel_variant_);
  json syms = json::array();
  for (const SymbolDesc& s : desc_.symbols) syms.push_back({{"name", s.name}, {"max", s.max}});
  j["symbols"] = syms;
  auto io_json = [&](const std::vector<IoDesc>& ios) {
    json a = json::array();
    for (const IoDesc& io : ios) {
      const TensorDesc& t = desc_.tensors[io.tensor];
      a.push_back(
          {{"name", io.name}, {"dtype", dtype_name(t.dtype)}, {"shape", shape_json(t.shape)}});
    }
    return a;
  };
  j["inputs"] = io_json(desc_.inputs);
  j["outputs"] = io_json(desc_.outputs);
  std::map<std::string, int> ops;
  json nodes = json::array();
  for (const NodeDesc& n : desc_.nodes) {
    ++ops[n.op];
    json ins = json::array(), outs = json::array();
    for (int t : n.inputs) ins.push_back(t >= 0 ? json(desc_.tensors[t].name) : json(nullptr));
    for (int t : n.outputs) outs.push_back(desc_.tensors[t].name);
    nodes.push_back({{"name", n.name},
                     {"op", n.op},
                     {"kernel", n.kernel},
                     {"inputs", ins},
                     {"outputs", outs},
                     {"attrs", n.attrs.empty() ? json::object() : json::parse(n.attrs)}});
  }
  j["ops"] = ops;
  j["nodes"] = nodes;
  // Arena tensors at the symbols' maxima with the scale symbol at 1 (the planner's view).
  int64_t sym[KILN_MAX_SYMBOLS] = {};
  for (size_t s = 0; s < desc_.symbols.size(); ++s)
    sym[s] = static_cast<int>(s) == desc_.arena_scale ? 1 : desc_.symbols[s].max;
  json arena_tensors = json::array();
  for (const TensorDesc& t : desc_.tensors) {
    if (t.storage != Storage::kArena) continue;
    int64_t numel = 0;
    shape_numel(t.shape, sym, &numel);
    arena_tensors.push_back({{"name", t.name},
                             {"dtype", dtype_name(t.dtype)},
                             {"shape", shape_json(t.shape)},
                             {"offset", t.offset},
                             {"bytes", static_cast<uint64_t>(numel) * dtype_size(t.dtype)}});
  }
  j["arena"] = {{"bytes", desc_.arena_bytes},
                {"scale", desc_.arena_scale >= 0 ? json(names[desc_.arena_scale]) : json(nullptr)},
                {"alignment", desc_.arena_alignment},
                {"tensors", arena_tensors}};
  j["params"] = {{"file", desc_.params_file},
                 {"count", params_.entries().size()},
                 {"bytes", params_.file_bytes()}};
  describe_ = j.dump(2);
}

}  // namespace kiln::rt
