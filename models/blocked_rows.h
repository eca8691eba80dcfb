// The per-row steps of the blocked prefill (models/blocked_attention.h): the softmax family's
// pass over one row of a score tile, and the α-entmax candidate slice of a row — gathering its
// candidates, the support statistics of its threshold search, and compaction when it is full.
// AVX-512F kernels (callers check blocked_attention_supports), each test-visible one beside its
// plain twin. A score tile row is kKeyTile floats.
#pragma once
#include <algorithm>
#include <cstdint>

#include "models/blocked_attention.h"
#include "models/kernels/entmax_tau.h"

namespace lb {

// The largest of z[0 .. cnt) (−inf when cnt <= 0). AVX-512F, like its callers.
float tile_max(const float* z, int64_t cnt);

// One row of a softmax-family score tile, from the raw products to the weights (the kernel's
// per-row step; exposed for its test). Query position i, the tile's keys j0 .. j0 + bk − 1, of
// which the first cnt are visible (0 <= cnt <= bk <= kKeyTile); f = score_factor, slope = m_h.
// z (kKeyTile) holds q · k_j in [0, bk) on entry and on exit the weights exp(z_j − m) for j < cnt,
// 0 in [cnt, bk) (past bk untouched), z_j the score of attention_score.h and
// m = max(m_prev, max_{j<cnt} z_j) the new running max (m_prev, which may be −inf, when cnt = 0).
struct SoftmaxRowTile {
  float m;    // the new running max
  float sum;  // Σ_{j<cnt} exp(z_j − m) (0 when cnt = 0)
};
// The fused pass (AVX-512F; call only where blocked_attention_supports holds): one trip through
// registers; every score is fma(dot, f, slope · (j − i)). The same m and weights as the twin bit
// for bit where the twin's compiled loop fuses that add too (always without bias, and in its
// 16-lane main loop: whole tiles); elsewhere an ulp of the score apart. The sum differs by the
// order of its adds.
SoftmaxRowTile softmax_row_avx512(float* z, int64_t cnt, int64_t bk, int64_t j0, int64_t i, float f,
                                  float slope, float m_prev);
// Its plain twin: scores in place (attention_score_row), the tile max, then the exp and sum loop.
// Also compiled for AVX-512F.
SoftmaxRowTile softmax_row_plain(float* z, int64_t cnt, int64_t bk, int64_t j0, int64_t i, float f,
                                 float slope, float m_prev);

// The candidates of one row of an α-entmax score tile (the max pass's gathering; exposed for its
// test): the scores z_j, j < cnt, with (z_j − lim)·half > −1 (not below the running max lim by
// 1/(α−1) or more) and (z_j − gm)·half > gk (above the row's compaction cut; gk = −inf: none),
// written to out in order. Returns their count. The AVX-512F version (compress stores) and its
// plain twin give the same bits.
int64_t gather_candidates_avx512(const float* z, int64_t cnt, float lim, float half, float gm,
                                 float gk, float* out);
int64_t gather_candidates_plain(const float* z, int64_t cnt, float lim, float half, float gm,
                                float gk, float* out);

// Keeps, in place and in order, the z_j (n) with (z_j − m)·half > keep; returns their count.
int64_t compact_above(float* z, int64_t n, float m, float half, float keep);

// A full candidate slice z (n > 0 raw scores of one row) made room for more: the exact threshold
// θ_S of the slice's own scores is a lower bound of the row's threshold θ (adding scores to a set
// only raises its threshold: Σ_S [(z − θ)·half]_+^c <= Σ_all), so a score at or below θ_S is
// outside the row's support and adds nothing to its threshold equation. The slice keeps the
// scores above θ_S − 1e-5/half (the margin covers the fp32 rounding of the search) and sets the
// row's gate (gate_m, gate_keep: see gather_candidates) to that cut for the scores still to come.
// square: α = 1.5, else 2. Returns the new count.
int64_t compact_candidates(float* z, int64_t n, float half, bool square, float& gate_m,
                           float& gate_keep);

// Adds to `st` the support statistics of d_j = (z_j − m)·half − τ over z (n), as one float
// reduction: the block both threshold passes sum (the gathered candidates with m = 0, half = 1,
// for which d = z − τ exactly; a key tile's raw scores with the row max m).
__attribute__((target("avx512f"), always_inline)) inline void add_block_support(
    const float* z, int64_t n, float m, float half, float tau, entmax_tau::SupportStats& st) {
  using entmax_tau::kInf;
  float k = 0.f, s1 = 0.f, s2 = 0.f, mn = kInf, mx = -kInf;
#pragma omp simd reduction(+ : k, s1, s2) reduction(min : mn) reduction(max : mx)
  for (int64_t j = 0; j < n; ++j) {
    const float d = (z[j] - m) * half - tau;
    const bool in = d > 0.f;
    const float dp = in ? d : 0.f;
    k += in ? 1.f : 0.f;
    s1 += dp;
    s2 += dp * dp;
    mn = std::min(mn, in ? d : kInf);
    mx = std::max(mx, in ? -kInf : d);
  }
  st.k += k, st.s1 += s1, st.s2 += s2;
  st.min_in = std::min(st.min_in, mn);
  st.max_out = std::max(st.max_out, mx);
}

}  // namespace lb
