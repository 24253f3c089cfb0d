// model.json, parsed and validated: everything the runtime reads from it (docs/architecture.md,
// "model.json"). parse_model_json checks structure, indices, dtypes, shapes and the memory plan;
// checks against model.params and model.so happen in model.cpp.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kiln/c_api.h"
#include "runtime/shape_expr.h"
#include "runtime/status.h"

namespace kiln::rt {

enum class Storage { kInput, kOutput, kParam, kArena };

struct TensorDesc {
  std::string name;
  kiln_dtype dtype = KILN_FLOAT32;
  std::vector<SymDim> shape;
  Storage storage = Storage::kArena;
  int64_t index = -1;   // input/output/param
  uint64_t offset = 0;  // arena, at scale 1
};

struct IoDesc {
  std::string name;
  int tensor = -1;
};

struct NodeDesc {
  std::string name, op, kernel;
  std::vector<int> inputs;  // -1 = missing optional input
  std::vector<int> outputs;
  std::string attrs;     // JSON text, informational
  std::string schedule;  // JSON text of its tuned GEMM schedules (--tuning-log), informational
};

struct SymbolDesc {
  std::string name;
  int64_t max = 0;  // 0 = unbounded
};

// Optional "tokenizer" section: a BERT WordPiece vocabulary ("bert_wordpiece": vocab_file,
// vocab_crc32 and the fields below it) or a Hugging Face tokenizer.json ("tokenizer_json":
// vocab_file is the JSON file, vocab_crc32 its "crc32", model its "model") packed with the
// artifact.
struct TokenizerDesc {
  bool present = false;
  std::string type;        // "bert_wordpiece" or "tokenizer_json"
  std::string vocab_file;  // inside the artifact directory
  std::string model;       // tokenizer_json: WordPiece, BPE or Unigram (informational)
  int64_t vocab_size = 0;  // bert_wordpiece: lines; tokenizer_json: largest id + 1
  uint32_t vocab_crc32 = 0;
  bool lower_case = true;
  int64_t max_chars_per_word = 100;
  std::string cls = "[CLS]", sep = "[SEP]", unk = "[UNK]", pad = "[PAD]";
};

// Optional "pooling" section (kiln compile --pooling / --normalize): how kiln_model_embed makes
// one vector per text from `output`: mode "cls", "mean", "max", "last" over its [batch, seq,
// dim] rows, or "none" for an output that is already [batch, dim]; then L2 normalisation when
// `normalize`.
struct PoolingDesc {
  bool present = false;
  std::string mode;    // checked against runtime/pooling.h's names when the model loads
  std::string output;  // a graph output
  bool normalize = false;
};

struct ModelDesc {
  std::string target_name, target_arch, target_cpu;
  std::vector<std::string> features;
  std::string compiler_version;
  struct Fusion {
    std::string op;
    int64_t fused = 0, replaced = 0;
  };
  std::vector<Fusion> fusions;  // model.json compiler.fusions: informational, for inspect
  std::string library = "model.so";
  // model.json library_bytes / library_crc32 (absent in artifacts compiled before them).
  bool has_library_checksum = false;
  uint64_t library_bytes = 0;
  uint32_t library_crc32 = 0;
  std::string params_file = "model.params";
  uint64_t params_bytes = 0;
  int64_t params_count = 0;
  bool has_table_crc = false;
  uint32_t table_crc32 = 0;
  // graph_crc32 as stored in model.json (if present) and as recomputed from the file's sections
  // (artifact/graph_checksum.h); model.cpp compares both with model.so's.
  bool has_graph_crc32 = false;
  uint32_t graph_crc32 = 0, computed_graph_crc32 = 0;
  std::vector<SymbolDesc> symbols;
  std::vector<std::string> symbol_names;
  uint64_t arena_bytes = 0;
  int arena_scale = -1;  // symbol index, -1 = none
  uint64_t arena_alignment = 64;
  std::vector<TensorDesc> tensors;
  std::vector<IoDesc> inputs, outputs;
  std::vector<NodeDesc> nodes;
  TokenizerDesc tokenizer;
  PoolingDesc pooling;
};

// Reads and validates `path` (a model.json). Errors are KILN_ERROR_IO (unreadable),
// KILN_ERROR_INCOMPATIBLE (format version) or KILN_ERROR_CORRUPT, and name the file and field.
Status parse_model_json(const std::string& path, ModelDesc* out);

// Elements of a shape with symbol values `sym`; false on overflow.
bool shape_numel(const std::vector<SymDim>& shape, const int64_t* sym, int64_t* out);

}  // namespace kiln::rt
