// kiln-rt serve's counters and their Prometheus text form (GET /metrics): requests by endpoint
// and status, a request latency histogram by endpoint, texts, tokens (real and padded), model
// runs and micro-batches, and the queue depth at the time of the scrape.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace kiln::serve {

class Metrics {
 public:
  // Latency histogram bucket bounds, seconds.
  static const std::vector<double>& buckets();

  // A finished request. endpoint: the route ("/v1/embeddings", ...) or "other".
  void request(const std::string& endpoint, int status, double seconds);
  // A micro-batch the worker ran.
  void batch(size_t jobs, size_t texts, int64_t tokens, int64_t padded_tokens, int32_t runs,
             double seconds);

  std::string render(size_t queue_depth, size_t max_queue) const;

 private:
  struct Histogram {
    std::vector<uint64_t> counts;  // per bucket, not cumulative (+Inf last)
    double sum = 0;
    uint64_t count = 0;
  };
  mutable std::mutex mutex_;
  std::map<std::pair<std::string, int>, uint64_t> requests_;
  std::map<std::string, Histogram> latency_;
  uint64_t batches_ = 0, batch_jobs_ = 0, texts_ = 0, runs_ = 0;
  int64_t tokens_ = 0, padded_tokens_ = 0;
  double batch_seconds_ = 0;
};

}  // namespace kiln::serve
