// The schedule space of a Dense GEMM and the analytic model that prunes it (docs/architecture.md,
// "Tuning"): every point is a kernel variant the probe has and the CPU supports, with a
// kernels/gemm/types.h Schedule that the driver accepts (valid by construction); the default
// schedule is always point 0.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "compiler/ir/status.h"
#include "compiler/tune/tuning_log.h"

namespace kiln::tune {

struct VariantInfo {
  std::string name;
  bool supported = false;
  ScheduleChoice schedule;  // its default
};

// What the probe said about the CPU it runs on (its response without "tasks").
struct ProbeInfo {
  nlohmann::json cpu, cache;
  int64_t l1d = 0, l2 = 0, l3 = 0;  // bytes, 0 = unknown
  int threads = 1;
  std::vector<int> cpus;
  std::map<std::string, std::vector<VariantInfo>> variants;  // op -> rows, in table order
};
Result<ProbeInfo> probe_info_from_json(const nlohmann::json& response);

// avx512, avx512vnni: the variants a target without AVX-512 (x86-64-v3) does not build.
bool is_avx512_variant(const std::string& name);

// Variants model.so can run for this target: x86-64-v3 is built without AVX-512 (target.h
// defines KILN_GEMM_NO_AVX512), so its space has no avx512* variant.
struct SpaceOptions {
  bool no_avx512 = false;
  size_t max_candidates = 12;  // measured per task, the default included
};

// The default schedule (what model.so picks on this CPU without tuning), then the most promising
// others by predicted time, at least one per supported variant. Errors when the probe has no
// supported variant for the op.
Result<std::vector<ScheduleChoice>> candidates(const Task& t, const ProbeInfo& p,
                                               const SpaceOptions& o);

// The analytic model's time for one call, in seconds (only its ranking is used): the rate of the
// variant's K loop on this core (llvm-mca's, compiler/tune/mca_rates.inc, for Arm cores; two
// pipes of its vector lanes elsewhere), edge and thread imbalance, parallel start-up, and the
// A / B / C traffic the cache blocking implies.
double predicted_seconds(const Task& t, const ScheduleChoice& s, const ProbeInfo& p);

}  // namespace kiln::tune
