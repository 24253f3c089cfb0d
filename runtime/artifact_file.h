// Opening the artifact's files safely: each must be a regular file (not a FIFO, which would block
// open() or read() forever, nor a device such as /dev/zero, which never ends) of at most a given
// size, checked with fstat before anything is read or allocated. Every loader read goes through
// here (model.json, model.params, model.so's checksum).
#pragma once

#include <cstdint>
#include <string>

#include "runtime/status.h"

namespace kiln::rt {

// Largest model.json the loader reads: BERT-base's is ~0.1 MB, the largest zoo model's 0.3 MB.
constexpr uint64_t kMaxModelJsonBytes = uint64_t{64} << 20;
// Largest model.so: generated code only (weights are in model.params); BERT-base's is 0.2 MB.
constexpr uint64_t kMaxLibraryBytes = uint64_t{1} << 30;

// An open regular file (closed by the destructor).
class ArtifactFile {
 public:
  ArtifactFile() = default;
  ~ArtifactFile();
  ArtifactFile(const ArtifactFile&) = delete;
  ArtifactFile& operator=(const ArtifactFile&) = delete;

  // Opens `path` without blocking and checks that it is a regular file of at most max_bytes.
  // KILN_ERROR_IO (missing, unreadable, not a regular file) or KILN_ERROR_CORRUPT (too large).
  Status open(const std::string& path, uint64_t max_bytes);
  int fd() const { return fd_; }
  uint64_t size() const { return size_; }
  const std::string& path() const { return path_; }

  // The whole file (size() bytes); KILN_ERROR_IO if it changes size while being read.
  Status read_all(std::string* out) const;
  // CRC-32 (artifact/crc32.h) of the whole file, read in 1 MiB chunks.
  Status crc32(uint32_t* out) const;

 private:
  int fd_ = -1;
  uint64_t size_ = 0;
  std::string path_;
};

// Reads a whole regular file of at most max_bytes (model.json).
Status read_artifact_file(const std::string& path, uint64_t max_bytes, std::string* out);

}  // namespace kiln::rt
