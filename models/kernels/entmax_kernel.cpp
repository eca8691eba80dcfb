// Fast fp32 α-entmax: exact 1.5-entmax and sparsemax, a safeguarded Halley root-finder for any
// α > 1, and the shared backward. Contract: row_kernels.h.
//
// All forward kernels work in the shifted scaled domain v_i = (α−1)(z_i − max z), where z_i − max
// is exact for the scores that can be in the support, so scores of ±1e4 lose no precision; the
// threshold τ' of v lies in [−1, −n^(1−α)] (the max alone gives f(−1) >= 0).
//
// 1.5-entmax and sparsemax: after the max, one pass gathers the candidates v > −1 (only they can
// be in the support; for N(0, 2²) rows of 16,384 that is ~0.3% of the row). Each search pass over
// the candidates at a trial τ collects the statistics of the
// candidate support S = {v > τ}: |S|, Σ(v−τ), Σ(v−τ)², min over S of (v−τ), max outside S. On S
// the equation Σ_S (v−τ−δ)^c = 1 (c = 2 or 1) is a quadratic or linear in δ with a closed-form
// root; if every member of S stays above τ+δ and every non-member below, τ+δ is the exact
// threshold and the search ends. Otherwise the root moves the right way (up from the left of τ*,
// down from the right), and a bracket [lo, hi] with Newton and bisection fallbacks keeps every
// step safe. The last pass writes p over the whole row.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "core/check.h"
#include "models/kernels/entmax_tau.h"
#include "models/kernels/row_kernels.h"
#include "models/kernels/simd.h"

namespace lb {
namespace {

using entmax_tau::kInf;
using entmax_tau::kMaxPasses;
using entmax_tau::SupportStats;
using entmax_tau::tau_search_start;
using entmax_tau::tau_search_step;
using entmax_tau::TauSearch;

LB_SIMD_CLONES
float row_max(const float* z, int64_t n) {
  return simd_row_max(z, n);
}

// d_i = half·(z_i − m) − tau, where half = α − 1 (0.5 or 1).
LB_SIMD_CLONES
SupportStats support_stats(const float* z, int64_t n, float m, float half, float tau) {
  SupportStats st;
  for (int64_t b0 = 0; b0 < n; b0 += kSumBlock) {
    const int64_t b1 = std::min(n, b0 + kSumBlock);
    float k = 0.0f, s1 = 0.0f, s2 = 0.0f, mn = kInf, mx = -kInf;
#pragma omp simd reduction(+ : k, s1, s2) reduction(min : mn) reduction(max : mx)
    for (int64_t i = b0; i < b1; ++i) {
      const float d = (z[i] - m) * half - tau;
      const bool in = d > 0.0f;
      const float dp = in ? d : 0.0f;
      k += in ? 1.0f : 0.0f;
      s1 += dp;
      s2 += dp * dp;
      mn = std::min(mn, in ? d : kInf);
      mx = std::max(mx, in ? -kInf : d);
    }
    st.k += k;
    st.s1 += s1;
    st.s2 += s2;
    st.min_in = std::min(st.min_in, mn);
    st.max_out = std::max(st.max_out, mx);
  }
  return st;
}

// p_i = [half·(z_i − m) − tau]_+^c for c = 2 (square) or 1. Returns Σp; *count = the number of
// nonzero weights.
LB_SIMD_CLONES
double support_output(const float* z, int64_t n, float m, float half, float tau, bool square,
                      float* p, int64_t* count) {
  double total = 0.0;
  float k = 0.0f;
  for (int64_t b0 = 0; b0 < n; b0 += kSumBlock) {
    const int64_t b1 = std::min(n, b0 + kSumBlock);
    float s = 0.0f, kb = 0.0f;
    if (square) {
#pragma omp simd reduction(+ : s, kb)
      for (int64_t i = b0; i < b1; ++i) {
        const float d = std::max((z[i] - m) * half - tau, 0.0f);
        p[i] = d * d;
        s += d * d;
        kb += d > 0.0f ? 1.0f : 0.0f;
      }
    } else {
#pragma omp simd reduction(+ : s, kb)
      for (int64_t i = b0; i < b1; ++i) {
        const float d = std::max((z[i] - m) * half - tau, 0.0f);
        p[i] = d;
        s += d;
        kb += d > 0.0f ? 1.0f : 0.0f;
      }
    }
    total += s;
    k += kb;
  }
  *count = static_cast<int64_t>(k);
  return total;
}

LB_SIMD_CLONES
double row_sum(const float* p, int64_t n) {
  double total = 0.0;
  for (int64_t b0 = 0; b0 < n; b0 += kSumBlock) {
    const int64_t b1 = std::min(n, b0 + kSumBlock);
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int64_t i = b0; i < b1; ++i) s += p[i];
    total += s;
  }
  return total;
}

LB_SIMD_CLONES
void row_scale(float* p, int64_t n, float scale) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) p[i] *= scale;
}

bool cpu_has_avx512() { return use_avx512_kernels(); }

// Appends v_i = (z_i − m)·half for every v_i > −1 to buf and returns how many: only these can
// be in the support, since τ' >= −1. The compiler does not vectorise a compaction, so there is an
// AVX-512 version (compare + compress-store, 16 scores at a time) and a plain one, picked once.
int64_t gather_candidates_plain(const float* z, int64_t n, float m, float half, float* buf) {
  int64_t count = 0;
  for (int64_t i = 0; i < n; ++i) {
    const float v = (z[i] - m) * half;
    if (v > -1.0f) buf[count++] = v;
  }
  return count;
}

#if defined(__x86_64__) && defined(__GNUC__) && !defined(LB_NO_CLONES)
__attribute__((target("avx512f"))) int64_t gather_candidates_avx512(const float* z, int64_t n,
                                                                    float m, float half,
                                                                    float* buf) {
  const __m512 vm = _mm512_set1_ps(m), vh = _mm512_set1_ps(half), lim = _mm512_set1_ps(-1.0f);
  int64_t count = 0;
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 v = _mm512_mul_ps(_mm512_sub_ps(_mm512_loadu_ps(z + i), vm), vh);
    const __mmask16 k = _mm512_cmp_ps_mask(v, lim, _CMP_GT_OQ);
    if (k) {
      _mm512_mask_compressstoreu_ps(buf + count, k, v);
      count += __builtin_popcount(k);
    }
  }
  return count + gather_candidates_plain(z + i, n - i, m, half, buf + count);
}

int64_t gather_candidates(const float* z, int64_t n, float m, float half, float* buf) {
  return cpu_has_avx512() ? gather_candidates_avx512(z, n, m, half, buf)
                : gather_candidates_plain(z, n, m, half, buf);
}
#else
int64_t gather_candidates(const float* z, int64_t n, float m, float half, float* buf) {
  return gather_candidates_plain(z, n, m, half, buf);
}
#endif

// The same search for rows of n <= kShortRow, in one call on a padded local buffer (simd.h):
// candidates are not gathered, the statistics are float lane sums (n <= 64 terms).
LB_SIMD_CLONES
RowStats exact_entmax_short(const float* z, int64_t n, bool square, float* p) {
  const float half = square ? 0.5f : 1.0f;
  alignas(64) float v[kShortRow];
  const int chunks = short_row_load(z, n, v);
  float lane[16];
  for (int l = 0; l < 16; ++l) lane[l] = v[l];
  for (int c = 1; c < chunks; ++c) {
    for (int l = 0; l < 16; ++l) lane[l] = v[c * 16 + l] > lane[l] ? v[c * 16 + l] : lane[l];
  }
  float m = lane[0];
  for (int l = 1; l < 16; ++l) m = lane[l] > m ? lane[l] : m;
  const int len = chunks * 16;
  for (int i = 0; i < len; ++i) v[i] = (v[i] - m) * half;  // padding stays −inf
  TauSearch search = tau_search_start(n, square);
  for (int pass = 0; pass < kMaxPasses; ++pass) {
    const float tau = search.tau;
    float kf = 0.0f, s1 = 0.0f, s2 = 0.0f, min_in = kInf, max_out = -kInf;
#pragma omp simd reduction(+ : kf, s1, s2) reduction(min : min_in) reduction(max : max_out)
    for (int i = 0; i < len; ++i) {
      const float d = v[i] - tau;
      const bool in = d > 0.0f;
      const float dp = in ? d : 0.0f;
      kf += in ? 1.0f : 0.0f;
      s1 += dp;
      s2 += dp * dp;
      min_in = std::min(min_in, in ? d : kInf);
      max_out = std::max(max_out, in ? -kInf : d);
    }
    if (tau_search_step({kf, s1, s2, min_in, max_out}, square, search)) break;
  }
  const float tau = search.tau;
  float total = 0.0f, support = 0.0f;
  const float sq = square ? 1.0f : 0.0f;  // w = d² or d, without a branch in the loop
#pragma omp simd reduction(+ : total, support)
  for (int i = 0; i < len; ++i) {
    const float d = std::max(v[i] - tau, 0.0f);
    const float w = d * (sq * d + (1.0f - sq));
    v[i] = w;
    total += w;
    support += d > 0.0f ? 1.0f : 0.0f;
  }
  const float scale = std::fabs(total - 1.0f) > 1e-7f ? 1.0f / total : 1.0f;
  for (int64_t i = 0; i < n; ++i) p[i] = v[i] * scale;
  RowStats out;
  out.support = static_cast<int64_t>(support);
  out.tau = tau + half * m;
  out.has_tau = true;
  return out;
}

// Rows up to this length take exact_entmax_short_avx512 where the CPU has AVX-512.
constexpr int64_t kShortRowAvx512 = 128;

#if defined(__x86_64__) && defined(__GNUC__) && !defined(LB_NO_CLONES)
// exact_entmax_short with AVX-512 intrinsics: the row lives in at most eight registers, each
// search pass is a handful of vector ops and one horizontal reduction per statistic.
// (GCC 12's own reduce intrinsics trip -Wuninitialized on an internal temporary.)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
__attribute__((target("avx512f"))) RowStats exact_entmax_short_avx512(const float* z, int64_t n,
                                                                      bool square, float* p) {
  const float half = square ? 0.5f : 1.0f;
  const int chunks = static_cast<int>((n + 15) / 16);
  const __m512 neg_inf = _mm512_set1_ps(-kInf), pos_inf = _mm512_set1_ps(kInf);
  const __m512 zero = _mm512_setzero_ps(), one = _mm512_set1_ps(1.0f);
  constexpr int kMaxChunks = kShortRowAvx512 / 16;
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
  const float m = _mm512_reduce_max_ps(vmax);
  const __m512 vm = _mm512_set1_ps(m), vh = _mm512_set1_ps(half);
  for (int c = 0; c < kMaxChunks; ++c) v[c] = _mm512_mul_ps(_mm512_sub_ps(v[c], vm), vh);  // pads: −inf
  TauSearch search = tau_search_start(n, square);
  for (int pass = 0; pass < kMaxPasses; ++pass) {
    const __m512 vt = _mm512_set1_ps(search.tau);
    __m512 k = zero, s1 = zero, s2 = zero, mn = pos_inf, mx = neg_inf;
    for (int c = 0; c < chunks; ++c) {
      const __m512 d = _mm512_sub_ps(v[c], vt);
      const __mmask16 in = _mm512_cmp_ps_mask(d, zero, _CMP_GT_OQ);
      k = _mm512_mask_add_ps(k, in, k, one);
      s1 = _mm512_mask_add_ps(s1, in, s1, d);
      s2 = _mm512_mask3_fmadd_ps(d, d, s2, in);
      mn = _mm512_mask_min_ps(mn, in, mn, d);
      mx = _mm512_mask_max_ps(mx, static_cast<__mmask16>(~in), mx, d);
    }
    const SupportStats st{_mm512_reduce_add_ps(k), _mm512_reduce_add_ps(s1),
                          _mm512_reduce_add_ps(s2), _mm512_reduce_min_ps(mn),
                          _mm512_reduce_max_ps(mx)};
    if (tau_search_step(st, square, search)) break;
  }
  const __m512 vt = _mm512_set1_ps(search.tau);
  __m512 w[kMaxChunks];
  __m512 total = zero;
  int support = 0;
  for (int c = 0; c < chunks; ++c) {
    const __m512 d = _mm512_max_ps(_mm512_sub_ps(v[c], vt), zero);
    w[c] = square ? _mm512_mul_ps(d, d) : d;
    total = _mm512_add_ps(total, w[c]);
    support += __builtin_popcount(_mm512_cmp_ps_mask(d, zero, _CMP_GT_OQ));
  }
  const float t = _mm512_reduce_add_ps(total);
  const __m512 scale = _mm512_set1_ps(std::fabs(t - 1.0f) > 1e-7f ? 1.0f / t : 1.0f);
  for (int c = 0; c < chunks; ++c) _mm512_mask_storeu_ps(p + 16 * c, mask[c], _mm512_mul_ps(w[c], scale));
  RowStats out;
  out.support = support;
  out.tau = search.tau + half * m;
  out.has_tau = true;
  return out;
}
#pragma GCC diagnostic pop

#else
RowStats exact_entmax_short_avx512(const float*, int64_t, bool, float*) { return {}; }
#endif

#if defined(__x86_64__) && defined(__GNUC__) && !defined(LB_NO_CLONES)
// support_stats over candidates v[0..*nc) at tau (m = 0, half = 1) that also compacts the
// candidates in place to those with v > keep_above (keep_above <= τ*: the dropped ones can never
// be in the support). Flat rows have many candidates and need several passes; each pass then
// reads only the survivors of the last left-hand bracket point. *nc stays a multiple of 16
// (padded with −inf).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
__attribute__((target("avx512f"))) SupportStats support_stats_compact_avx512(float* v, int64_t* nc,
                                                                             float keep_above,
                                                                             float tau) {
  const __m512 zero = _mm512_setzero_ps(), one = _mm512_set1_ps(1.0f);
  const __m512 vt = _mm512_set1_ps(tau), vk = _mm512_set1_ps(keep_above);
  SupportStats st;
  int64_t out = 0;
  const int64_t n = *nc;
  for (int64_t b0 = 0; b0 < n; b0 += kSumBlock) {
    const int64_t b1 = std::min(n, b0 + kSumBlock);
    __m512 k = zero, s1 = zero, s2 = zero;
    __m512 mn = _mm512_set1_ps(kInf), mx = _mm512_set1_ps(-kInf);
    for (int64_t i = b0; i < b1; i += 16) {
      const __m512 x = _mm512_loadu_ps(v + i);
      const __m512 d = _mm512_sub_ps(x, vt);
      const __mmask16 in = _mm512_cmp_ps_mask(d, zero, _CMP_GT_OQ);
      k = _mm512_mask_add_ps(k, in, k, one);
      s1 = _mm512_mask_add_ps(s1, in, s1, d);
      s2 = _mm512_mask3_fmadd_ps(d, d, s2, in);
      mn = _mm512_mask_min_ps(mn, in, mn, d);
      mx = _mm512_mask_max_ps(mx, static_cast<__mmask16>(~in), mx, d);
      const __mmask16 keep = _mm512_cmp_ps_mask(x, vk, _CMP_GT_OQ);
      _mm512_mask_compressstoreu_ps(v + out, keep, x);  // out <= i: never overtakes the reads
      out += __builtin_popcount(keep);
    }
    st.k += _mm512_reduce_add_ps(k);
    st.s1 += _mm512_reduce_add_ps(s1);
    st.s2 += _mm512_reduce_add_ps(s2);
    st.min_in = std::min(st.min_in, _mm512_reduce_min_ps(mn));
    st.max_out = std::max(st.max_out, _mm512_reduce_max_ps(mx));
  }
  while (out % 16 != 0) v[out++] = -kInf;
  *nc = out;
  return st;
}
#pragma GCC diagnostic pop
#else
SupportStats support_stats_compact_avx512(float*, int64_t*, float, float) { return {}; }
#endif

// The exact search shared by 1.5-entmax (square = true, α − 1 = 1/2) and sparsemax (α − 1 = 1).
// Pass 1: the max; pass 2: gather the candidates v > −1 (usually a small fraction of the row);
// the τ search runs over the candidates only; last pass: the output.
RowStats exact_entmax_forward(const float* z, int64_t n, bool square, float* p) {
  if (n <= kShortRowAvx512 && cpu_has_avx512()) return exact_entmax_short_avx512(z, n, square, p);
  if (n <= kShortRow) return exact_entmax_short(z, n, square, p);
  const float half = square ? 0.5f : 1.0f;
  const float m = cpu_has_avx512() ? row_max_avx512(z, n) : row_max(z, n);
  thread_local std::vector<float> candidates;
  if (static_cast<int64_t>(candidates.size()) < n + 16) candidates.resize(n + 16);
  const float* v = candidates.data();
  int64_t nc = gather_candidates(z, n, m, half, candidates.data());
  while (nc % 16 != 0) candidates[nc++] = -kInf;  // whole vectors: no remainder loops
  TauSearch search = tau_search_start(n, square);  // n: the full row length
  const bool compact = cpu_has_avx512();
  for (int pass = 0; pass < kMaxPasses; ++pass) {
    // d = v − τ: the same float operations as (z − m)·half − τ in the output pass.
    SupportStats st;
    float lo_f = static_cast<float>(search.lo);  // rounded down: the floor must stay <= τ*
    if (lo_f > search.lo) lo_f = std::nextafter(lo_f, -kInf);
    if (compact && lo_f > search.floor) {
      // The stats are taken before the compaction takes effect, so they still describe every
      // candidate above the old floor.
      st = support_stats_compact_avx512(candidates.data(), &nc, lo_f, search.tau);
      const float new_floor = lo_f;
      if (tau_search_step(st, square, search)) break;
      search.floor = new_floor;
    } else {
      st = support_stats(v, nc, 0.0f, 1.0f, search.tau);
      if (tau_search_step(st, square, search)) break;
    }
  }
  const float tau = search.tau;
  // Output, then exact normalisation. At an exact threshold Σp is 1 up to rounding and the
  // rescaling pass is skipped; after a bracket-limited search (near-ties at the threshold within
  // fp32) it corrects the sum.
  RowStats out;
  const double total = support_output(z, n, m, half, tau, square, p, &out.support);
  out.tau = tau + half * m;
  out.has_tau = true;
  if (std::fabs(total - 1.0) > 1e-7) row_scale(p, n, static_cast<float>(1.0 / total));
  return out;
}

}  // namespace

RowStats entmax15_forward(const float* z, int64_t n, float* p) {
  return exact_entmax_forward(z, n, true, p);
}

RowStats sparsemax_forward(const float* z, int64_t n, float* p) {
  return exact_entmax_forward(z, n, false, p);
}

RowStats entmax_root_forward(const float* z, int64_t n, float alpha, float* p) {
  LB_CHECK(alpha > 1.0f, "entmax_root_forward needs alpha > 1, got " << alpha);
  const double am1 = static_cast<double>(alpha) - 1.0;
  const double c = 1.0 / am1;
  const float m = row_max(z, n);
  // Candidates v = (α−1)(z − m) > −1, in double (large α needs the resolution).
  thread_local std::vector<double> v;
  v.clear();
  for (int64_t i = 0; i < n; ++i) {
    const double x = am1 * (static_cast<double>(z[i]) - m);
    if (x > -1.0) v.push_back(x);
  }
  double lo = -1.0;
  double hi = -std::pow(static_cast<double>(n), -am1);
  double tau = lo;
  for (int it = 0; it < 200; ++it) {
    double f0 = 0.0, f1 = 0.0, f2 = 0.0;
    for (const double x : v) {
      const double d = x - tau;
      if (d > 0.0) {
        const double dc = std::exp(c * std::log(d));
        f0 += dc;
        f1 += dc / d;
        f2 += dc / (d * d);
      }
    }
    const double f = f0 - 1.0;
    if (f > 0.0) lo = tau;
    if (f < 0.0) hi = tau;
    // Stop at double resolution: for large α the weights d^(1/(α−1)) are sensitive to tiny d.
    if (f == 0.0 || std::fabs(f) < 1e-14 || hi - lo < 4e-16) break;
    const double fp = -c * f1;
    const double fpp = c * (c - 1.0) * f2;
    const double denom = 2.0 * fp * fp - f * fpp;
    double next = denom != 0.0 ? tau - 2.0 * f * fp / denom : lo;  // Halley
    if (!(next > lo && next < hi) || !std::isfinite(next)) {
      next = fp < 0.0 ? tau - f / fp : lo;  // Newton
      if (!(next > lo && next < hi) || !std::isfinite(next)) next = 0.5 * (lo + hi);
    }
    tau = next;
  }
  double total = 0.0;
  int64_t support = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double d = am1 * (static_cast<double>(z[i]) - m) - tau;
    p[i] = d > 0.0 ? static_cast<float>(std::exp(c * std::log(d))) : 0.0f;
    total += p[i];
    support += p[i] > 0.0f ? 1 : 0;
  }
  if (total > 0.0) {
    row_scale(p, n, static_cast<float>(1.0 / total));
  } else {  // every weight underflowed (huge α): the max takes the mass
    for (int64_t i = 0; i < n; ++i) p[i] = z[i] == m ? 1.0f : 0.0f;
    const double cnt = row_sum(p, n);
    row_scale(p, n, static_cast<float>(1.0 / cnt));
    support = static_cast<int64_t>(cnt);
  }
  RowStats out;
  out.support = support;
  out.tau = static_cast<float>(tau + am1 * m);
  out.has_tau = true;
  return out;
}

RowStats entmax_forward(const float* z, int64_t n, float alpha, float* p) {
  if (alpha == 2.0f) return sparsemax_forward(z, n, p);
  if (alpha == 1.5f) return entmax15_forward(z, n, p);
  return entmax_root_forward(z, n, alpha, p);
}

namespace {

// u = p^(2−α) on the support: 1 (α = 2), √p (α = 1.5), powf otherwise.
LB_SIMD_CLONES
void entmax_backward_fast(const float* p, const float* g, int64_t n, bool sqrt_u, float* dz) {
  double su = 0.0, sug = 0.0;
  for (int64_t b0 = 0; b0 < n; b0 += kSumBlock) {
    const int64_t b1 = std::min(n, b0 + kSumBlock);
    float a = 0.0f, b = 0.0f;
    if (sqrt_u) {
#pragma omp simd reduction(+ : a, b)
      for (int64_t i = b0; i < b1; ++i) {
        const float u = std::sqrt(p[i]);
        a += u;
        b += u * g[i];
      }
    } else {
#pragma omp simd reduction(+ : a, b)
      for (int64_t i = b0; i < b1; ++i) {
        const float u = p[i] > 0.0f ? 1.0f : 0.0f;
        a += u;
        b += u * g[i];
      }
    }
    su += a;
    sug += b;
  }
  const float r = su > 0.0 ? static_cast<float>(sug / su) : 0.0f;
  if (sqrt_u) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) dz[i] = std::sqrt(p[i]) * (g[i] - r);
  } else {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) dz[i] = p[i] > 0.0f ? g[i] - r : 0.0f;
  }
}

}  // namespace

void entmax_backward(const float* p, const float* g, int64_t n, float alpha, float* dz) {
  if (alpha == 1.5f || alpha == 2.0f) {
    entmax_backward_fast(p, g, n, alpha == 1.5f, dz);
    return;
  }
  const double e = 2.0 - static_cast<double>(alpha);
  double su = 0.0, sug = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    if (p[i] > 0.0f) {
      const double u = std::pow(static_cast<double>(p[i]), e);
      su += u;
      sug += u * g[i];
    }
  }
  const double r = su > 0.0 ? sug / su : 0.0;
  for (int64_t i = 0; i < n; ++i) {
    dz[i] = p[i] > 0.0f ? static_cast<float>(std::pow(static_cast<double>(p[i]), e) * (g[i] - r))
                        : 0.0f;
  }
}

}  // namespace lb
