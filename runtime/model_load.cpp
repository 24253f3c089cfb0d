// Model, load: validates model.json, model.params, the target against this CPU and model.so, in
// that order, stopping at the first problem (runtime/README.md, "Load"). See docs/architecture.md,
// "Runtime".
#include <dlfcn.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "runtime/artifact_file.h"
#include "runtime/cpu_features.h"
#include "runtime/dtype.h"
#include "runtime/model.h"

namespace kiln::rt {

namespace {

std::string canonical_arch(const std::string& a) {
  if (a == "arm64" || a == "armv8" || a == "aarch64") return "aarch64";
  if (a == "x86-64" || a == "amd64" || a == "x64" || a == "x86_64") return "x86_64";
  return a;
}

// A file that model.json names otherwise than usual (a damaged model.json?): say where the name
// comes from.
Status named_by_model_json(Status s, const char* field, const std::string& name,
                           const char* usual) {
  if (!s.ok() && name != usual)
    s.message +=
        " (the name '" + name + "' is model.json's " + field + ", usually '" + usual + "')";
  return s;
}

}  // namespace

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
  KILN_RT_TRY(
      named_by_model_json(params_.open(dir_ + "/" + desc_.params_file, verify, desc_.params_bytes),
                          "params.file", desc_.params_file, "model.params"));
  KILN_RT_TRY(check_params());
  KILN_RT_TRY(load_library());
  KILN_RT_TRY(load_tokenizer());
  KILN_RT_TRY(load_pooling());

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
  const std::string json = dir_ + "/model.json";  // target.arch and target.features come from it
  if (want != have)
    return error(KILN_ERROR_INCOMPATIBLE, json + ": artifact is built for " + want + " (target " +
                                              desc_.target_name + "), this runtime is " + have);
  for (const std::string& f : desc_.features) {
    switch (host_feature(f)) {
      case FeatureState::kPresent:
        break;
      case FeatureState::kAbsent:
        return error(KILN_ERROR_INCOMPATIBLE, json + ": artifact needs CPU feature '" + f +
                                                  "' which this CPU lacks (target " +
                                                  desc_.target_name + ")");
      case FeatureState::kUnknown:
        return error(KILN_ERROR_INCOMPATIBLE, json + ": artifact needs CPU feature '" + f +
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

// dlopen runs the library's code (relocations, constructors) before any symbol can be checked,
// so a damaged model.so (a flipped byte on an SD card) would crash the process instead of
// failing: its size and CRC-32 are checked against model.json first. model.json without them
// (compiled before they existed) is accepted unchecked, as additive fields are.
Status Model::check_library(const std::string& path) const {
  ArtifactFile f;
  KILN_RT_TRY(f.open(path, kMaxLibraryBytes));
  if (!desc_.has_library_checksum) return ok_status();
  const std::string damaged =
      ": model.so is damaged or not the one this model.json was compiled with; copy the "
      "artifact again or recompile";
  if (f.size() != desc_.library_bytes)
    return error(KILN_ERROR_CORRUPT, path + ": " + std::to_string(f.size()) +
                                         " bytes, model.json's library_bytes says " +
                                         std::to_string(desc_.library_bytes) + damaged);
  uint32_t crc = 0;
  KILN_RT_TRY(f.crc32(&crc));
  if (crc != desc_.library_crc32)
    return error(KILN_ERROR_CORRUPT, path + ": CRC-32 " + std::to_string(crc) +
                                         ", model.json's library_crc32 says " +
                                         std::to_string(desc_.library_crc32) + damaged);
  return ok_status();
}

Status Model::load_library() {
  const std::string path = dir_ + "/" + desc_.library;
  KILN_RT_TRY(named_by_model_json(check_library(path), "library", desc_.library, "model.so"));
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
  // Only a model.so compiled with --tuning-log exports it.
  auto tuning = reinterpret_cast<const char* (*)()>(dlsym(library_, "kiln_model_tuning"));
  if (const char* t = tuning ? tuning() : nullptr) tuning_ = t;
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

}  // namespace kiln::rt
