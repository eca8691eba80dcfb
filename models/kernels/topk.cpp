// Top-K softmax (the paper's code: ag1988/top_k_attention, as called by deep-spin/asentmax):
// softmax over the K largest scores of a row, exact zeros elsewhere. Contract: row_kernels.h.
//
// K (topk_k). The released code takes one K per attention call, K = k, or max(k, N // 2) under
// its div-2 rule, with N the number of keys of the call: the sequence length T for every row in
// training and prefill, i + 1 in one-token cached decoding (so a row's K differs between the
// two). Rows with fewer visible keys than K get softmax over all of them (the masked keys torch
// picks get weight 0). K > N is an error there (torch.topk); we give those rows the same softmax
// instead, so a short sequence or early decode step under a large k runs. rule=div-2-row is our
// earlier per-row rule, K = max(k, n / 2) with n = i + 1 in every engine.
//
// The K-th largest score t is found without sorting the row: widen a window [max − Δ, max] (Δ =
// 1, 4, 16, ...) until it holds >= K scores (vectorised counts), select t among those few, then
// one vectorised output pass. Rows of n <= 256 skip the window: t is built bit by bit on the
// scores' order-preserving integer keys (32 vectorised counting passes, no data movement). Ties
// at t keep the lowest indices (a scalar pass, only when ties straddle the K-th place).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "models/kernels/row_kernels.h"
#include "models/kernels/simd.h"

namespace lb {
namespace {

LB_SIMD_CLONES
int64_t count_above(const float* z, int64_t n, float t) {
  int64_t count = 0;
#pragma omp simd reduction(+ : count)
  for (int64_t i = 0; i < n; ++i) count += z[i] > t ? 1 : 0;
  return count;
}

// The K-th largest of z[0..n) (1 <= k <= n, n <= 256) by radix selection on order-preserving
// keys: key(a) < key(b) iff a < b for non-NaN floats.
LB_SIMD_CLONES
float kth_largest_radix(const float* z, int64_t n, int64_t k) {
  uint32_t keys[256];
  for (int64_t i = 0; i < n; ++i) {
    uint32_t b;
    std::memcpy(&b, &z[i], sizeof(b));
    keys[i] = (b & 0x80000000u) ? ~b : (b | 0x80000000u);
  }
  uint32_t prefix = 0;
  for (int bit = 31; bit >= 0; --bit) {
    const uint32_t cand = prefix | (1u << bit);
    int64_t count = 0;
#pragma omp simd reduction(+ : count)
    for (int64_t i = 0; i < n; ++i) count += keys[i] >= cand ? 1 : 0;
    if (count >= k) prefix = cand;
  }
  const uint32_t b = (prefix & 0x80000000u) ? (prefix & 0x7FFFFFFFu) : ~prefix;
  float t;
  std::memcpy(&t, &b, sizeof(t));
  return t;
}

LB_SIMD_CLONES
int64_t count_equal(const float* z, int64_t n, float t) {
  int64_t count = 0;
#pragma omp simd reduction(+ : count)
  for (int64_t i = 0; i < n; ++i) count += z[i] == t ? 1 : 0;
  return count;
}

// p_i = exp(z_i − m) for z_i >= t (every z_i > t, and z_i == t when all ties are kept), else 0.
// Returns Σp.
LB_SIMD_CLONES
double topk_exp(const float* z, int64_t n, float m, float t, float* p) {
  double total = 0.0;
  for (int64_t b0 = 0; b0 < n; b0 += kSumBlock) {
    const int64_t b1 = std::min(n, b0 + kSumBlock);
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int64_t i = b0; i < b1; ++i) {
      const float e = z[i] >= t ? fast_exp(z[i] - m) : 0.0f;
      p[i] = e;
      s += e;
    }
    total += s;
  }
  return total;
}

// p *= scale; returns the number of nonzero weights.
LB_SIMD_CLONES
int64_t scale_row(float* p, int64_t n, float scale) {
  int64_t count = 0;
#pragma omp simd reduction(+ : count)
  for (int64_t i = 0; i < n; ++i) {
    p[i] *= scale;
    count += p[i] > 0.0f ? 1 : 0;
  }
  return count;
}

}  // namespace

int64_t topk_k(const NormalizerSpec& spec, int64_t n, int64_t call_keys) {
  if (call_keys <= 0) call_keys = n;
  int64_t k = spec.topk;
  if (spec.topk_rule == TopkRule::kDiv2) k = std::max<int64_t>(k, call_keys / 2);
  if (spec.topk_rule == TopkRule::kDiv2PerRow) k = std::max<int64_t>(k, n / 2);
  return std::min<int64_t>(std::max<int64_t>(k, 1), n);
}

RowStats topk_forward(const float* z, int64_t n, int64_t k, float* p) {
  RowStats out;
  out.has_tau = true;
  if (k >= n) {
    out.support = softmax_forward(z, n, 1.0f, p);
    out.tau = *std::min_element(z, z + n);
    return out;
  }
  const float m = use_avx512_kernels() ? row_max_avx512(z, n) : simd_row_max(z, n);
  float t;
  if (n <= 256) {
    t = kth_largest_radix(z, n, k);
  } else {
    // Widen the window until it holds at least k scores (it ends: Δ = inf holds all n).
    float lower = m;
    for (float delta = 1.0f;; delta *= 4.0f) {
      lower = delta > 1e30f ? -__builtin_inff() : m - delta;
      if (count_above(z, n, lower) >= k) break;
    }
    thread_local std::vector<float> window;
    window.clear();
    for (int64_t i = 0; i < n; ++i) {
      if (z[i] > lower) window.push_back(z[i]);
    }
    std::nth_element(window.begin(), window.begin() + (k - 1), window.end(),
                     [](float a, float b) { return a > b; });
    t = window[k - 1];
  }
  double total = topk_exp(z, n, m, t, p);
  const int64_t above = count_above(z, n, t);
  const int64_t ties = count_equal(z, n, t);
  if (above + ties > k) {  // keep only the lowest-index k − above of the tied scores
    int64_t drop = above + ties - k;
    for (int64_t i = n - 1; i >= 0 && drop > 0; --i) {
      if (z[i] == t) {
        total -= p[i];
        p[i] = 0.0f;
        --drop;
      }
    }
  }
  out.support = scale_row(p, n, static_cast<float>(1.0 / total));
  out.tau = t;
  return out;
}

void topk_backward(const float* p, const float* g, int64_t n, float* dz) {
  softmax_backward(p, g, n, 1.0f, dz);
}

}  // namespace lb
