// Vectorisation helpers for the row kernels (internal to models/kernels).
// LB_SIMD_CLONES compiles a hot function for AVX-512, AVX2 and baseline x86-64 and picks one at
// load time (GCC function multiversioning), so the portable build still uses AVX-512 where the
// CPU has it. Loops inside are plain `#pragma omp simd` loops (the library builds with
// -fopenmp-simd: no OpenMP runtime, only the vectorisation pragmas).
#pragma once
#include <cstdint>
#include <cstring>

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
