// Fuzz target: tokenizer.json (every supported normalizer, pre-tokenizer, model and
// post-processor) and tokenization with it. Input: tokenizer.json, then optionally
// kPartSeparator and the texts to encode (one per further part, cut to kMaxTextBytes); without
// texts a fixed mixed-script text is encoded. Every id must be below vocab_size().
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>

#include "runtime/tokenizer_json.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

void check_encode(const kiln::rt::TextTokenizer& t, const std::string& text, int64_t max_len) {
  int64_t full = 0;
  const std::vector<int64_t> ids = t.encode(text, max_len, &full);
  if (max_len > 0 && static_cast<int64_t>(ids.size()) > max_len) std::abort();
  if (full < static_cast<int64_t>(ids.size())) std::abort();
  for (int64_t id : ids)
    if (id < 0 || id >= t.vocab_size()) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::vector<std::string> parts = kiln::fuzz::split_parts(data, size);
  std::unique_ptr<kiln::rt::TextTokenizer> t;
  const kiln::rt::Status s = kiln::rt::parse_tokenizer_json(parts[0], "tokenizer.json", &t);
  if (!s.ok()) {
    if (s.message.find("tokenizer.json") == std::string::npos) std::abort();  // names the file
    return 0;
  }
  if (parts.size() == 1) {
    check_encode(
        *t, "Hello, WORLD! caf\xc3\xa9 na\xc3\xafve \xe4\xbd\xa0\xe5\xa5\xbd 12,345 <mask>", 0);
    return 0;
  }
  for (size_t i = 1; i < parts.size(); ++i) {
    const std::string text = parts[i].substr(0, kiln::fuzz::kMaxTextBytes);
    check_encode(*t, text, 0);
    check_encode(*t, text, 5);
  }
  return 0;
}
