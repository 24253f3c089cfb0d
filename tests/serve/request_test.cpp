// kiln-rt serve's request parsing and answers (tools/kiln-rt/serve/request.h), without sockets:
// every accepted form of both APIs, every refusal with its status and a message naming the
// field, the answers read back as JSON (floats exact, base64 bytes exact, usage summed), and the
// API key helpers.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "serve/request.h"

namespace kiln::serve {
namespace {

using nlohmann::json;

EmbedRequest parse_ok(Api api, const std::string& body, const RequestLimits& limits = {}) {
  EmbedRequest r;
  ApiError e;
  EXPECT_TRUE(parse_request(api, body, limits, &r, &e)) << body << ": " << e.message;
  return r;
}

// The status and message of a refused body; the message must contain `part`.
void expect_refused(Api api, const std::string& body, int status, const std::string& part,
                    const RequestLimits& limits = {}) {
  SCOPED_TRACE(body.substr(0, 200));
  EmbedRequest r;
  ApiError e;
  ASSERT_FALSE(parse_request(api, body, limits, &r, &e));
  EXPECT_EQ(e.status, status);
  EXPECT_NE(e.message.find(part), std::string::npos) << e.message;
  const json j = json::parse(error_body(api, e));  // always valid JSON
  if (api == Api::kOpenAI) {
    EXPECT_EQ(j["error"]["message"], e.message);
    EXPECT_EQ(j["error"]["code"], status);
  } else {
    EXPECT_EQ(j["error"], e.message);
    EXPECT_EQ(j["error_type"], "Validation");
  }
}

TEST(Request, OpenAIForms) {
  EmbedRequest r = parse_ok(Api::kOpenAI, R"({"input": "hello"})");
  EXPECT_EQ(r.inputs, std::vector<std::string>{"hello"});
  EXPECT_FALSE(r.base64);
  EXPECT_TRUE(r.model.empty());
  r = parse_ok(Api::kOpenAI,
               R"({"input": ["a", "b c"], "model": "m", "encoding_format": "base64",
                   "dimensions": 8, "user": "u", "unknown": [1, {"x": 2}]})");
  EXPECT_EQ(r.inputs, (std::vector<std::string>{"a", "b c"}));
  EXPECT_TRUE(r.base64);
  EXPECT_EQ(r.model, "m");
  EXPECT_EQ(r.dimensions, 8);
  r = parse_ok(Api::kOpenAI, R"({"input": "x", "encoding_format": "float", "model": null})");
  EXPECT_FALSE(r.base64);
  // UTF-8 and escapes arrive decoded
  r = parse_ok(Api::kOpenAI, R"({"input": "caf\u00e9 \ud83d\ude00 中文"})");
  EXPECT_EQ(r.inputs[0], "caf\xc3\xa9 \xf0\x9f\x98\x80 \xe4\xb8\xad\xe6\x96\x87");
}

TEST(Request, TeiForms) {
  EmbedRequest r = parse_ok(Api::kTei, R"({"inputs": "hello"})");
  EXPECT_EQ(r.inputs, std::vector<std::string>{"hello"});
  EXPECT_TRUE(r.normalize);
  EXPECT_TRUE(r.truncate);
  r = parse_ok(Api::kTei, R"({"inputs": ["a", "b"], "normalize": false, "truncate": false})");
  EXPECT_EQ(r.inputs.size(), 2u);
  EXPECT_FALSE(r.normalize);
  EXPECT_FALSE(r.truncate);
}

TEST(Request, MalformedBodies) {
  for (Api api : {Api::kOpenAI, Api::kTei}) {
    expect_refused(api, "", 400, "empty body");
    expect_refused(api, "{", 400, "malformed JSON");
    expect_refused(api, "{\"input\": \"a\",}", 400, "malformed JSON");
    expect_refused(api, "{\"input\": 1e999999}", 400, "malformed JSON");  // overflows a double
    expect_refused(api, "[\"a\"]", 400, "expected a JSON object, got array");
    expect_refused(api, "\"a\"", 400, "expected a JSON object, got string");
    expect_refused(api, "null", 400, "expected a JSON object, got null");
    expect_refused(api, std::string(100, '[') + std::string(100, ']'), 400, "nests deeper");
    expect_refused(api, "{\"input\": \"\xff\xfe\"}", 400, "malformed JSON");  // not UTF-8
  }
  // brackets inside strings do not count as nesting
  parse_ok(Api::kOpenAI, "{\"input\": \"" + std::string(100, '[') + "\"}");
}

TEST(Request, WrongTypesAndEmptyInputs) {
  expect_refused(Api::kOpenAI, "{}", 400, "missing 'input'");
  expect_refused(Api::kOpenAI, R"({"inputs": "a"})", 400, "missing 'input'");
  expect_refused(Api::kTei, R"({"input": "a"})", 400, "missing 'inputs'");
  expect_refused(Api::kOpenAI, R"({"input": 3.5})", 400,
                 "'input' must be a string or a list of strings, got number");
  expect_refused(Api::kOpenAI, R"({"input": {"a": 1}})", 400, "got object");
  expect_refused(Api::kOpenAI, R"({"input": null})", 400, "got null");
  expect_refused(Api::kOpenAI, R"({"input": true})", 400, "got boolean");
  expect_refused(Api::kOpenAI, R"({"input": ""})", 400, "'input' is an empty string");
  expect_refused(Api::kOpenAI, R"({"input": []})", 400, "'input' is an empty list");
  expect_refused(Api::kOpenAI, R"({"input": ["a", ""]})", 400, "'input'[1] is an empty string");
  expect_refused(Api::kOpenAI, R"({"input": ["a", 2]})", 400, "'input'[1] must be a string");
  expect_refused(Api::kOpenAI, R"({"input": ["a", ["b"]]})", 400, "got array");
  expect_refused(Api::kOpenAI, R"({"input": [101, 2023]})", 400, "token ids");
  expect_refused(Api::kOpenAI, R"({"input": 101})", 400, "token ids");
  expect_refused(Api::kOpenAI, R"({"input": [[101, 2023]]})", 400, "token ids");
  expect_refused(Api::kOpenAI, R"({"input": "a\u0000b"})", 400, "U+0000");
  expect_refused(Api::kOpenAI, R"({"input": "a", "model": 3})", 400, "'model' must be a string");
  expect_refused(Api::kOpenAI, R"({"input": "a", "encoding_format": "int8"})", 400,
                 "'encoding_format' must be \"float\" or \"base64\", got \"int8\"");
  expect_refused(Api::kOpenAI, R"({"input": "a", "encoding_format": 1})", 400, "encoding_format");
  expect_refused(Api::kOpenAI, R"({"input": "a", "dimensions": 0})", 400, "'dimensions'");
  expect_refused(Api::kOpenAI, R"({"input": "a", "dimensions": "8"})", 400, "'dimensions'");
  expect_refused(Api::kOpenAI, R"({"input": "a", "user": 1})", 400, "'user' must be a string");
  expect_refused(Api::kTei, R"({"inputs": "a", "normalize": "yes"})", 400,
                 "'normalize' must be true or false, got string");
  expect_refused(Api::kTei, R"({"inputs": "a", "truncate": 1})", 400, "'truncate'");
  expect_refused(Api::kTei, R"({"inputs": []})", 400, "'inputs' is an empty list");
}

TEST(Request, Limits) {
  RequestLimits limits;
  limits.max_inputs = 3;
  limits.max_input_bytes = 5;
  parse_ok(Api::kOpenAI, R"({"input": ["a", "b", "12345"]})", limits);
  expect_refused(Api::kOpenAI, R"({"input": ["a", "b", "c", "d"]})", 413,
                 "has 4 texts; the limit is 3 per request (--max-inputs)", limits);
  expect_refused(Api::kTei, R"({"inputs": "123456"})", 413,
                 "'inputs' has 6 bytes; the limit is 5 (--max-input-bytes)", limits);
  expect_refused(Api::kOpenAI, R"({"input": ["a", "123456"]})", 413, "'input'[1] has 6 bytes",
                 limits);
}

TEST(Request, ChecksAgainstTheModel) {
  ModelInfo model{8, true, 16};
  ApiError e;
  EmbedRequest r;
  r.inputs = {"a"};
  EXPECT_TRUE(check_request(Api::kOpenAI, r, model, &e));
  r.dimensions = 8;
  EXPECT_TRUE(check_request(Api::kOpenAI, r, model, &e));
  r.dimensions = 4;
  EXPECT_FALSE(check_request(Api::kOpenAI, r, model, &e));
  EXPECT_EQ(e.status, 400);
  EXPECT_NE(e.message.find("this model's are 8"), std::string::npos) << e.message;
  r.dimensions = 0;
  r.normalize = false;
  EXPECT_FALSE(check_request(Api::kTei, r, model, &e));
  EXPECT_NE(e.message.find("L2-normalises"), std::string::npos) << e.message;
  model.normalizes = false;
  EXPECT_TRUE(check_request(Api::kTei, r, model, &e));

  r.inputs = {"a", "b"};
  EXPECT_TRUE(check_truncation(r, {40, 3}, 16, &e));  // truncate: true (default)
  r.truncate = false;
  EXPECT_TRUE(check_truncation(r, {16, 3}, 16, &e));
  EXPECT_TRUE(check_truncation(r, {40, 3}, 0, &e));  // no maximum known
  EXPECT_FALSE(check_truncation(r, {3, 40}, 16, &e));
  EXPECT_EQ(e.status, 413);
  EXPECT_NE(e.message.find("input 1 has 40 tokens, more than the model's maximum 16"),
            std::string::npos)
      << e.message;
  EXPECT_EQ(json::parse(error_body(Api::kTei, e))["error_type"], "Validation");
}

TEST(Response, Models) {
  ModelInfo model;
  model.dim = 384;
  model.max_seq = 128;
  model.normalizes = true;
  const json list = json::parse(models_response("mini", 1700000000, model));
  EXPECT_EQ(list["object"], "list");
  ASSERT_EQ(list["data"].size(), 1u);
  const json& m = list["data"][0];
  EXPECT_EQ(m, json::parse(model_object("mini", 1700000000, model)));
  EXPECT_EQ(m["id"], "mini");
  EXPECT_EQ(m["object"], "model");
  EXPECT_EQ(m["owned_by"], "kiln");
  EXPECT_EQ(m["created"], 1700000000);
  EXPECT_EQ(m["dim"], 384);
  EXPECT_EQ(m["max_tokens"], 128);
  EXPECT_EQ(m["normalized"], true);
  // a name that is not UTF-8 (--model-name is the user's) is replaced, not thrown
  EXPECT_NO_THROW(json::parse(models_response("bad\xff", 0, model)));
}

TEST(Response, OpenAIFloatAndBase64) {
  EmbedRequest r;
  r.inputs = {"a", "b"};
  const std::vector<float> v = {0.1f, -1e-30f, 3.4028235e38f, 1.0f / 3, 0, -0.5f};
  json j = json::parse(openai_response(r, v.data(), 3, {4, 7}, "mini"));
  EXPECT_EQ(j["object"], "list");
  EXPECT_EQ(j["model"], "mini");
  EXPECT_EQ(j["usage"]["prompt_tokens"], 11);
  EXPECT_EQ(j["usage"]["total_tokens"], 11);
  ASSERT_EQ(j["data"].size(), 2u);
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(j["data"][i]["object"], "embedding");
    EXPECT_EQ(j["data"][i]["index"], i);
    for (int d = 0; d < 3; ++d)  // shortest round-trip text: the same float back
      EXPECT_EQ(j["data"][i]["embedding"][d].get<float>(), v[i * 3 + d]) << i << " " << d;
  }
  r.base64 = true;
  r.model = "asked-for";
  j = json::parse(openai_response(r, v.data(), 3, {4, 7}, "mini"));
  EXPECT_EQ(j["model"], "asked-for");
  // base64 of the little-endian float32 bytes
  EXPECT_EQ(j["data"][1]["embedding"], base64_encode(v.data() + 3, 12));
  std::vector<float> back(3);
  const std::string b64 = j["data"][0]["embedding"];
  // decode by hand (4 chars -> 3 bytes)
  auto digit = [](char c) -> uint32_t {
    return c >= 'A' && c <= 'Z'   ? c - 'A'
           : c >= 'a' && c <= 'z' ? c - 'a' + 26
           : c >= '0' && c <= '9' ? c - '0' + 52
           : c == '+'             ? 62
                                  : 63;
  };
  std::vector<unsigned char> bytes;
  for (size_t i = 0; i + 4 <= b64.size(); i += 4) {
    const uint32_t x = digit(b64[i]) << 18 | digit(b64[i + 1]) << 12 |
                       (b64[i + 2] == '=' ? 0 : digit(b64[i + 2]) << 6) |
                       (b64[i + 3] == '=' ? 0 : digit(b64[i + 3]));
    bytes.push_back(x >> 16);
    if (b64[i + 2] != '=') bytes.push_back((x >> 8) & 255);
    if (b64[i + 3] != '=') bytes.push_back(x & 255);
  }
  ASSERT_EQ(bytes.size(), 12u);
  std::memcpy(back.data(), bytes.data(), 12);
  EXPECT_EQ(back, std::vector<float>(v.begin(), v.begin() + 3));
}

TEST(Response, Tei) {
  const std::vector<float> v = {1, 2.5f, -3, 0.25f};
  const json j = json::parse(tei_response(v.data(), 2, 2));
  EXPECT_EQ(j, json::parse("[[1, 2.5], [-3, 0.25]]"));
}

TEST(Response, Base64KnownValues) {  // RFC 4648 section 10
  const char* want[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
  for (size_t n = 0; n <= 6; ++n) EXPECT_EQ(base64_encode("foobar", n), want[n]) << n;
}

TEST(Auth, ConstantTimeEqualAndBearer) {
  EXPECT_TRUE(constant_time_equal("secret-key", "secret-key"));
  EXPECT_FALSE(constant_time_equal("secret-kez", "secret-key"));
  EXPECT_FALSE(constant_time_equal("secret", "secret-key"));
  EXPECT_FALSE(constant_time_equal("secret-key-and-more", "secret-key"));
  EXPECT_FALSE(constant_time_equal("", "secret-key"));
  EXPECT_FALSE(constant_time_equal(std::string("secret-key\0", 11), "secret-key"));
  EXPECT_EQ(bearer_token("Bearer abc"), "abc");
  EXPECT_EQ(bearer_token("bearer  abc "), "abc");
  EXPECT_EQ(bearer_token("Basic abc"), "");
  EXPECT_EQ(bearer_token("Bearer"), "");
  EXPECT_EQ(bearer_token(""), "");
}

}  // namespace
}  // namespace kiln::serve
