// normalize_forward / normalize_backward: a NormalizerSpec's row map, read from its registry row
// (normalizer_registry.h), and the batched versions over (rows, ld). Contract: normalizer.h.
#include <algorithm>

#include "core/check.h"
#include "models/kernels/normalizer.h"
#include "models/kernels/normalizer_registry.h"

namespace lb {

RowStats normalize_forward(const NormalizerSpec& spec, const float* z, int64_t n, float* p,
                           int64_t call_keys) {
  LB_CHECK(n >= 1, "normalize_forward: row length " << n << " < 1");
  LB_CHECK(call_keys == 0 || call_keys >= n,
           "normalize_forward: call of " << call_keys << " keys < row length " << n);
  return normalizer_entry(spec.kind).forward(spec, z, n, p, call_keys);
}

void normalize_backward(const NormalizerSpec& spec, const float* z, const float* p, const float* dp,
                        int64_t n, float* dz) {
  LB_CHECK(n >= 1, "normalize_backward: row length " << n << " < 1");
  normalizer_entry(spec.kind).backward(spec, z, p, dp, n, dz);
}

void normalize_forward_rows(const NormalizerSpec& spec, const float* z, int64_t rows, int64_t ld,
                            const int64_t* lengths, float* p, RowStats* stats) {
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t n = lengths ? lengths[r] : ld;
    LB_CHECK(n >= 1 && n <= ld, "normalize_forward_rows: row " << r << " length " << n
                                                               << " outside [1, " << ld << "]");
    const RowStats s = normalize_forward(spec, z + r * ld, n, p + r * ld);
    std::fill(p + r * ld + n, p + (r + 1) * ld, 0.0f);
    if (stats) stats[r] = s;
  }
}

void normalize_backward_rows(const NormalizerSpec& spec, const float* z, const float* p,
                             const float* dp, int64_t rows, int64_t ld, const int64_t* lengths,
                             float* dz) {
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t n = lengths ? lengths[r] : ld;
    LB_CHECK(n >= 1 && n <= ld, "normalize_backward_rows: row " << r << " length " << n
                                                                << " outside [1, " << ld << "]");
    normalize_backward(spec, z + r * ld, p + r * ld, dp + r * ld, n, dz + r * ld);
    std::fill(dz + r * ld + n, dz + (r + 1) * ld, 0.0f);
  }
}

}  // namespace lb
