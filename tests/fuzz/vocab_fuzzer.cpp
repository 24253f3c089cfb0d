// Fuzz target: the WordPiece vocab.txt loader (BERT's format) and tokenization with it. Input:
// vocab.txt, then optionally kPartSeparator and the texts to encode (one per further part, cut to
// kMaxTextBytes). The input's first byte's low bit picks lower-casing. Every id must be below
// vocab_size().
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>

#include "runtime/tokenizer.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = kiln::fuzz::scratch_dir() + "/vocab.txt";
  const std::vector<std::string> parts = kiln::fuzz::split_parts(data, size);
  kiln::fuzz::write_file(path, parts[0]);
  kiln::rt::TokenizerOptions options;
  options.lower_case = size > 0 && (data[0] & 1);
  std::unique_ptr<kiln::rt::Tokenizer> t;
  const kiln::rt::Status s = kiln::rt::Tokenizer::load(path, options, &t);
  if (!s.ok()) {
    if (s.message.find(path) == std::string::npos) std::abort();  // must name the file
    return 0;
  }
  for (size_t i = 1; i < parts.size(); ++i) {
    const std::string text = parts[i].substr(0, kiln::fuzz::kMaxTextBytes);
    for (int64_t max_len : {int64_t{0}, int64_t{4}}) {
      int64_t full = 0;
      const std::vector<int64_t> ids = t->encode(text, max_len, &full);
      if (max_len > 0 && static_cast<int64_t>(ids.size()) > max_len) std::abort();
      for (int64_t id : ids)
        if (id < 0 || id >= t->vocab_size()) std::abort();
    }
    t->basic_tokenize(text);
  }
  return 0;
}
