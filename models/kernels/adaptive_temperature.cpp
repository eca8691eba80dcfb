// Adaptive-temperature softmax (Veličković et al. 2024, "Softmax is not enough") with the
// semantics of the paper's released code (deep-spin/asentmax, issue 11):
//   q = softmax(z),  H = −Σ q_i log(q_i + 1e-9),
//   β = max(P(H), 1) where H > 0.5, else 1,   p = softmax(β z),
//   P(H) = −0.037 + 0.481 H − 2.3 H² + 4.917 H³ − 1.791 H⁴ (kAscending, the default: the released
//   polyval sums p[i]·H^i) or −0.037 H⁴ + 0.481 H³ − 2.3 H² + 4.917 H − 1.791 (kDescending, the
//   np.polyval order of the same coefficients; our earlier default).
// The backward is exact: β is not detached in the released code, so ∂L/∂z includes β's
// dependence on z through H (zero where H <= 0.5 or P(H) < 1, where β is the constant 1).
// No clamping of β or z (one third-party version clamps β to 10 and z to ±50; we do not).
// Contract: row_kernels.h; plain twin: ref_normalizers.h.
#include <algorithm>
#include <cmath>
#include <vector>

#include "models/kernels/row_kernels.h"

namespace lb {
namespace {

constexpr double kCoef[5] = {-0.037, 0.481, -2.3, 4.917, -1.791};  // as listed
constexpr double kEntropyEps = 1e-9;   // inside the log, as in the released code
constexpr double kEntropyFloor = 0.5;  // β = 1 unless H > 0.5

struct Temperature {
  double beta = 1.0;
  double dbeta_dH = 0.0;  // ∂β/∂H: P'(H) where β = P(H), else 0
};

// β and ∂β/∂H from q = softmax(z) (n).
Temperature temperature(const float* q, int64_t n, PolyOrder order) {
  double H = 0.0;
  for (int64_t i = 0; i < n; ++i) H -= q[i] * std::log(q[i] + kEntropyEps);
  Temperature t;
  if (!(H > kEntropyFloor)) return t;
  // Horner with the derivative, highest power first; coefficient of H^d:
  // kAscending kCoef[d], kDescending kCoef[4 − d].
  double value = 0.0, slope = 0.0;
  for (int d = 4; d >= 0; --d) {
    slope = slope * H + value;
    value = value * H + (order == PolyOrder::kAscending ? kCoef[d] : kCoef[4 - d]);
  }
  // torch.clamp(P, min=1) passes the gradient where P >= 1.
  if (value >= 1.0) t.beta = value, t.dbeta_dH = slope;
  return t;
}

std::vector<float>& row_scratch(int64_t n) {
  thread_local std::vector<float> q;
  if (q.size() < static_cast<size_t>(n)) q.resize(n);
  return q;
}

}  // namespace

double adaptive_temperature_beta(const float* z, int64_t n, PolyOrder order) {
  float* q = row_scratch(n).data();
  softmax_forward(z, n, 1.0f, q);
  return temperature(q, n, order).beta;
}

RowStats adaptive_temperature_forward(const float* z, int64_t n, PolyOrder order, float* p) {
  softmax_forward(z, n, 1.0f, p);  // q, overwritten below
  const double beta = temperature(p, n, order).beta;
  RowStats out;
  out.support = softmax_forward(z, n, static_cast<float>(beta), p);
  return out;
}

void adaptive_temperature_backward(const float* z, const float* p, const float* g, int64_t n,
                                   PolyOrder order, float* dz) {
  float* q = row_scratch(n).data();
  softmax_forward(z, n, 1.0f, q);
  const Temperature t = temperature(q, n, order);
  if (t.dbeta_dH == 0.0) {  // β is the constant 1 here
    softmax_backward(p, g, n, static_cast<float>(t.beta), dz);
    return;
  }
  // With y = β z and gy = ∂L/∂y = p ⊙ (g − pᵀg):
  //   ∂L/∂z = β gy + (gyᵀz) · β'(H) · ∇H,   ∇H = q ⊙ (h − qᵀh),
  //   h_i = ∂H/∂q_i = −log(q_i + ε) − q_i / (q_i + ε).
  double pg = 0.0, qh = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    pg += static_cast<double>(p[i]) * g[i];
    const double hi = -std::log(q[i] + kEntropyEps) - q[i] / (q[i] + kEntropyEps);
    qh += q[i] * hi;
  }
  double gyz = 0.0;
  for (int64_t i = 0; i < n; ++i) gyz += p[i] * (g[i] - pg) * z[i];
  const double c = gyz * t.dbeta_dH;
  for (int64_t i = 0; i < n; ++i) {  // dz may alias g: g[i] is read before dz[i] is written
    const double hi = -std::log(q[i] + kEntropyEps) - q[i] / (q[i] + kEntropyEps);
    dz[i] = static_cast<float>(t.beta * p[i] * (g[i] - pg) + c * q[i] * (hi - qh));
  }
}

}  // namespace lb
