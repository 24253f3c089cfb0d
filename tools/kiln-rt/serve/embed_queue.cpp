// The micro-batching queue of kiln-rt serve (see embed_queue.h).
#include "serve/embed_queue.h"

#include <algorithm>
#include <chrono>
#include <exception>
#include <utility>

namespace kiln::serve {

void EmbedJob::wait() {
  std::unique_lock<std::mutex> lock(mutex_);
  cv_.wait(lock, [this] { return done_; });
}

bool EmbedJob::done() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return done_;
}

void EmbedJob::finish() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    done_ = true;
  }
  cv_.notify_all();
}

int64_t estimate_tokens(const std::string& text, int64_t max_seq) {
  const int64_t bytes = static_cast<int64_t>(text.size()) + 2;
  return max_seq > 0 ? std::min(bytes, max_seq) : bytes;
}

size_t next_batch_size(const std::deque<std::shared_ptr<EmbedJob>>& queue,
                       const QueueLimits& limits) {
  int64_t tokens = 0;
  size_t texts = 0;
  size_t count = 0;
  for (const std::shared_ptr<EmbedJob>& job : queue) {
    int64_t job_tokens = 0;
    for (const std::string& t : job->texts) job_tokens += estimate_tokens(t, limits.max_seq);
    if (count > 0 && (tokens + job_tokens > limits.batch_tokens ||
                      texts + job->texts.size() > limits.batch_texts))
      break;
    tokens += job_tokens;
    texts += job->texts.size();
    ++count;
  }
  return count;
}

EmbedQueue::EmbedQueue(const QueueLimits& limits, int64_t dim, EmbedFn embed,
                       BatchObserver observer)
    : limits_(limits), dim_(dim), embed_(std::move(embed)), observer_(std::move(observer)) {}

EmbedQueue::~EmbedQueue() {
  stop();
}

void EmbedQueue::start() {
  worker_ = std::thread([this] { work(); });
}

bool EmbedQueue::submit(std::shared_ptr<EmbedJob> job) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_ || queue_.size() >= limits_.max_queue) return false;
    queue_.push_back(std::move(job));
  }
  cv_.notify_one();
  return true;
}

void EmbedQueue::stop() {
  std::deque<std::shared_ptr<EmbedJob>> left;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
    left.swap(queue_);
  }
  cv_.notify_all();
  if (worker_.joinable()) worker_.join();
  for (const std::shared_ptr<EmbedJob>& job : left) {
    job->error_status = 503;
    job->error = "the server is shutting down";
    job->finish();
  }
}

size_t EmbedQueue::depth() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return queue_.size();
}

void EmbedQueue::work() {
  std::vector<std::shared_ptr<EmbedJob>> batch;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (stopping_) return;
      const size_t n = next_batch_size(queue_, limits_);
      batch.assign(queue_.begin(), queue_.begin() + static_cast<std::ptrdiff_t>(n));
      queue_.erase(queue_.begin(), queue_.begin() + static_cast<std::ptrdiff_t>(n));
    }
    run_batch(batch);
    batch.clear();
  }
}

void EmbedQueue::run_batch(const std::vector<std::shared_ptr<EmbedJob>>& jobs) {
  const auto t0 = std::chrono::steady_clock::now();
  BatchStats stats;
  std::string error;
  size_t texts = 0;
  for (const auto& job : jobs) texts += job->texts.size();
  if (embed_jobs(jobs, &stats, &error)) {
    for (const auto& job : jobs) job->finish();
  } else if (jobs.size() == 1) {
    jobs[0]->error_status = 422;  // the model refused this request's texts
    jobs[0]->error = error;
    jobs[0]->finish();
  } else {
    stats = BatchStats();
    for (const auto& job : jobs) {
      BatchStats one;
      if (embed_jobs({job}, &one, &error)) {
        stats.tokens += one.tokens;
        stats.padded_tokens += one.padded_tokens;
        stats.runs += one.runs;
      } else {
        job->error_status = 422;
        job->error = error;
      }
      job->finish();
    }
  }
  if (observer_)
    observer_(jobs.size(), texts, stats,
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
}

bool EmbedQueue::embed_jobs(const std::vector<std::shared_ptr<EmbedJob>>& jobs, BatchStats* stats,
                            std::string* error) {
  texts_.clear();
  for (const auto& job : jobs)
    for (const std::string& t : job->texts) texts_.push_back(t.c_str());
  const size_t n = texts_.size();
  out_.resize(n * static_cast<size_t>(dim_));
  tokens_.resize(n);
  full_tokens_.resize(n);
  try {
    *error = embed_(texts_, out_.data(), tokens_.data(), full_tokens_.data(), stats);
  } catch (const std::exception& e) {  // e.g. std::bad_alloc: this batch fails, not the server
    *error = e.what();
  }
  if (!error->empty()) return false;
  size_t row = 0;
  for (const auto& job : jobs) {
    const size_t k = job->texts.size();
    job->vectors.assign(out_.begin() + static_cast<std::ptrdiff_t>(row * dim_),
                        out_.begin() + static_cast<std::ptrdiff_t>((row + k) * dim_));
    job->tokens.assign(tokens_.begin() + static_cast<std::ptrdiff_t>(row),
                       tokens_.begin() + static_cast<std::ptrdiff_t>(row + k));
    job->full_tokens.assign(full_tokens_.begin() + static_cast<std::ptrdiff_t>(row),
                            full_tokens_.begin() + static_cast<std::ptrdiff_t>(row + k));
    row += k;
  }
  return true;
}

}  // namespace kiln::serve
