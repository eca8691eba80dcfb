// Top-K softmax (the paper's code: ag1988/top_k_attention): softmax over the K largest scores of a
// row, exact zeros elsewhere; K = max(K, n / 2) under the div-2 rule. Contract: row_kernels.h.
#include <algorithm>
#include <cmath>
#include <vector>

#include "models/kernels/row_kernels.h"

namespace lb {

int64_t topk_k(const NormalizerSpec& spec, int64_t n) {
  int64_t k = spec.topk;
  if (spec.topk_div2) k = std::max<int64_t>(k, n / 2);
  return std::min<int64_t>(std::max<int64_t>(k, 1), n);
}

RowStats topk_forward(const float* z, int64_t n, int64_t k, float* p) {
  RowStats out;
  if (k >= n) {
    softmax_forward(z, n, 1.0f, p);
    out.support = n;
    out.tau = *std::min_element(z, z + n);
    out.has_tau = true;
    return out;
  }
  // The K-th largest value t; keep every z > t and the lowest-index z == t up to K in all.
  thread_local std::vector<float> scratch;
  scratch.assign(z, z + n);
  std::nth_element(scratch.begin(), scratch.begin() + (k - 1), scratch.end(),
                   [](float a, float b) { return a > b; });
  const float t = scratch[k - 1];
  int64_t above = 0;
  for (int64_t i = 0; i < n; ++i) above += z[i] > t ? 1 : 0;
  int64_t ties_left = k - above;
  float m = z[0];
  for (int64_t i = 1; i < n; ++i) m = std::max(m, z[i]);
  double total = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    bool keep = z[i] > t;
    if (!keep && z[i] == t && ties_left > 0) {
      keep = true;
      --ties_left;
    }
    p[i] = keep ? std::exp(z[i] - m) : 0.0f;
    total += p[i];
  }
  const float inv = static_cast<float>(1.0 / total);
  for (int64_t i = 0; i < n; ++i) p[i] *= inv;
  out.support = k;
  out.tau = t;
  out.has_tau = true;
  return out;
}

void topk_backward(const float* p, const float* g, int64_t n, float* dz) {
  softmax_backward(p, g, n, 1.0f, dz);
}

}  // namespace lb
