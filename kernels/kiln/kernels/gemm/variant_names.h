// The names of the GEMM variants built for this architecture, as string literals (" avx512 avx2
// ref"), from the same lists the dispatch tables are made of, for text that names them without
// compiling any kernel (kiln-rt --help). model.so may leave rows out (KILN_GEMM_NO_AVX512).
#pragma once

namespace kiln::kernels::gemm {

#define KILN_GEMM_F32_VARIANT(name, ...) " " name
inline constexpr char kGemmF32VariantNames[] =
#include "kiln/kernels/gemm/f32_variants.inc"
    ;
#undef KILN_GEMM_F32_VARIANT

#define KILN_GEMM_S8_VARIANT(name, ...) " " name
inline constexpr char kGemmS8VariantNames[] =
#include "kiln/kernels/gemm/s8_variants.inc"
    ;
#undef KILN_GEMM_S8_VARIANT

}  // namespace kiln::kernels::gemm
