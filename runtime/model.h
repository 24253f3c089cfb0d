// A loaded artifact: validated description, mapped params, model.so and its node functions, plus
// the runtime-owned buffers (inputs, outputs, arena) and the per-shape pointer plan. Implemented by
// concern: model_load.cpp (load + validate), model.cpp (inputs, run, outputs, threads),
// model_describe.cpp (describe, profile), model_text.cpp (tokenizer).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kiln/backend.h"
#include "kiln/c_api.h"
#include "runtime/model_desc.h"
#include "runtime/params_file.h"
#include "runtime/pooling.h"
#include "runtime/status.h"
#include "runtime/thread_pool.h"
#include "runtime/tokenizer.h"

namespace kiln::rt {

// Grow-only, 64-byte aligned heap buffer.
class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  ~AlignedBuffer();
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;
  AlignedBuffer(AlignedBuffer&& o) noexcept;
  // Ensures capacity >= bytes (contents are not kept). False when out of memory.
  bool reserve(size_t bytes, size_t alignment = 64);
  uint8_t* data() const { return data_; }
  size_t capacity() const { return capacity_; }

 private:
  uint8_t* data_ = nullptr;
  size_t capacity_ = 0;
};

struct IoState {
  std::vector<int64_t> declared;  // -1 for symbolic dims
  std::vector<int64_t> shape;     // concrete (after set_input / run)
  AlignedBuffer buffer;
  size_t nbytes = 0;
  bool set = false;
};

class Model {
 public:
  static Status load(const std::string& dir, const kiln_load_options* opts,
                     std::unique_ptr<Model>* out);
  ~Model();

  const ModelDesc& desc() const { return desc_; }
  int num_inputs() const { return static_cast<int>(inputs_.size()); }
  int num_outputs() const { return static_cast<int>(outputs_.size()); }
  int input_index(const char* name) const;
  int output_index(const char* name) const;
  Status input_info(int index, kiln_tensor_info* out) const;
  Status output_info(int index, kiln_tensor_info* out) const;

  Status set_input(int index, kiln_dtype dtype, const int64_t* shape, int rank, const void* data);
  Status run();
  Status get_output(int index, kiln_tensor_info* out) const;

  // Tokenizer packed with the artifact (model.json "tokenizer"); see model_text.cpp.
  bool has_tokenizer() const { return tokenizer_ != nullptr; }
  // Tokenizes n texts, pads to the longest and sets the inputs input_ids, attention_mask and
  // token_type_ids (those the model has). max_len 0 = the compiled maximum sequence length.
  Status encode(const char* const* texts, int n, int64_t max_len, kiln_encoding* out);
  // Each text's token count before truncation. Reads only the tokenizer: safe on any thread.
  Status count_tokens(const char* const* texts, int n, int64_t* full_tokens) const;

  // Sentence embeddings (model_embed.cpp): tokenize, run in length-sorted batches, pool
  // (model.json "pooling", or an output that is already [batch, dim]), L2-normalise if asked.
  // out holds n x embedding_dim floats, row i for texts[i]. Reuses the encode buffers.
  Status embedding_dim(int64_t* dim) const;
  Status embed(const char* const* texts, int n, const kiln_embed_options* opts, float* out,
               int64_t out_floats, kiln_embed_stats* stats);
  // Per text of the last embed: tokens after truncation and before (either may be null).
  Status embed_text_tokens(int n, int64_t* tokens, int64_t* full_tokens) const;

  Status set_num_threads(int n);
  int num_threads() const { return backend_.num_threads; }
  const char* describe() const { return describe_.c_str(); }
  const char* tuning() const { return tuning_.c_str(); }
  // Number of times run() re-planned buffers (a new shape); for tests and --verbose.
  int64_t plan_count() const { return plan_count_; }

  // Per-node profile: wall time (steady_clock) around every node call, summed over the runs since
  // profiling was turned on (load option, or KILN_PROFILE=1 at load). Turning it on clears the
  // counts. When off, run() pays one branch, not one per node.
  void set_profiling(bool on);
  bool profiling() const { return profiling_; }
  // JSON text: runs, run_ms, and per op / per node calls and ms (see kiln_model_profile).
  const char* profile_json();

 private:
  Model() = default;
  // model_load.cpp, model_text.cpp
  Status load_impl(const std::string& dir, const kiln_load_options* opts);
  Status check_target() const;
  Status check_params();
  Status check_library(const std::string& path) const;
  Status load_library();
  Status check_graph_checksum(const std::string& path) const;
  Status load_tokenizer();
  // The tokenizer's error when the artifact has none; ok otherwise.
  Status need_tokenizer() const;
  // The compiled maximum sequence length (input_ids' last dimension's symbol), 0 if unbounded.
  int64_t max_text_tokens() const;
  Status load_pooling();
  // model_text.cpp: tokenizes n texts into rows (truncating to max_len, 0 = the compiled
  // maximum; each truncation is appended to enc_warning_ and counted in *truncated, which the
  // caller clears), full_tokens[i] (if not null) the untruncated counts. texts[0] is text
  // `first` of the caller's list, as messages name it. set_text_inputs then sets the text
  // inputs from rows[order[0..count)], padded to the longest of them.
  Status tokenize(const char* const* texts, int n, int64_t max_len,
                  std::vector<std::vector<int64_t>>* rows, int32_t* truncated,
                  int64_t* full_tokens = nullptr, int first = 0);
  Status set_text_inputs(const std::vector<std::vector<int64_t>>& rows, const int* order, int count,
                         size_t seq);
  // model.cpp
  Status bind_symbols(int64_t* sym) const;
  Status plan(const int64_t* sym);
  template <bool kTimed>
  Status call_nodes();
  Status node_failed(size_t n);
  // model_describe.cpp
  void build_describe();

  std::string dir_;
  ModelDesc desc_;
  ParamsFile params_;
  void* library_ = nullptr;
  std::string kernel_variant_;  // model.so's optional kiln_model_kernel_variant(), else ""
  std::string tuning_;          // model.so's optional kiln_model_tuning() (--tuning-log), else ""
  std::vector<kiln_node_fn> node_fns_;
  std::vector<size_t> node_tensor_begin_;  // into node_tensors_
  std::vector<void*> node_tensors_;

  std::vector<IoState> inputs_, outputs_;
  AlignedBuffer arena_;
  std::vector<void*> tensor_ptrs_;

  bool planned_ = false;
  bool has_run_ = false;
  int64_t planned_sym_[KILN_MAX_SYMBOLS] = {};
  std::vector<const void*> planned_inputs_;
  int64_t sym_[KILN_MAX_SYMBOLS] = {};
  int64_t plan_count_ = 0;

  std::unique_ptr<ThreadPool> pool_;
  kiln_backend backend_{};
  char node_error_[1024] = {};
  std::string describe_;

  std::unique_ptr<TextTokenizer> tokenizer_;
  std::vector<int64_t> enc_ids_, enc_mask_, enc_types_;  // last encode, [batch, seq]
  std::string enc_warning_;

  // model_embed.cpp: the output kiln_model_embed reads (-1: none), how it pools, vector size.
  int embed_output_ = -1;
  Pooling embed_pooling_ = Pooling::kNone;
  bool embed_normalize_ = false;
  int64_t embed_dim_ = 0;
  std::vector<int64_t> embed_tokens_, embed_full_tokens_;  // per text of the last embed

  bool profiling_ = false;
  int64_t profile_runs_ = 0;
  std::chrono::steady_clock::duration profile_run_time_{};
  std::vector<std::chrono::steady_clock::duration> profile_node_time_;  // per node
  std::string profile_;
};

}  // namespace kiln::rt
