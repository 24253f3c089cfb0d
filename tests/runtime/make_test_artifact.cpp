// Writes the toy artifact and matching .npy inputs (batch 2, seq 5) for the kiln-rt CLI tests:
//   kiln_make_test_artifact DIR MODEL_SO
#include <cstdio>
#include <string>
#include <vector>

#include "npy.h"
#include "test_artifact.h"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s DIR MODEL_SO\n", argv[0]);
    return 2;
  }
  const std::string dir = argv[1];
  kiln::test::write_default_artifact(dir, argv[2]);
  const std::vector<int64_t> shape = {2, 5};
  std::vector<int64_t> ids = {0, 1, 2, 3, 99, 5, 6, 7, 8, 9};
  std::vector<int32_t> types = {0, 0, 1, 1, 0, 1, 1, 1, 0, 0};  // int32: accepted for int64
  std::vector<int64_t> bad_ids = {0, 1, 2, 3, 100, 5, 6, 7, 8, 9};
  std::string err;
  if (!kiln::tools::write_npy(dir + "/input_ids.npy", KILN_INT64, shape.data(), 2, ids.data(),
                              ids.size() * 8, &err) ||
      !kiln::tools::write_npy(dir + "/token_type_ids.npy", KILN_INT32, shape.data(), 2,
                              types.data(), types.size() * 4, &err) ||
      !kiln::tools::write_npy(dir + "/bad_ids.npy", KILN_INT64, shape.data(), 2, bad_ids.data(),
                              bad_ids.size() * 8, &err)) {
    std::fprintf(stderr, "%s\n", err.c_str());
    return 1;
  }
  const std::string dict = "{'descr': '<i8', 'fortran_order': True, 'shape': (2, 5), }\n";
  std::string fortran = std::string("\x93NUMPY\x01\x00", 8);
  fortran += static_cast<char>(dict.size() & 0xFF);
  fortran += static_cast<char>(dict.size() >> 8);
  kiln::test::write_file(dir + "/fortran.npy", fortran + dict + std::string(80, '\0'));
  return 0;
}
