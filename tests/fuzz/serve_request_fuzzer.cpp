// Fuzz target: kiln-rt serve's request bodies (tools/kiln-rt/serve/request.h), as the HTTP layer
// hands them over, for both APIs (OpenAI /v1/embeddings and TEI /embed). A refusal must be a 4xx
// whose JSON error body parses; an accepted request must hold 1..max_inputs non-empty texts
// within the byte limit, and its answers (made from fake vectors) must parse as JSON with one
// row per text.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "serve/request.h"

namespace {

using kiln::serve::Api;

void check(Api api, std::string_view body) {
  kiln::serve::RequestLimits limits;
  limits.max_inputs = 8;
  limits.max_input_bytes = 64;
  kiln::serve::EmbedRequest r;
  kiln::serve::ApiError e;
  if (!kiln::serve::parse_request(api, body, limits, &r, &e)) {
    if (e.status < 400 || e.status > 499 || e.message.empty()) std::abort();
    const auto j = nlohmann::json::parse(kiln::serve::error_body(api, e), nullptr, false);
    if (j.is_discarded() || !j.contains("error")) std::abort();
    return;
  }
  if (r.inputs.empty() || r.inputs.size() > limits.max_inputs) std::abort();
  for (const std::string& t : r.inputs)
    if (t.empty() || t.size() > limits.max_input_bytes || t.find('\0') != std::string::npos)
      std::abort();
  constexpr int64_t kDim = 3;
  const std::vector<float> vectors(r.inputs.size() * kDim, 0.5f);
  const std::vector<int64_t> tokens(r.inputs.size(), 2);
  const auto a = nlohmann::json::parse(
      kiln::serve::openai_response(r, vectors.data(), kDim, tokens, "fuzz"), nullptr, false);
  if (a.is_discarded() || a["data"].size() != r.inputs.size()) std::abort();
  const auto b = nlohmann::json::parse(
      kiln::serve::tei_response(vectors.data(), r.inputs.size(), kDim), nullptr, false);
  if (b.is_discarded() || b.size() != r.inputs.size()) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  check(Api::kOpenAI, body);
  check(Api::kTei, body);
  return 0;
}
