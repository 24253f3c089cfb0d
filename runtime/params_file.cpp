// Validating reader of model.params. Every read is bounds-checked against the mapped size so a
// truncated or corrupted file yields a message, never a crash.
#include "runtime/params_file.h"

#include <sys/mman.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "artifact/crc32.h"
#include "artifact/params_format.h"
#include "runtime/artifact_file.h"
#include "runtime/dtype.h"

namespace kiln::rt {

namespace af = kiln::artifact;

ParamsFile::~ParamsFile() {
  if (map_) munmap(map_, size_);
}

namespace {

std::string hex32(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}

// Little-endian cursor over the table; fails instead of reading past `end`.
struct Cursor {
  const uint8_t* p;
  const uint8_t* end;
  bool read(void* out, size_t n) {
    if (static_cast<size_t>(end - p) < n) return false;
    std::memcpy(out, p, n);
    p += n;
    return true;
  }
};

}  // namespace

Status ParamsFile::open(const std::string& path, bool verify_data, uint64_t expected_bytes) {
  ArtifactFile file;
  KILN_RT_TRY(file.open(path, UINT64_MAX));
  size_ = file.size();
  // Before mapping anything: a huge (sparse) or truncated file is refused here.
  if (size_ != expected_bytes)
    return error(size_ < expected_bytes ? KILN_ERROR_IO : KILN_ERROR_CORRUPT,
                 path + ": " + (size_ < expected_bytes ? "truncated" : "wrong size") + ": " +
                     std::to_string(size_) + " bytes, model.json's params.bytes says " +
                     std::to_string(expected_bytes));
  if (size_ < af::kParamsHeaderBytes)
    return error(KILN_ERROR_IO, path + ": truncated: " + std::to_string(size_) +
                                    " bytes, smaller than the " +
                                    std::to_string(af::kParamsHeaderBytes) + "-byte header");
  map_ = mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, file.fd(), 0);
  int e = errno;
  if (map_ == MAP_FAILED) {
    map_ = nullptr;
    return error(KILN_ERROR_IO, "cannot mmap '" + path + "': " + std::strerror(e));
  }
  af::ParamsHeader h;
  std::memcpy(&h, map_, sizeof h);
  if (std::memcmp(h.magic, af::kParamsMagic, sizeof h.magic) != 0)
    return error(KILN_ERROR_CORRUPT, path + ": bad magic (not a kiln params file)");
  uint32_t hcrc = af::crc32(map_, af::kParamsHeaderCrcSpan);
  if (hcrc != h.header_crc32)
    return error(KILN_ERROR_CORRUPT, path + ": header checksum mismatch (stored " +
                                         hex32(h.header_crc32) + ", computed " + hex32(hcrc) + ")");
  if (h.format_version != af::kParamsFormatVersion)
    return error(KILN_ERROR_INCOMPATIBLE,
                 path + ": format version " + std::to_string(h.format_version) +
                     ", this runtime reads " + std::to_string(af::kParamsFormatVersion));
  if (h.file_bytes != size_)
    return error(size_ < h.file_bytes ? KILN_ERROR_IO : KILN_ERROR_CORRUPT,
                 path + ": " + (size_ < h.file_bytes ? "truncated" : "wrong size") + ": expected " +
                     std::to_string(h.file_bytes) + " bytes, the file has " +
                     std::to_string(size_));
  if (h.table_offset < af::kParamsHeaderBytes || h.table_offset > size_ ||
      h.table_bytes > size_ - h.table_offset || h.data_offset > size_ ||
      h.data_offset < h.table_offset + h.table_bytes || h.data_offset % af::kParamsAlignment != 0)
    return error(KILN_ERROR_CORRUPT,
                 path + ": bad layout (table at " + std::to_string(h.table_offset) + ", " +
                     std::to_string(h.table_bytes) + " bytes; data at " +
                     std::to_string(h.data_offset) + "; file " + std::to_string(size_) + " bytes)");
  const uint8_t* base = data();
  uint32_t tcrc = af::crc32(base + h.table_offset, h.table_bytes);
  if (tcrc != h.table_crc32)
    return error(KILN_ERROR_CORRUPT, path + ": table checksum mismatch (stored " +
                                         hex32(h.table_crc32) + ", computed " + hex32(tcrc) + ")");
  table_crc32_ = tcrc;
  Cursor c{base + h.table_offset, base + h.table_offset + h.table_bytes};
  if (h.count > h.table_bytes / 32)  // an entry is at least 32 bytes
    return error(KILN_ERROR_CORRUPT, path + ": count " + std::to_string(h.count) +
                                         " does not fit a " + std::to_string(h.table_bytes) +
                                         "-byte table");
  entries_.reserve(h.count);
  for (uint32_t i = 0; i < h.count; ++i) {
    std::string where = path + ": table entry " + std::to_string(i);
    ParamEntry e;
    uint32_t name_len = 0, dtype = 0, rank = 0;
    if (!c.read(&name_len, 4) || name_len > static_cast<size_t>(c.end - c.p))
      return error(KILN_ERROR_CORRUPT, where + ": runs past the end of the table");
    e.name.assign(reinterpret_cast<const char*>(c.p), name_len);
    c.p += name_len;
    where += " '" + e.name + "'";
    if (!c.read(&dtype, 4) || !c.read(&rank, 4))
      return error(KILN_ERROR_CORRUPT, where + ": runs past the end of the table");
    if (dtype_size(dtype) == 0)
      return error(KILN_ERROR_CORRUPT, where + ": unknown dtype " + std::to_string(dtype));
    e.dtype = static_cast<kiln_dtype>(dtype);
    if (rank > 16) return error(KILN_ERROR_CORRUPT, where + ": rank " + std::to_string(rank));
    uint64_t numel = 1;
    for (uint32_t k = 0; k < rank; ++k) {
      int64_t d;
      if (!c.read(&d, 8)) return error(KILN_ERROR_CORRUPT, where + ": runs past the table end");
      if (d < 0 || __builtin_mul_overflow(numel, static_cast<uint64_t>(d), &numel))
        return error(KILN_ERROR_CORRUPT, where + ": bad dimension " + std::to_string(d));
      e.dims.push_back(d);
    }
    if (!c.read(&e.offset, 8) || !c.read(&e.nbytes, 8) || !c.read(&e.crc32, 4))
      return error(KILN_ERROR_CORRUPT, where + ": runs past the end of the table");
    uint64_t expect = 0;
    if (__builtin_mul_overflow(numel, dtype_size(dtype), &expect) || expect != e.nbytes)
      return error(KILN_ERROR_CORRUPT, where + ": nbytes " + std::to_string(e.nbytes) +
                                           " does not match its dtype and shape");
    if (e.offset % af::kParamsAlignment != 0)
      return error(KILN_ERROR_CORRUPT,
                   where + ": offset " + std::to_string(e.offset) + " is not 64-byte aligned");
    if (e.offset < h.data_offset || e.offset > size_ || e.nbytes > size_ - e.offset)
      return error(KILN_ERROR_CORRUPT, where + ": data [" + std::to_string(e.offset) + ", +" +
                                           std::to_string(e.nbytes) +
                                           ") lies outside the data section");
    if (verify_data) {
      uint32_t crc = af::crc32(base + e.offset, e.nbytes);
      if (crc != e.crc32)
        return error(KILN_ERROR_CORRUPT, where + ": data checksum mismatch (stored " +
                                             hex32(e.crc32) + ", computed " + hex32(crc) + ")");
    }
    entries_.push_back(std::move(e));
  }
  // Bytes no checksum covers (reserved header bytes, alignment padding) must be zero, so that
  // every flipped byte of the file is detected.
  for (size_t i = af::kParamsHeaderCrcSpan + 4; i < af::kParamsHeaderBytes; ++i)
    if (base[i] != 0)
      return error(KILN_ERROR_CORRUPT,
                   path + ": reserved header byte " + std::to_string(i) + " is not zero");
  // Between the table, the tensors and the end of the file there is only alignment padding:
  // fewer than 64 bytes per gap, so the file is no larger than the tensors model.json declares.
  std::vector<std::pair<uint64_t, uint64_t>> spans;  // [begin, end) of every tensor's data
  for (const ParamEntry& e : entries_) spans.emplace_back(e.offset, e.offset + e.nbytes);
  std::sort(spans.begin(), spans.end());
  uint64_t pos = h.table_offset + h.table_bytes;
  spans.emplace_back(size_, size_);
  for (const auto& span : spans) {
    if (span.first < pos && span.first != span.second)
      return error(KILN_ERROR_CORRUPT, path + ": tensor data at " + std::to_string(span.first) +
                                           " overlaps other data");
    if (span.first > pos && span.first - pos >= af::kParamsAlignment)
      return error(KILN_ERROR_CORRUPT, path + ": " + std::to_string(span.first - pos) +
                                           " bytes at " + std::to_string(pos) +
                                           " belong to no tensor (only alignment padding, under " +
                                           std::to_string(af::kParamsAlignment) +
                                           " bytes, may lie between tensors)");
    if (verify_data)
      for (uint64_t i = pos; i < span.first; ++i)
        if (base[i] != 0)
          return error(KILN_ERROR_CORRUPT, path + ": padding byte " + std::to_string(i) +
                                               " is not zero (corrupted file?)");
    pos = std::max(pos, span.second);
  }
  return ok_status();
}

}  // namespace kiln::rt
