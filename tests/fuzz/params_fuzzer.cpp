// Fuzz target: the model.params loader (header, table, checksums, alignment, every tensor's
// CRC-32). A file that opens must have every tensor inside the file.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "runtime/params_file.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = kiln::fuzz::scratch_dir() + "/model.params";
  kiln::fuzz::write_file(path, std::string(reinterpret_cast<const char*>(data), size));
  kiln::rt::ParamsFile params;
  const kiln::rt::Status s = params.open(path, /*verify_data=*/true, size);
  if (!s.ok()) {
    if (s.message.find(path) == std::string::npos) std::abort();  // must name the file
    return 0;
  }
  for (const kiln::rt::ParamEntry& e : params.entries()) {
    if (e.offset > params.file_bytes() || e.nbytes > params.file_bytes() - e.offset) std::abort();
    // Touch the first and last byte: ASan sees a read outside the mapping.
    if (e.nbytes > 0) {
      volatile uint8_t x = params.data()[e.offset] ^ params.data()[e.offset + e.nbytes - 1];
      (void)x;
    }
  }
  return 0;
}
