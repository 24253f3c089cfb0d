// kiln-rt serve's Prometheus text (tools/kiln-rt/serve/metrics.h): counters by label, the latency
// histogram cumulative with +Inf equal to the count, batch totals and the queue gauges.
#include <gtest/gtest.h>

#include <string>

#include "serve/metrics.h"

namespace kiln::serve {
namespace {

bool has_line(const std::string& text, const std::string& line) {
  return text.find("\n" + line + "\n") != std::string::npos || text.rfind(line + "\n", 0) == 0;
}

TEST(Metrics, Render) {
  Metrics m;
  m.request("/v1/embeddings", 200, 0.003);
  m.request("/v1/embeddings", 200, 0.2);
  m.request("/v1/embeddings", 400, 0.0001);
  m.request("/embed", 503, 20);
  m.batch(3, 7, 120, 160, 2, 0.01);
  m.batch(1, 1, 5, 5, 1, 0.002);
  const std::string t = m.render(4, 16);
  EXPECT_TRUE(has_line(t, "# TYPE kiln_requests_total counter")) << t;
  EXPECT_TRUE(has_line(t, "kiln_requests_total{endpoint=\"/v1/embeddings\",status=\"200\"} 2"));
  EXPECT_TRUE(has_line(t, "kiln_requests_total{endpoint=\"/v1/embeddings\",status=\"400\"} 1"));
  EXPECT_TRUE(has_line(t, "kiln_requests_total{endpoint=\"/embed\",status=\"503\"} 1"));
  const std::string b = "kiln_request_duration_seconds_bucket{endpoint=\"/v1/embeddings\",le=";
  EXPECT_TRUE(has_line(t, b + "\"0.001\"} 1")) << t;
  EXPECT_TRUE(has_line(t, b + "\"0.0025\"} 1"));
  EXPECT_TRUE(has_line(t, b + "\"0.005\"} 2"));
  EXPECT_TRUE(has_line(t, b + "\"0.25\"} 3"));
  EXPECT_TRUE(has_line(t, b + "\"+Inf\"} 3"));
  EXPECT_TRUE(has_line(t, "kiln_request_duration_seconds_count{endpoint=\"/v1/embeddings\"} 3"));
  EXPECT_TRUE(has_line(t, "kiln_request_duration_seconds_bucket{endpoint=\"/embed\",le=\"10\"} 0"));
  EXPECT_TRUE(
      has_line(t, "kiln_request_duration_seconds_bucket{endpoint=\"/embed\",le=\"+Inf\"} 1"));
  EXPECT_TRUE(has_line(t, "kiln_queue_depth 4"));
  EXPECT_TRUE(has_line(t, "kiln_queue_capacity 16"));
  EXPECT_TRUE(has_line(t, "kiln_batches_total 2"));
  EXPECT_TRUE(has_line(t, "kiln_batch_requests_total 4"));
  EXPECT_TRUE(has_line(t, "kiln_texts_total 8"));
  EXPECT_TRUE(has_line(t, "kiln_tokens_total 125"));
  EXPECT_TRUE(has_line(t, "kiln_padded_tokens_total 165"));
  EXPECT_TRUE(has_line(t, "kiln_model_runs_total 3"));
}

}  // namespace
}  // namespace kiln::serve
