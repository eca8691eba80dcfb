// The per-row steps of the blocked prefill (contract: blocked_rows.h).
#include "models/blocked_rows.h"

#include <immintrin.h>

#include <limits>

#include "models/kernels/attention_score.h"
#include "models/kernels/simd.h"

namespace lb {

namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();
constexpr int64_t kBk = kKeyTile;

// The largest of z (n >= 0; −inf when n = 0).
__attribute__((target("avx512f"))) float max_avx512(const float* z, int64_t n) {
  __m512 m = _mm512_set1_ps(kNegInf);
  for (int64_t j = 0; j < n; j += 16) {
    const __mmask16 in = lanes_below(n, j);
    m = _mm512_mask_max_ps(m, in, m, _mm512_maskz_loadu_ps(in, z + j));
  }
  return _mm512_reduce_max_ps(m);
}

}  // namespace

__attribute__((target("avx512f"))) float tile_max(const float* z, int64_t cnt) {
  float m = kNegInf;
#pragma omp simd reduction(max : m)
  for (int64_t j = 0; j < cnt; ++j) m = std::max(m, z[j]);
  return m;
}

// The plain twin: the scores in place, tile_max and the exp loop, the three passes softmax_unit
// took before the fused one.
__attribute__((target("avx512f"))) SoftmaxRowTile softmax_row_plain(float* z, int64_t cnt,
                                                                    int64_t bk, int64_t j0,
                                                                    int64_t i, float f, float slope,
                                                                    float m_prev) {
  attention_score_row(z, z, cnt, f, slope, i, j0);
  const float m_new = std::max(m_prev, tile_max(z, cnt));
  float sum = 0.f;
  if (cnt > 0) {
#pragma omp simd reduction(+ : sum)
    for (int64_t j = 0; j < cnt; ++j) {
      const float e = fast_exp(z[j] - m_new);
      z[j] = e;
      sum += e;
    }
  }
  std::fill(z + cnt, z + bk, 0.f);
  return {m_new, sum};
}

// The fused pass: the row's kBk columns as 8 vectors of 16 lanes, held in registers from the
// products to the weights; lanes at or past cnt are cut (out of the max, weight 0), and the
// stores are masked to the first bk columns. Every score is attention_score's expression with its
// add fused, fma(dot, f, slope · float(j − i)), as GCC compiles the twin's 16-lane loop under
// AVX-512F; the twin's remainder columns (ymm and scalar epilogues) may round the unfused
// dot · f + bias instead, an ulp of the score apart. The exp is fast_exp_avx512 (the bits of
// fast_exp under AVX-512F). The sum adds 16 lanes per vector, then across the lanes.
__attribute__((target("avx512f"))) SoftmaxRowTile softmax_row_avx512(float* z, int64_t cnt,
                                                                     int64_t bk, int64_t j0,
                                                                     int64_t i, float f,
                                                                     float slope, float m_prev) {
  constexpr int kChunks = kBk / 16;
  if (cnt <= 0) {
    for (int c = 0; c < kChunks; ++c) {
      _mm512_mask_storeu_ps(z + 16 * c, lanes_below(bk, 16 * c), _mm512_setzero_ps());
    }
    return {m_prev, 0.f};
  }
  const __m512 fv = _mm512_set1_ps(f), slope_v = _mm512_set1_ps(slope);
  const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const int32_t base = static_cast<int32_t>(j0 - i);  // rel of column 0 (positions fit in int32)
  __m512 zv[kChunks];
  __m512 mx = _mm512_set1_ps(kNegInf);
#pragma GCC unroll 8
  for (int c = 0; c < kChunks; ++c) {
    const __mmask16 vis = lanes_below(cnt, 16 * c);
    const __m512i rel = _mm512_add_epi32(_mm512_set1_epi32(base + 16 * c), iota);
    const __m512 bias = _mm512_mul_ps(slope_v, _mm512_cvtepi32_ps(rel));
    zv[c] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(vis, z + 16 * c), fv, bias);
    mx = _mm512_mask_max_ps(mx, vis, mx, zv[c]);
  }
  const float m_new = std::max(m_prev, _mm512_reduce_max_ps(mx));
  const __m512 mv = _mm512_set1_ps(m_new);
  __m512 sum = _mm512_setzero_ps();
#pragma GCC unroll 8
  for (int c = 0; c < kChunks; ++c) {
    const __m512 e =
        _mm512_maskz_mov_ps(lanes_below(cnt, 16 * c), fast_exp_avx512(_mm512_sub_ps(zv[c], mv)));
    sum = _mm512_add_ps(sum, e);
    _mm512_mask_storeu_ps(z + 16 * c, lanes_below(bk, 16 * c), e);
  }
  return {m_new, _mm512_reduce_add_ps(sum)};
}

// Candidates of one row of a score tile.
int64_t gather_candidates_plain(const float* z, int64_t cnt, float lim, float half, float gm,
                                float gk, float* out) {
  int64_t c = 0;
  for (int64_t j = 0; j < cnt; ++j) {
    out[c] = z[j];
    c += ((z[j] - lim) * half > -1.f) & ((z[j] - gm) * half > gk);
  }
  return c;
}

__attribute__((target("avx512f"))) int64_t gather_candidates_avx512(const float* z, int64_t cnt,
                                                                    float lim, float half, float gm,
                                                                    float gk, float* out) {
  const __m512 vlim = _mm512_set1_ps(lim), vh = _mm512_set1_ps(half), vgm = _mm512_set1_ps(gm);
  const __m512 vgk = _mm512_set1_ps(gk), vm1 = _mm512_set1_ps(-1.f);
  int64_t c = 0;
  for (int64_t j = 0; j < cnt; j += 16) {
    const __mmask16 in = lanes_below(cnt, j);
    const __m512 v = _mm512_maskz_loadu_ps(in, z + j);
    __mmask16 keep =
        _mm512_mask_cmp_ps_mask(in, _mm512_mul_ps(_mm512_sub_ps(v, vlim), vh), vm1, _CMP_GT_OQ);
    keep = _mm512_mask_cmp_ps_mask(keep, _mm512_mul_ps(_mm512_sub_ps(v, vgm), vh), vgk, _CMP_GT_OQ);
    _mm512_mask_compressstoreu_ps(out + c, keep, v);
    c += __builtin_popcount(keep);
  }
  return c;
}

// Compress stores: the write position never passes the read position.
__attribute__((target("avx512f"))) int64_t compact_above(float* z, int64_t n, float m, float half,
                                                         float keep) {
  const __m512 vm = _mm512_set1_ps(m), vh = _mm512_set1_ps(half), vk = _mm512_set1_ps(keep);
  int64_t c = 0;
  for (int64_t j = 0; j < n; j += 16) {
    const __mmask16 in = lanes_below(n, j);
    const __m512 v = _mm512_maskz_loadu_ps(in, z + j);
    const __mmask16 k =
        _mm512_mask_cmp_ps_mask(in, _mm512_mul_ps(_mm512_sub_ps(v, vm), vh), vk, _CMP_GT_OQ);
    _mm512_mask_compressstoreu_ps(z + c, k, v);
    c += __builtin_popcount(k);
  }
  return c;
}

__attribute__((target("avx512f"))) int64_t compact_candidates(float* z, int64_t n, float half,
                                                              bool square, float& gate_m,
                                                              float& gate_keep) {
  using namespace entmax_tau;
  const float ms = max_avx512(z, n);
  TauSearch sr = tau_search_start(n, square);  // the slice's own threshold, shifted by its max
  bool done = false;
  for (int pass = 0; pass < kMaxPasses && !done; ++pass) {
    SupportStats st;
    for (int64_t b0 = 0; b0 < n; b0 += kSumBlock) {
      add_block_support(z + b0, std::min(n, b0 + kSumBlock) - b0, ms, half, sr.tau, st);
    }
    done = tau_search_step(st, square, sr);
  }
  const float lo = static_cast<float>(sr.lo);  // proven: below the slice's threshold
  const float keep = done ? std::max(lo, sr.tau - 1e-5f) : lo;
  gate_m = ms, gate_keep = keep;
  return compact_above(z, n, ms, half, keep);
}

}  // namespace lb
