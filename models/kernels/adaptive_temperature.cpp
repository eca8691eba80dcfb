// Adaptive-temperature softmax (Veličković et al. 2024, "Softmax is not enough"): the inverse
// temperature β = max(1, P(H)) when the entropy H of softmax(z) exceeds 0.5, else 1; p =
// softmax(β z). Polynomial order: row_kernels.h and paper.md §8 Q7 — we default to the
// descending order of the original (np.polyval), and offer the released code's ascending order.
// No clamping of β or z (one third-party version clamps β to 10 and z to ±50; we do not).
#include <algorithm>
#include <cmath>
#include <vector>

#include "models/kernels/row_kernels.h"

namespace lb {

double adaptive_temperature_beta(const float* z, int64_t n, PolyOrder order) {
  const double H = softmax_entropy(z, n);
  if (!(H > 0.5)) return 1.0;
  static const double kCoef[5] = {-0.037, 0.481, -2.3, 4.917, -1.791};
  double poly = 0.0;
  if (order == PolyOrder::kDescending) {
    for (double c : kCoef) poly = poly * H + c;  // −0.037 H⁴ + … − 1.791
  } else {
    for (int i = 4; i >= 0; --i) poly = poly * H + kCoef[i];  // −0.037 + 0.481 H + … − 1.791 H⁴
  }
  return std::max(1.0, poly);
}

RowStats adaptive_temperature_forward(const float* z, int64_t n, PolyOrder order, float* p) {
  const double beta = adaptive_temperature_beta(z, n, order);
  RowStats out;
  out.support = softmax_forward(z, n, static_cast<float>(beta), p);
  return out;
}

void adaptive_temperature_backward(const float* z, const float* p, const float* g, int64_t n,
                                   PolyOrder order, float* dz) {
  const double beta = adaptive_temperature_beta(z, n, order);
  softmax_backward(p, g, n, static_cast<float>(beta), dz);
}

}  // namespace lb
