// kiln-rt serve's request queue: HTTP threads submit one job per request; one worker thread owns
// the model (Model::embed is not reentrant and the model has one arena), takes jobs first come
// first served into a micro-batch up to a token budget, embeds the batch in one call (which sorts
// its texts by length and runs them in buckets) and hands each job its rows back.
//
// Bounded: at most max_queue jobs wait (submit refuses more: the server answers 503), and the
// worker's batches are bounded in texts and estimated tokens, so the model's arena and buffers
// never grow past what the largest batch needs (the server runs that batch once at start).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace kiln::serve {

// One request's texts and, once done() is true, its result: vectors (texts x dim floats) and
// tokens / full_tokens per text (after / before truncation), or error_status and error.
struct EmbedJob {
  std::vector<std::string> texts;
  std::vector<float> vectors;
  std::vector<int64_t> tokens, full_tokens;
  int error_status = 0;  // 0: success
  std::string error;

  // Blocks until the worker has finished the job (or the queue stopped).
  void wait();
  bool done() const;
  void finish();  // the worker's side

 private:
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  bool done_ = false;
};

struct QueueLimits {
  size_t max_queue = 256;       // jobs waiting; more are refused
  int64_t batch_tokens = 8192;  // estimated tokens per micro-batch (see estimate_tokens)
  size_t batch_texts = 512;     // texts per micro-batch
  int64_t max_seq = 0;          // the compiled maximum sequence length (0: unknown)
};

// What one embed call did, for the metrics.
struct BatchStats {
  int64_t tokens = 0;         // after truncation, special tokens included
  int64_t padded_tokens = 0;  // positions the model ran
  int32_t runs = 0;
};

// Embeds n texts into out (n x dim floats), tokens and full_tokens per text. Returns "" or the
// error's message. Called by the worker thread only.
using EmbedFn =
    std::function<std::string(const std::vector<const char*>& texts, float* out, int64_t* tokens,
                              int64_t* full_tokens, BatchStats* stats)>;
// Told about every batch the worker ran (after its jobs are finished).
using BatchObserver =
    std::function<void(size_t jobs, size_t texts, const BatchStats& stats, double seconds)>;

// A text's token count before tokenizing it: its UTF-8 bytes + 2 special tokens, at most max_seq.
// Every token of WordPiece, byte-level BPE and Unigram covers at least one byte, so this is an
// upper bound for them (up to the few special tokens a template adds).
int64_t estimate_tokens(const std::string& text, int64_t max_seq);

// How many jobs from the front of queue form the next micro-batch: the first always (a request
// is never split), then more while the batch stays within batch_tokens and batch_texts.
size_t next_batch_size(const std::deque<std::shared_ptr<EmbedJob>>& queue,
                       const QueueLimits& limits);

class EmbedQueue {
 public:
  EmbedQueue(const QueueLimits& limits, int64_t dim, EmbedFn embed,
             BatchObserver observer = nullptr);
  ~EmbedQueue();
  EmbedQueue(const EmbedQueue&) = delete;
  EmbedQueue& operator=(const EmbedQueue&) = delete;

  // Starts the worker thread.
  void start();
  // Queues a job; false (and the job untouched) when max_queue jobs wait already or the queue
  // has stopped.
  bool submit(std::shared_ptr<EmbedJob> job);
  // Finishes the batch in hand, fails every waiting job with 503 and joins the worker.
  void stop();
  size_t depth() const;

 private:
  void work();
  // Embeds jobs as one call; when that fails and there are several, each again alone, so one
  // request the model refuses does not fail the others.
  void run_batch(const std::vector<std::shared_ptr<EmbedJob>>& jobs);
  bool embed_jobs(const std::vector<std::shared_ptr<EmbedJob>>& jobs, BatchStats* stats,
                  std::string* error);

  const QueueLimits limits_;
  const int64_t dim_;
  const EmbedFn embed_;
  const BatchObserver observer_;
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<EmbedJob>> queue_;
  bool stopping_ = false;
  std::thread worker_;
  // the worker's own buffers, reused from batch to batch
  std::vector<const char*> texts_;
  std::vector<float> out_;
  std::vector<int64_t> tokens_, full_tokens_;
};

}  // namespace kiln::serve
