// `kiln compile --vocab vocab.txt [--cased]`: packs a BERT WordPiece vocabulary into an artifact
// (DIR/vocab.txt + model.json's "tokenizer" section, read by runtime/model_text.cpp).
#pragma once

#include <string>

#include "compiler/ir/status.h"

namespace kiln::tools {

// Checks the vocabulary (readable, the special tokens [CLS] [SEP] [UNK] [PAD], no more tokens
// than the model's word-embedding rows), copies it to artifact_dir/vocab.txt and records its
// size, crc32 and casing in artifact_dir/model.json.
Status pack_vocab(const std::string& artifact_dir, const std::string& vocab_path, bool lower_case);

}  // namespace kiln::tools
