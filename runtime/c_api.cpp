// The C ABI (include/kiln/c_api.h): argument checks, Status -> kiln_status + kiln_last_error(),
// and a catch-all so no C++ exception crosses the boundary.
#pragma GCC visibility push(default)
#include "kiln/c_api.h"
#pragma GCC visibility pop

#include <atomic>
#include <memory>
#include <new>
#include <string>
#include <utility>

#include "runtime/dtype.h"
#include "runtime/model.h"

struct kiln_model {
  std::unique_ptr<kiln::rt::Model> impl;
  // The C API function using the model right now (nullptr = none): see ModelClaim.
  mutable std::atomic<const char*> in_use{nullptr};
};

namespace {

using kiln::rt::Status;

thread_local std::string t_last_error;

kiln_status report(const Status& s) {
  if (!s.ok()) t_last_error = s.message;
  return s.code;
}

kiln_status invalid(const char* what) {
  t_last_error = what;
  return KILN_ERROR_INVALID_ARGUMENT;
}

template <typename F>
kiln_status guarded(F&& f) {
  try {
    return report(f());
  } catch (const std::bad_alloc&) {
    t_last_error = "out of memory";
  } catch (const std::exception& e) {
    t_last_error = std::string("internal error: ") + e.what();
  } catch (...) {
    t_last_error = "internal error";
  }
  return KILN_ERROR_RUNTIME;
}

// A model is used by one thread at a time (its inputs, outputs, arena and thread pool are
// per model). Each call that reads or changes that state claims the model for its duration; a
// call from another thread that overlaps it fails with KILN_ERROR_STATE and touches nothing,
// instead of racing (a second run would write the arena and outputs under the first, and two
// callers would enter one thread pool). It does not wait: see "Threads" in c_api.h.
class ModelClaim {
 public:
  ModelClaim(const kiln_model* m, const char* fn) : m_(m), fn_(fn) {
    owner_ = m->in_use.compare_exchange_strong(other_, fn, std::memory_order_acquire,
                                               std::memory_order_relaxed);
  }
  ~ModelClaim() {
    if (owner_) m_->in_use.store(nullptr, std::memory_order_release);
  }
  ModelClaim(const ModelClaim&) = delete;
  ModelClaim& operator=(const ModelClaim&) = delete;

  bool owner() const { return owner_; }
  kiln_status busy() const {
    t_last_error = std::string(fn_) + ": the model is in use by another thread (in " + other_ +
                   "); a kiln_model serves one thread at a time: load one model per thread, or "
                   "serialize set_input / run / get_output with your own lock";
    return KILN_ERROR_STATE;
  }

 private:
  const kiln_model* m_;
  const char* fn_;
  const char* other_ = nullptr;
  bool owner_ = false;
};

// Runs f() as `fn` holding the model's claim.
template <typename F>
kiln_status claimed(const kiln_model* model, const char* fn, F&& f) {
  ModelClaim claim(model, fn);
  if (!claim.owner()) return claim.busy();
  return guarded(std::forward<F>(f));
}

}  // namespace

extern "C" {

const char* kiln_last_error(void) {
  return t_last_error.c_str();
}

const char* kiln_version(void) {
  return KILN_VERSION;  // VERSION, via CMake
}

const char* kiln_dtype_name(kiln_dtype dtype) {
  return kiln::rt::dtype_name(dtype);
}

kiln_status kiln_model_load(const char* dir, const kiln_load_options* opts, kiln_model** out) {
  if (!out) return invalid("kiln_model_load: out is NULL");
  *out = nullptr;
  if (!dir) return invalid("kiln_model_load: dir is NULL");
  return guarded([&] {
    std::unique_ptr<kiln::rt::Model> m;
    Status s = kiln::rt::Model::load(dir, opts, &m);
    if (s.ok()) *out = new kiln_model{std::move(m)};
    return s;
  });
}

void kiln_model_free(kiln_model* model) {
  delete model;
}

int32_t kiln_model_num_inputs(const kiln_model* model) {
  return model ? model->impl->num_inputs() : 0;
}

int32_t kiln_model_num_outputs(const kiln_model* model) {
  return model ? model->impl->num_outputs() : 0;
}

static std::string names_list(const kiln_model* model, bool inputs) {
  const auto& ios = inputs ? model->impl->desc().inputs : model->impl->desc().outputs;
  std::string s;
  for (const auto& io : ios) s += (s.empty() ? "'" : ", '") + io.name + "'";
  return s.empty() ? "none" : s;
}

int32_t kiln_model_input_index(const kiln_model* model, const char* name) {
  if (!model || !name) {
    invalid("kiln_model_input_index: model or name is NULL");
    return -1;
  }
  int i = model->impl->input_index(name);
  if (i < 0)
    t_last_error =
        std::string("no input named '") + name + "' (inputs: " + names_list(model, true) + ")";
  return i;
}

int32_t kiln_model_output_index(const kiln_model* model, const char* name) {
  if (!model || !name) {
    invalid("kiln_model_output_index: model or name is NULL");
    return -1;
  }
  int i = model->impl->output_index(name);
  if (i < 0)
    t_last_error =
        std::string("no output named '") + name + "' (outputs: " + names_list(model, false) + ")";
  return i;
}

kiln_status kiln_model_input_info(const kiln_model* model, int32_t index, kiln_tensor_info* out) {
  if (!model || !out) return invalid("kiln_model_input_info: model or out is NULL");
  return guarded([&] { return model->impl->input_info(index, out); });
}

kiln_status kiln_model_output_info(const kiln_model* model, int32_t index, kiln_tensor_info* out) {
  if (!model || !out) return invalid("kiln_model_output_info: model or out is NULL");
  return guarded([&] { return model->impl->output_info(index, out); });
}

kiln_status kiln_model_set_input(kiln_model* model, int32_t index, kiln_dtype dtype,
                                 const int64_t* shape, int32_t rank, const void* data) {
  if (!model) return invalid("kiln_model_set_input: model is NULL");
  return claimed(model, "kiln_model_set_input",
                 [&] { return model->impl->set_input(index, dtype, shape, rank, data); });
}

kiln_status kiln_model_run(kiln_model* model) {
  if (!model) return invalid("kiln_model_run: model is NULL");
  return claimed(model, "kiln_model_run", [&] { return model->impl->run(); });
}

kiln_status kiln_model_get_output(const kiln_model* model, int32_t index, kiln_tensor_info* out) {
  if (!model || !out) return invalid("kiln_model_get_output: model or out is NULL");
  return claimed(model, "kiln_model_get_output",
                 [&] { return model->impl->get_output(index, out); });
}

kiln_status kiln_model_set_num_threads(kiln_model* model, int32_t num_threads) {
  if (!model) return invalid("kiln_model_set_num_threads: model is NULL");
  return claimed(model, "kiln_model_set_num_threads",
                 [&] { return model->impl->set_num_threads(num_threads); });
}

int32_t kiln_model_num_threads(const kiln_model* model) {
  return model ? model->impl->num_threads() : 0;
}

const char* kiln_model_describe(const kiln_model* model) {
  return model ? model->impl->describe() : "{}";
}

const char* kiln_model_tuning(const kiln_model* model) {
  return model ? model->impl->tuning() : "";
}

kiln_status kiln_model_set_profiling(kiln_model* model, int32_t enable) {
  if (!model) return invalid("kiln_model_set_profiling: model is NULL");
  return claimed(model, "kiln_model_set_profiling", [&] {
    model->impl->set_profiling(enable != 0);
    return Status{};
  });
}

const char* kiln_model_profile(kiln_model* model) {
  if (!model) return "{}";
  ModelClaim claim(model, "kiln_model_profile");
  if (!claim.owner()) {
    claim.busy();
    return "{}";
  }
  try {
    return model->impl->profile_json();
  } catch (...) {
    return "{}";
  }
}

int32_t kiln_model_has_tokenizer(const kiln_model* model) {
  return model && model->impl->has_tokenizer() ? 1 : 0;
}

kiln_status kiln_model_encode(kiln_model* model, const char* const* texts, int32_t n,
                              int32_t max_len, kiln_encoding* out) {
  if (!model) return invalid("kiln_model_encode: model is NULL");
  if (n < 1 || !texts) return invalid("kiln_model_encode: texts is NULL or n < 1");
  return claimed(model, "kiln_model_encode",
                 [&] { return model->impl->encode(texts, n, max_len, out); });
}

kiln_status kiln_model_count_tokens(const kiln_model* model, const char* const* texts, int32_t n,
                                    int64_t* full_tokens) {
  if (!model) return invalid("kiln_model_count_tokens: model is NULL");
  if (n < 1 || !texts || !full_tokens)
    return invalid("kiln_model_count_tokens: texts or full_tokens is NULL, or n < 1");
  // not claimed: reads only the tokenizer, which load fixed (see c_api.h)
  return guarded([&] { return model->impl->count_tokens(texts, n, full_tokens); });
}

kiln_status kiln_model_embedding_dim(const kiln_model* model, int64_t* dim) {
  if (!model || !dim) return invalid("kiln_model_embedding_dim: model or dim is NULL");
  return guarded([&] { return model->impl->embedding_dim(dim); });
}

kiln_status kiln_model_embed(kiln_model* model, const char* const* texts, int32_t n,
                             const kiln_embed_options* opts, float* out, int64_t out_floats,
                             kiln_embed_stats* stats) {
  if (!model) return invalid("kiln_model_embed: model is NULL");
  if (n < 1 || !texts) return invalid("kiln_model_embed: texts is NULL or n < 1 (no texts)");
  if (!out) return invalid("kiln_model_embed: out is NULL");
  return claimed(model, "kiln_model_embed",
                 [&] { return model->impl->embed(texts, n, opts, out, out_floats, stats); });
}

kiln_status kiln_model_embed_text_tokens(kiln_model* model, int32_t n, int64_t* tokens,
                                         int64_t* full_tokens) {
  if (!model) return invalid("kiln_model_embed_text_tokens: model is NULL");
  return claimed(model, "kiln_model_embed_text_tokens",
                 [&] { return model->impl->embed_text_tokens(n, tokens, full_tokens); });
}

}  // extern "C"
