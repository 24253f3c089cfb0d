// Header-only C++ wrapper over the C API (kiln/c_api.h). Errors become kiln::Error exceptions
// here, on the caller's side of the ABI; the library itself never throws across it.
//
//   kiln::Model m("bert/");
//   m.set_input("input_ids", std::vector<int64_t>{1, 128}, ids.data());
//   m.run();
//   kiln::TensorInfo out = m.get_output(0);  // out.as<float>() valid until the next run
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "kiln/c_api.h"

namespace kiln {

class Error : public std::runtime_error {
 public:
  Error(kiln_status status, const std::string& message)
      : std::runtime_error(message), status_(status) {}
  kiln_status status() const { return status_; }

 private:
  kiln_status status_;
};

inline void check(kiln_status s) {
  if (s != KILN_OK) throw Error(s, kiln_last_error());
}

template <typename T>
struct DtypeOf;
template <>
struct DtypeOf<float> {
  static constexpr kiln_dtype value = KILN_FLOAT32;
};
template <>
struct DtypeOf<int64_t> {
  static constexpr kiln_dtype value = KILN_INT64;
};
template <>
struct DtypeOf<int32_t> {
  static constexpr kiln_dtype value = KILN_INT32;
};
template <>
struct DtypeOf<int8_t> {
  static constexpr kiln_dtype value = KILN_INT8;
};
template <>
struct DtypeOf<uint8_t> {
  static constexpr kiln_dtype value = KILN_UINT8;
};
template <>
struct DtypeOf<bool> {
  static constexpr kiln_dtype value = KILN_BOOL;
};

struct TensorInfo {
  std::string name;
  kiln_dtype dtype = KILN_FLOAT32;
  std::vector<int64_t> shape;  // -1 = symbolic (declared info)
  const void* data = nullptr;  // outputs: valid until the next run
  size_t nbytes = 0;

  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
  template <typename T>
  const T* as() const {
    if (DtypeOf<T>::value != dtype)
      throw Error(KILN_ERROR_INVALID_ARGUMENT, "tensor '" + name + "' is " +
                                                   kiln_dtype_name(dtype) + ", not " +
                                                   kiln_dtype_name(DtypeOf<T>::value));
    return static_cast<const T*>(data);
  }

  static TensorInfo from(const kiln_tensor_info& i) {
    TensorInfo t;
    t.name = i.name ? i.name : "";
    t.dtype = i.dtype;
    if (i.shape) t.shape.assign(i.shape, i.shape + i.rank);
    t.data = i.data;
    t.nbytes = i.nbytes;
    return t;
  }
};

struct LoadOptions {
  int num_threads = 0;  // 0 = KILN_NUM_THREADS or the number of cores
  bool verify_params = true;
  bool profile = false;  // time every node (also on with KILN_PROFILE=1); see profile()
};

class Model {
 public:
  Model() = default;
  explicit Model(const std::string& dir, const LoadOptions& options = LoadOptions()) {
    kiln_load_options o{options.num_threads, options.verify_params ? 1 : 0};
    check(kiln_model_load(dir.c_str(), &o, &model_));
    if (options.profile) set_profiling(true);
  }
  ~Model() { kiln_model_free(model_); }
  Model(Model&& o) noexcept : model_(std::exchange(o.model_, nullptr)) {}
  Model& operator=(Model&& o) noexcept {
    if (this != &o) {
      kiln_model_free(model_);
      model_ = std::exchange(o.model_, nullptr);
    }
    return *this;
  }
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  static Model load(const std::string& dir, const LoadOptions& options = LoadOptions()) {
    return Model(dir, options);
  }

  kiln_model* get() const { return model_; }
  explicit operator bool() const { return model_ != nullptr; }

  int num_inputs() const { return kiln_model_num_inputs(model_); }
  int num_outputs() const { return kiln_model_num_outputs(model_); }
  int input_index(const std::string& name) const {
    int i = kiln_model_input_index(model_, name.c_str());
    if (i < 0) throw Error(KILN_ERROR_INVALID_ARGUMENT, kiln_last_error());
    return i;
  }
  int output_index(const std::string& name) const {
    int i = kiln_model_output_index(model_, name.c_str());
    if (i < 0) throw Error(KILN_ERROR_INVALID_ARGUMENT, kiln_last_error());
    return i;
  }
  TensorInfo input_info(int index) const {
    kiln_tensor_info i;
    check(kiln_model_input_info(model_, index, &i));
    return TensorInfo::from(i);
  }
  TensorInfo output_info(int index) const {
    kiln_tensor_info i;
    check(kiln_model_output_info(model_, index, &i));
    return TensorInfo::from(i);
  }

  void set_input(int index, kiln_dtype dtype, const std::vector<int64_t>& shape, const void* data) {
    check(kiln_model_set_input(model_, index, dtype, shape.data(),
                               static_cast<int32_t>(shape.size()), data));
  }
  void set_input(const std::string& name, kiln_dtype dtype, const std::vector<int64_t>& shape,
                 const void* data) {
    set_input(input_index(name), dtype, shape, data);
  }
  template <typename T>
  void set_input(const std::string& name, const std::vector<int64_t>& shape, const T* data) {
    set_input(input_index(name), DtypeOf<T>::value, shape, data);
  }
  template <typename T>
  void set_input(int index, const std::vector<int64_t>& shape, const T* data) {
    set_input(index, DtypeOf<T>::value, shape, data);
  }

  void run() { check(kiln_model_run(model_)); }

  TensorInfo get_output(int index) const {
    kiln_tensor_info i;
    check(kiln_model_get_output(model_, index, &i));
    return TensorInfo::from(i);
  }
  TensorInfo get_output(const std::string& name) const { return get_output(output_index(name)); }

  // Sentence embeddings (kiln_model_embed): texts.size() x embedding_dim() floats, row i for
  // texts[i]. opts and stats may be null.
  int64_t embedding_dim() const {
    int64_t dim = 0;
    check(kiln_model_embedding_dim(model_, &dim));
    return dim;
  }
  std::vector<float> embed(const std::vector<std::string>& texts,
                           const kiln_embed_options* opts = nullptr,
                           kiln_embed_stats* stats = nullptr) {
    std::vector<const char*> ptrs;
    for (const std::string& t : texts) ptrs.push_back(t.c_str());
    std::vector<float> out(texts.size() * static_cast<size_t>(embedding_dim()));
    check(kiln_model_embed(model_, ptrs.data(), static_cast<int32_t>(ptrs.size()), opts, out.data(),
                           static_cast<int64_t>(out.size()), stats));
    return out;
  }

  // Each text's token count before truncation (kiln_model_count_tokens: any thread).
  std::vector<int64_t> count_tokens(const std::vector<const char*>& texts) const {
    std::vector<int64_t> full(texts.size());
    check(kiln_model_count_tokens(model_, texts.data(), static_cast<int32_t>(texts.size()),
                                  full.data()));
    return full;
  }

  // Per text of the last embed: its tokens after truncation; *full (if given) before.
  std::vector<int64_t> embed_text_tokens(size_t n, std::vector<int64_t>* full = nullptr) {
    std::vector<int64_t> tokens(n);
    if (full) full->resize(n);
    check(kiln_model_embed_text_tokens(model_, static_cast<int32_t>(n), tokens.data(),
                                       full ? full->data() : nullptr));
    return tokens;
  }

  void set_num_threads(int n) { check(kiln_model_set_num_threads(model_, n)); }
  int num_threads() const { return kiln_model_num_threads(model_); }
  std::string describe() const { return kiln_model_describe(model_); }
  // Per-node profile (kiln_model_set_profiling / kiln_model_profile): enabling clears it.
  void set_profiling(bool on) { check(kiln_model_set_profiling(model_, on ? 1 : 0)); }
  std::string profile() const { return kiln_model_profile(model_); }

 private:
  kiln_model* model_ = nullptr;
};

}  // namespace kiln
