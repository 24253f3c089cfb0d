// kiln-rt serve's request bodies and answers, as pure functions of bytes (no sockets, no model):
// the OpenAI `POST /v1/embeddings` and text-embeddings-inference `POST /embed` JSON bodies parsed
// and checked against the server's limits, the JSON answers, and the JSON error bodies. The HTTP
// layer (server.cpp), the unit tests (tests/serve) and the fuzzer (tests/fuzz/serve_request) call
// the same functions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace kiln::serve {

enum class Api { kOpenAI, kTei };

struct RequestLimits {
  size_t max_inputs = 256;           // texts per request
  size_t max_input_bytes = 1 << 20;  // UTF-8 bytes per text
};

// One request's texts and options, after validation.
struct EmbedRequest {
  std::vector<std::string> inputs;
  bool truncate = true;    // TEI "truncate" (OpenAI: always truncates)
  bool normalize = true;   // TEI "normalize" (OpenAI: the artifact's own)
  bool base64 = false;     // OpenAI encoding_format "base64"
  std::string model;       // OpenAI "model", echoed back ("" = the served model's name)
  int64_t dimensions = 0;  // OpenAI "dimensions" (0: not given)
};

// An HTTP status and the message of its JSON error body.
struct ApiError {
  int status = 400;
  std::string message;
};

// Parses and validates a request body. Returns false and fills *error (a 4xx) for malformed JSON,
// a non-object body, a missing or wrongly typed field, an empty string or empty list, more than
// max_inputs texts, a text over max_input_bytes, or a value out of range. Never throws.
bool parse_request(Api api, std::string_view body, const RequestLimits& limits,
                   EmbedRequest* request, ApiError* error);

// What the server knows of its model.
struct ModelInfo {
  int64_t dim = 0;
  bool normalizes = false;  // model.json pooling.normalize
  int64_t max_seq = 0;      // the compiled maximum sequence length
};

// A parsed request against the model (400): OpenAI "dimensions" must be the model's; TEI
// "normalize": false cannot undo an artifact's own normalisation.
bool check_request(Api api, const EmbedRequest& request, const ModelInfo& model, ApiError* error);

// TEI "truncate": false, before the request is queued: a text with more tokens than max_seq
// (full_tokens[i], counted by the tokenizer on the HTTP thread) is an error (413, as TEI answers),
// named with its token count. True when the request truncates or max_seq is 0 (unbounded).
bool check_truncation(const EmbedRequest& request, const std::vector<int64_t>& full_tokens,
                      int64_t max_seq, ApiError* error);

// The JSON error body: OpenAI {"error": {"message", "type", "code"}}, TEI {"error", "error_type"}.
std::string error_body(Api api, const ApiError& error);

// The answers. vectors holds request.inputs.size() x dim floats, tokens[i] text i's token count.
// OpenAI: {"object": "list", "data": [{"object": "embedding", "index": i, "embedding": [...] or
// base64 of little-endian float32}], "model", "usage": {"prompt_tokens", "total_tokens"}}.
std::string openai_response(const EmbedRequest& request, const float* vectors, int64_t dim,
                            const std::vector<int64_t>& tokens, const std::string& model_name);
// TEI: [[...], ...].
std::string tei_response(const float* vectors, size_t n, int64_t dim);
// GET /v1/models (OpenAI's list): {"object": "list", "data": [model_object]}; GET
// /v1/models/NAME: model_object, {"id": name, "object": "model", "created": unix seconds,
// "owned_by": "kiln"} plus the model's "dim", "max_tokens" and "normalized".
std::string model_object(const std::string& name, int64_t created, const ModelInfo& model);
std::string models_response(const std::string& name, int64_t created, const ModelInfo& model);

std::string base64_encode(const void* data, size_t size);

// Whether `given` equals `secret`, in a time that depends on secret's length only (never on
// where the first difference is).
bool constant_time_equal(std::string_view given, std::string_view secret);

// The key of an "Authorization: Bearer KEY" header value ("" when the scheme is not Bearer).
std::string_view bearer_token(std::string_view authorization);

}  // namespace kiln::serve
