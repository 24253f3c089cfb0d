// Hostile and damaged artifacts (issue 15, item 4): model.so's checksum is checked before dlopen,
// files that are devices, FIFOs or huge sparse files are refused from fstat before anything is
// read, and model.json's sizes must match model.params before it is mapped. Every case returns a
// status and a message naming the file; none hangs or crashes.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <future>
#include <string>
#include <vector>

#include "artifact/crc32.h"
#include "artifact/params_format.h"
#include "kiln/c_api.h"
#include "test_artifact.h"

namespace kiln::test {
namespace {

using nlohmann::json;

class HostileArtifactTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = make_temp_dir("hostile");
    write_default_artifact(dir_, KILN_TEST_MODEL_SO);
  }
  void TearDown() override { remove_tree(dir_); }

  // Loads dir_ on another thread and gives up after 20 s (a FIFO opened for reading blocks until
  // a writer comes: `unblock` then opens every FIFO for writing so the thread can finish).
  kiln_status load() {
    auto f = std::async(std::launch::async, [this] {
      kiln_model* m = nullptr;
      kiln_load_options o{1, 1};
      kiln_status s = kiln_model_load(dir_.c_str(), &o, &m);
      std::string msg = kiln_last_error();
      kiln_model_free(m);
      return std::make_pair(s, msg);
    });
    if (f.wait_for(std::chrono::seconds(20)) != std::future_status::ready) {
      ADD_FAILURE() << "kiln_model_load did not return within 20 s (blocked on a FIFO?)";
      unblock();
    }
    auto [s, msg] = f.get();
    message_ = msg;
    return s;
  }
  void expect(kiln_status want, const std::vector<std::string>& fragments) {
    EXPECT_EQ(load(), want) << message_;
    for (const std::string& f : fragments)
      EXPECT_NE(message_.find(f), std::string::npos)
          << "message: " << message_ << "\nexpected to contain: " << f;
  }
  void unblock() {
    for (const char* f : {"model.json", "model.params", "model.so"}) {
      int fd = ::open((dir_ + "/" + f).c_str(), O_WRONLY | O_NONBLOCK);
      if (fd >= 0) ::close(fd);
    }
  }
  void replace_with_symlink(const std::string& file, const std::string& target) {
    const std::string path = dir_ + "/" + file;
    std::remove(path.c_str());
    ASSERT_EQ(symlink(target.c_str(), path.c_str()), 0) << path;
  }
  void replace_with_fifo(const std::string& file) {
    const std::string path = dir_ + "/" + file;
    std::remove(path.c_str());
    ASSERT_EQ(mkfifo(path.c_str(), 0600), 0) << path;
  }
  // Makes `file` a sparse file of `bytes` (or as large as this file system allows).
  uint64_t make_sparse(const std::string& file, uint64_t bytes) {
    const std::string path = dir_ + "/" + file;
    std::remove(path.c_str());
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    EXPECT_GE(fd, 0) << path;
    while (ftruncate(fd, static_cast<off_t>(bytes)) != 0 && bytes > (uint64_t{1} << 27)) bytes /= 2;
    ::close(fd);
    return bytes;
  }
  json model_json() const { return json::parse(read_file(dir_ + "/model.json")); }
  void write_json(const json& j) { write_file(dir_ + "/model.json", j.dump(1)); }

  std::string dir_, message_;
};

TEST_F(HostileArtifactTest, IntactArtifactRecordsAndPassesTheLibraryChecksum) {
  const json j = model_json();
  const std::string so = read_file(dir_ + "/model.so");
  ASSERT_EQ(j["library_bytes"], so.size());
  ASSERT_EQ(j["library_crc32"], artifact::crc32(so.data(), so.size()));
  EXPECT_EQ(load(), KILN_OK) << message_;
}

// Every single flipped bit of the first 4 KiB (ELF header, program headers, dynamic section) and
// a spread over the rest: all refused before dlopen, with file, both checksums and the advice.
TEST_F(HostileArtifactTest, DamagedLibraryIsRefusedBeforeDlopen) {
  const std::string so = read_file(dir_ + "/model.so");
  const uint32_t want = artifact::crc32(so.data(), so.size());
  std::vector<size_t> positions;
  for (size_t i = 0; i < std::min<size_t>(so.size(), 4096); i += 61) positions.push_back(i);
  for (size_t i = 4096; i < so.size(); i += so.size() / 50) positions.push_back(i);
  for (size_t pos : positions) {
    std::string bad = so;
    bad[pos] = static_cast<char>(bad[pos] ^ (1 << (pos % 8)));
    write_file(dir_ + "/model.so", bad);
    const uint32_t got = artifact::crc32(bad.data(), bad.size());
    expect(KILN_ERROR_CORRUPT,
           {dir_ + "/model.so: CRC-32 " + std::to_string(got),
            "library_crc32 says " + std::to_string(want),
            "model.so is damaged or not the one this model.json was compiled with"});
  }
  write_file(dir_ + "/model.so", so.substr(0, so.size() / 2));
  expect(KILN_ERROR_CORRUPT,
         {"model.so: " + std::to_string(so.size() / 2) +
          " bytes, model.json's library_bytes says " + std::to_string(so.size())});
  write_file(dir_ + "/model.so", so + std::string(100, '\0'));
  expect(KILN_ERROR_CORRUPT, {"library_bytes says", "is damaged"});
}

TEST_F(HostileArtifactTest, LibraryOfAnotherModelIsRefused) {
  write_file(dir_ + "/model.so", read_file(KILN_TEST_MODEL_ABI2_SO));
  expect(KILN_ERROR_CORRUPT, {"not the one this model.json was compiled with"});
}

// A checksum only proves the file is the one model.json names; a library that is not kiln's
// (here with a model.json written for it) is refused by its missing ABI functions.
TEST_F(HostileArtifactTest, LibraryThatIsNotKilnsIsRefused) {
  write_artifact(dir_, default_model_json(), params_file_bytes(default_params()),
                 KILN_TEST_NOT_A_MODEL_SO);
  expect(KILN_ERROR_CORRUPT,
         {"model.so: does not export kiln_model_abi_version", "not a kiln model library"});
}

// Artifacts compiled before library_bytes / library_crc32 load unchecked (additive fields).
TEST_F(HostileArtifactTest, ArtifactWithoutLibraryChecksumLoads) {
  json j = model_json();
  j.erase("library_bytes");
  j.erase("library_crc32");
  write_json(j);
  EXPECT_EQ(load(), KILN_OK) << message_;
  write_file(dir_ + "/model.so", "not an elf file");
  expect(KILN_ERROR_INCOMPATIBLE, {"cannot load", "model.so"});
}

TEST_F(HostileArtifactTest, LibraryChecksumFieldsAreValidated) {
  const json good = model_json();
  json j = good;
  j.erase("library_crc32");
  write_json(j);
  expect(KILN_ERROR_CORRUPT, {"model.json", "missing field 'library_crc32'"});
  j = good;
  j["library_bytes"] = 0;
  write_json(j);
  expect(KILN_ERROR_CORRUPT, {"model.json.library_bytes", "out of range"});
  j = good;
  j["library_bytes"] = int64_t{1} << 40;
  write_json(j);
  expect(KILN_ERROR_CORRUPT, {"model.json.library_bytes", "out of range"});
  j = good;
  j["library_crc32"] = "123";
  write_json(j);
  expect(KILN_ERROR_CORRUPT, {"model.json.library_crc32", "expected an integer"});
}

TEST_F(HostileArtifactTest, DevicesAreRefused) {
  for (const char* file : {"model.json", "model.params", "model.so"}) {
    for (const char* device : {"/dev/zero", "/dev/urandom"}) {
      SCOPED_TRACE(std::string(file) + " -> " + device);
      write_default_artifact(dir_, KILN_TEST_MODEL_SO);
      replace_with_symlink(file, device);
      expect(KILN_ERROR_IO, {dir_ + "/" + file, "is a character device, not a regular file"});
    }
  }
}

TEST_F(HostileArtifactTest, FifosAreRefusedWithoutBlocking) {
  for (const char* file : {"model.json", "model.params", "model.so"}) {
    SCOPED_TRACE(file);
    write_default_artifact(dir_, KILN_TEST_MODEL_SO);
    replace_with_fifo(file);
    expect(KILN_ERROR_IO, {dir_ + "/" + file, "is a FIFO (named pipe), not a regular file"});
  }
}

TEST_F(HostileArtifactTest, DirectoriesAreRefused) {
  for (const char* file : {"model.json", "model.params", "model.so"}) {
    SCOPED_TRACE(file);
    write_default_artifact(dir_, KILN_TEST_MODEL_SO);
    const std::string path = dir_ + "/" + file;
    std::remove(path.c_str());
    ASSERT_EQ(mkdir(path.c_str(), 0755), 0);
    expect(KILN_ERROR_IO, {path, "is a directory, not a regular file"});
    rmdir(path.c_str());
  }
}

// Sparse files: refused from their size alone (the test would take minutes, or run out of
// memory, if the loader read or allocated them).
TEST_F(HostileArtifactTest, HugeSparseFilesAreRefusedFromTheirSize) {
  const uint64_t json_bytes = make_sparse("model.json", (uint64_t{64} << 20) + 1);
  expect(KILN_ERROR_CORRUPT, {dir_ + "/model.json: " + std::to_string(json_bytes) + " bytes",
                              "more than the 67108864 bytes such a file can have"});

  write_default_artifact(dir_, KILN_TEST_MODEL_SO);
  const uint64_t expected = model_json()["params"]["bytes"].get<uint64_t>();
  const uint64_t params_bytes = make_sparse("model.params", uint64_t{1} << 40);
  expect(KILN_ERROR_CORRUPT,
         {dir_ + "/model.params: wrong size: " + std::to_string(params_bytes) +
          " bytes, model.json's params.bytes says " + std::to_string(expected)});

  write_default_artifact(dir_, KILN_TEST_MODEL_SO);
  const uint64_t so_bytes = make_sparse("model.so", uint64_t{1} << 40);
  if (so_bytes > (uint64_t{1} << 30))
    expect(KILN_ERROR_CORRUPT, {dir_ + "/model.so: " + std::to_string(so_bytes) + " bytes",
                                "more than the 1073741824 bytes"});
  else
    expect(KILN_ERROR_CORRUPT, {"library_bytes says", "is damaged"});
}

// model.json's params.bytes is compared with the file's size before the file is mapped.
TEST_F(HostileArtifactTest, ParamsSizeMustMatchModelJson) {
  json j = model_json();
  const uint64_t bytes = j["params"]["bytes"].get<uint64_t>();
  j["params"]["bytes"] = bytes + 64;
  write_json(j);
  expect(KILN_ERROR_IO, {"model.params: truncated: " + std::to_string(bytes) +
                         " bytes, model.json's params.bytes says " + std::to_string(bytes + 64)});
  j["params"]["bytes"] = bytes - 64;
  write_json(j);
  expect(KILN_ERROR_CORRUPT, {"model.params: wrong size"});
}

// A params file grown by zeros that no tensor covers, with header and model.json updated to
// match (what a hostile writer or a huge sparse file would do): refused by the padding rule.
TEST_F(HostileArtifactTest, ParamsBytesOutsideEveryTensorAreRefused) {
  namespace af = kiln::artifact;
  std::vector<uint8_t> p = params_file_bytes(default_params());
  const uint64_t tight = p.size();  // ends with bias[8], 32 bytes of data + 32 of padding
  p.resize(tight + 4096, 0);
  af::ParamsHeader h;
  std::memcpy(&h, p.data(), sizeof h);
  h.file_bytes = p.size();
  h.header_crc32 = af::crc32(&h, af::kParamsHeaderCrcSpan);
  std::memcpy(p.data(), &h, sizeof h);
  write_artifact(dir_, default_model_json(), p, KILN_TEST_MODEL_SO);
  expect(KILN_ERROR_CORRUPT,
         {"model.params: 4128 bytes at " + std::to_string(tight - 32) + " belong to no tensor"});
}

}  // namespace
}  // namespace kiln::test
