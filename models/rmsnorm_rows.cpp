// RMSNorm's kernels (contract: rmsnorm_rows.h). Compiled with -ffp-contract=off: every a·b + c
// here is a multiply, then an add, as in a portable x86-64 build (which has no FMA).
#include "models/rmsnorm_rows.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "models/kernels/simd.h"
#include "models/ops.h"
#include "models/parallel.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define LB_RMS_LANES 1
#else
#define LB_RMS_LANES 0
#endif

namespace lb {

float rmsnorm_row(const float* x, const float* w, float* y, int64_t C) {
  float ss = 0.f;
  for (int64_t c = 0; c < C; ++c) ss += x[c] * x[c];
  const float s = 1.f / std::sqrt(ss / static_cast<float>(C) + kRmsEps);
  for (int64_t c = 0; c < C; ++c) y[c] = x[c] * s * (1.f + w[c]);
  return s;
}

bool rmsnorm_lanes_enabled() { return LB_RMS_LANES && use_avx512_kernels(); }

namespace {

// Row chunks for dw's reduction: a fixed partition summed in a fixed order, so the result does
// not depend on the thread count.
constexpr int64_t kChunks = 64;

// dw's chunk partials (kChunks, C), zeroed: a buffer of the calling thread, reused between calls
// (grown, never shrunk).
float* zeroed_partials(int64_t C) {
  thread_local std::vector<float> buf;
  const int64_t n = kChunks * C;
  if (static_cast<int64_t>(buf.size()) < n) buf.resize(static_cast<size_t>(n));
  std::fill(buf.begin(), buf.begin() + n, 0.f);
  return buf.data();
}

// dw += the chunk partials, chunks in order.
void add_partials(const float* partial, float* dw, int64_t C) {
  for (int64_t chunk = 0; chunk < kChunks; ++chunk) {
    const float* pw = partial + chunk * C;
    for (int64_t c = 0; c < C; ++c) dw[c] += pw[c];
  }
}

#if LB_RMS_LANES

// Σ_c dy·(1 + w)·x̂ / C of one row, x̂ = x·s: the backward's dot product, one add at a time.
float row_mean(const float* xr, const float* w, float s, const float* dyr, int64_t C) {
  float dot = 0.f;
  for (int64_t c = 0; c < C; ++c) {
    const float xh = xr[c] * s;
    dot += dyr[c] * (1.f + w[c]) * xh;
  }
  return dot / static_cast<float>(C);
}

// Prefetches the line of p[i] for reading: the next block's tiles, which may lie past the array
// (prefetches never fault; the address is formed as an integer).
inline void prefetch_next(const float* p, int64_t i) {
  __builtin_prefetch(
      reinterpret_cast<const void*>(reinterpret_cast<uintptr_t>(p) + i * sizeof(float)), 0, 3);
}

// v[r] = row r of a 16×16 tile on entry, column r on exit (64 shuffles).
__attribute__((target("avx512f"), always_inline)) inline void transpose16(__m512 v[16]) {
  __m512 t[16];
#pragma GCC unroll 8
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_ps(v[2 * i], v[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(v[2 * i], v[2 * i + 1]);
  }
  // v[4g + k]: in each 128-bit lane L, rows 4g .. 4g + 3 of column 4L + k.
#pragma GCC unroll 4
  for (int g = 0; g < 4; ++g) {
    v[4 * g] = _mm512_shuffle_ps(t[4 * g], t[4 * g + 2], 0x44);
    v[4 * g + 1] = _mm512_shuffle_ps(t[4 * g], t[4 * g + 2], 0xEE);
    v[4 * g + 2] = _mm512_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0x44);
    v[4 * g + 3] = _mm512_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0xEE);
  }
  // t[k], t[4 + k]: lanes 0, 2 (1, 3) of v[k], v[4 + k]; likewise t[8 + k], t[12 + k].
#pragma GCC unroll 4
  for (int k = 0; k < 4; ++k) {
    t[k] = _mm512_shuffle_f32x4(v[k], v[4 + k], 0x88);
    t[4 + k] = _mm512_shuffle_f32x4(v[k], v[4 + k], 0xDD);
    t[8 + k] = _mm512_shuffle_f32x4(v[8 + k], v[12 + k], 0x88);
    t[12 + k] = _mm512_shuffle_f32x4(v[8 + k], v[12 + k], 0xDD);
  }
#pragma GCC unroll 4
  for (int k = 0; k < 4; ++k) {
    v[k] = _mm512_shuffle_f32x4(t[k], t[8 + k], 0x88);
    v[8 + k] = _mm512_shuffle_f32x4(t[k], t[8 + k], 0xDD);
    v[4 + k] = _mm512_shuffle_f32x4(t[4 + k], t[12 + k], 0x88);
    v[12 + k] = _mm512_shuffle_f32x4(t[4 + k], t[12 + k], 0xDD);
  }
}

// acc + v's columns 0, 1, .., n − 1 one after another (n >= 1; v holds a tile's rows, lane r of
// acc is row r's running sum).
__attribute__((target("avx512f"), always_inline)) inline __m512 add_columns(__m512 acc,
                                                                            __m512 v[16],
                                                                            int64_t n) {
  transpose16(v);
  if (n >= 16) {
#pragma GCC unroll 16
    for (int j = 0; j < 16; ++j) acc = _mm512_add_ps(acc, v[j]);
  } else {
    for (int j = 0; j < n; ++j) acc = _mm512_add_ps(acc, v[j]);
  }
  return acc;
}

// 16 rows: rstd (16) = 1 / sqrt(Σ x² / C + eps), y = x·s·(1 + w).
__attribute__((target("avx512f"))) void forward_block(const float* x, const float* w, float* y,
                                                      float* rstd, int64_t C) {
  __m512 ss = _mm512_setzero_ps();
  for (int64_t c0 = 0; c0 < C; c0 += 16) {
    const __mmask16 in = lanes_below(C, c0);
    __m512 v[16];
#pragma GCC unroll 16
    for (int r = 0; r < 16; ++r) {
      prefetch_next(x, (16 + r) * C + c0);
      const __m512 xv = _mm512_maskz_loadu_ps(in, x + r * C + c0);
      v[r] = _mm512_mul_ps(xv, xv);
    }
    ss = add_columns(ss, v, C - c0);
  }
  const __m512 mean = _mm512_div_ps(ss, _mm512_set1_ps(static_cast<float>(C)));
  const __m512 s = _mm512_div_ps(_mm512_set1_ps(1.f),
                                 _mm512_sqrt_ps(_mm512_add_ps(mean, _mm512_set1_ps(kRmsEps))));
  alignas(64) float sr[16];
  _mm512_store_ps(sr, s);
  if (rstd) std::memcpy(rstd, sr, sizeof(sr));
  const __m512 one = _mm512_set1_ps(1.f);
  for (int r = 0; r < 16; ++r) {
    const __m512 sv = _mm512_set1_ps(sr[r]);
    for (int64_t c0 = 0; c0 < C; c0 += 16) {
      const __mmask16 in = lanes_below(C, c0);
      const __m512 xs = _mm512_mul_ps(_mm512_maskz_loadu_ps(in, x + r * C + c0), sv);
      const __m512 w1 = _mm512_add_ps(one, _mm512_maskz_loadu_ps(in, w + c0));
      _mm512_mask_storeu_ps(y + r * C + c0, in, _mm512_mul_ps(xs, w1));
    }
  }
}

// 16 rows: mean (16) = row_mean of each.
__attribute__((target("avx512f"))) void mean_block(const float* x, const float* w,
                                                   const float* rstd, const float* dy, float* mean,
                                                   float* dx, int64_t C) {
  const __m512 one = _mm512_set1_ps(1.f);
  __m512 dot = _mm512_setzero_ps();
  for (int64_t c0 = 0; c0 < C; c0 += 16) {
    const __mmask16 in = lanes_below(C, c0);
    const __m512 w1 = _mm512_add_ps(one, _mm512_maskz_loadu_ps(in, w + c0));
    __m512 v[16];
#pragma GCC unroll 16
    for (int r = 0; r < 16; ++r) {
      prefetch_next(x, (16 + r) * C + c0);
      prefetch_next(dy, (16 + r) * C + c0);
      __builtin_prefetch(dx + r * C + c0, 1, 3);
      const __m512 xh =
          _mm512_mul_ps(_mm512_maskz_loadu_ps(in, x + r * C + c0), _mm512_set1_ps(rstd[r]));
      const __m512 g = _mm512_mul_ps(_mm512_maskz_loadu_ps(in, dy + r * C + c0), w1);
      v[r] = _mm512_mul_ps(g, xh);
    }
    dot = add_columns(dot, v, C - c0);
  }
  _mm512_storeu_ps(mean, _mm512_div_ps(dot, _mm512_set1_ps(static_cast<float>(C))));
}

// One tile (the lanes `in`) of one row after its mean: dx = s·(dy·(1 + w) − x̂·mean), and
// p + dy·x̂ returned (p: the row's chunk partial of dw over the tile).
__attribute__((target("avx512f"), always_inline)) inline __m512 apply_tile(
    const float* xr, const float* w, const float* dyr, float* dxr, __m512 sv, __m512 mv, __m512 p,
    __mmask16 in) {
  const __m512 w1 = _mm512_add_ps(_mm512_set1_ps(1.f), _mm512_maskz_loadu_ps(in, w));
  const __m512 xh = _mm512_mul_ps(_mm512_maskz_loadu_ps(in, xr), sv);
  const __m512 dyv = _mm512_maskz_loadu_ps(in, dyr);
  const __m512 g = _mm512_sub_ps(_mm512_mul_ps(dyv, w1), _mm512_mul_ps(xh, mv));
  _mm512_mask_storeu_ps(dxr, in, _mm512_mul_ps(sv, g));
  return _mm512_add_ps(p, _mm512_mul_ps(dyv, xh));
}

// n <= 16 rows r0 .. r0 + n − 1 after their means (mean (n)): dx, and each row's dy·x̂ added to
// the dw partial of its chunk (chunk k: rows [k·per, (k + 1)·per); partial (64, C)), rows in
// order. Short rows go a column tile at a time, its partial in a register while its chunk lasts;
// longer rows go a row at a time (16 rows' tiles at a stride of C floats thrash L1 when C is a
// large power of two).
__attribute__((target("avx512f"))) void apply_block(const float* x, const float* w,
                                                    const float* rstd, const float* dy,
                                                    const float* mean, float* dx, float* partial,
                                                    int64_t r0, int64_t n, int64_t per, int64_t C) {
  if (C <= 64) {
    for (int64_t c0 = 0; c0 < C; c0 += 16) {
      const __mmask16 in = lanes_below(C, c0);
      int64_t chunk = r0 / per;
      __m512 p = _mm512_maskz_loadu_ps(in, partial + chunk * C + c0);
      for (int64_t i = 0; i < n; ++i) {
        if (r0 + i >= (chunk + 1) * per) {
          _mm512_mask_storeu_ps(partial + chunk * C + c0, in, p);
          chunk = (r0 + i) / per;
          p = _mm512_maskz_loadu_ps(in, partial + chunk * C + c0);
        }
        p = apply_tile(x + i * C + c0, w + c0, dy + i * C + c0, dx + i * C + c0,
                       _mm512_set1_ps(rstd[i]), _mm512_set1_ps(mean[i]), p, in);
      }
      _mm512_mask_storeu_ps(partial + chunk * C + c0, in, p);
    }
    return;
  }
  for (int64_t i = 0; i < n; ++i) {
    float* pw = partial + (r0 + i) / per * C;
    const __m512 sv = _mm512_set1_ps(rstd[i]), mv = _mm512_set1_ps(mean[i]);
    for (int64_t c0 = 0; c0 < C; c0 += 16) {
      const __mmask16 in = lanes_below(C, c0);
      const __m512 p = apply_tile(x + i * C + c0, w + c0, dy + i * C + c0, dx + i * C + c0, sv, mv,
                                  _mm512_maskz_loadu_ps(in, pw + c0), in);
      _mm512_mask_storeu_ps(pw + c0, in, p);
    }
  }
}

#endif  // LB_RMS_LANES

}  // namespace

void rmsnorm_rows_forward_plain(const float* x, const float* w, float* y, float* rstd, int64_t R,
                                int64_t C) {
  for (int64_t r = 0; r < R; ++r) {
    const float s = rmsnorm_row(x + r * C, w, y + r * C, C);
    if (rstd) rstd[r] = s;
  }
}

void rmsnorm_rows_forward_lanes(const float* x, const float* w, float* y, float* rstd, int64_t R,
                                int64_t C) {
  int64_t r = 0;
#if LB_RMS_LANES
  for (; r + kRmsLanes <= R; r += kRmsLanes) {
    forward_block(x + r * C, w, y + r * C, rstd ? rstd + r : nullptr, C);
  }
#endif
  rmsnorm_rows_forward_plain(x + r * C, w, y + r * C, rstd ? rstd + r : nullptr, R - r, C);
}

void rmsnorm_rows_forward(const float* x, const float* w, float* y, float* rstd, int64_t R,
                          int64_t C) {
  if (rmsnorm_lanes_enabled()) {
    rmsnorm_rows_forward_lanes(x, w, y, rstd, R, C);
  } else {
    rmsnorm_rows_forward_plain(x, w, y, rstd, R, C);
  }
}

void rmsnorm_backward_lanes(const float* x, const float* w, const float* rstd, const float* dy,
                            float* dx, float* dw, int64_t R, int64_t C) {
#if LB_RMS_LANES
  float* partial = zeroed_partials(C);
  const int64_t per = (R + kChunks - 1) / kChunks;
  parallel_team([&](int64_t threads, int64_t t) {
    // A run of whole chunks per thread, its rows in blocks of 16 (the last one may be short and
    // takes the plain row_mean): each block's means, then its dx and dw partials.
    const int64_t r_begin = std::min(R, kChunks * t / threads * per);
    const int64_t r_end = std::min(R, kChunks * (t + 1) / threads * per);
    for (int64_t r0 = r_begin; r0 < r_end; r0 += kRmsLanes) {
      const int64_t n = std::min(kRmsLanes, r_end - r0);
      alignas(64) float mean[kRmsLanes];
      if (n == kRmsLanes) {
        mean_block(x + r0 * C, w, rstd + r0, dy + r0 * C, mean, dx + r0 * C, C);
      } else {
        for (int64_t i = 0; i < n; ++i) {
          mean[i] = row_mean(x + (r0 + i) * C, w, rstd[r0 + i], dy + (r0 + i) * C, C);
        }
      }
      apply_block(x + r0 * C, w, rstd + r0, dy + r0 * C, mean, dx + r0 * C, partial, r0, n, per, C);
    }
  });
  add_partials(partial, dw, C);
#else
  rmsnorm_backward_plain(x, w, rstd, dy, dx, dw, R, C);
#endif
}

void rmsnorm_backward_plain(const float* x, const float* w, const float* rstd, const float* dy,
                            float* dx, float* dw, int64_t R, int64_t C) {
  float* partial = zeroed_partials(C);
  const int64_t per = (R + kChunks - 1) / kChunks;
  parallel_for_static(kChunks, [&](int64_t chunk) {
    float* pw = partial + chunk * C;
    const int64_t r_end = std::min(R, (chunk + 1) * per);
    for (int64_t r = chunk * per; r < r_end; ++r) {
      const float* xr = x + r * C;
      const float* dyr = dy + r * C;
      float* dxr = dx + r * C;
      const float s = rstd[r];
      float dot = 0.f;  // Σ_c dy·(1+w)·x̂
      for (int64_t c = 0; c < C; ++c) {
        const float xh = xr[c] * s;
        dot += dyr[c] * (1.f + w[c]) * xh;
        pw[c] += dyr[c] * xh;
      }
      const float mean = dot / static_cast<float>(C);
      for (int64_t c = 0; c < C; ++c) {
        dxr[c] = s * (dyr[c] * (1.f + w[c]) - xr[c] * s * mean);
      }
    }
  });
  add_partials(partial, dw, C);
}

}  // namespace lb
