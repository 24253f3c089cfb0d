/* kiln runtime: the stable C ABI of libkiln_runtime.
 *
 * Usage:
 *   kiln_model* m;
 *   if (kiln_model_load("bert/", NULL, &m) != KILN_OK) { puts(kiln_last_error()); ... }
 *   kiln_model_set_input(m, kiln_model_input_index(m, "input_ids"), KILN_INT64, shape, 2, data);
 *   kiln_model_run(m);
 *   kiln_model_get_output(m, 0, &info); // info.data stays valid until the next run / free
 *   kiln_model_free(m);
 *
 * Every function returns a kiln_status; on failure kiln_last_error() (thread-local) names what
 * is wrong: the file, input, tensor, node, shape or dtype. No function aborts on bad input.
 *
 * Loading checks every file before using it: a damaged or foreign model.so (checked against the
 * size and CRC-32 model.json records, before it is dlopen'ed), files that are devices, FIFOs or
 * directories, and sizes that disagree with model.json are errors, never a crash or a hang.
 *
 * Threads: one kiln_model serves one thread at a time (inputs, outputs, arena and thread pool
 * are per model). set_input, run, get_output, encode, embed, set_num_threads, set_profiling and
 * profile claim the model while they run; the same calls from another thread at the same moment
 * fail with KILN_ERROR_STATE ("the model is in use by another thread") and change nothing, they
 * do not wait. To share one model, hold your own lock from set_input to the last read of the
 * outputs; for parallel inference load one model per thread. Functions that only read what load
 * fixed (num_inputs, input_index, input_info, describe, ...) may be called from any thread.
 * kiln_model_free must not overlap any other call on that model.
 */
#ifndef KILN_C_API_H_
#define KILN_C_API_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define KILN_FORMAT_VERSION 1 /* model.json / model.params format this runtime reads */

typedef enum kiln_status {
  KILN_OK = 0,
  KILN_ERROR_INVALID_ARGUMENT = 1, /* bad name, index, dtype, shape, value */
  KILN_ERROR_IO = 2,               /* missing, unreadable or truncated file */
  KILN_ERROR_CORRUPT = 3,          /* checksum, magic or structure mismatch */
  KILN_ERROR_INCOMPATIBLE = 4,     /* format/ABI version, architecture or CPU features */
  KILN_ERROR_RUNTIME = 5,          /* a node failed while running (e.g. token id out of range) */
  KILN_ERROR_STATE = 6             /* call order: run before inputs are set, ... */
} kiln_status;

typedef enum kiln_dtype {
  KILN_FLOAT32 = 1,
  KILN_INT64 = 2,
  KILN_INT32 = 3,
  KILN_INT8 = 4,
  KILN_UINT8 = 5,
  KILN_BOOL = 6
} kiln_dtype;

typedef struct kiln_model kiln_model;

typedef struct kiln_load_options {
  int32_t num_threads;   /* 0 = KILN_NUM_THREADS env or the number of cores */
  int32_t verify_params; /* non-zero (default) = check every params checksum at load */
} kiln_load_options;

typedef struct kiln_tensor_info {
  const char* name;
  kiln_dtype dtype;
  int32_t rank;
  const int64_t* shape; /* concrete after run (outputs) or set_input (inputs); -1 = unbound */
  const void* data;     /* outputs: valid until the next run or free */
  size_t nbytes;
} kiln_tensor_info;

const char* kiln_last_error(void);
const char* kiln_version(void);
const char* kiln_dtype_name(kiln_dtype dtype);

/* Loads the artifact in directory `dir` (model.json, model.so, model.params). opts may be NULL. */
kiln_status kiln_model_load(const char* dir, const kiln_load_options* opts, kiln_model** out);
void kiln_model_free(kiln_model* model);

int32_t kiln_model_num_inputs(const kiln_model* model);
int32_t kiln_model_num_outputs(const kiln_model* model);
/* Index of the named input/output, or -1 (and kiln_last_error set) if there is none. */
int32_t kiln_model_input_index(const kiln_model* model, const char* name);
int32_t kiln_model_output_index(const kiln_model* model, const char* name);
/* Declared input/output: shape holds -1 for symbolic dimensions. */
kiln_status kiln_model_input_info(const kiln_model* model, int32_t index, kiln_tensor_info* out);
kiln_status kiln_model_output_info(const kiln_model* model, int32_t index, kiln_tensor_info* out);

/* Copies `data` (dense, row-major) into the model. int32 data is accepted for int64 inputs. */
kiln_status kiln_model_set_input(kiln_model* model, int32_t index, kiln_dtype dtype,
                                 const int64_t* shape, int32_t rank, const void* data);
kiln_status kiln_model_run(kiln_model* model);
kiln_status kiln_model_get_output(const kiln_model* model, int32_t index, kiln_tensor_info* out);

kiln_status kiln_model_set_num_threads(kiln_model* model, int32_t num_threads);
int32_t kiln_model_num_threads(const kiln_model* model);
/* JSON text describing the artifact (target, features, ops, memory plan); owned by the model. */
const char* kiln_model_describe(const kiln_model* model);
/* `kiln compile --tuning-log`: "" for an untuned model, else "active: tuned for <cpu> (<key>)"
 * or, on another CPU (which runs the default schedules), "inactive: tuned for <cpu> (<key>), but
 * this CPU is <cpu> (<key>): default schedules". Owned by the model. Tools print the inactive
 * case once at load (the library itself never prints). */
const char* kiln_model_tuning(const kiln_model* model);

/* Per-node profile: wall time around every node call, summed over runs. On from load when the
 * environment variable KILN_PROFILE is set to anything but "" or "0". Enabling clears the
 * counts; while disabled, run() reads no clock. */
kiln_status kiln_model_set_profiling(kiln_model* model, int32_t enable);
/* JSON text: {"enabled", "runs", "run_ms" (node loop, all runs), "threads",
 * "ops": [{"op", "nodes", "calls", "ms"}] by decreasing ms,
 * "nodes": [{"name", "op", "calls", "ms"}] in run order}; times are totals over "runs".
 * Owned by the model, valid until the next call. */
const char* kiln_model_profile(kiln_model* model);

/* ---- Tokenizer (artifacts compiled with `kiln compile --vocab vocab.txt [--cased]`) ---- */

/* The last kiln_model_encode: token ids, mask and token types, [batch, seq] row-major int64,
 * padded to the longest text. Owned by the model, valid until the next encode or free. */
typedef struct kiln_encoding {
  int64_t batch;
  int64_t seq;
  const int64_t* input_ids;      /* [CLS] wordpieces [SEP] [PAD]... */
  const int64_t* attention_mask; /* 1 for tokens, 0 for padding */
  const int64_t* token_type_ids; /* all 0 (one segment) */
  int32_t num_truncated;         /* texts cut to the maximum length (their [SEP] is kept) */
  const char* warning;           /* "" or a message naming each truncated text */
} kiln_encoding;

/* 1 if the artifact carries a tokenizer (model.json "tokenizer" + its vocab file), else 0. */
int32_t kiln_model_has_tokenizer(const kiln_model* model);
/* BERT WordPiece: tokenizes n NUL-terminated UTF-8 texts (invalid bytes are dropped), pads
 * them to the longest and sets the model's inputs input_ids, attention_mask and token_type_ids
 * (those it has), so kiln_model_run can follow.
 * max_len 0 = the compiled maximum sequence length; a longer text is truncated and reported in
 * out->num_truncated / out->warning (not an error). out may be NULL. */
kiln_status kiln_model_encode(kiln_model* model, const char* const* texts, int32_t n,
                              int32_t max_len, kiln_encoding* out);
/* Token counts of n NUL-terminated UTF-8 texts before truncation, special tokens included
 * (what kiln_model_embed_text_tokens reports as full_tokens after an embed): full_tokens[i].
 * It reads only the tokenizer that load fixed, so unlike encode and embed it may be called
 * from any thread, also while another call uses the model (kiln-rt serve checks a request's
 * lengths on its HTTP thread while the model embeds others). */
kiln_status kiln_model_count_tokens(const kiln_model* model, const char* const* texts, int32_t n,
                                    int64_t* full_tokens);

/* ---- Sentence embeddings (artifacts with a tokenizer and model.json "pooling") ---- */

typedef struct kiln_embed_options {
  /* Texts per run; 0 = as many as keep the arena under 128 MiB (batch b uses b x the planned
   * arena), at most 32. */
  int32_t max_batch;
  /* 0 (default): runs take the texts sorted by token count (longest first), so each run pads
   * only to its own longest and little work goes to padding. Non-zero: the given order, each
   * run padded to its longest (for comparisons). The results are the same either way. */
  int32_t keep_order;
} kiln_embed_options;

typedef struct kiln_embed_stats {
  int64_t tokens;        /* tokens of all texts after truncation, special tokens included */
  int64_t padded_tokens; /* positions the model ran: sum over runs of batch x seq */
  int32_t runs;          /* model runs */
  int32_t num_truncated; /* texts cut to the compiled maximum sequence length */
  const char* warning;   /* "" or a message naming each truncated text; owned by the model,
                          * valid until the next embed or encode */
} kiln_embed_stats;

/* The size of one embedding, or an error when the artifact has no pooling (model.json
 * "pooling", written by `kiln compile --pooling ...`) and no float32 [batch, dim] output. */
kiln_status kiln_model_embedding_dim(const kiln_model* model, int64_t* dim);
/* Embeds n NUL-terminated UTF-8 texts: tokenizes them with the packed tokenizer (too long:
 * truncated, reported in stats), runs the model on batches of similar length, pools each text's
 * tokens (padding never counted) and L2-normalises when model.json says so. Writes n x dim
 * floats to out (row i = texts[i]); out_floats is out's capacity in floats. opts and stats may
 * be NULL. Replaces the model's inputs, outputs and the last kiln_model_encode's buffers. */
kiln_status kiln_model_embed(kiln_model* model, const char* const* texts, int32_t n,
                             const kiln_embed_options* opts, float* out, int64_t out_floats,
                             kiln_embed_stats* stats);
/* Per text of the last successful kiln_model_embed on this model (n must be its count): writes
 * tokens[i], text i's token count after truncation (special tokens included, what the model
 * ran), and full_tokens[i], before truncation (> tokens[i]: text i was truncated). Either array
 * may be NULL. KILN_ERROR_STATE when no embed succeeded or n differs. (A separate call, not new
 * kiln_embed_stats fields, so callers built against the older struct keep working.) */
kiln_status kiln_model_embed_text_tokens(kiln_model* model, int32_t n, int64_t* tokens,
                                         int64_t* full_tokens);

#ifdef __cplusplus
}
#endif

#endif /* KILN_C_API_H_ */
