// Request parsing and answer formatting for kiln-rt serve (see request.h): every check a client
// can fail is here, so the fuzzer and the unit tests reach all of it without a socket.
#include "serve/request.h"

#include <cctype>
#include <charconv>
#include <cmath>
#include <cstring>
#include <exception>

#include <nlohmann/json.hpp>

namespace kiln::serve {
namespace {

using nlohmann::json;

// Deeper bodies are refused before nlohmann parses them: no valid request nests beyond 3, and
// this keeps parse and destruction depth small whatever the body size cap is.
constexpr int kMaxDepth = 32;

bool too_deep(std::string_view body) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < body.size(); ++i) {
    const char c = body[i];
    if (in_string) {
      if (c == '\\')
        ++i;
      else if (c == '"')
        in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > kMaxDepth) return true;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return false;
}

bool fail(ApiError* error, int status, std::string message) {
  error->status = status;
  error->message = std::move(message);
  return false;
}

// `field` of an object as a bool, when present.
bool read_bool(const json& body, const char* field, bool* value, ApiError* error) {
  const auto it = body.find(field);
  if (it == body.end() || it->is_null()) return true;
  if (!it->is_boolean())
    return fail(
        error, 400,
        std::string("'") + field + "' must be true or false, got " + std::string(it->type_name()));
  *value = it->get<bool>();
  return true;
}

// The texts of `field`: a string or a non-empty list of strings, each non-empty and within the
// limits.
bool read_inputs(const json& body, const char* field, const RequestLimits& limits,
                 std::vector<std::string>* inputs, ApiError* error) {
  const std::string name = std::string("'") + field + "'";
  const auto it = body.find(field);
  if (it == body.end())
    return fail(error, 400, "missing " + name + " (a string or a list of them)");
  auto take = [&](const json& v, const std::string& where) {
    if (!v.is_string())
      return fail(error, 400, where + " must be a string, got " + std::string(v.type_name()));
    const std::string& s = v.get_ref<const std::string&>();
    if (s.empty()) return fail(error, 400, where + " is an empty string: nothing to embed");
    if (s.find('\0') != std::string::npos)
      return fail(error, 400, where + " contains U+0000, which a text may not hold");
    if (s.size() > limits.max_input_bytes)
      return fail(error, 413,
                  where + " has " + std::to_string(s.size()) + " bytes; the limit is " +
                      std::to_string(limits.max_input_bytes) + " (--max-input-bytes)");
    inputs->push_back(s);
    return true;
  };
  // OpenAI also takes token ids: an integer, a list of them, or a list of such lists.
  const bool token_ids =
      it->is_number_integer() ||
      (it->is_array() && !it->empty() &&
       ((*it)[0].is_number_integer() ||
        ((*it)[0].is_array() && !(*it)[0].empty() && (*it)[0][0].is_number_integer())));
  if (token_ids)
    return fail(error, 400, name + " holds token ids; this server takes text (strings) only");
  if (!it->is_array()) {
    if (!it->is_string())
      return fail(
          error, 400,
          name + " must be a string or a list of strings, got " + std::string(it->type_name()));
    return take(*it, name);
  }
  if (it->empty()) return fail(error, 400, name + " is an empty list: nothing to embed");
  if (it->size() > limits.max_inputs)
    return fail(error, 413,
                name + " has " + std::to_string(it->size()) + " texts; the limit is " +
                    std::to_string(limits.max_inputs) + " per request (--max-inputs)");
  inputs->reserve(it->size());
  for (size_t i = 0; i < it->size(); ++i)
    if (!take((*it)[i], name + "[" + std::to_string(i) + "]")) return false;
  return true;
}

bool parse_openai(const json& body, const RequestLimits& limits, EmbedRequest* r, ApiError* error) {
  if (!read_inputs(body, "input", limits, &r->inputs, error)) return false;
  if (const auto it = body.find("model"); it != body.end() && !it->is_null()) {
    if (!it->is_string())
      return fail(error, 400, "'model' must be a string, got " + std::string(it->type_name()));
    r->model = it->get<std::string>();
  }
  if (const auto it = body.find("encoding_format"); it != body.end() && !it->is_null()) {
    const std::string format = it->is_string() ? it->get<std::string>() : std::string();
    if (format != "float" && format != "base64")
      return fail(
          error, 400,
          "'encoding_format' must be \"float\" or \"base64\", got " + it->dump(-1, ' ', true));
    r->base64 = format == "base64";
  }
  if (const auto it = body.find("dimensions"); it != body.end() && !it->is_null()) {
    if (!it->is_number_integer() || it->get<int64_t>() < 1)
      return fail(error, 400,
                  "'dimensions' must be a positive integer, got " + it->dump(-1, ' ', true));
    r->dimensions = it->get<int64_t>();
  }
  if (const auto it = body.find("user"); it != body.end() && !it->is_null() && !it->is_string())
    return fail(error, 400, "'user' must be a string, got " + std::string(it->type_name()));
  return true;
}

bool parse_tei(const json& body, const RequestLimits& limits, EmbedRequest* r, ApiError* error) {
  return read_inputs(body, "inputs", limits, &r->inputs, error) &&
         read_bool(body, "normalize", &r->normalize, error) &&
         read_bool(body, "truncate", &r->truncate, error);
}

// Shortest text that reads back as the same float (std::to_chars); JSON has no NaN or infinity.
void append_float(std::string* out, float x) {
  if (!std::isfinite(x)) {
    *out += "null";
    return;
  }
  char buf[32];
  const auto res = std::to_chars(buf, buf + sizeof buf, x);
  out->append(buf, res.ptr);
}

void append_vector(std::string* out, const float* v, int64_t dim) {
  *out += '[';
  for (int64_t d = 0; d < dim; ++d) {
    if (d) *out += ',';
    append_float(out, v[d]);
  }
  *out += ']';
}

}  // namespace

bool parse_request(Api api, std::string_view body, const RequestLimits& limits,
                   EmbedRequest* request, ApiError* error) {
  *request = EmbedRequest();
  if (body.empty()) return fail(error, 400, "empty body: expected a JSON object");
  if (too_deep(body))
    return fail(error, 400, "the JSON nests deeper than " + std::to_string(kMaxDepth) + " levels");
  json doc;
  try {
    doc = json::parse(body.begin(), body.end());
  } catch (const json::exception&
               e) {  // parse_error, and out_of_range for a number too large for a double
    // nlohmann quotes the bytes it stopped at: keep the message ASCII (they may not be UTF-8)
    std::string what = e.what();
    for (char& c : what)
      if (static_cast<unsigned char>(c) >= 0x80 || static_cast<unsigned char>(c) < 0x20) c = '?';
    return fail(error, 400, "malformed JSON: " + what);
  }
  if (!doc.is_object())
    return fail(error, 400, "expected a JSON object, got " + std::string(doc.type_name()));
  try {
    return api == Api::kOpenAI ? parse_openai(doc, limits, request, error)
                               : parse_tei(doc, limits, request, error);
  } catch (const std::exception& e) {  // not expected: every access above checks its type
    return fail(error, 400, std::string("bad request: ") + e.what());
  }
}

bool check_request(Api api, const EmbedRequest& request, const ModelInfo& model, ApiError* error) {
  if (api == Api::kOpenAI && request.dimensions != 0 && request.dimensions != model.dim)
    return fail(error, 400,
                "'dimensions' is " + std::to_string(request.dimensions) + "; this model's are " +
                    std::to_string(model.dim) + " (it cannot shorten them)");
  if (api == Api::kTei && !request.normalize && model.normalizes)
    return fail(error, 400,
                "'normalize': false is not available: this artifact L2-normalises its embeddings "
                "(compiled with --normalize)");
  return true;
}

bool check_truncation(const EmbedRequest& request, const std::vector<int64_t>& full_tokens,
                      int64_t max_seq, ApiError* error) {
  if (request.truncate || max_seq <= 0) return true;
  for (size_t i = 0; i < full_tokens.size(); ++i)
    if (full_tokens[i] > max_seq)
      return fail(error, 413,
                  "input " + std::to_string(i) + " has " + std::to_string(full_tokens[i]) +
                      " tokens, more than the model's maximum " + std::to_string(max_seq) +
                      " (send \"truncate\": true to cut it)");
  return true;
}

std::string error_body(Api api, const ApiError& error) {
  json j;
  if (api == Api::kOpenAI) {
    const char* type = error.status == 401   ? "authentication_error"
                       : error.status == 503 ? "server_overloaded"
                       : error.status >= 500 ? "server_error"
                                             : "invalid_request_error";
    j["error"] = {{"message", error.message}, {"type", type}, {"code", error.status}};
  } else {
    const char* type = error.status == 401   ? "Unauthorized"
                       : error.status == 503 ? "Overloaded"
                       : error.status >= 500 ? "Backend"
                                             : "Validation";
    j = {{"error", error.message}, {"error_type", type}};
  }
  // Replace invalid UTF-8 (a message may quote a client's bytes) instead of throwing.
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string openai_response(const EmbedRequest& request, const float* vectors, int64_t dim,
                            const std::vector<int64_t>& tokens, const std::string& model_name) {
  std::string out = "{\"object\":\"list\",\"data\":[";
  out.reserve(out.size() + request.inputs.size() * (dim * (request.base64 ? 6 : 12) + 64));
  int64_t total = 0;
  for (size_t i = 0; i < request.inputs.size(); ++i) {
    if (i) out += ',';
    out += "{\"object\":\"embedding\",\"index\":" + std::to_string(i) + ",\"embedding\":";
    const float* v = vectors + i * dim;
    if (request.base64) {
      out += '"' + base64_encode(v, sizeof(float) * dim) + '"';
    } else {
      append_vector(&out, v, dim);
    }
    out += '}';
    total += i < tokens.size() ? tokens[i] : 0;
  }
  const json name = request.model.empty() ? model_name : request.model;
  out += "],\"model\":" + name.dump(-1, ' ', false, json::error_handler_t::replace);
  out += ",\"usage\":{\"prompt_tokens\":" + std::to_string(total) +
         ",\"total_tokens\":" + std::to_string(total) + "}}";
  return out;
}

std::string tei_response(const float* vectors, size_t n, int64_t dim) {
  std::string out = "[";
  out.reserve(n * (dim * 12 + 4));
  for (size_t i = 0; i < n; ++i) {
    if (i) out += ',';
    append_vector(&out, vectors + i * dim, dim);
  }
  out += ']';
  return out;
}

namespace {

json model_json(const std::string& name, int64_t created, const ModelInfo& model) {
  return {{"id", name},
          {"object", "model"},
          {"created", created},
          {"owned_by", "kiln"},
          {"dim", model.dim},
          {"max_tokens", model.max_seq},
          {"normalized", model.normalizes}};
}

}  // namespace

std::string model_object(const std::string& name, int64_t created, const ModelInfo& model) {
  return model_json(name, created, model).dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string models_response(const std::string& name, int64_t created, const ModelInfo& model) {
  const json j = {{"object", "list"}, {"data", json::array({model_json(name, created, model)})}};
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string base64_encode(const void* data, size_t size) {
  static const char kDigits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  const auto* p = static_cast<const unsigned char*>(data);
  std::string out;
  out.reserve((size + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= size; i += 3) {
    const uint32_t v = (uint32_t{p[i]} << 16) | (uint32_t{p[i + 1]} << 8) | p[i + 2];
    out += kDigits[v >> 18];
    out += kDigits[(v >> 12) & 63];
    out += kDigits[(v >> 6) & 63];
    out += kDigits[v & 63];
  }
  if (i < size) {
    const uint32_t v = (uint32_t{p[i]} << 16) | (i + 1 < size ? uint32_t{p[i + 1]} << 8 : 0);
    out += kDigits[v >> 18];
    out += kDigits[(v >> 12) & 63];
    out += i + 1 < size ? kDigits[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

bool constant_time_equal(std::string_view given, std::string_view secret) {
  // Every byte of the secret is compared, each against the given byte at that position (or 0
  // past its end); the lengths differing counts as a difference.
  volatile unsigned char diff = given.size() != secret.size();
  for (size_t i = 0; i < secret.size(); ++i) {
    const unsigned char g = i < given.size() ? static_cast<unsigned char>(given[i]) : 0;
    diff = diff | (g ^ static_cast<unsigned char>(secret[i]));
  }
  return diff == 0;
}

std::string_view bearer_token(std::string_view authorization) {
  constexpr std::string_view kScheme = "Bearer ";
  if (authorization.size() < kScheme.size()) return {};
  for (size_t i = 0; i < kScheme.size(); ++i)  // the scheme is case-insensitive (RFC 7235)
    if (std::tolower(static_cast<unsigned char>(authorization[i])) !=
        std::tolower(static_cast<unsigned char>(kScheme[i])))
      return {};
  std::string_view key = authorization.substr(kScheme.size());
  while (!key.empty() && key.front() == ' ') key.remove_prefix(1);
  while (!key.empty() && (key.back() == ' ' || key.back() == '\t')) key.remove_suffix(1);
  return key;
}

}  // namespace kiln::serve
