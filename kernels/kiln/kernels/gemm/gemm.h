// FP32 GEMM with weights packed at compile time: everything generated code and the compiler need.
//   compiler (host):  packed_b_floats, pack_b_f32                      (pack.h)
//   model.so:         gemm_f32_packed(be, M, N, K, A, lda, packed_b, C, ldc, Epilogue{...})
//                     gemm_f32_variant_description()                   (dispatch.h)
// The INT8 GEMM (dynamic quantization) is separate, to keep FP32-only models lean: s8_dispatch.h.
#pragma once

#include "kiln/kernels/gemm/dispatch.h"
#include "kiln/kernels/gemm/pack.h"
#include "kiln/kernels/gemm/types.h"
