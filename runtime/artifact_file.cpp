// See artifact_file.h. O_NONBLOCK makes open() of a FIFO return at once (without it, open blocks
// until a writer appears); fstat on the open descriptor then refuses anything that is not a
// regular file, so nothing is ever read from a FIFO, device or socket.
#include "runtime/artifact_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include "artifact/crc32.h"

namespace kiln::rt {

namespace {

const char* file_type(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO (named pipe)";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a regular file";
}

// Reads exactly n bytes at `offset`; false on error or end of file.
bool read_at(int fd, void* buf, size_t n, uint64_t offset, int* err) {
  auto* p = static_cast<char*>(buf);
  while (n > 0) {
    ssize_t r = ::pread(fd, p, n, static_cast<off_t>(offset));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      *err = r < 0 ? errno : 0;
      return false;
    }
    p += r;
    n -= static_cast<size_t>(r);
    offset += static_cast<uint64_t>(r);
  }
  return true;
}

Status read_failed(const std::string& path, uint64_t size, int err) {
  return error(KILN_ERROR_IO, "cannot read '" + path + "': " +
                                  (err ? std::strerror(err)
                                       : "the file became shorter than its " +
                                             std::to_string(size) + " bytes while being read"));
}

}  // namespace

ArtifactFile::~ArtifactFile() {
  if (fd_ >= 0) ::close(fd_);
}

Status ArtifactFile::open(const std::string& path, uint64_t max_bytes) {
  path_ = path;
  fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd_ < 0) return error(KILN_ERROR_IO, "cannot open '" + path + "': " + std::strerror(errno));
  struct stat st;
  if (fstat(fd_, &st) != 0)
    return error(KILN_ERROR_IO, "cannot stat '" + path + "': " + std::strerror(errno));
  if (!S_ISREG(st.st_mode))
    return error(KILN_ERROR_IO, "'" + path + "' is " + file_type(st.st_mode) +
                                    ", not a regular file (a symlink to a device or pipe?)");
  size_ = static_cast<uint64_t>(st.st_size);
  if (size_ > max_bytes)
    return error(KILN_ERROR_CORRUPT, path + ": " + std::to_string(size_) +
                                         " bytes, more than the " + std::to_string(max_bytes) +
                                         " bytes such a file can have");
  return ok_status();
}

Status ArtifactFile::read_all(std::string* out) const {
  out->assign(size_, '\0');
  int err = 0;
  if (size_ && !read_at(fd_, &(*out)[0], size_, 0, &err)) return read_failed(path_, size_, err);
  return ok_status();
}

Status ArtifactFile::crc32(uint32_t* out) const {
  std::vector<uint8_t> buf(std::min<uint64_t>(size_, uint64_t{1} << 20));
  uint32_t crc = 0;
  for (uint64_t pos = 0; pos < size_;) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(buf.size(), size_ - pos));
    int err = 0;
    if (!read_at(fd_, buf.data(), n, pos, &err)) return read_failed(path_, size_, err);
    crc = artifact::crc32_update(crc, buf.data(), n);
    pos += n;
  }
  *out = crc;
  return ok_status();
}

Status read_artifact_file(const std::string& path, uint64_t max_bytes, std::string* out) {
  ArtifactFile f;
  KILN_RT_TRY(f.open(path, max_bytes));
  return f.read_all(out);
}

}  // namespace kiln::rt
