// Helpers shared by the fuzz targets: a private scratch directory for loaders that read files,
// and the multi-file input format (files joined by kPartSeparator).
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

namespace kiln::fuzz {

// Separates the files of one multi-file input (artifact, vocab + text): binary, so that neither
// JSON nor text contains it, long enough that params bytes do not by chance.
constexpr char kPartSeparator[] = "\n\x00KILN-FUZZ-PART\x00\n";
constexpr size_t kPartSeparatorBytes = sizeof(kPartSeparator) - 1;

// Texts longer than this are cut before tokenizing: the tokenizers are linear in the text (measured
// 2 to 16 KB), but under ASan a 14 KB text cost ~100 ms of CPU per input and held tokenizer_json at
// ~60 executions/s. 1 KB still holds long words (WordPiece cuts at 100 characters), many words
// and truncation (the targets encode with max_len 4 or 5 too).
constexpr size_t kMaxTextBytes = 1024;

// Splits `data` at every separator; always at least one part.
inline std::vector<std::string> split_parts(const uint8_t* data, size_t size) {
  const std::string all(reinterpret_cast<const char*>(data), size);
  const std::string sep(kPartSeparator, kPartSeparatorBytes);
  std::vector<std::string> parts;
  size_t begin = 0;
  for (size_t at; (at = all.find(sep, begin)) != std::string::npos; begin = at + sep.size())
    parts.push_back(all.substr(begin, at - begin));
  parts.push_back(all.substr(begin));
  return parts;
}

// A directory of this process's own under $TMPDIR (else /dev/shm, else /tmp), made once and
// reused by every run, removed at exit. tmpfs matters: ext4 flushes a file rewritten in place when
// it is closed, which cost the file-reading targets half their speed.
inline const std::string& scratch_dir() {
  // Never destroyed: the exit handler that removes it runs after static destructors.
  static const std::string& dir = *[] {
    const char* tmp = std::getenv("TMPDIR");
    std::string base = tmp && *tmp ? tmp : access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    auto* templ = new std::string(base + "/kiln-fuzz-XXXXXX");
    if (!mkdtemp(templ->data())) std::abort();
    std::atexit([] { std::filesystem::remove_all(scratch_dir()); });
    return templ;
  }();
  return dir;
}

// Replaces `path` with exactly `bytes`.
inline void write_file(const std::string& path, const std::string& bytes) {
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) std::abort();
  if (!bytes.empty() && std::fwrite(bytes.data(), 1, bytes.size(), f) != bytes.size()) std::abort();
  std::fclose(f);
}

}  // namespace kiln::fuzz
