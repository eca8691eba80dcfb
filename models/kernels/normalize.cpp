// normalize_forward / normalize_backward: the one switch from a NormalizerSpec to its row kernel,
// and the batched versions over (rows, ld). Contract: normalizer.h.
#include <algorithm>

#include "core/check.h"
#include "models/kernels/normalizer.h"
#include "models/kernels/row_kernels.h"

namespace lb {

RowStats normalize_forward(const NormalizerSpec& spec, const float* z, int64_t n, float* p,
                           int64_t call_keys) {
  LB_CHECK(n >= 1, "normalize_forward: row length " << n << " < 1");
  LB_CHECK(call_keys == 0 || call_keys >= n,
           "normalize_forward: call of " << call_keys << " keys < row length " << n);
  switch (spec.kind) {
    case NormKind::kSoftmax:
    case NormKind::kSsmax: {
      RowStats out;
      out.support = softmax_forward(z, n, 1.0f, p);
      return out;
    }
    case NormKind::kEntmax:
    case NormKind::kAsEntmax:
      return entmax_forward(z, n, spec.alpha, p);
    case NormKind::kSparsemax:
      return sparsemax_forward(z, n, p);
    case NormKind::kTopk:
      return topk_forward(z, n, topk_k(spec, n, call_keys), p);
    case NormKind::kStickbreaking:
      return stickbreaking_forward(z, n, p);
    case NormKind::kAdaptiveTemperature:
      return adaptive_temperature_forward(z, n, spec.poly_order, p);
  }
  LB_CHECK(false, "normalize_forward: unhandled kind " << static_cast<int>(spec.kind));
  return {};
}

void normalize_backward(const NormalizerSpec& spec, const float* z, const float* p,
                        const float* dp, int64_t n, float* dz) {
  LB_CHECK(n >= 1, "normalize_backward: row length " << n << " < 1");
  switch (spec.kind) {
    case NormKind::kSoftmax:
    case NormKind::kSsmax:
      softmax_backward(p, dp, n, 1.0f, dz);
      return;
    case NormKind::kEntmax:
    case NormKind::kAsEntmax:
      entmax_backward(p, dp, n, spec.alpha, dz);
      return;
    case NormKind::kSparsemax:
      entmax_backward(p, dp, n, 2.0f, dz);
      return;
    case NormKind::kTopk:
      topk_backward(p, dp, n, dz);
      return;
    case NormKind::kStickbreaking:
      stickbreaking_backward(z, p, dp, n, dz);
      return;
    case NormKind::kAdaptiveTemperature:
      adaptive_temperature_backward(z, p, dp, n, spec.poly_order, dz);
      return;
  }
  LB_CHECK(false, "normalize_backward: unhandled kind " << static_cast<int>(spec.kind));
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
