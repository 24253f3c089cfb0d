// model.params writer; see params_writer.h.
#include "compiler/codegen/params_writer.h"

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "artifact/crc32.h"
#include "artifact/params_format.h"

namespace kiln::codegen {

namespace {
template <class T>
void put(std::vector<uint8_t>& out, T v) {  // little-endian hosts only (x86_64, aarch64)
  const auto* p = reinterpret_cast<const uint8_t*>(&v);
  out.insert(out.end(), p, p + sizeof(T));
}
}  // namespace

Result<ParamsSummary> write_params(const std::string& path,
                                   const std::vector<ParamEntry>& entries) {
  using namespace kiln::artifact;
  // Offsets depend on the table size, which depends only on names and ranks: size it first.
  uint64_t table_bytes = 0;
  for (const auto& e : entries)
    table_bytes += 4 + e.name.size() + 4 + 4 + 8 * e.dims.size() + 8 + 8 + 4;
  const uint64_t data_offset = align_up(kParamsHeaderBytes + table_bytes, kParamsAlignment);
  std::vector<uint64_t> offsets;
  uint64_t cursor = data_offset;
  for (const auto& e : entries) {
    offsets.push_back(cursor);
    cursor = align_up(cursor + e.nbytes, kParamsAlignment);
  }
  const uint64_t file_bytes =
      entries.empty() ? data_offset : offsets.back() + entries.back().nbytes;

  std::vector<uint8_t> table;
  table.reserve(table_bytes);
  for (size_t i = 0; i < entries.size(); ++i) {
    const auto& e = entries[i];
    put<uint32_t>(table, static_cast<uint32_t>(e.name.size()));
    table.insert(table.end(), e.name.begin(), e.name.end());
    put<uint32_t>(table, e.dtype);
    put<uint32_t>(table, static_cast<uint32_t>(e.dims.size()));
    for (int64_t d : e.dims) put<int64_t>(table, d);
    put<uint64_t>(table, offsets[i]);
    put<uint64_t>(table, e.nbytes);
    put<uint32_t>(table, crc32(e.data, e.nbytes));
  }

  ParamsHeader h{};
  std::memcpy(h.magic, kParamsMagic, sizeof(h.magic));
  h.format_version = kParamsFormatVersion;
  h.count = static_cast<uint32_t>(entries.size());
  h.table_offset = kParamsHeaderBytes;
  h.table_bytes = table_bytes;
  h.data_offset = data_offset;
  h.file_bytes = file_bytes;
  h.table_crc32 = crc32(table.data(), table.size());
  h.header_crc32 = crc32(&h, kParamsHeaderCrcSpan);

  const std::string tmp = path + ".tmp";
  FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) return Status::error("cannot write '" + tmp + "': " + std::strerror(errno));
  // (an empty table's data() may be null, which fwrite must not be given even for 0 bytes)
  bool ok = std::fwrite(&h, sizeof(h), 1, f) == 1 &&
            (table.empty() || std::fwrite(table.data(), 1, table.size(), f) == table.size());
  uint64_t pos = kParamsHeaderBytes + table.size();
  static const uint8_t kZeros[kParamsAlignment] = {};
  for (size_t i = 0; ok && i < entries.size(); ++i) {
    ok = std::fwrite(kZeros, 1, offsets[i] - pos, f) == offsets[i] - pos;
    if (ok && entries[i].nbytes)
      ok = std::fwrite(entries[i].data, 1, entries[i].nbytes, f) == entries[i].nbytes;
    pos = offsets[i] + entries[i].nbytes;
  }
  if (ok && entries.empty()) ok = std::fwrite(kZeros, 1, data_offset - pos, f) == data_offset - pos;
  ok = (std::fclose(f) == 0) && ok;
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    return Status::error("cannot write '" + path + "': " + std::strerror(errno));
  }
  ParamsSummary s;
  s.file_bytes = file_bytes;
  s.count = h.count;
  s.table_crc32 = h.table_crc32;
  return s;
}

}  // namespace kiln::codegen
