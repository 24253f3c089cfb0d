// `kiln compile --vocab vocab.txt [--cased]` and `kiln compile --tokenizer tokenizer.json`: pack
// a tokenizer into an artifact (DIR/vocab.txt or DIR/tokenizer.json + model.json's "tokenizer"
// section, read by runtime/model_text.cpp).
#pragma once

#include <cstdint>
#include <string>

#include "compiler/ir/status.h"

namespace kiln::tools {

// Checks the vocabulary (readable, the special tokens [CLS] [SEP] [UNK] [PAD], no more tokens
// than the model's word-embedding rows), copies it to artifact_dir/vocab.txt and records its
// size, crc32 and casing in artifact_dir/model.json.
Status pack_vocab(const std::string& artifact_dir, const std::string& vocab_path, bool lower_case);

// A Hugging Face tokenizer.json, read and checked before compiling: a WordPiece, BPE or Unigram
// model; vocab_size is its largest id + 1 (model vocabulary, added tokens, post-processor
// specials), as the runtime counts them. The runtime checks every component when it loads.
struct TokenizerJson {
  std::string path, text, model_type;
  int64_t vocab_size = 0;
};
Status read_tokenizer_json(const std::string& path, TokenizerJson* out);

// Checks that the ids fit the model's word-embedding rows, copies the file to
// artifact_dir/tokenizer.json and records model type, vocab_size and crc32 in model.json.
Status pack_tokenizer_json(const std::string& artifact_dir, const TokenizerJson& tokenizer);

}  // namespace kiln::tools
