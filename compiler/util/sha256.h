// SHA-256 of a file, recorded in model.json so an artifact names the exact model it came from.
#pragma once

#include <string>

#include "compiler/ir/status.h"

namespace kiln::util {

// Lower-case hex digest of the file's bytes.
Result<std::string> sha256_file(const std::string& path);
std::string sha256_hex(const void* data, size_t n);

}  // namespace kiln::util
