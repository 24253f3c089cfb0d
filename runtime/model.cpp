// Model's run path: inputs, symbol binding, the per-shape pointer plan, the node loop, outputs,
// threads (the other concerns: model.h). See docs/architecture.md, "Runtime".
#include "runtime/model.h"

#include <cstdlib>
#include <cstring>

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

}  // namespace kiln::rt
