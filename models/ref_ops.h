// Plain double-precision twins of the model's kernels (ops.h, attention.h, the oneDNN GELU), for
// tests only: direct loops over the formulas, no blocking, no threads. Same shapes and argument
// order as the fast versions, std::vector<double> instead of pointers. The attention twin calls
// the fp32 row normalizer (its own twins live in kernels/ref_normalizers.h) and does the rest in
// double.
#pragma once
#include <cmath>
#include <cstdint>
#include <vector>

#include "models/kernels/attention_score.h"
#include "models/kernels/normalizer.h"

namespace lb::ref {

using Vec = std::vector<double>;

inline void rmsnorm_forward(const Vec& x, const Vec& w, Vec& y, Vec& rstd, int64_t R, int64_t C,
                            double eps = 1e-6) {
  y.assign(R * C, 0.0), rstd.assign(R, 0.0);
  for (int64_t r = 0; r < R; ++r) {
    double ss = 0.0;
    for (int64_t c = 0; c < C; ++c) ss += x[r * C + c] * x[r * C + c];
    rstd[r] = 1.0 / std::sqrt(ss / C + eps);
    for (int64_t c = 0; c < C; ++c) y[r * C + c] = x[r * C + c] * rstd[r] * (1.0 + w[c]);
  }
}

// dx =, dw +=.
inline void rmsnorm_backward(const Vec& x, const Vec& w, const Vec& rstd, const Vec& dy, Vec& dx,
                             Vec& dw, int64_t R, int64_t C) {
  dx.assign(R * C, 0.0);
  for (int64_t r = 0; r < R; ++r) {
    double dot = 0.0;
    for (int64_t c = 0; c < C; ++c) {
      dot += dy[r * C + c] * (1.0 + w[c]) * x[r * C + c] * rstd[r];
      dw[c] += dy[r * C + c] * x[r * C + c] * rstd[r];
    }
    for (int64_t c = 0; c < C; ++c) {
      dx[r * C + c] = rstd[r] * (dy[r * C + c] * (1.0 + w[c]) - x[r * C + c] * rstd[r] * dot / C);
    }
  }
}

inline double gelu_tanh(double x) {
  const double k = std::sqrt(2.0 / M_PI);
  return 0.5 * x * (1.0 + std::tanh(k * (x + 0.044715 * x * x * x)));
}
inline double gelu_tanh_grad(double x) {
  const double k = std::sqrt(2.0 / M_PI);
  const double t = std::tanh(k * (x + 0.044715 * x * x * x));
  return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * k * (1.0 + 3.0 * 0.044715 * x * x);
}

// Returns Σ mask·(−log p_target); dlogits = mask·(p − onehot)/denom.
inline double cross_entropy(const Vec& logits, const std::vector<int32_t>& target,
                            const std::vector<uint8_t>& mask, Vec& dlogits, int64_t R, int64_t V,
                            double denom) {
  dlogits.assign(R * V, 0.0);
  double total = 0.0;
  for (int64_t r = 0; r < R; ++r) {
    if (!mask[r]) continue;
    double m = logits[r * V];
    for (int64_t v = 0; v < V; ++v) m = std::max(m, logits[r * V + v]);
    double s = 0.0;
    for (int64_t v = 0; v < V; ++v) s += std::exp(logits[r * V + v] - m);
    total += std::log(s) + m - logits[r * V + target[r]];
    for (int64_t v = 0; v < V; ++v) {
      dlogits[r * V + v] = (std::exp(logits[r * V + v] - m) / s - (v == target[r])) / denom;
    }
  }
  return total;
}

// Attention over a packed batch, attention.h's formula with direct loops. probs (per sample
// (H, T, T)) is filled for the backward. The slope of head h is position_slope(spec, slopes[h])
// (none for stickbreaking by default); each sample is one attention call of T keys.
inline void attention_forward(const NormalizerSpec& spec, int64_t H, int64_t D,
                              const std::vector<int64_t>& offsets, const Vec& q, const Vec& k,
                              const Vec& v, const Vec& scale, const Vec& slopes,
                              std::vector<Vec>& probs, Vec& att) {
  const int64_t HD = H * D;
  att.assign(offsets.back() * HD, 0.0);
  probs.clear();
  for (size_t b = 0; b + 1 < offsets.size(); ++b) {
    const int64_t r0 = offsets[b], T = offsets[b + 1] - r0;
    Vec P(H * T * T, 0.0);
    for (int64_t h = 0; h < H; ++h) {
      for (int64_t i = 0; i < T; ++i) {
        std::vector<float> z(i + 1), p(i + 1);
        for (int64_t j = 0; j <= i; ++j) {
          double s = 0.0;
          for (int64_t d = 0; d < D; ++d) s += q[(r0 + i) * HD + h * D + d] * k[(r0 + j) * HD + h * D + d];
          z[j] = static_cast<float>(attention_score_ref(s, scale[(r0 + i) * H + h], D,
                                                        position_slope(spec, slopes[h]), i, j));
        }
        normalize_forward(spec, z.data(), i + 1, p.data(), T);  // a call of T keys
        for (int64_t j = 0; j <= i; ++j) {
          P[(h * T + i) * T + j] = p[j];
          for (int64_t d = 0; d < D; ++d) {
            att[(r0 + i) * HD + h * D + d] += p[j] * v[(r0 + j) * HD + h * D + d];
          }
        }
      }
    }
    probs.push_back(P);
  }
}

inline void attention_backward(const NormalizerSpec& spec, int64_t H, int64_t D,
                               const std::vector<int64_t>& offsets, const Vec& q, const Vec& k,
                               const Vec& v, const Vec& scale, const Vec& slopes,
                               const std::vector<Vec>& probs, const Vec& datt, Vec& dq, Vec& dk,
                               Vec& dv, Vec& dscale) {
  const int64_t HD = H * D, N = offsets.back();
  dq.assign(N * HD, 0.0), dk.assign(N * HD, 0.0), dv.assign(N * HD, 0.0);
  dscale.assign(N * H, 0.0);
  const double isd = 1.0 / std::sqrt(double(D));
  for (size_t b = 0; b + 1 < offsets.size(); ++b) {
    const int64_t r0 = offsets[b], T = offsets[b + 1] - r0;
    const Vec& P = probs[b];
    for (int64_t h = 0; h < H; ++h) {
      for (int64_t i = 0; i < T; ++i) {
        std::vector<float> z(i + 1), p(i + 1), dp(i + 1), dz(i + 1);
        Vec s(i + 1);
        for (int64_t j = 0; j <= i; ++j) {
          double dot = 0.0, g = 0.0;
          for (int64_t d = 0; d < D; ++d) {
            dot += q[(r0 + i) * HD + h * D + d] * k[(r0 + j) * HD + h * D + d];
            g += datt[(r0 + i) * HD + h * D + d] * v[(r0 + j) * HD + h * D + d];
            dv[(r0 + j) * HD + h * D + d] += P[(h * T + i) * T + j] * datt[(r0 + i) * HD + h * D + d];
          }
          s[j] = dot;
          z[j] = static_cast<float>(attention_score_ref(dot, scale[(r0 + i) * H + h], D,
                                                        position_slope(spec, slopes[h]), i, j));
          p[j] = static_cast<float>(P[(h * T + i) * T + j]);
          dp[j] = static_cast<float>(g);
        }
        normalize_backward(spec, z.data(), p.data(), dp.data(), i + 1, dz.data());
        for (int64_t j = 0; j <= i; ++j) {
          dscale[(r0 + i) * H + h] += dz[j] * s[j] * isd;
          const double ds = dz[j] * scale[(r0 + i) * H + h] * isd;
          for (int64_t d = 0; d < D; ++d) {
            dq[(r0 + i) * HD + h * D + d] += ds * k[(r0 + j) * HD + h * D + d];
            dk[(r0 + j) * HD + h * D + d] += ds * q[(r0 + i) * HD + h * D + d];
          }
        }
      }
    }
  }
}

}  // namespace lb::ref
