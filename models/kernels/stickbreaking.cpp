// Stick-breaking attention (Tan et al. 2024) with attend_current = False, as in the paper's code:
// key j < n−1 takes the fraction σ(z_j) of what the keys after it (nearer the query) left over,
//   log p_j = log σ(z_j) + Σ_{j<k<n−1} log σ(−z_k),   p_{n−1} = 0 (the query's own key).
// The remainder 1 − Σp is discarded. Contract: row_kernels.h.
#include <cmath>

#include "models/kernels/row_kernels.h"

namespace lb {
namespace {

// log σ(x) = −softplus(−x), stable for large |x|.
double log_sigmoid(double x) { return x >= 0 ? -std::log1p(std::exp(-x)) : x - std::log1p(std::exp(x)); }
double sigmoid(double x) {
  if (x >= 0) return 1.0 / (1.0 + std::exp(-x));
  const double e = std::exp(x);
  return e / (1.0 + e);
}

}  // namespace

RowStats stickbreaking_forward(const float* z, int64_t n, float* p) {
  RowStats out;
  p[n - 1] = 0.0f;
  double acc = 0.0;  // Σ_{j<k<n−1} log σ(−z_k)
  for (int64_t j = n - 2; j >= 0; --j) {
    p[j] = static_cast<float>(std::exp(log_sigmoid(z[j]) + acc));
    acc += log_sigmoid(-static_cast<double>(z[j]));
    out.support += p[j] > 0.0f ? 1 : 0;
  }
  return out;
}

void stickbreaking_backward(const float* z, const float* p, const float* g, int64_t n, float* dz) {
  // ∂L/∂log p_j = g_j p_j; log p_j depends on z_j through log σ(z_j) (slope σ(−z_j)) and on each
  // z_k, j < k < n−1, through log σ(−z_k) (slope −σ(z_k)).
  double prefix = 0.0;  // Σ_{j<k} g_j p_j
  for (int64_t k = 0; k < n - 1; ++k) {
    const double w = static_cast<double>(g[k]) * p[k];
    const double zk = z[k];
    dz[k] = static_cast<float>(sigmoid(-zk) * w - sigmoid(zk) * prefix);
    prefix += w;
  }
  dz[n - 1] = 0.0f;
}

}  // namespace lb
