// kiln-rt serve's micro-batching queue (tools/kiln-rt/serve/embed_queue.h) with a fake model
// whose vector of a text is [bytes, first byte, batch number]: batches follow the token budget
// and text cap in FIFO order, rows go back to the right request, one request the model refuses
// fails alone, a full queue refuses, and stop() fails what waits. No timing: the tests hold the
// worker back by not starting it, or with a gate in the fake model.
#include <gtest/gtest.h>

#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "serve/embed_queue.h"

namespace kiln::serve {
namespace {

constexpr int64_t kDim = 3;

std::shared_ptr<EmbedJob> job_of(std::vector<std::string> texts) {
  auto job = std::make_shared<EmbedJob>();
  job->texts = std::move(texts);
  return job;
}

// The fake model. Refuses a batch holding the text "bad"; blocks while gate_closed.
struct FakeModel {
  std::mutex mutex;
  std::condition_variable cv;
  bool gate_closed = false;
  bool entered = false;
  std::vector<size_t> batch_sizes;  // texts per call

  EmbedFn fn() {
    return [this](const std::vector<const char*>& texts, float* out, int64_t* tokens, int64_t* full,
                  BatchStats* stats) -> std::string {
      std::unique_lock<std::mutex> lock(mutex);
      entered = true;
      cv.notify_all();
      cv.wait(lock, [this] { return !gate_closed; });
      batch_sizes.push_back(texts.size());
      for (size_t i = 0; i < texts.size(); ++i)
        if (std::string(texts[i]) == "bad") return "text " + std::to_string(i) + " is bad";
      for (size_t i = 0; i < texts.size(); ++i) {
        const std::string t = texts[i];
        out[i * kDim] = static_cast<float>(t.size());
        out[i * kDim + 1] = static_cast<float>(static_cast<unsigned char>(t[0]));
        out[i * kDim + 2] = static_cast<float>(batch_sizes.size());
        tokens[i] = std::min<int64_t>(static_cast<int64_t>(t.size()), 8);
        full[i] = static_cast<int64_t>(t.size());
        stats->tokens += tokens[i];
      }
      stats->runs = 1;
      return std::string();
    };
  }
  void open_gate() {
    std::lock_guard<std::mutex> lock(mutex);
    gate_closed = false;
    cv.notify_all();
  }
  void wait_entered() {
    std::unique_lock<std::mutex> lock(mutex);
    cv.wait(lock, [this] { return entered; });
  }
};

void expect_rows_of(const EmbedJob& job) {
  ASSERT_EQ(job.error_status, 0) << job.error;
  ASSERT_EQ(job.vectors.size(), job.texts.size() * kDim);
  for (size_t i = 0; i < job.texts.size(); ++i) {
    EXPECT_EQ(job.vectors[i * kDim], static_cast<float>(job.texts[i].size())) << job.texts[i];
    EXPECT_EQ(job.vectors[i * kDim + 1], static_cast<float>(job.texts[i][0])) << job.texts[i];
    EXPECT_EQ(job.full_tokens[i], static_cast<int64_t>(job.texts[i].size()));
    EXPECT_EQ(job.tokens[i], std::min<int64_t>(static_cast<int64_t>(job.texts[i].size()), 8));
  }
}

TEST(EmbedQueue, EstimateAndBatchSize) {
  EXPECT_EQ(estimate_tokens("hello", 0), 7);
  EXPECT_EQ(estimate_tokens("hello", 4), 4);
  QueueLimits limits;
  limits.batch_tokens = 20;
  limits.batch_texts = 4;
  std::deque<std::shared_ptr<EmbedJob>> q;
  EXPECT_EQ(next_batch_size(q, limits), 0u);
  q.push_back(job_of({std::string(30, 'a')}));  // 32 > budget: still taken, alone
  q.push_back(job_of({"abc"}));
  EXPECT_EQ(next_batch_size(q, limits), 1u);
  q.pop_front();
  q.push_back(job_of({"abc", "abcdef"}));     // 5 + 8
  q.push_back(job_of({"a"}));                 // 3: 21 > 20 stops here
  EXPECT_EQ(next_batch_size(q, limits), 2u);  // 5 + 13 = 18
  limits.batch_tokens = 100;
  q.push_back(job_of({"b", "c"}));  // texts 1 + 2 + 1 = 4, + 2 = 6 > 4
  EXPECT_EQ(next_batch_size(q, limits), 3u);
  limits.batch_texts = 6;
  EXPECT_EQ(next_batch_size(q, limits), 4u);
  limits.max_seq = 2;  // every text counts 2 at most
  limits.batch_tokens = 8;
  EXPECT_EQ(next_batch_size(q, limits), 3u);  // 2 + 4 + 2, then 4 more is 12
}

TEST(EmbedQueue, QueuedJobsFormOneBatchAndGetTheirOwnRows) {
  FakeModel model;
  std::vector<size_t> observed;
  QueueLimits limits;
  EmbedQueue q(limits, kDim, model.fn(),
               [&](size_t jobs, size_t texts, const BatchStats& s, double) {
                 observed.push_back(jobs * 1000 + texts);
                 EXPECT_GT(s.tokens, 0);
               });
  std::vector<std::shared_ptr<EmbedJob>> jobs = {job_of({"hello", "a"}), job_of({"xyz"}),
                                                 job_of({"longer text here", "b", "cc"})};
  for (auto& j : jobs) ASSERT_TRUE(q.submit(j));
  EXPECT_EQ(q.depth(), 3u);
  q.start();
  for (auto& j : jobs) {
    j->wait();
    expect_rows_of(*j);
  }
  q.stop();
  EXPECT_EQ(model.batch_sizes, std::vector<size_t>{6});
  EXPECT_EQ(observed, std::vector<size_t>{3006});
  EXPECT_EQ(q.depth(), 0u);
}

TEST(EmbedQueue, ARefusedRequestFailsAlone) {
  FakeModel model;
  EmbedQueue q(QueueLimits(), kDim, model.fn());
  auto good1 = job_of({"one", "two"}), bad = job_of({"x", "bad"}), good2 = job_of({"three"});
  for (auto& j : {good1, bad, good2}) ASSERT_TRUE(q.submit(j));
  q.start();
  for (auto& j : {good1, bad, good2}) j->wait();
  expect_rows_of(*good1);
  expect_rows_of(*good2);
  EXPECT_EQ(bad->error_status, 422);
  EXPECT_EQ(bad->error, "text 1 is bad");
  // the whole batch, then each request alone
  EXPECT_EQ(model.batch_sizes, (std::vector<size_t>{5, 2, 2, 1}));
}

TEST(EmbedQueue, AFullQueueRefusesAndStopFailsWhatWaits) {
  FakeModel model;
  QueueLimits limits;
  limits.max_queue = 2;
  EmbedQueue q(limits, kDim, model.fn());
  auto a = job_of({"a"}), b = job_of({"b"}), c = job_of({"c"});
  EXPECT_TRUE(q.submit(a));
  EXPECT_TRUE(q.submit(b));
  EXPECT_FALSE(q.submit(c));  // full
  EXPECT_FALSE(c->done());
  q.stop();  // never started: both fail with 503
  for (auto& j : {a, b}) {
    ASSERT_TRUE(j->done());
    EXPECT_EQ(j->error_status, 503);
    EXPECT_NE(j->error.find("shutting down"), std::string::npos);
  }
  EXPECT_FALSE(q.submit(c));  // stopped
  EXPECT_TRUE(model.batch_sizes.empty());
}

TEST(EmbedQueue, JobsArrivingWhileTheModelRunsFormTheNextBatch) {
  FakeModel model;
  model.gate_closed = true;
  EmbedQueue q(QueueLimits(), kDim, model.fn());
  q.start();
  auto first = job_of({"first"});
  ASSERT_TRUE(q.submit(first));
  model.wait_entered();  // the worker holds `first` inside the model
  std::vector<std::shared_ptr<EmbedJob>> later;
  for (int i = 0; i < 5; ++i) {
    later.push_back(job_of({"later " + std::to_string(i)}));
    ASSERT_TRUE(q.submit(later.back()));
  }
  EXPECT_EQ(q.depth(), 5u);
  model.open_gate();
  first->wait();
  expect_rows_of(*first);
  for (auto& j : later) {
    j->wait();
    expect_rows_of(*j);
    EXPECT_EQ(j->vectors[2], 2.0f);  // all in batch 2
  }
  EXPECT_EQ(model.batch_sizes, (std::vector<size_t>{1, 5}));
}

TEST(EmbedQueue, ManyThreadsSubmitting) {
  FakeModel model;
  EmbedQueue q(QueueLimits(), kDim, model.fn());
  q.start();
  std::vector<std::thread> threads;
  std::vector<std::shared_ptr<EmbedJob>> all(8 * 50);
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) {
        auto j = job_of({std::string(1 + (t * 7 + i) % 40, static_cast<char>('a' + t)),
                         std::string(1 + i % 5, 'z')});
        all[t * 50 + i] = j;
        EXPECT_TRUE(q.submit(j));
        j->wait();
      }
    });
  for (auto& th : threads) th.join();
  for (auto& j : all) expect_rows_of(*j);
  q.stop();
}

}  // namespace
}  // namespace kiln::serve
