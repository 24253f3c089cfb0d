// Everything generated model code includes.
#pragma once

#include "kiln/kernels/attention.h"
#include "kiln/kernels/common.h"
#include "kiln/kernels/elementwise.h"
#include "kiln/kernels/gather.h"
#include "kiln/kernels/gemm/gemm.h"
#include "kiln/kernels/matmul.h"
#include "kiln/kernels/normalization.h"
#include "kiln/kernels/pad.h"
#include "kiln/kernels/parallel.h"
#include "kiln/kernels/reduce.h"
#include "kiln/kernels/scatter.h"
#include "kiln/kernels/slice.h"
#include "kiln/kernels/trilu.h"
