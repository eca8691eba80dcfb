// Helpers for the model tests: random tensors and closeness checks.
#pragma once
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "core/rng.h"

namespace lb::testing {

inline std::vector<float> random_vec(int64_t n, uint64_t seed, double stdev = 1.0) {
  Rng rng(seed);
  std::vector<float> v(n);
  for (auto& x : v) x = static_cast<float>(rng.normal() * stdev);
  return v;
}

inline std::vector<double> to_double(const std::vector<float>& v) {
  return std::vector<double>(v.begin(), v.end());
}

// max |a − b| / (atol + rtol·|b|) <= 1 elementwise.
template <typename A, typename B>
void check_close(const A& a, const B& b, double atol, double rtol, const char* what) {
  REQUIRE_MESSAGE(a.size() == b.size(), what);
  double worst = 0.0;
  size_t at = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double e = std::abs(double(a[i]) - double(b[i])) / (atol + rtol * std::abs(double(b[i])));
    if (!(e <= worst)) worst = e, at = i;
  }
  CHECK_MESSAGE(worst <= 1.0, what << ": worst at " << at << ": " << double(a[at]) << " vs "
                                   << double(b[at]));
}

}  // namespace lb::testing
