// Fuzz target: the model.params loader (header, table, checksums, alignment, every tensor's
// CRC-32). A file that opens must have every tensor inside the file.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#include "artifact/crc32.h"
#include "artifact/params_format.h"
#include "runtime/params_file.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

namespace af = kiln::artifact;

// The header and table checksums and the file size, made right: a mutation almost never keeps
// them, so without this the fuzzer would not get past the header. Done for inputs of even size,
// so mutations of the checksums themselves are still tried.
void fix_up(std::string* bytes) {
  if (bytes->size() < af::kParamsHeaderBytes || bytes->size() % 2 != 0) return;
  af::ParamsHeader h;
  std::memcpy(&h, bytes->data(), sizeof h);
  h.file_bytes = bytes->size();
  if (h.table_offset <= bytes->size() && h.table_bytes <= bytes->size() - h.table_offset)
    h.table_crc32 = af::crc32(bytes->data() + h.table_offset, h.table_bytes);
  std::memcpy(bytes->data(), &h, sizeof h);
  h.header_crc32 = af::crc32(bytes->data(), af::kParamsHeaderCrcSpan);
  std::memcpy(bytes->data(), &h, sizeof h);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = kiln::fuzz::scratch_dir() + "/model.params";
  std::string bytes(reinterpret_cast<const char*>(data), size);
  fix_up(&bytes);
  kiln::fuzz::write_file(path, bytes);
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
