// The one place the runtime reads the CPU: architecture name and features (cpuid on x86-64,
// getauxval(AT_HWCAP) on aarch64), under the names model.json's target.features uses.
#pragma once

#include <string>
#include <vector>

namespace kiln::rt {

// "x86_64" or "aarch64" (or the compiler's idea of another architecture).
const char* host_arch();

enum class FeatureState { kPresent, kAbsent, kUnknown };
// kUnknown: `name` is not a feature this runtime knows for the host architecture.
FeatureState host_feature(const std::string& name);

// The known features this CPU has, in table order.
std::vector<std::string> host_features();

}  // namespace kiln::rt
