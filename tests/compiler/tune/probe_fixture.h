// A probe identify answer for the tune tests: an AVX-512 x86 CPU with the variant rows of
// kernels/gemm/f32_variants.inc and s8_variants.inc.
#pragma once

#include <nlohmann/json.hpp>

#include "compiler/tune/space.h"

namespace kiln::tune::testing {

inline nlohmann::json variant_row(const char* name, bool supported, int mr, int panels, int mc,
                                  int kc = 0) {
  return {{"name", name},
          {"supported", supported},
          {"schedule",
           {{"mr", mr}, {"panels", panels}, {"mc", mc}, {"kc", kc}, {"nc", 0}, {"threads", 0}}}};
}

inline nlohmann::json identify_answer(int threads = 2) {
  return {{"protocol", "kiln-tune-probe/1"},
          {"cpu",
           {{"arch", "x86_64"},
            {"key", "x86_64/AuthenticAMD/25/97/avx2,avx512f,fma"},
            {"name", "Test CPU"}}},
          {"threads", threads},
          {"cache", {{"l1d", 32768}, {"l2", 1048576}, {"l3", 33554432}}},
          {"variants",
           {{"dense_f32",
             {variant_row("avx512", true, 14, 2, 112), variant_row("avx2", true, 6, 1, 336),
              variant_row("ref", true, 4, 1, 128)}},
            {"dense_s8",
             {variant_row("avx512vnni", true, 14, 2, 336), variant_row("avxvnni", false, 6, 1, 336),
              variant_row("avx2", true, 6, 1, 336), variant_row("ref", true, 4, 1, 128)}}}}};
}

inline ProbeInfo identify(int threads = 2) {
  return probe_info_from_json(identify_answer(threads)).value();
}

}  // namespace kiln::tune::testing
