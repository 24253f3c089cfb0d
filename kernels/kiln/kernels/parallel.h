// parallel_for over the runtime's thread pool with a C++ lambda body. A null backend (or one
// thread) runs the body inline, so kernels can be unit-tested without a runtime.
#pragma once

#include <cstdint>
#include <type_traits>

#include "kiln/backend.h"

namespace kiln::kernels {

template <class F>
void parallel_for(const kiln_backend* be, int64_t n, int64_t grain, F&& body) {
  if (n <= 0) return;
  if (grain < 1) grain = 1;
  if (!be || !be->parallel_for || be->num_threads <= 1 || n <= grain) {
    body(int64_t{0}, n);
    return;
  }
  using Body = typename std::remove_reference<F>::type;
  be->parallel_for(
      be->pool, n, grain, [](void* ctx, int64_t b, int64_t e) { (*static_cast<Body*>(ctx))(b, e); },
      const_cast<void*>(static_cast<const void*>(&body)));
}

}  // namespace kiln::kernels
