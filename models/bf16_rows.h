// A bf16 copy of a row-major (rows, cols) fp32 activation, made once and read by every bf16
// product that takes the activation (issue 13: convert each activation once, not once per
// product). Rows are zero-padded to a multiple of the bf16 row block (dnnl_util.cpp), so one copy
// serves as op(A) of a forward product and as either operand of a weight-gradient product.
// Filled by bf16_rows() (dnnl_util.h); `src` ties the copy to the array it was made from.
#pragma once
#include <cstdint>
#include <vector>

#include "models/buffer.h"

namespace lb {

struct Bf16Rows {
  Bf16Buffer data;             // (padded rows, cols)
  const float* src = nullptr;  // the fp32 array copied; nullptr: no copy (bf16 products off)
  int64_t rows = 0, cols = 0;
};

}  // namespace lb
