// Stick-breaking attention (Tan et al. 2024) with attend_current = False, as in the paper's code:
// key j < n−1 takes the fraction σ(z_j) of what the keys after it (nearer the query) left over,
//   log p_j = log σ(z_j) + Σ_{j<k<n−1} log σ(−z_k),   p_{n−1} = 0 (the query's own key).
// The remainder 1 − Σp is discarded. Contract: row_kernels.h.
#include <algorithm>
#include <cmath>

#include "models/kernels/row_kernels.h"

namespace lb {

RowStats stickbreaking_forward(const float* z, int64_t n, float* p) {
  RowStats out;
  p[n - 1] = 0.0f;
  double acc = 0.0;  // Σ_{j<k<n−1} log σ(−z_k)
  for (int64_t j = n - 2; j >= 0; --j) {
    // log σ(z) = min(z, 0) − log1p(e^−|z|), and log σ(−z) = log σ(z) − z: one exp, one log1p.
    const double x = z[j];
    const double ls = std::min(x, 0.0) - std::log1p(std::exp(-std::fabs(x)));
    p[j] = static_cast<float>(std::exp(ls + acc));
    acc += ls - x;
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
    const double x = z[k];
    const double e = std::exp(-std::fabs(x));  // σ(|x|) = 1/(1+e), σ(−|x|) = e/(1+e)
    const double big = 1.0 / (1.0 + e), small = e / (1.0 + e);
    const double sig_pos = x >= 0 ? big : small;  // σ(x)
    const double sig_neg = x >= 0 ? small : big;  // σ(−x)
    dz[k] = static_cast<float>(sig_neg * w - sig_pos * prefix);
    prefix += w;
  }
  dz[n - 1] = 0.0f;
}

}  // namespace lb
