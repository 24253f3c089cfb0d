// Tokenizers from a Hugging Face `tokenizer.json` (the `tokenizers` library's format): the
// pipeline added tokens -> normalizer -> pre-tokenizer -> model -> post-processor, for one text
// (no pairs), ids only (no offsets).
//
// Supported components (anything else is an error naming the component type and the file):
//   normalizer:     BertNormalizer (clean_text, handle_chinese_chars, strip_accents, lowercase; the
//                   Unicode coverage of tokenizer.h), Lowercase, Replace (a String pattern, or a
//                   Regex that is a literal or one literal character with `+` / `{n,}`), Prepend,
//                   Strip, Sequence, Precompiled (SentencePiece's charsmap, as XLM-R and
//                   multilingual-e5 ship it: exact per code point; grapheme clusters are
//                   approximated, see grapheme_end); null.
//                   Not supported: NFC, NFD, NFKC, NFKD, StripAccents, Nmt, ByteLevel.
//   pre_tokenizer:  BertPreTokenizer, WhitespaceSplit, ByteLevel (GPT-2 split regex,
//   add_prefix_space,
//                   use_regex), Metaspace (replacement, prepend_scheme always/first/never or the
//                   older add_prefix_space, split), Sequence; null.
//   model:          WordPiece (unk_token, continuing_subword_prefix, max_input_chars_per_word), BPE
//                   (merges as "a b" or ["a", "b"], unk_token, fuse_unk, byte_fallback,
//                   continuing_subword_prefix, end_of_word_suffix, ignore_merges; no dropout),
//                   Unigram (Viterbi over the scores, unk_id with min score - 10, consecutive
//                   unknowns fused, byte_fallback).
//   post_processor: BertProcessing, RobertaProcessing, TemplateProcessing (its `single` template),
//                   ByteLevel (changes offsets only), Sequence; null. Token type ids are not
//                   produced (the model's token_type_ids stay 0, which `single` templates use).
//   added_tokens:   matched leftmost-longest before splitting (normalized=false on the raw text,
//                   normalized=true on the normalized text), with lstrip, rstrip and single_word.
//   truncation / padding sections: ignored, except padding.pad_id, which is the pad id (else
//                   the added token [PAD] or <pad>, else 0); the runtime truncates to the
//                   compiled maximum and pads to the longest text.
#pragma once

#include <memory>
#include <string>

#include "runtime/status.h"
#include "runtime/tokenizer.h"

namespace kiln::rt {

// Parses `json_text`, the contents of the file `name` (named in errors).
Status parse_tokenizer_json(const std::string& json_text, const std::string& name,
                            std::unique_ptr<TextTokenizer>* out);

}  // namespace kiln::rt
