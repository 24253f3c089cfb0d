// kiln-rt's .npy reader/writer: round trips for every dtype and clear errors for bad files.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "npy.h"
#include "test_artifact.h"

namespace kiln::test {
namespace {

using tools::NpyArray;

class NpyTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = make_temp_dir("npy"); }
  void TearDown() override { remove_tree(dir_); }
  std::string dir_;
};

// A file as numpy >= 1.x writes it, with header version `major`.
std::string npy_bytes(int major, const std::string& dict, const std::string& data) {
  std::string h = dict;
  const size_t prefix = major == 1 ? 10 : 12;
  while ((prefix + h.size() + 1) % 64) h += ' ';
  h += '\n';
  std::string s = "\x93NUMPY";
  s += static_cast<char>(major);
  s += '\0';
  for (int k = 0; k < (major == 1 ? 2 : 4); ++k)
    s += static_cast<char>((h.size() >> (8 * k)) & 0xFF);
  return s + h + data;
}

template <typename T>
void round_trip(const std::string& dir, kiln_dtype dtype, std::vector<int64_t> shape,
                const std::vector<T>& values) {
  const std::string path = dir + "/a.npy";
  std::string err;
  ASSERT_TRUE(tools::write_npy(path, dtype, shape.data(), static_cast<int>(shape.size()),
                               values.data(), values.size() * sizeof(T), &err))
      << err;
  const std::string bytes = read_file(path);
  ASSERT_EQ((bytes.size() - values.size() * sizeof(T)) % 64, 0u) << "header not 64-aligned";
  NpyArray a;
  ASSERT_TRUE(tools::read_npy(path, &a, &err)) << err;
  EXPECT_EQ(a.dtype, dtype);
  EXPECT_EQ(a.shape, shape);
  ASSERT_EQ(a.data.size(), values.size() * sizeof(T));
  if (!values.empty()) {
    EXPECT_EQ(0, std::memcmp(a.data.data(), values.data(), a.data.size()));
  }
}

TEST_F(NpyTest, RoundTripsEveryDtype) {
  round_trip<float>(dir_, KILN_FLOAT32, {2, 3}, {1.5f, -2.f, 3.25f, 0.f, 1e-7f, 42.f});
  round_trip<int64_t>(dir_, KILN_INT64, {1, 4}, {1, -2, int64_t{1} << 40, 7});
  round_trip<int32_t>(dir_, KILN_INT32, {3}, {1, -2, 3});
  round_trip<int8_t>(dir_, KILN_INT8, {2, 1, 2}, {-128, 0, 1, 127});
  round_trip<uint8_t>(dir_, KILN_UINT8, {2}, {0, 255});
  round_trip<uint8_t>(dir_, KILN_BOOL, {2, 2}, {1, 0, 0, 1});
  round_trip<float>(dir_, KILN_FLOAT32, {}, {3.f});
  round_trip<float>(dir_, KILN_FLOAT32, {0, 5}, {});
}

TEST_F(NpyTest, ReadsVersions2And3) {
  std::string data(8, '\0');
  int32_t v[2] = {5, -6};
  std::memcpy(&data[0], v, 8);
  for (int major : {1, 2, 3}) {
    SCOPED_TRACE(major);
    NpyArray a;
    std::string err;
    ASSERT_TRUE(tools::parse_npy(
        npy_bytes(major, "{'descr': '<i4', 'fortran_order': False, 'shape': (1, 2), }", data),
        "x.npy", &a, &err))
        << err;
    EXPECT_EQ(a.dtype, KILN_INT32);
    EXPECT_EQ(a.shape, (std::vector<int64_t>{1, 2}));
    EXPECT_EQ(0, std::memcmp(a.data.data(), v, 8));
  }
  // key order and spacing as other writers produce them
  NpyArray a;
  std::string err;
  EXPECT_TRUE(tools::parse_npy(
      npy_bytes(1, "{\"shape\": (2,), \"fortran_order\": False, \"descr\": \"|b1\"}",
                std::string("\1\0", 2)),
      "y.npy", &a, &err))
      << err;
  EXPECT_EQ(a.dtype, KILN_BOOL);
}

void expect_error(const std::string& bytes, const std::string& fragment) {
  NpyArray a;
  std::string err;
  EXPECT_FALSE(tools::parse_npy(bytes, "bad.npy", &a, &err));
  EXPECT_NE(err.find("bad.npy: "), std::string::npos) << err;
  EXPECT_NE(err.find(fragment), std::string::npos) << err << "\nexpected: " << fragment;
}

TEST_F(NpyTest, RejectsBadFiles) {
  const std::string f8 = std::string(8, '\0');
  expect_error("", "bad magic");
  expect_error("PK\3\4 zip file", "bad magic");
  expect_error(npy_bytes(1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 1), }", f8),
               "Fortran-order arrays are not supported");
  expect_error(npy_bytes(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (1,), }", f8),
               "unsupported dtype '<f8'");
  expect_error(npy_bytes(1, "{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }", f8),
               "big-endian");
  expect_error(npy_bytes(1, "{'descr': '<U3', 'fortran_order': False, 'shape': (1,), }", f8),
               "unsupported dtype");
  expect_error(
      npy_bytes(1, "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }", f8),
      "'descr' is not a simple dtype string");
  expect_error(npy_bytes(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), }", f8),
               "truncated data: expected 24 bytes, the file has 8");
  expect_error(npy_bytes(1, "{'descr': '<f4', 'shape': (2,), }", f8), "lacks");
  expect_error(npy_bytes(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,, }", f8),
               "malformed 'shape'");
  expect_error(npy_bytes(4, "{}", ""), "unsupported .npy format version 4");
  std::string good = npy_bytes(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", f8);
  expect_error(good.substr(0, 30), "truncated header");
  for (size_t n = 0; n < good.size(); n += 7) {
    NpyArray a;
    std::string err;
    EXPECT_FALSE(tools::parse_npy(good.substr(0, n), "t.npy", &a, &err)) << n;
  }
  NpyArray a;
  std::string err;
  EXPECT_FALSE(tools::read_npy(dir_ + "/missing.npy", &a, &err));
  EXPECT_NE(err.find("cannot open"), std::string::npos) << err;
}

}  // namespace
}  // namespace kiln::test
