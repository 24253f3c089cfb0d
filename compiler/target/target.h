// Target presets (docs/architecture.md, "Targets"): which compiler builds model.so, with which
// flags, and which CPU features the runtime must find before loading it.
#pragma once

#include <string>
#include <vector>

#include "compiler/ir/status.h"

namespace kiln::target {

struct Target {
  std::string name;  // native, x86-64-v3, x86-64-v4, aarch64, rpi4, rpi5
  std::string arch;  // "x86_64" | "aarch64"
  std::string cpu;   // e.g. "cortex-a72", "x86-64-v3", or the host's -march=native name
  std::vector<std::string> features;   // required at load time (avx2, fma, asimd, ...)
  std::string cxx;                     // g++ or aarch64-linux-gnu-g++
  std::vector<std::string> cxx_flags;  // target-specific flags only (-march / -mcpu)
  // Macros model.so is compiled with: KILN_GEMM_NO_AVX512 on x86-64-v3, whose kernel dispatch
  // must never pick AVX-512 (gemm/dispatch.h) even on a CPU that has it.
  std::vector<std::string> defines;
};

// Whether model.so for `t` may run the AVX-512 GEMM variants (not x86-64-v3, whose defines hold
// KILN_GEMM_NO_AVX512, nor aarch64).
bool builds_avx512(const Target& t);

// Names accepted by target_from_name, in documentation order.
const std::vector<std::string>& target_names();

// "native" detects the host's architecture and features (cpuid on x86, HWCAP on aarch64).
Result<Target> target_from_name(const std::string& name);

// The host's CPU features with kiln's names (avx2, fma, avx512f, ... / asimd, asimddp, ...).
std::vector<std::string> host_features();

}  // namespace kiln::target
