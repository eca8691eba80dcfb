// Test helpers for models/kernels: random rows, fp32 <-> double, and the reference twin of any
// NormalizerSpec (dispatching to ref_normalizers.h). Tests only.
#pragma once
#include <cmath>
#include <vector>

#include "core/rng.h"
#include "models/kernels/normalizer.h"
#include "models/kernels/normalizer_registry.h"
#include "models/kernels/ref_normalizers.h"
#include "models/kernels/row_kernels.h"

namespace lb::testing {

inline std::vector<float> random_row(Rng& rng, int64_t n, double sigma = 1.0) {
  std::vector<float> z(n);
  for (auto& v : z) v = static_cast<float>(sigma * rng.normal());
  return z;
}

inline ref::Vec to_double(const std::vector<float>& v) { return ref::Vec(v.begin(), v.end()); }

// The double twin of normalize_forward for the spec (its registry row's `plain`); call_keys as in
// normalizer.h (0: n).
inline ref::Vec ref_forward(const NormalizerSpec& spec, const ref::Vec& z, size_t call_keys = 0) {
  return normalizer_entry(spec.kind).plain(spec, z, call_keys);
}

inline double max_abs_diff(const std::vector<float>& a, const ref::Vec& b) {
  double d = 0.0;
  for (size_t i = 0; i < a.size(); ++i) d = std::max(d, std::fabs(a[i] - b[i]));
  return d;
}

inline double row_sum(const std::vector<float>& p) {
  double s = 0.0;
  for (float v : p) s += v;
  return s;
}

}  // namespace lb::testing
