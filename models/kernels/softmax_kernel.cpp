// Fast fp32 softmax forward/backward (three and two vectorised passes) and its plain twin.
// Contract: row_kernels.h.
#include <algorithm>
#include <cmath>

#include "models/kernels/row_kernels.h"
#include "models/kernels/simd.h"

namespace lb {

namespace {

// n <= kShortRow: one padded buffer, fixed 16-lane loops (simd.h).
LB_SIMD_CLONES
int64_t softmax_forward_short(const float* z, int64_t n, float scale, float* p) {
  alignas(64) float v[kShortRow];
  const int chunks = short_row_load(z, n, v);
  float lane[16];
  for (int l = 0; l < 16; ++l) lane[l] = v[l];
  for (int c = 1; c < chunks; ++c) {
    for (int l = 0; l < 16; ++l) lane[l] = v[c * 16 + l] > lane[l] ? v[c * 16 + l] : lane[l];
  }
  float m = lane[0];
  for (int l = 1; l < 16; ++l) m = lane[l] > m ? lane[l] : m;
  float sum[16] = {};
  for (int c = 0; c < chunks; ++c) {
    for (int l = 0; l < 16; ++l) {
      const float e = fast_exp(scale * (v[c * 16 + l] - m));
      v[c * 16 + l] = e;
      sum[l] += e;
    }
  }
  float total = 0.0f;
  for (int l = 0; l < 16; ++l) total += sum[l];
  const float inv = 1.0f / total;
  int64_t support = 0;
  for (int64_t i = 0; i < n; ++i) {
    p[i] = v[i] * inv;
    support += p[i] > 0.0f ? 1 : 0;
  }
  return support;
}

}  // namespace

LB_SIMD_CLONES
int64_t softmax_forward(const float* z, int64_t n, float scale, float* p) {
  if (n <= kShortRow) return softmax_forward_short(z, n, scale, p);
  const float m = simd_row_max(z, n);
  double total = 0.0;
  for (int64_t b0 = 0; b0 < n; b0 += kSumBlock) {
    const int64_t b1 = std::min(n, b0 + kSumBlock);
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int64_t i = b0; i < b1; ++i) {
      const float e = fast_exp(scale * (z[i] - m));
      p[i] = e;
      s += e;
    }
    total += s;
  }
  const float inv = static_cast<float>(1.0 / total);
  int64_t support = 0;
#pragma omp simd reduction(+ : support)
  for (int64_t i = 0; i < n; ++i) {
    p[i] *= inv;
    support += p[i] > 0.0f ? 1 : 0;
  }
  return support;
}

LB_SIMD_CLONES
void softmax_backward(const float* p, const float* g, int64_t n, float scale, float* dz) {
  double dot = 0.0;
  for (int64_t b0 = 0; b0 < n; b0 += kSumBlock) {
    const int64_t b1 = std::min(n, b0 + kSumBlock);
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int64_t i = b0; i < b1; ++i) s += p[i] * g[i];
    dot += s;
  }
  const float d = static_cast<float>(dot);
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) dz[i] = scale * p[i] * (g[i] - d);
}

LB_SIMD_CLONES
double softmax_entropy(const float* z, int64_t n) {
  const float m = simd_row_max(z, n);
  double s = 0.0, sd = 0.0;
  for (int64_t b0 = 0; b0 < n; b0 += kSumBlock) {
    const int64_t b1 = std::min(n, b0 + kSumBlock);
    float bs = 0.0f, bsd = 0.0f;
#pragma omp simd reduction(+ : bs, bsd)
    for (int64_t i = b0; i < b1; ++i) {
      const float d = z[i] - m;
      const float e = fast_exp(d);
      bs += e;
      bsd += e > 0.0f ? e * d : 0.0f;  // e = 0 also for d = −inf
    }
    s += bs;
    sd += bsd;
  }
  return std::log(s) - sd / s;
}

void softmax_forward_plain(const float* z, int64_t n, float scale, float* p) {
  float m = z[0];
  for (int64_t i = 1; i < n; ++i) m = std::max(m, z[i]);
  double total = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    p[i] = std::exp(scale * (z[i] - m));
    total += p[i];
  }
  const float inv = static_cast<float>(1.0 / total);
  for (int64_t i = 0; i < n; ++i) p[i] *= inv;
}

}  // namespace lb
