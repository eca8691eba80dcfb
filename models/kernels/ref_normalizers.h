// Plain double-precision twins of the row kernels (row_kernels.h), for tests only: short loops,
// different algorithms where one exists (sorting for sparsemax and 1.5-entmax, bisection for
// general α, the direct product for stick-breaking), no blocking or vectorisation tricks.
// Shapes as in row_kernels.h: z, p, g, dz are (n) vectors, n >= 1.
#pragma once
#include <algorithm>
#include <cmath>
#include <functional>
#include <vector>

namespace lb::ref {

using Vec = std::vector<double>;

inline Vec softmax_forward(const Vec& z, double scale = 1.0) {
  const double m = *std::max_element(z.begin(), z.end());
  Vec p(z.size());
  double s = 0.0;
  for (size_t i = 0; i < z.size(); ++i) s += p[i] = std::exp(scale * (z[i] - m));
  for (double& v : p) v /= s;
  return p;
}
inline Vec softmax_backward(const Vec& p, const Vec& g, double scale = 1.0) {
  double dot = 0.0;
  for (size_t i = 0; i < p.size(); ++i) dot += p[i] * g[i];
  Vec dz(p.size());
  for (size_t i = 0; i < p.size(); ++i) dz[i] = scale * p[i] * (g[i] - dot);
  return dz;
}

// Sparsemax by sorting (Martins & Astudillo 2016). tau: threshold of z, p = [z − τ]_+.
inline Vec sparsemax_forward(const Vec& z, double* tau = nullptr) {
  Vec s = z;
  std::sort(s.begin(), s.end(), std::greater<double>());
  double cum = 0.0, t = 0.0;
  for (size_t k = 1; k <= s.size(); ++k) {
    cum += s[k - 1];
    if (k * s[k - 1] > cum - 1.0) t = (cum - 1.0) / k;
  }
  Vec p(z.size());
  for (size_t i = 0; i < z.size(); ++i) p[i] = std::max(z[i] - t, 0.0);
  if (tau) *tau = t;
  return p;
}

// 1.5-entmax by sorting (Peters et al. 2019): with x = z/2 sorted descending, τ_k = μ_k −
// sqrt(max(0, (1 − k(mean of squares − μ_k²))/k)); k* = #{k : τ_k <= x_(k)}. tau: threshold of
// z/2, p = [z/2 − τ]_+².
inline Vec entmax15_forward(const Vec& z, double* tau = nullptr) {
  const double m = *std::max_element(z.begin(), z.end());
  Vec x(z.size());
  for (size_t i = 0; i < z.size(); ++i) x[i] = (z[i] - m) / 2.0;
  Vec s = x;
  std::sort(s.begin(), s.end(), std::greater<double>());
  double cum = 0.0, cum2 = 0.0, t = 0.0;
  for (size_t k = 1; k <= s.size(); ++k) {
    cum += s[k - 1];
    cum2 += s[k - 1] * s[k - 1];
    const double mean = cum / k;
    const double ss = k * (cum2 / k - mean * mean);
    const double tk = mean - std::sqrt(std::max(0.0, (1.0 - ss) / k));
    if (tk <= s[k - 1]) t = tk;
  }
  Vec p(z.size());
  for (size_t i = 0; i < z.size(); ++i) p[i] = std::pow(std::max(x[i] - t, 0.0), 2.0);
  if (tau) *tau = t + m / 2.0;
  return p;
}

// α-entmax by bisection on [max − 1, max − n^(1−α)] of (α−1)z, 200 halvings, then normalised.
// tau: threshold of (α−1)z.
inline Vec entmax_bisect_forward(const Vec& z, double alpha, double* tau = nullptr) {
  const double am1 = alpha - 1.0;
  Vec x(z.size());
  for (size_t i = 0; i < z.size(); ++i) x[i] = am1 * z[i];
  const double m = *std::max_element(x.begin(), x.end());
  double lo = m - 1.0, hi = m - std::pow(static_cast<double>(z.size()), -am1);
  Vec p(z.size());
  auto fill = [&](double t) {
    double s = 0.0;
    for (size_t i = 0; i < x.size(); ++i) s += p[i] = std::pow(std::max(x[i] - t, 0.0), 1.0 / am1);
    return s;
  };
  for (int it = 0; it < 200; ++it) {
    const double mid = 0.5 * (lo + hi);
    if (fill(mid) >= 1.0) lo = mid; else hi = mid;
  }
  const double s = fill(lo);
  for (double& v : p) v /= s;
  if (tau) *tau = lo;
  return p;
}

inline Vec entmax_backward(const Vec& p, const Vec& g, double alpha) {
  double su = 0.0, sug = 0.0;
  Vec u(p.size());
  for (size_t i = 0; i < p.size(); ++i) {
    u[i] = p[i] > 0.0 ? std::pow(p[i], 2.0 - alpha) : 0.0;
    su += u[i];
    sug += u[i] * g[i];
  }
  Vec dz(p.size());
  for (size_t i = 0; i < p.size(); ++i) dz[i] = u[i] * g[i] - u[i] * sug / su;
  return dz;
}

// Softmax over the k largest (ties: lowest index first).
inline Vec topk_forward(const Vec& z, size_t k) {
  std::vector<size_t> idx(z.size());
  for (size_t i = 0; i < idx.size(); ++i) idx[i] = i;
  std::stable_sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return z[a] > z[b]; });
  k = std::min(k, z.size());
  Vec kept;
  for (size_t r = 0; r < k; ++r) kept.push_back(z[idx[r]]);
  const Vec pk = softmax_forward(kept);
  Vec p(z.size(), 0.0);
  for (size_t r = 0; r < k; ++r) p[idx[r]] = pk[r];
  return p;
}

// Stick-breaking, attend_current = False, as the direct product A_j = σ(z_j) Π_{j<k<n−1}(1 − σ(z_k)).
inline Vec stickbreaking_forward(const Vec& z) {
  const size_t n = z.size();
  auto sig = [](double x) { return 1.0 / (1.0 + std::exp(-x)); };
  Vec p(n, 0.0);
  for (size_t j = 0; j + 1 < n; ++j) {
    double a = sig(z[j]);
    for (size_t k = j + 1; k + 1 < n; ++k) a *= 1.0 - sig(z[k]);
    p[j] = a;
  }
  return p;
}

// Adaptive temperature as in the released code: q = softmax(z), H = −Σ q log(q + 1e-9),
// β = max(P(H), 1) where H > 0.5 else 1, p = softmax(β z); P's coefficients (−0.037, 0.481, −2.3,
// 4.917, −1.791) multiply H^0..H^4 (ascending, the default) or H^4..H^0 (descending).
struct AdaptiveTemperature {
  Vec q;               // softmax(z)
  double H = 0.0;      // its entropy (with the 1e-9)
  double beta = 1.0;   // the inverse temperature
  double dbeta = 0.0;  // ∂β/∂H (0 where β is the constant 1)
};
inline AdaptiveTemperature adaptive_temperature(const Vec& z, bool descending) {
  AdaptiveTemperature t;
  t.q = softmax_forward(z);
  for (double v : t.q) t.H -= v * std::log(v + 1e-9);
  if (!(t.H > 0.5)) return t;
  const double c[5] = {-0.037, 0.481, -2.3, 4.917, -1.791};
  double poly = 0.0, slope = 0.0;
  for (int i = 0; i < 5; ++i) {
    const int d = descending ? 4 - i : i;  // the power c[i] multiplies
    poly += c[i] * std::pow(t.H, d);
    if (d > 0) slope += c[i] * d * std::pow(t.H, d - 1);
  }
  if (poly >= 1.0) t.beta = poly, t.dbeta = slope;
  return t;
}
inline double adaptive_temperature_beta(const Vec& z, bool descending) {
  return adaptive_temperature(z, descending).beta;
}
inline Vec adaptive_temperature_forward(const Vec& z, bool descending) {
  return softmax_forward(z, adaptive_temperature(z, descending).beta);
}
// dz = Jᵀg with the full Jacobian of p(z) = softmax(β(H(z)) z), β differentiated:
// ∂p_i/∂z_k = β p_i(δ_ik − p_k) + p_i (z_i − pᵀz) · β'(H) · Σ_m (∂H/∂q_m) q_m (δ_mk − q_k).
inline Vec adaptive_temperature_backward(const Vec& z, const Vec& g, bool descending) {
  const AdaptiveTemperature t = adaptive_temperature(z, descending);
  const size_t n = z.size();
  const Vec p = softmax_forward(z, t.beta);
  double pz = 0.0;
  for (size_t i = 0; i < n; ++i) pz += p[i] * z[i];
  Vec dH(n, 0.0);  // ∂H/∂z_k
  for (size_t k = 0; k < n; ++k) {
    for (size_t m = 0; m < n; ++m) {
      const double h = -std::log(t.q[m] + 1e-9) - t.q[m] / (t.q[m] + 1e-9);
      dH[k] += h * t.q[m] * ((m == k ? 1.0 : 0.0) - t.q[k]);
    }
  }
  Vec dz(n, 0.0);
  for (size_t k = 0; k < n; ++k) {
    for (size_t i = 0; i < n; ++i) {
      const double J =
          t.beta * p[i] * ((i == k ? 1.0 : 0.0) - p[k]) + p[i] * (z[i] - pz) * t.dbeta * dH[k];
      dz[k] += g[i] * J;
    }
  }
  return dz;
}

// Central finite differences of a scalar function of z: (L(z + h e_i) − L(z − h e_i)) / 2h.
inline Vec numeric_grad(const std::function<double(const Vec&)>& loss, const Vec& z,
                        double h = 1e-6) {
  Vec grad(z.size());
  Vec zz = z;
  for (size_t i = 0; i < z.size(); ++i) {
    zz[i] = z[i] + h;
    const double up = loss(zz);
    zz[i] = z[i] - h;
    const double down = loss(zz);
    zz[i] = z[i];
    grad[i] = (up - down) / (2.0 * h);
  }
  return grad;
}

}  // namespace lb::ref
