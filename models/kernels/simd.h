// Vectorisation helpers for the row kernels (internal to models/kernels).
// LB_SIMD_CLONES compiles a hot function for AVX-512, AVX2 and baseline x86-64 and picks one at
// load time (GCC function multiversioning), so the portable build still uses AVX-512 where the
// CPU has it. Loops inside are plain `#pragma omp simd` loops (the library builds with
// -fopenmp-simd: no OpenMP runtime, only the vectorisation pragmas).
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(LB_NO_CLONES)
#define LB_SIMD_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define LB_SIMD_CLONES
#endif

#define LB_INLINE inline __attribute__((always_inline))

namespace lb {

// Rows are reduced in blocks: a float vector reduction inside a block of kSumBlock elements
// (each lane adds 8 terms with AVX-512, 32 with the baseline's 4-lane SSE), the block sums added
// in double. Rows of 65,536 then sum to 1 within ~1e-7. Unoptimised builds do not vectorise (one
// lane), so their blocks are shorter. A multiple of 16.
#ifdef __OPTIMIZE__
constexpr int64_t kSumBlock = 128;
#else
constexpr int64_t kSumBlock = 32;
#endif

// exp(x) for x <= 88 by range reduction x = k ln2 + r, |r| <= ln2/2, a degree-6 polynomial and an
// exponent-bit shift. Relative error <= 2.5e-7; x < −87 returns exactly 0 (no denormals).
// Branch-free so that loops calling it vectorise.
LB_INLINE float fast_exp(float x) {
  const float xc = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
  float kf = xc * 1.44269504088896341f;
  kf = (kf + 12582912.0f) - 12582912.0f;  // round to nearest (|kf| < 2^22)
  float r = xc - kf * 0.693145751953125f;
  r = r - kf * 1.428606765330187e-06f;
  float poly = 1.0f / 720.0f;
  poly = poly * r + 1.0f / 120.0f;
  poly = poly * r + 1.0f / 24.0f;
  poly = poly * r + 1.0f / 6.0f;
  poly = poly * r + 0.5f;
  poly = poly * r + 1.0f;
  poly = poly * r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(kf) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return x < -87.0f ? 0.0f : poly * scale;
}

#if defined(__x86_64__) && defined(__GNUC__)
// The lanes of the 16 floats at j that lie below n (a masked tail's load/store mask).
__attribute__((target("avx512f"))) inline __mmask16 lanes_below(int64_t n, int64_t j) {
  const int64_t k = std::clamp<int64_t>(n - j, 0, 16);
  return static_cast<__mmask16>((1u << k) - 1u);
}
#endif

#if defined(__x86_64__) && defined(__GNUC__)
// fast_exp on 16 lanes with AVX-512F intrinsics, with fast_exp's mul + add pairs fused into FMAs
// as GCC fuses them when it compiles fast_exp for AVX-512F (its default -ffp-contract=fast; the
// target brings FMA): kf = (xc·log2e + 2^23·1.5) − 2^23·1.5 with the first add fused, r and the
// Horner steps fused. So these are the bits of fast_exp in the AVX-512 kernels, NaN included
// (blocked_attention_test pins it), and within an ulp or so (3.6e-7 relative) of a baseline x86-64
// build of fast_exp, which has no FMA. Call only from a function compiled for AVX-512F.
__attribute__((target("avx512f"), always_inline)) inline __m512 fast_exp_avx512(__m512 x) {
  const __mmask16 lo = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-87.0f), _CMP_LT_OQ);
  const __mmask16 hi = _mm512_cmp_ps_mask(x, _mm512_set1_ps(88.0f), _CMP_GT_OQ);
  __m512 xc = _mm512_mask_mov_ps(x, lo, _mm512_set1_ps(-87.0f));
  xc = _mm512_mask_mov_ps(xc, hi, _mm512_set1_ps(88.0f));
  const __m512 magic = _mm512_set1_ps(12582912.0f);
  const __m512 kf =
      _mm512_sub_ps(_mm512_fmadd_ps(xc, _mm512_set1_ps(1.44269504088896341f), magic), magic);
  __m512 r = _mm512_fnmadd_ps(kf, _mm512_set1_ps(0.693145751953125f), xc);
  r = _mm512_fnmadd_ps(kf, _mm512_set1_ps(1.428606765330187e-06f), r);
  __m512 poly = _mm512_set1_ps(1.0f / 720.0f);
  poly = _mm512_fmadd_ps(poly, r, _mm512_set1_ps(1.0f / 120.0f));
  poly = _mm512_fmadd_ps(poly, r, _mm512_set1_ps(1.0f / 24.0f));
  poly = _mm512_fmadd_ps(poly, r, _mm512_set1_ps(1.0f / 6.0f));
  poly = _mm512_fmadd_ps(poly, r, _mm512_set1_ps(0.5f));
  poly = _mm512_fmadd_ps(poly, r, _mm512_set1_ps(1.0f));
  poly = _mm512_fmadd_ps(poly, r, _mm512_set1_ps(1.0f));
  const __m512i bits =
      _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvttps_epi32(kf), _mm512_set1_epi32(127)), 23);
  return _mm512_maskz_mul_ps(static_cast<__mmask16>(~lo), poly, _mm512_castsi512_ps(bits));
}
#endif

// Whether the hand-written AVX-512 intrinsic kernels may run: the CPU has AVX-512F (checked
// once) and force_portable_kernels (row_kernels.h, a test hook) is off. softmax_kernel.cpp.
bool use_avx512_kernels();
// max of z[0..n), n >= 1, with AVX-512 intrinsics; call only when use_avx512_kernels().
float row_max_avx512(const float* z, int64_t n);

// Rows up to this length take the short-row kernels: the row is copied into a local buffer padded
// with −inf to whole 16-lane chunks, so every loop is a fixed vector op with no remainder loop
// and the whole kernel is one call (training rows are mostly this short).
constexpr int64_t kShortRow = 64;

// Copies x[0..n) into buf (kShortRow floats) padded with −inf; returns the number of 16-lane chunks.
LB_INLINE int short_row_load(const float* x, int64_t n, float* buf) {
  const int chunks = static_cast<int>((n + 15) / 16);
  for (int i = 0; i < chunks * 16; ++i) buf[i] = -__builtin_inff();
  std::memcpy(buf, x, static_cast<size_t>(n) * sizeof(float));
  return chunks;
}

// max of x[0..n), n >= 1. Sixteen independent lanes so the compiler emits vector max (a plain
// `m = max(m, x[i])` loop, even under `omp simd reduction(max)`, stays a scalar dependency chain).
LB_INLINE float simd_row_max(const float* x, int64_t n) {
  float lane[16];
  for (int l = 0; l < 16; ++l) lane[l] = x[0];
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    for (int l = 0; l < 16; ++l) lane[l] = x[i + l] > lane[l] ? x[i + l] : lane[l];
  }
  for (; i < n; ++i) lane[0] = x[i] > lane[0] ? x[i] : lane[0];
  float m = lane[0];
  for (int l = 1; l < 16; ++l) m = lane[l] > m ? lane[l] : m;
  return m;
}

}  // namespace lb
