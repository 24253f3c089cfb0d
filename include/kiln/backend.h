/* The ABI between a compiled model (model.so) and the kiln runtime.
 *
 * model.so exports one function per graph node (its name is the node's "kernel" in model.json)
 * plus two identification functions. The runtime resolves them all at load time and calls the
 * node functions in model.json order. Generated code never creates threads or allocates: the
 * runtime passes tensor pointers (arena, params, inputs) and a parallel_for in every call.
 *
 * Plain C so that a model.so built by one compiler version can be checked by any runtime:
 * bump KILN_ABI_VERSION on any change to these structs or to the meaning of a field.
 */
#ifndef KILN_BACKEND_H_
#define KILN_BACKEND_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define KILN_ABI_VERSION 1

/* Maximum number of symbolic dimensions (batch, seq, ...) an artifact may use. */
#define KILN_MAX_SYMBOLS 4

/* Body of a parallel loop: processes iterations [begin, end). */
typedef void (*kiln_task_fn)(void* ctx, int64_t begin, int64_t end);

/* Services the runtime offers to model.so. */
typedef struct kiln_backend {
  uint32_t abi_version; /* KILN_ABI_VERSION of the runtime */
  int32_t num_threads;  /* threads parallel_for may use (>= 1) */
  void* pool;           /* opaque, passed back to parallel_for */
  /* Runs fn over [0, n) in chunks of at least `grain` iterations, on up to num_threads threads,
   * and returns when all are done. With one thread it calls fn(ctx, 0, n) directly. */
  void (*parallel_for)(void* pool, int64_t n, int64_t grain, kiln_task_fn fn, void* ctx);
} kiln_backend;

/* One node call. `tensors` holds one pointer per entry of the node's model.json "inputs", then
 * one per entry of its "outputs". "inputs" lists only what the node reads at run time: an
 * omitted optional input, a shape operand and a small constant baked into model.so have no slot
 * (the generated code passes nullptr to the kernel itself), so model.so from kiln's compiler
 * never receives a NULL entry. (The runtime passes NULL for an "inputs" entry of -1, which kiln's
 * compiler never writes.) `sym` holds the current values of the artifact's symbols (model.json
 * "symbols" order), e.g. sym[0] = batch, sym[1] = seq. */
typedef struct kiln_call {
  const kiln_backend* backend;
  void* const* tensors;
  const int64_t* sym;
  char* error;       /* on failure the node writes a NUL-terminated message here ... */
  size_t error_size; /* ... of at most this many bytes (including the NUL) */
} kiln_call;

/* A node function: returns 0 on success, non-zero after writing call->error. */
typedef int (*kiln_node_fn)(const kiln_call* call);

/* Exported by every model.so, checked by the runtime before any node runs. */
typedef uint32_t (*kiln_model_abi_version_fn)(void); /* symbol "kiln_model_abi_version" */
typedef const char* (*kiln_model_target_fn)(void);   /* symbol "kiln_model_target": e.g. "rpi4" */

/* Optional (a model.so may lack it; the ABI version does not change): symbol
 * "kiln_model_kernel_variant" names the kernel variants the model picked for this CPU, e.g.
 * "gemm f32: avx512 14x32". The runtime shows it in kiln_model_describe(). */
typedef const char* (*kiln_model_kernel_variant_fn)(void);

#ifdef __cplusplus
}
#endif

#endif /* KILN_BACKEND_H_ */
