// Internal error values of the runtime: a kiln_status plus a message naming what is wrong.
// Converted to the C ABI's status + kiln_last_error() at the boundary (c_api.cpp).
#pragma once

#include <string>
#include <utility>

#include "kiln/c_api.h"

namespace kiln::rt {

struct Status {
  kiln_status code = KILN_OK;
  std::string message;

  bool ok() const { return code == KILN_OK; }
};

inline Status ok_status() {
  return Status{};
}
inline Status error(kiln_status code, std::string message) {
  return Status{code, std::move(message)};
}

#define KILN_RT_TRY(expr)           \
  do {                              \
    ::kiln::rt::Status s_ = (expr); \
    if (!s_.ok()) return s_;        \
  } while (0)

}  // namespace kiln::rt
