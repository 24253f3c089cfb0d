// Fuzz target: kiln-tune-probe's requests (tools/tune-probe/request.h), as they arrive on stdin.
// A refusal must carry a message; an accepted request must be within the probe's limits (every
// task either carries an error or has M, N, K in range, operands and total memory under the caps,
// and 1..kMaxCandidates candidates), so the timing side never sees a shape it cannot allocate.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "request.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace kiln::tune_probe;
  Request r;
  const std::string error =
      parse_request(std::string(reinterpret_cast<const char*>(data), size), &r);
  if (!error.empty()) {
    if (!r.tasks.empty()) std::abort();
    return 0;
  }
  if (r.threads < 0 || r.threads > kMaxThreads || r.max_rounds < 1 || !(r.min_time_ms >= 0) ||
      r.tasks.size() > static_cast<size_t>(kMaxTasks))
    std::abort();
  for (const TaskRequest& t : r.tasks) {
    if (!t.error.empty()) continue;
    if (t.M < 1 || t.N < 1 || t.K < 1 || t.M > kMaxDim || t.N > kMaxDim || t.K > kMaxDim)
      std::abort();
    if (t.M * t.K * 4 > kMaxOperandBytes || t.K * t.N * 4 > kMaxOperandBytes) std::abort();
    if (t.candidates.empty() || t.candidates.size() > static_cast<size_t>(kMaxCandidates) ||
        task_bytes(t) > kMaxTaskBytes)
      std::abort();
    for (const CandidateRequest& c : t.candidates) {
      if (!c.error.empty()) continue;
      if ((c.has_mr && c.mr < 1) || (c.has_panels && c.panels < 1) || (c.has_mc && c.mc < 1) ||
          c.kc < 0 || c.nc < 0 || c.threads < 0 || c.threads > kMaxThreads || c.prefetch < 0 ||
          c.prefetch > 1)
        std::abort();
    }
  }
  return 0;
}
