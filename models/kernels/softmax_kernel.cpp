// Fast fp32 softmax forward/backward (three and two vectorised passes) and its plain twin.
// Contract: row_kernels.h.
#include <algorithm>
#include <atomic>
#include <cmath>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "models/kernels/row_kernels.h"
#include "models/kernels/simd.h"

namespace lb {

namespace {

std::atomic<bool> g_force_portable{false};

}  // namespace

void force_portable_kernels(bool on) { g_force_portable.store(on); }

#if defined(__x86_64__) && defined(__GNUC__) && !defined(LB_NO_CLONES)
bool use_avx512_kernels() {
  static const bool avx512 = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") != 0;
  }();
  return avx512 && !g_force_portable.load(std::memory_order_relaxed);
}
#else
bool use_avx512_kernels() { return false; }
#endif

namespace {

#if defined(__x86_64__) && defined(__GNUC__) && !defined(LB_NO_CLONES)
// fast_exp (simd.h) on 16 lanes: the same reduction and polynomial, k rounded by roundscale and
// 2^k applied by scalef — not fast_exp's bits (simd.h's fast_exp_avx512 gives those); the softmax
// kernels' own, kept as it is because every committed training result went through it.
__attribute__((target("avx512f"))) inline __m512 exp_scalef_avx512(__m512 x) {
  const __m512 xc = _mm512_max_ps(x, _mm512_set1_ps(-87.0f));
  const __m512 kf = _mm512_roundscale_ps(_mm512_mul_ps(xc, _mm512_set1_ps(1.44269504088896341f)),
                                         _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(kf, _mm512_set1_ps(0.693145751953125f), xc);
  r = _mm512_fnmadd_ps(kf, _mm512_set1_ps(1.428606765330187e-06f), r);
  __m512 poly = _mm512_set1_ps(1.0f / 720.0f);
  poly = _mm512_fmadd_ps(poly, r, _mm512_set1_ps(1.0f / 120.0f));
  poly = _mm512_fmadd_ps(poly, r, _mm512_set1_ps(1.0f / 24.0f));
  poly = _mm512_fmadd_ps(poly, r, _mm512_set1_ps(1.0f / 6.0f));
  poly = _mm512_fmadd_ps(poly, r, _mm512_set1_ps(0.5f));
  poly = _mm512_fmadd_ps(poly, r, _mm512_set1_ps(1.0f));
  poly = _mm512_fmadd_ps(poly, r, _mm512_set1_ps(1.0f));
  const __mmask16 keep = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-87.0f), _CMP_GE_OQ);
  return _mm512_maskz_mov_ps(keep, _mm512_scalef_ps(poly, kf));
}
#endif

}  // namespace

// GCC 12's own reduce intrinsics trip -Wuninitialized on an internal temporary.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(LB_NO_CLONES)
__attribute__((target("avx512f"))) float row_max_avx512(const float* z, int64_t n) {
  __m512 a = _mm512_set1_ps(-__builtin_inff()), b = a, c = a, d = a;
  int64_t i = 0;
  for (; i + 64 <= n; i += 64) {
    a = _mm512_max_ps(a, _mm512_loadu_ps(z + i));
    b = _mm512_max_ps(b, _mm512_loadu_ps(z + i + 16));
    c = _mm512_max_ps(c, _mm512_loadu_ps(z + i + 32));
    d = _mm512_max_ps(d, _mm512_loadu_ps(z + i + 48));
  }
  for (; i < n; i += 16) {
    const __mmask16 k = n - i >= 16 ? static_cast<__mmask16>(0xFFFF)
                                    : static_cast<__mmask16>((1u << (n - i)) - 1u);
    a = _mm512_mask_max_ps(a, k, a, _mm512_maskz_loadu_ps(k, z + i));
  }
  return _mm512_reduce_max_ps(_mm512_max_ps(_mm512_max_ps(a, b), _mm512_max_ps(c, d)));
}
#else
float row_max_avx512(const float* z, int64_t n) { return simd_row_max(z, n); }
#endif

namespace {

#if defined(__x86_64__) && defined(__GNUC__) && !defined(LB_NO_CLONES)
// Rows of n <= 128 in at most eight registers (padding −inf gives weight 0).
__attribute__((target("avx512f"))) int64_t softmax_forward_avx512(const float* z, int64_t n,
                                                                  float scale, float* p) {
  constexpr int kMaxChunks = 8;
  const int chunks = static_cast<int>((n + 15) / 16);
  const __m512 neg_inf = _mm512_set1_ps(-__builtin_inff());
  __mmask16 mask[kMaxChunks];
  __m512 v[kMaxChunks];
  __m512 vmax = neg_inf;
  for (int c = 0; c < kMaxChunks; ++c) {
    const int64_t left = n - 16 * c;
    mask[c] = left >= 16 ? static_cast<__mmask16>(0xFFFF)
              : left > 0 ? static_cast<__mmask16>((1u << left) - 1u)
                         : static_cast<__mmask16>(0);
    v[c] = _mm512_mask_loadu_ps(neg_inf, mask[c], z + 16 * c);
    vmax = _mm512_max_ps(vmax, v[c]);
  }
  const __m512 vm = _mm512_set1_ps(_mm512_reduce_max_ps(vmax)), vs = _mm512_set1_ps(scale);
  __m512 total = _mm512_setzero_ps();
  for (int c = 0; c < chunks; ++c) {
    v[c] = exp_scalef_avx512(_mm512_mul_ps(vs, _mm512_sub_ps(v[c], vm)));
    total = _mm512_add_ps(total, v[c]);
  }
  const __m512 inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(total));
  int64_t support = 0;
  for (int c = 0; c < chunks; ++c) {
    const __m512 w = _mm512_mul_ps(v[c], inv);
    _mm512_mask_storeu_ps(p + 16 * c, mask[c], w);
    support += __builtin_popcount(
        _mm512_mask_cmp_ps_mask(mask[c], w, _mm512_setzero_ps(), _CMP_GT_OQ));
  }
  return support;
}

// Long rows: the max, then exp + store + block sums, then the scaling.
__attribute__((target("avx512f"))) int64_t softmax_forward_long_avx512(const float* z, int64_t n,
                                                                       float scale, float* p) {
  const __m512 vm = _mm512_set1_ps(row_max_avx512(z, n)), vs = _mm512_set1_ps(scale);
  double total = 0.0;
  for (int64_t b0 = 0; b0 < n; b0 += kSumBlock) {
    const int64_t b1 = std::min(n, b0 + kSumBlock);
    __m512 acc = _mm512_setzero_ps();
    for (int64_t i = b0; i < b1; i += 16) {
      const __mmask16 k = b1 - i >= 16 ? static_cast<__mmask16>(0xFFFF)
                                       : static_cast<__mmask16>((1u << (b1 - i)) - 1u);
      const __m512 x = _mm512_maskz_loadu_ps(k, z + i);
      const __m512 e =
          _mm512_maskz_mov_ps(k, exp_scalef_avx512(_mm512_mul_ps(vs, _mm512_sub_ps(x, vm))));
      _mm512_mask_storeu_ps(p + i, k, e);
      acc = _mm512_add_ps(acc, e);
    }
    total += _mm512_reduce_add_ps(acc);
  }
  const __m512 inv = _mm512_set1_ps(static_cast<float>(1.0 / total));
  int64_t support = 0;
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 k = n - i >= 16 ? static_cast<__mmask16>(0xFFFF)
                                    : static_cast<__mmask16>((1u << (n - i)) - 1u);
    const __m512 w = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, p + i), inv);
    _mm512_mask_storeu_ps(p + i, k, w);
    support += __builtin_popcount(_mm512_mask_cmp_ps_mask(k, w, _mm512_setzero_ps(), _CMP_GT_OQ));
  }
  return support;
}
#else
int64_t softmax_forward_avx512(const float*, int64_t, float, float*) { return 0; }
int64_t softmax_forward_long_avx512(const float*, int64_t, float, float*) { return 0; }
#endif
#pragma GCC diagnostic pop

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

LB_SIMD_CLONES
int64_t softmax_forward_long(const float* z, int64_t n, float scale, float* p) {
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

}  // namespace

// Dispatch outside the multiversioned kernels (no call from AVX-512 code into SSE code).
int64_t softmax_forward(const float* z, int64_t n, float scale, float* p) {
  if (n <= 128 && use_avx512_kernels()) return softmax_forward_avx512(z, n, scale, p);
  if (n <= kShortRow) return softmax_forward_short(z, n, scale, p);
  if (use_avx512_kernels()) return softmax_forward_long_avx512(z, n, scale, p);
  return softmax_forward_long(z, n, scale, p);
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
