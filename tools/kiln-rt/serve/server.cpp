// `kiln-rt serve DIR`: sentence embeddings over HTTP. cpp-httplib (third_party/cpp-httplib,
// header-only, compiled in without TLS) parses HTTP on a pool of --http-threads threads; each
// embedding request is parsed and checked there (serve/request.h), then queued for the one
// worker thread that owns the model (serve/embed_queue.h), which embeds micro-batches of
// requests up to a token budget. GET /health and GET /metrics (serve/metrics.h) never touch the
// model; GET /v1/models lists the one model (OpenAI's format). TEI "truncate": false is checked
// on the HTTP thread before queueing (kiln_model_count_tokens reads only the tokenizer, so it runs
// beside the worker's embed). SIGINT / SIGTERM stop accepting, finish the requests in hand and
// return.
// httplib listens with a backlog of 5: a burst of 16 connections on a busy machine got resets
// (bench/serve_bench.py's warm-up at load average 15).
#define CPPHTTPLIB_LISTEN_BACKLOG 128
#include <httplib.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "kiln/runtime.hpp"
#include "serve/embed_queue.h"
#include "serve/metrics.h"
#include "serve/request.h"

namespace kiln::tools {
namespace {

namespace fs = std::filesystem;
using serve::Api;
using serve::ApiError;

constexpr char kJson[] = "application/json";

std::string read_api_key(const std::string& path) {
  std::ifstream f(path);
  std::string key;
  if (!f || !std::getline(f, key))
    throw std::runtime_error("serve: --api-key-file: cannot read '" + path + "'");
  while (!key.empty() && std::isspace(static_cast<unsigned char>(key.back()))) key.pop_back();
  while (!key.empty() && std::isspace(static_cast<unsigned char>(key.front()))) key.erase(0, 1);
  if (key.empty()) throw std::runtime_error("serve: --api-key-file: '" + path + "' holds no key");
  return key;
}

// model.json's pooling.normalize (false without a pooling section).
bool artifact_normalizes(const std::string& dir) {
  std::ifstream f(fs::path(dir) / "model.json");
  const nlohmann::json j = nlohmann::json::parse(f, nullptr, false);
  if (!j.is_object() || !j.contains("pooling") || !j["pooling"].is_object()) return false;
  return j["pooling"].value("normalize", false);
}

// Runs the largest run the server will form (max_batch texts at the compiled maximum length) so
// that the arena and the runtime's buffers reach their final size before the first request (RSS
// stays flat after), and returns that maximum (what a long text is truncated to).
int64_t warm_up(Model& m, int max_batch, int64_t dim) {
  const int run_texts = max_batch;
  std::string text;
  for (int words = 256; words <= (1 << 18); words *= 2) {
    text.clear();
    for (int i = 0; i < words; ++i) text += "x ";
    const std::vector<const char*> texts(static_cast<size_t>(run_texts), text.c_str());
    std::vector<float> out(texts.size() * static_cast<size_t>(dim));
    kiln_embed_options opts{max_batch, 0};
    check(kiln_model_embed(m.get(), texts.data(), static_cast<int32_t>(texts.size()), &opts,
                           out.data(), static_cast<int64_t>(out.size()), nullptr));
    std::vector<int64_t> full;
    const std::vector<int64_t> tokens = m.embed_text_tokens(texts.size(), &full);
    if (full[0] > tokens[0]) return tokens[0];
  }
  return 0;  // no maximum reached: the tokens estimate is not capped
}

serve::EmbedFn model_embedder(Model* m, int max_batch, int64_t dim) {
  return [m, max_batch, dim](const std::vector<const char*>& texts, float* out, int64_t* tokens,
                             int64_t* full_tokens, serve::BatchStats* stats) -> std::string {
    const auto n = static_cast<int32_t>(texts.size());
    kiln_embed_options opts{max_batch, 0};
    kiln_embed_stats s{};
    if (kiln_model_embed(m->get(), texts.data(), n, &opts, out, n * dim, &s) != KILN_OK ||
        kiln_model_embed_text_tokens(m->get(), n, tokens, full_tokens) != KILN_OK)
      return kiln_last_error();
    stats->tokens = s.tokens;
    stats->padded_tokens = s.padded_tokens;
    stats->runs = s.runs;
    return std::string();
  };
}

void l2_normalize(std::vector<float>* v, int64_t dim) {
  for (size_t row = 0; row + dim <= v->size(); row += dim) {
    double norm = 0;
    for (int64_t d = 0; d < dim; ++d) norm += double{(*v)[row + d]} * (*v)[row + d];
    const float scale = static_cast<float>(1 / std::max(std::sqrt(norm), 1e-12));
    for (int64_t d = 0; d < dim; ++d) (*v)[row + d] *= scale;
  }
}

const char* endpoint_label(const std::string& path) {
  for (const char* known : {"/v1/embeddings", "/embed", "/health", "/metrics", "/v1/models"})
    if (path == known) return known;
  if (path.rfind("/v1/models/", 0) == 0) return "/v1/models/{id}";
  return "other";
}

Api api_of(const std::string& path) {
  return path == "/embed" ? Api::kTei : Api::kOpenAI;
}

void reply_error(Api api, int status, const std::string& message, httplib::Response& res) {
  res.status = status;
  res.set_content(serve::error_body(api, ApiError{status, message}), kJson);
}

class Server {
 public:
  Server(const ServeArgs& a, Model* model, const serve::ModelInfo& info, std::string key)
      : args_(a),
        model_(model),
        info_(info),
        key_(std::move(key)),
        name_(a.model_name.empty() ? fs::absolute(a.dir).lexically_normal().filename().string()
                                   : a.model_name),
        queue_(serve::QueueLimits{static_cast<size_t>(a.max_queue), a.batch_tokens,
                                  static_cast<size_t>(std::max<int64_t>(a.max_inputs, 512)),
                                  info.max_seq},
               info.dim, model_embedder(model, a.max_batch, info.dim),
               [this](size_t jobs, size_t texts, const serve::BatchStats& s, double seconds) {
                 metrics_.batch(jobs, texts, s.tokens, s.padded_tokens, s.runs, seconds);
               }) {
    if (name_.empty()) name_ = "kiln";
    created_ = std::chrono::duration_cast<std::chrono::seconds>(
                   std::chrono::system_clock::now().time_since_epoch())
                   .count();
    limits_.max_inputs = static_cast<size_t>(a.max_inputs);
    limits_.max_input_bytes = static_cast<size_t>(a.max_input_bytes);
    setup();
  }

  // Serves until stop(); false when it cannot listen.
  int run() {
    const int port = args_.port == 0
                         ? http_.bind_to_any_port(args_.host)
                         : (http_.bind_to_port(args_.host, args_.port) ? args_.port : -1);
    if (port < 0)
      throw std::runtime_error("serve: cannot listen on " + args_.host + ":" +
                               std::to_string(args_.port) +
                               " (port in use, or not an address of this machine)");
    queue_.start();
    std::fprintf(stderr,
                 "kiln-rt serve: %s (dim %lld, max %lld tokens, %d model thread(s)) listening on "
                 "http://%s:%d%s\n",
                 name_.c_str(), static_cast<long long>(info_.dim),
                 static_cast<long long>(info_.max_seq), threads_, args_.host.c_str(), port,
                 key_.empty() ? "" : " (API key required)");
    std::fflush(stderr);
    http_.listen_after_bind();
    queue_.stop();
    return 0;
  }

  void stop() { http_.stop(); }
  void set_threads(int n) { threads_ = n; }

 private:
  void setup() {
    const size_t n = static_cast<size_t>(args_.http_threads);
    http_.new_task_queue = [n] { return new httplib::ThreadPool(n, std::max<size_t>(64, 4 * n)); };
    http_.set_payload_max_length(static_cast<size_t>(args_.max_body));
    http_.set_read_timeout(args_.timeout, 0);
    http_.set_write_timeout(args_.timeout, 0);
    http_.set_keep_alive_timeout(5);
    // httplib writes headers and body in separate sends: without TCP_NODELAY, Nagle holds the
    // body until the client's delayed ACK (~40 ms per answer, measured: p50 46 ms -> see docs).
    http_.set_tcp_nodelay(true);
    http_.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
      if (key_.empty() || req.path == "/health") return httplib::Server::HandlerResponse::Unhandled;
      const std::string header = req.get_header_value("Authorization");
      if (serve::constant_time_equal(serve::bearer_token(header), key_))
        return httplib::Server::HandlerResponse::Unhandled;
      res.set_header("WWW-Authenticate", "Bearer");
      reply_error(
          api_of(req.path), 401,
          header.empty() ? "missing API key (send Authorization: Bearer KEY)" : "wrong API key",
          res);
      return httplib::Server::HandlerResponse::Handled;
    });
    http_.Post("/v1/embeddings", [this](const httplib::Request& req, httplib::Response& res) {
      embed(Api::kOpenAI, req, res);
    });
    http_.Post("/embed", [this](const httplib::Request& req, httplib::Response& res) {
      embed(Api::kTei, req, res);
    });
    http_.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
      const nlohmann::json j = {{"status", "ok"},
                                {"model", name_},
                                {"dim", info_.dim},
                                {"max_tokens", info_.max_seq},
                                {"normalized", info_.normalizes},
                                {"queue_depth", queue_.depth()}};
      res.set_content(j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), kJson);
    });
    http_.Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
      res.set_content(serve::models_response(name_, created_, info_), kJson);
    });
    http_.Get("/v1/models/(.+)", [this](const httplib::Request& req, httplib::Response& res) {
      const std::string id = req.matches[1].str();
      if (id != name_)
        return reply_error(Api::kOpenAI, 404,
                           "no model '" + id + "' (this server serves '" + name_ + "')", res);
      res.set_content(serve::model_object(name_, created_, info_), kJson);
    });
    http_.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
      res.set_content(metrics_.render(queue_.depth(), static_cast<size_t>(args_.max_queue)),
                      "text/plain; version=0.0.4");
    });
    // Errors httplib answers itself (unknown route, body too large, bad HTTP) get a JSON body.
    http_.set_error_handler([this](const httplib::Request& req, httplib::Response& res) {
      if (!res.body.empty()) return;
      std::string message = httplib::status_message(res.status);
      if (res.status == 404)
        message = "no endpoint " + req.method + " " + req.path +
                  " (POST /v1/embeddings, POST /embed, GET /v1/models, GET /health, GET /metrics)";
      else if (res.status == 413)
        message = "the body exceeds " + std::to_string(args_.max_body) + " bytes (--max-body)";
      reply_error(api_of(req.path), res.status, message, res);
    });
    http_.set_exception_handler(
        [](const httplib::Request& req, httplib::Response& res, std::exception_ptr e) {
          std::string message = "internal error";
          try {
            std::rethrow_exception(e);
          } catch (const std::exception& x) {
            message += std::string(": ") + x.what();
          } catch (...) {
          }
          reply_error(api_of(req.path), 500, message, res);
        });
    http_.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
      const double seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - req.start_time_).count();
      metrics_.request(endpoint_label(req.path), res.status, seconds);
    });
  }

  void embed(Api api, const httplib::Request& req, httplib::Response& res) {
    serve::EmbedRequest request;
    ApiError error;
    if (!serve::parse_request(api, req.body, limits_, &request, &error) ||
        !serve::check_request(api, request, info_, &error))
      return reply_error(api, error.status, error.message, res);
    if (!request.truncate && !check_lengths(request, &error))
      return reply_error(api, error.status, error.message, res);
    auto job = std::make_shared<serve::EmbedJob>();
    job->texts = std::move(request.inputs);
    if (!queue_.submit(job)) {
      res.set_header("Retry-After", "1");
      return reply_error(api, 503,
                         "the queue is full (" + std::to_string(args_.max_queue) +
                             " requests waiting, --max-queue): retry later",
                         res);
    }
    job->wait();
    request.inputs = std::move(job->texts);
    if (job->error_status != 0) return reply_error(api, job->error_status, job->error, res);
    if (api == Api::kTei) {
      if (request.normalize && !info_.normalizes) l2_normalize(&job->vectors, info_.dim);
      res.set_content(serve::tei_response(job->vectors.data(), request.inputs.size(), info_.dim),
                      kJson);
    } else {
      res.set_content(
          serve::openai_response(request, job->vectors.data(), info_.dim, job->tokens, name_),
          kJson);
    }
  }

  // TEI "truncate": false: every text within the model's maximum, counted by the tokenizer here
  // (kiln_model_count_tokens may run while the worker embeds), so a refused request never waits
  // in the queue nor costs a model run.
  bool check_lengths(const serve::EmbedRequest& request, ApiError* error) const {
    std::vector<const char*> texts;
    texts.reserve(request.inputs.size());
    for (const std::string& t : request.inputs) texts.push_back(t.c_str());
    std::vector<int64_t> full(texts.size());
    if (kiln_model_count_tokens(model_->get(), texts.data(), static_cast<int32_t>(texts.size()),
                                full.data()) != KILN_OK) {
      *error = ApiError{422, kiln_last_error()};
      return false;
    }
    return serve::check_truncation(request, full, info_.max_seq, error);
  }

  const ServeArgs args_;
  Model* const model_;
  const serve::ModelInfo info_;
  const std::string key_;
  std::string name_;
  serve::RequestLimits limits_;
  serve::Metrics metrics_;
  serve::EmbedQueue queue_;
  httplib::Server http_;
  int threads_ = 0;
  int64_t created_ = 0;  // GET /v1/models "created": when the server started
};

// SIGINT / SIGTERM blocked in this thread and every thread started while it lives (the model's
// thread pool too, hence before loading it), so that only sigwait sees them.
class BlockedSignals {
 public:
  BlockedSignals() {
    sigemptyset(&set_);
    sigaddset(&set_, SIGINT);
    sigaddset(&set_, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set_, &old_);
  }
  ~BlockedSignals() { pthread_sigmask(SIG_SETMASK, &old_, nullptr); }
  const sigset_t* set() const { return &set_; }

 private:
  sigset_t set_, old_;
};

}  // namespace

int cmd_serve(const ServeArgs& a) {
  const std::string key = a.api_key_file.empty() ? std::string() : read_api_key(a.api_key_file);
  const BlockedSignals signals;
#ifdef M_ARENA_MAX
  // glibc gives each thread that allocates its own malloc arena (up to 8 x cores): with 16 HTTP
  // threads RSS crept up as more of them served a first request. Two arenas are plenty for
  // threads that mostly parse JSON and wait.
  mallopt(M_ARENA_MAX, 2);
#endif
  Model m = load_text_model(a.dir, a.threads, "serve");
  serve::ModelInfo info;
  info.dim = m.embedding_dim();
  info.normalizes = artifact_normalizes(a.dir);
  info.max_seq = warm_up(m, a.max_batch, info.dim);

  // httplib's stop() is not async-signal-safe: one thread waits for the signal and calls it.
  Server server(a, &m, info, key);
  server.set_threads(m.num_threads());
  std::atomic<bool> done{false}, signalled{false};
  std::thread waiter([&] {
    int sig = 0;
    sigwait(signals.set(), &sig);
    signalled = true;
    if (!done) std::fprintf(stderr, "kiln-rt serve: signal %d, shutting down\n", sig);
    server.stop();
  });
  // Ends the waiter when the server ended without a signal (it cannot listen, ...).
  auto end_waiter = [&] {
    done = true;
    if (!signalled) pthread_kill(waiter.native_handle(), SIGTERM);
    waiter.join();
  };
  int rc = 0;
  try {
    rc = server.run();
  } catch (...) {
    end_waiter();
    throw;
  }
  end_waiter();
  return rc;
}

}  // namespace kiln::tools
