// Blocked causal attention (contract: blocked_attention.h).
#include "models/blocked_attention.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <vector>

#include "core/check.h"
#include "models/bf16.h"
#include "models/blocked_rows.h"
#include "models/blocked_tile_products.h"
#include "models/kernels/attention_score.h"
#include "models/kernels/entmax_tau.h"
#include "models/kernels/simd.h"

namespace lb {

namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();
constexpr int64_t kBk = kKeyTile;  // columns of a score tile (a multiple of 64)
// Candidate scores (v > −1) kept per thread: rows whose candidate tiles fit are gathered once and
// searched in memory; the others recompute their candidate tiles on every threshold pass.
constexpr int64_t kCandidateCap = int64_t(1) << 20;  // floats (4 MiB)
std::atomic<int64_t> candidate_cap{kCandidateCap};

// The totals behind blocked_tile_stats(): one atomic per field of BlockedTileStats, in this order.
constexpr int64_t BlockedTileStats::*kTileFields[] = {&BlockedTileStats::units,
                                                      &BlockedTileStats::tiles,
                                                      &BlockedTileStats::tiles_visited,
                                                      &BlockedTileStats::row_tiles,
                                                      &BlockedTileStats::row_tiles_support,
                                                      &BlockedTileStats::rows,
                                                      &BlockedTileStats::rows_buffered,
                                                      &BlockedTileStats::threshold_passes,
                                                      &BlockedTileStats::tiles_recomputed,
                                                      &BlockedTileStats::tiles_far,
                                                      &BlockedTileStats::compactions};
constexpr size_t kTileFieldCount = sizeof(kTileFields) / sizeof(kTileFields[0]);
static_assert(sizeof(BlockedTileStats) == kTileFieldCount * sizeof(int64_t), "a field is missing");
std::atomic<int64_t> tile_totals[kTileFieldCount];

void add_tile_stats(const BlockedTileStats& unit) {
  for (size_t f = 0; f < kTileFieldCount; ++f) {
    tile_totals[f].fetch_add(unit.*kTileFields[f], std::memory_order_relaxed);
  }
}

// Per-thread scratch, grown to the largest unit seen: O(nr · kBk + kBk · D + nr · tiles).
struct Scratch {
  std::vector<float> s;                         // (nr, kBk) score / weight tile
  std::vector<float> kt;                        // (D, kBk) transposed key tile, zero-padded columns
  std::vector<float> vt;                        // (kBk, D) value tile (bf16 widened)
  std::vector<float> acc;                       // (nr, D) output accumulator
  std::vector<float> m, l;                      // (nr) row max, row sum
  std::vector<float> tmax;                      // (nr, tiles) entmax: max score of (row, tile)
  std::vector<float> knorm;                     // (tiles) entmax: max ‖k_j‖ over a tile's keys
  std::vector<float> qf, m0;                    // (nr) ‖q_r‖·|f_r|; max over the first row's tile
  std::vector<char> far;                        // (tiles) no row of the unit can reach the tile
  std::vector<entmax_tau::TauSearch> search;    // (nr)
  std::vector<entmax_tau::SupportStats> stats;  // (nr)
  std::vector<char> active;                     // (nr)
  std::vector<float> cand;                      // (kCandidateCap) candidates v > −1 of rows
  std::vector<int64_t> cand_at, cand_n;         // (nr) a row's slice of cand; cand_at −1: none
  // (nr) a row's gate after its slice was compacted: raw z enters only when
  // (z − gate_m)·half > gate_keep (gate_keep −inf: no gate).
  std::vector<float> gate_m, gate_keep;
  std::vector<float> row_z, row_p;              // (n) an observed row
  // bf16 weight × value products: pairs of bf16 along the keys in one 32-bit word.
  std::vector<uint32_t> vt2;  // (kBk/2, D) value pairs along keys
  std::vector<uint16_t> pb;   // (nr, kBk) weights in bf16
  bool bf16 = false;          // this unit mixes values with bf16 products
};
Scratch& scratch() {
  thread_local Scratch s;
  return s;
}
template <typename V>
void grow(V& v, size_t n) {
  if (v.size() < n) v.resize(n);
}

// acc (nr, D) += weights s.s (nr, kBk) · the tile's values (bk, D).
void mix_tile(const BlockedAttention& a, Scratch& s, int64_t j0, int64_t bk) {
  const int64_t nr = a.nr, D = a.D;
  if (!s.bf16) return pv_tile(s.s.data(), nr, load_v(a, j0, bk, s.vt.data()), bk, D, s.acc.data());
  const int64_t bk2 = (bk + 1) / 2 * 2;  // an odd tile's last pair: weight 0 (s.s is zero there)
  for (int64_t r = 0; r < nr; ++r) {
    const float* p = s.s.data() + r * kBk;
    uint16_t* b = s.pb.data() + r * kBk;
    for (int64_t j = 0; j < bk2; ++j) b[j] = j < bk ? bf16_round(p[j]) : 0;
  }
  load_vt2(a, j0, bk, s.vt2.data());
  pv_tile_bf16(s.pb.data(), nr, s.vt2.data(), bk2 / 2, D, s.acc.data());
}

// Row r's scores in place for the cnt visible columns of the tile at key j0 (attention_score.h).
LB_INLINE void finish_scores(float* z, int64_t cnt, int64_t j0, float f, float slope, int64_t i) {
  attention_score_row(z, z, cnt, f, slope, i, j0);
}

struct Geometry {
  int64_t n_keys, tiles;
  int64_t visible(int64_t i, int64_t j0) const {  // visible columns of row at position i
    return std::clamp<int64_t>(i + 1 - j0, 0, kBk);
  }
};

// Raw products q_r · k_j of tile t for all rows into s.s (nr, kBk). Returns the tile's key count.
__attribute__((target("avx512f"))) int64_t tile_products(const BlockedAttention& a, Scratch& s,
                                                         int64_t t, const Geometry& g) {
  const int64_t j0 = t * kBk, bk = std::min(kBk, g.n_keys - j0);
  load_kt(a, j0, bk, s.kt.data());
  scores_tile(a.q, a.ldq, a.nr, s.kt.data(), a.D, (bk + 63) / 64 * 64, s.s.data());
  return bk;
}

// Scores of tile t for all rows: raw products, then each row's scaling, bias and causal cut.
// Returns the tile's key count.
__attribute__((target("avx512f"))) int64_t tile_scores(const BlockedAttention& a, Scratch& s,
                                                       int64_t t, const Geometry& g) {
  const int64_t j0 = t * kBk, bk = tile_products(a, s, t, g);
  for (int64_t r = 0; r < a.nr; ++r) {
    const int64_t i = a.pos0 + r, cnt = g.visible(i, j0);
    const float f = score_factor(a.scale[r * a.ld_scale], a.inv_sqrt_d);
    finish_scores(s.s.data() + r * kBk, cnt, j0, f, a.slope, i);
  }
  return bk;
}

// Softmax family: online normalisation over the key tiles. Each row of a tile takes one fused
// pass (softmax_row_avx512) from the raw products to the weights.
__attribute__((target("avx512f"))) void softmax_unit(const BlockedAttention& a, Scratch& s,
                                                     const Geometry& g) {
  const int64_t nr = a.nr, D = a.D;
  std::fill(s.m.begin(), s.m.begin() + nr, kNegInf);
  std::fill(s.l.begin(), s.l.begin() + nr, 0.f);
  for (int64_t t = 0; t < g.tiles; ++t) {
    const int64_t j0 = t * kBk;
    const int64_t bk = tile_products(a, s, t, g);
    for (int64_t r = 0; r < nr; ++r) {
      const int64_t i = a.pos0 + r;
      const float f = score_factor(a.scale[r * a.ld_scale], a.inv_sqrt_d);
      const SoftmaxRowTile row =
          softmax_row_avx512(s.s.data() + r * kBk, g.visible(i, j0), bk, j0, i, f, a.slope, s.m[r]);
      if (row.m > s.m[r]) {
        const float corr = s.m[r] == kNegInf ? 0.f : fast_exp(s.m[r] - row.m);
        s.l[r] *= corr;
        float* acc = s.acc.data() + r * D;
        for (int64_t d = 0; d < D; ++d) acc[d] *= corr;
        s.m[r] = row.m;
      }
      s.l[r] += row.sum;
    }
    mix_tile(a, s, j0, bk);
  }
  for (int64_t r = 0; r < nr; ++r) {
    const float inv = 1.f / s.l[r];
    const float* acc = s.acc.data() + r * D;
    float* o = a.out + r * a.ldo;
    for (int64_t d = 0; d < D; ++d) o[d] = acc[d] * inv;
  }
}

// α-entmax (α = 1.5: square, or 2): max pass, threshold passes, output pass.

// (0) of entmax_unit: sets s.far[t] for the tiles t before the first row's own tile t0 that no
// row of the unit can reach — for every row r, the bound on its scores over the tile,
// ‖q_r‖·|f_r|·max_{j∈t}‖k_j‖ + max_{j∈t} slope·(j − i_r), lies at least 1/half below m0_r, the
// row's max over tile t0 (which every row sees whole up to its own position, and which is at most
// its final max). Such a tile holds no candidate: (z − m_r)·half ≤ −1. The bound takes a margin of
// 1e-4 of its terms' magnitudes for the fp32 rounding of the computed scores. Returns the count.
__attribute__((target("avx512f"))) int64_t mark_far_tiles(const BlockedAttention& a, Scratch& s,
                                                          const Geometry& g, float half) {
  const int64_t nr = a.nr, D = a.D, T = g.tiles, t0 = a.pos0 / kBk;
  std::fill(s.far.begin(), s.far.begin() + T, 0);
  if (t0 == 0) return 0;
  for (int64_t t = 0; t < t0; ++t) {  // tiles before t0 are whole
    float mx = 0.f;
    for (int64_t j = t * kBk; j < (t + 1) * kBk; ++j) {
      float ss = 0.f;
      if (a.k32) {
        const float* k = a.k32 + j * D;
#pragma omp simd reduction(+ : ss)
        for (int64_t d = 0; d < D; ++d) ss += k[d] * k[d];
      } else {
        const uint16_t* k = a.k16 + j * D;
#pragma omp simd reduction(+ : ss)
        for (int64_t d = 0; d < D; ++d) ss += bf16_widen(k[d]) * bf16_widen(k[d]);
      }
      mx = std::max(mx, ss);
    }
    s.knorm[t] = std::sqrt(mx);
  }
  for (int64_t r = 0; r < nr; ++r) {
    const float* q = a.q + r * a.ldq;
    float ss = 0.f;
    for (int64_t d = 0; d < D; ++d) ss += q[d] * q[d];
    s.qf[r] = std::sqrt(ss) * std::fabs(score_factor(a.scale[r * a.ld_scale], a.inv_sqrt_d));
  }
  tile_scores(a, s, t0, g);
  for (int64_t r = 0; r < nr; ++r) {
    s.m0[r] = tile_max(s.s.data() + r * kBk, g.visible(a.pos0 + r, t0 * kBk));
  }
  const float reach = 1.f / half;  // scores this far below the row max are never candidates
  int64_t far = 0;
  for (int64_t t = 0; t < t0; ++t) {
    bool all = true;
    for (int64_t r = 0; r < nr && all; ++r) {
      const int64_t i = a.pos0 + r;
      const float dot = s.qf[r] * s.knorm[t];
      const float bias = std::max(position_bias(a.slope, i, t * kBk),
                                  position_bias(a.slope, i, (t + 1) * kBk - 1));
      const float margin = 1e-4f * (dot + std::fabs(bias) + std::fabs(s.m0[r])) + 1e-5f;
      all = dot + bias + margin <= s.m0[r] - reach;
    }
    s.far[t] = all;
    far += all;
  }
  return far;
}

__attribute__((target("avx512f"))) void entmax_unit(const BlockedAttention& a, Scratch& s,
                                                    const Geometry& g, bool square) {
  using namespace entmax_tau;
  const int64_t nr = a.nr, D = a.D, T = g.tiles;
  const float half = square ? 0.5f : 1.0f;
  BlockedTileStats count;  // this unit's tile statistics, added to the totals at its end
  count.units = 1, count.tiles = T, count.rows = nr;
  // (1) max pass; it also keeps, in each row's slice of the candidate buffer, the raw scores
  // above the running max − 1/(α−1) (a superset of the final candidates). A full slice is
  // compacted to the scores above its own threshold (compact_candidates); a row whose
  // candidates still do not fit goes to the recomputing threshold passes.
  const int64_t slice = candidate_cap.load(std::memory_order_relaxed) / nr;
  grow(s.cand, slice * nr);
  count.tiles_far = mark_far_tiles(a, s, g, half);
  std::fill(s.m.begin(), s.m.begin() + nr, kNegInf);
  for (int64_t r = 0; r < nr; ++r) {
    s.cand_n[r] = 0, s.cand_at[r] = r * slice, s.gate_m[r] = 0.f, s.gate_keep[r] = kNegInf;
  }
  for (int64_t t = 0; t < T; ++t) {
    if (s.far[t]) {  // no candidate of any row: every later pass skips it too
      for (int64_t r = 0; r < nr; ++r) s.tmax[r * T + t] = kNegInf;
      continue;
    }
    tile_scores(a, s, t, g);
    for (int64_t r = 0; r < nr; ++r) {
      const float* z = s.s.data() + r * kBk;
      const int64_t cnt = g.visible(a.pos0 + r, t * kBk);
      const float mt = tile_max(z, cnt);
      s.tmax[r * T + t] = mt;
      s.m[r] = std::max(s.m[r], mt);
      if (s.cand_at[r] < 0 || !((mt - s.m[r]) * half > -1.f)) continue;
      if (s.cand_n[r] + cnt > slice) {  // full: compact it, or recompute this row's tiles later
        if (s.cand_n[r] > 0) {
          ++count.compactions;
          s.cand_n[r] = compact_candidates(s.cand.data() + s.cand_at[r], s.cand_n[r], half, square,
                                           s.gate_m[r], s.gate_keep[r]);
        }
        if (s.cand_n[r] + cnt > slice) {
          s.cand_at[r] = -1;
          continue;
        }
      }
      s.cand_n[r] += gather_candidates_avx512(z, cnt, s.m[r], half, s.gate_m[r], s.gate_keep[r],
                                              s.cand.data() + s.cand_at[r] + s.cand_n[r]);
    }
  }
  // (2) the threshold: rows with their candidates in the buffer search in memory; the others
  // take passes over the tiles holding a candidate of a row still searching.
  auto candidate = [&](int64_t r, int64_t t) { return (s.tmax[r * T + t] - s.m[r]) * half > -1.f; };
  for (int64_t r = 0; r < nr; ++r) {
    s.search[r] = tau_search_start(a.pos0 + r + 1, square);
    s.active[r] = 1;
    if (s.gate_keep[r] > kNegInf) {  // a compacted row: its cut lies below τ*, and the scores it
      // dropped have v <= fl (+1e-6 for the fp32 rounding; the cut's margin is 1e-5): the search
      // starts there, buffered or not
      const float fl = (s.gate_m[r] - s.m[r]) * half + s.gate_keep[r] + 1e-6f;
      if (fl > s.search[r].floor) {
        s.search[r].floor = fl;
        s.search[r].lo = fl, s.search[r].tau = fl;
      }
    }
    if (s.cand_at[r] < 0) continue;
    ++count.rows_buffered;
    float* v = s.cand.data() + s.cand_at[r];
    int64_t c = 0;
    for (int64_t j = 0; j < s.cand_n[r]; ++j) {  // to the shifted scaled domain, compacted
      v[c] = (v[j] - s.m[r]) * half;
      c += v[c] > -1.f;
    }
    s.cand_n[r] = c;
  }
  {
    for (int64_t r = 0; r < nr; ++r) {
      if (s.cand_at[r] < 0) continue;
      float* v = s.cand.data() + s.cand_at[r];
      int64_t n = s.cand_n[r];
      for (int pass = 0; pass < kMaxPasses; ++pass) {
        // Scores at or below the left bracket end lo <= τ* never enter the support: drop them
        // (flat rows shrink pass by pass), and let the search know through its floor.
        const float keep = std::nextafter(static_cast<float>(s.search[r].lo), -kInf);
        if (keep > s.search[r].floor) {
          n = compact_above(v, n, 0.f, 1.f, keep);
          s.search[r].floor = keep;
        }
        const float tau = s.search[r].tau;
        SupportStats st;
        for (int64_t b0 = 0; b0 < n; b0 += kSumBlock) {
          add_block_support(v + b0, std::min(n, b0 + kSumBlock) - b0, 0.f, 1.f, tau, st);
        }
        if (tau_search_step(st, square, s.search[r])) break;
      }
      s.active[r] = 0;
    }
  }
  for (int pass = 0; pass < kMaxPasses; ++pass) {
    bool any = false;
    for (int64_t r = 0; r < nr; ++r) {
      if (s.active[r]) s.stats[r] = SupportStats{}, any = true;
    }
    if (!any) break;
    ++count.threshold_passes;
    for (int64_t t = 0; t < T; ++t) {
      bool need = false;
      for (int64_t r = 0; r < nr && !need; ++r) need = s.active[r] && candidate(r, t);
      if (!need) continue;
      ++count.tiles_recomputed;
      tile_scores(a, s, t, g);
      for (int64_t r = 0; r < nr; ++r) {
        if (!s.active[r] || !candidate(r, t)) continue;
        const float* z = s.s.data() + r * kBk;
        const int64_t cnt = g.visible(a.pos0 + r, t * kBk);
        add_block_support(z, cnt, s.m[r], half, s.search[r].tau, s.stats[r]);
      }
    }
    for (int64_t r = 0; r < nr; ++r) {
      if (s.active[r] && tau_search_step(s.stats[r], square, s.search[r])) s.active[r] = 0;
    }
  }
  // (3) output pass over the tiles holding a support member of some row.
  std::fill(s.l.begin(), s.l.begin() + nr, 0.f);
  for (int64_t t = 0; t < T; ++t) {
    bool need = false;
    for (int64_t r = 0; r < nr && !need; ++r) {
      need = (s.tmax[r * T + t] - s.m[r]) * half - s.search[r].tau > 0.f;
    }
    if (!need) continue;
    ++count.tiles_visited;
    const int64_t j0 = t * kBk;
    const int64_t bk = tile_scores(a, s, t, g);
    for (int64_t r = 0; r < nr; ++r) {
      float* z = s.s.data() + r * kBk;
      const int64_t cnt = g.visible(a.pos0 + r, j0);
      const float m = s.m[r], tau = s.search[r].tau;
      float sum = 0.f;
#pragma omp simd reduction(+ : sum)
      for (int64_t j = 0; j < cnt; ++j) {
        const float d = std::max((z[j] - m) * half - tau, 0.f);
        const float w = square ? d * d : d;
        z[j] = w;
        sum += w;
      }
      std::fill(z + cnt, z + bk, 0.f);
      s.l[r] += sum;
    }
    mix_tile(a, s, j0, bk);
  }
  for (int64_t r = 0; r < nr; ++r) {
    const float total = s.l[r];
    const float sc = std::fabs(total - 1.f) > 1e-7f ? 1.f / total : 1.f;
    const float* acc = s.acc.data() + r * D;
    float* o = a.out + r * a.ldo;
    for (int64_t d = 0; d < D; ++d) o[d] = acc[d] * sc;
  }
  for (int64_t r = 0; r < nr; ++r) {  // row r sees the tiles 0 .. (pos0 + r) / kBk
    const int64_t seen = (a.pos0 + r) / kBk + 1;
    count.row_tiles += seen;
    for (int64_t t = 0; t < seen; ++t) {  // the output pass's test, for this row alone
      count.row_tiles_support += (s.tmax[r * T + t] - s.m[r]) * half - s.search[r].tau > 0.f;
    }
  }
  add_tile_stats(count);
}

// Row r's full score row z (n = pos0 + r + 1) through the same tile products.
void full_row_scores(const BlockedAttention& a, Scratch& s, int64_t r, float* z) {
  const int64_t i = a.pos0 + r, n = i + 1;
  const float f = score_factor(a.scale[r * a.ld_scale], a.inv_sqrt_d);
  std::vector<float> tile(kBk);
  for (int64_t j0 = 0; j0 < n; j0 += kBk) {
    const int64_t bk = std::min(kBk, n - j0);
    load_kt(a, j0, bk, s.kt.data());  // fp32 products: the observer sees the plain row
    scores_tile(a.q + r * a.ldq, a.ldq, 1, s.kt.data(), a.D, (bk + 63) / 64 * 64, tile.data());
    finish_scores(tile.data(), bk, j0, f, a.slope, i);
    std::copy(tile.begin(), tile.begin() + bk, z + j0);
  }
}

bool prepare(const BlockedAttention& a, Scratch& s, Geometry& g) {
  g.n_keys = a.pos0 + a.nr;
  g.tiles = (g.n_keys + kBk - 1) / kBk;
  grow(s.s, a.nr * kBk), grow(s.kt, a.D * kBk), grow(s.vt, kBk * a.D);
  grow(s.acc, a.nr * a.D), grow(s.m, a.nr), grow(s.l, a.nr), grow(s.tmax, a.nr * g.tiles);
  grow(s.knorm, g.tiles), grow(s.far, g.tiles), grow(s.qf, a.nr), grow(s.m0, a.nr);
  grow(s.search, a.nr), grow(s.stats, a.nr), grow(s.active, a.nr);
  grow(s.cand_at, a.nr), grow(s.cand_n, a.nr), grow(s.gate_m, a.nr), grow(s.gate_keep, a.nr);
  std::fill(s.acc.begin(), s.acc.begin() + a.nr * a.D, 0.f);
  s.bf16 = a.k16 != nullptr && a.bf16_products && cpu_has_bf16();
  if (s.bf16) grow(s.vt2, kBk / 2 * a.D), grow(s.pb, a.nr * kBk);
  return true;
}

}  // namespace

BlockedTileStats blocked_tile_stats() {
  BlockedTileStats out;
  for (size_t f = 0; f < kTileFieldCount; ++f) {
    out.*kTileFields[f] = tile_totals[f].load(std::memory_order_relaxed);
  }
  return out;
}

void reset_blocked_tile_stats() {
  for (auto& total : tile_totals) total.store(0, std::memory_order_relaxed);
}

int64_t set_blocked_candidate_cap(int64_t floats) {
  return candidate_cap.exchange(floats < 0 ? kCandidateCap : floats);
}

bool blocked_attention_supports(const NormalizerSpec& spec, int64_t head_dim) {
  static const bool avx512 = __builtin_cpu_supports("avx512f");
  if (!avx512 || !(head_dim == 16 || head_dim == 32 || head_dim == 64)) return false;
  switch (spec.kind) {
    case NormKind::kSoftmax:
    case NormKind::kSsmax:
      return true;
    case NormKind::kEntmax:
    case NormKind::kSparsemax:
    case NormKind::kAsEntmax:
      return spec.alpha == 1.5f || spec.alpha == 2.0f;
    default:
      return false;
  }
}

void blocked_attention(const BlockedAttention& a) {
  LB_CHECK(blocked_attention_supports(*a.spec, a.D),
           "blocked attention: unsupported " << normalizer_name(*a.spec) << ", D " << a.D);
  if (a.nr <= 0) return;
  Scratch& s = scratch();
  Geometry g;
  prepare(a, s, g);
  if (is_entmax_family(a.spec->kind))
    entmax_unit(a, s, g, a.spec->alpha == 1.5f);
  else
    softmax_unit(a, s, g);
  for (int64_t r = std::max<int64_t>(a.obs_lo, 0); r < std::min(a.obs_hi, a.nr); ++r) {
    const int64_t n = a.pos0 + r + 1;
    grow(s.row_z, n), grow(s.row_p, n);
    full_row_scores(a, s, r, s.row_z.data());
    const RowStats st = normalize_forward(*a.spec, s.row_z.data(), n, s.row_p.data());
    (*a.on_row)(r, s.row_p.data(), n, st);
  }
}

void plain_attention(const BlockedAttention& a) {
  const int64_t D = a.D;
  std::vector<float> z, p;
  for (int64_t r = 0; r < a.nr; ++r) {
    const int64_t i = a.pos0 + r, n = i + 1;
    z.assign(n, 0.f), p.assign(n, 0.f);
    const float f = score_factor(a.scale[r * a.ld_scale], a.inv_sqrt_d);
    for (int64_t j = 0; j < n; ++j) {
      float acc = 0.f;
      for (int64_t d = 0; d < D; ++d) {
        const float k = a.k32 ? a.k32[j * D + d] : bf16_widen(a.k16[j * D + d]);
        acc += a.q[r * a.ldq + d] * k;
      }
      z[j] = attention_score(acc, f, a.slope, static_cast<int32_t>(j - i));
    }
    normalize_forward(*a.spec, z.data(), n, p.data());
    float* o = a.out + r * a.ldo;
    for (int64_t d = 0; d < D; ++d) {
      double acc = 0.0;
      for (int64_t j = 0; j < n; ++j) {
        const float v = a.v32 ? a.v32[j * D + d] : bf16_widen(a.v16[j * D + d]);
        acc += static_cast<double>(p[j]) * v;
      }
      o[d] = static_cast<float>(acc);
    }
  }
}

}  // namespace lb
