// Prometheus text exposition (format 0.0.4) of kiln-rt serve's counters (see metrics.h).
#include "serve/metrics.h"

#include <cstdio>

namespace kiln::serve {
namespace {

std::string number(double x) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", x);
  return buf;
}

void header(std::string* out, const char* name, const char* type, const char* help) {
  *out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
}

void sample(std::string* out, const std::string& name, const std::string& labels, double value) {
  *out += name + (labels.empty() ? "" : "{" + labels + "}") + " " + number(value) + "\n";
}

}  // namespace

const std::vector<double>& Metrics::buckets() {
  static const std::vector<double> kBuckets = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                               0.25,  0.5,    1,     2.5,  5,     10};
  return kBuckets;
}

void Metrics::request(const std::string& endpoint, int status, double seconds) {
  std::lock_guard<std::mutex> lock(mutex_);
  ++requests_[{endpoint, status}];
  Histogram& h = latency_[endpoint];
  if (h.counts.empty()) h.counts.assign(buckets().size() + 1, 0);
  size_t b = 0;
  while (b < buckets().size() && seconds > buckets()[b]) ++b;
  ++h.counts[b];
  h.sum += seconds;
  ++h.count;
}

void Metrics::batch(size_t jobs, size_t texts, int64_t tokens, int64_t padded_tokens, int32_t runs,
                    double seconds) {
  std::lock_guard<std::mutex> lock(mutex_);
  ++batches_;
  batch_jobs_ += jobs;
  texts_ += texts;
  tokens_ += tokens;
  padded_tokens_ += padded_tokens;
  runs_ += static_cast<uint64_t>(runs);
  batch_seconds_ += seconds;
}

std::string Metrics::render(size_t queue_depth, size_t max_queue) const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::string out;
  header(&out, "kiln_requests_total", "counter", "HTTP requests answered, by endpoint and status");
  for (const auto& [key, n] : requests_)
    sample(&out, "kiln_requests_total",
           "endpoint=\"" + key.first + "\",status=\"" + std::to_string(key.second) + "\"",
           static_cast<double>(n));
  header(&out, "kiln_request_duration_seconds", "histogram",
         "time from the request line to the answer, by endpoint");
  for (const auto& [endpoint, h] : latency_) {
    const std::string label = "endpoint=\"" + endpoint + "\"";
    uint64_t cumulative = 0;
    for (size_t b = 0; b < h.counts.size(); ++b) {
      cumulative += h.counts[b];
      const std::string le = b < buckets().size() ? number(buckets()[b]) : "+Inf";
      sample(&out, "kiln_request_duration_seconds_bucket", label + ",le=\"" + le + "\"",
             static_cast<double>(cumulative));
    }
    sample(&out, "kiln_request_duration_seconds_sum", label, h.sum);
    sample(&out, "kiln_request_duration_seconds_count", label, static_cast<double>(h.count));
  }
  struct Single {
    const char* name;
    const char* type;
    const char* help;
    double value;
  };
  const Single singles[] = {
      {"kiln_queue_depth", "gauge", "requests waiting for the model",
       static_cast<double>(queue_depth)},
      {"kiln_queue_capacity", "gauge", "requests that may wait (--max-queue)",
       static_cast<double>(max_queue)},
      {"kiln_batches_total", "counter", "micro-batches the model ran",
       static_cast<double>(batches_)},
      {"kiln_batch_requests_total", "counter", "requests over all micro-batches",
       static_cast<double>(batch_jobs_)},
      {"kiln_texts_total", "counter", "texts embedded", static_cast<double>(texts_)},
      {"kiln_tokens_total", "counter", "tokens embedded (after truncation)",
       static_cast<double>(tokens_)},
      {"kiln_padded_tokens_total", "counter", "positions the model ran, padding included",
       static_cast<double>(padded_tokens_)},
      {"kiln_model_runs_total", "counter", "model runs", static_cast<double>(runs_)},
      {"kiln_batch_seconds_total", "counter", "time the worker spent embedding", batch_seconds_},
  };
  for (const Single& m : singles) {
    header(&out, m.name, m.type, m.help);
    sample(&out, m.name, "", m.value);
  }
  return out;
}

}  // namespace kiln::serve
