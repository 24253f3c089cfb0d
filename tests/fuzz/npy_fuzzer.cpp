// Fuzz target: the .npy reader (kiln-rt's --input files). A parsed array must hold exactly
// numel x element size bytes of data, whatever the header says.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "runtime/dtype.h"
#include "tools/kiln-rt/npy.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  kiln::tools::NpyArray a;
  std::string error;
  if (!kiln::tools::parse_npy(bytes, "fuzz.npy", &a, &error)) {
    if (error.empty()) std::abort();  // a failure must say why
    return 0;
  }
  uint64_t numel = 1;
  for (int64_t d : a.shape) {
    if (d < 0 || __builtin_mul_overflow(numel, static_cast<uint64_t>(d), &numel)) std::abort();
  }
  if (a.data.size() != numel * kiln::rt::dtype_size(a.dtype)) std::abort();
  return 0;
}
