// The blocked prefill (issue 14) against its plain twins: the kernel against plain_attention for
// every supported normalizer, head_dim, KV storage and ragged block geometry; the inference
// engine's blocked prefill against its plain path (InferenceOptions::blocked = false) for every
// normalizer × position encoding at lengths that are not multiples of the tile — logits, greedy
// tokens and observed attention rows. The tile statistics on units whose supports are known.
#include "models/blocked_attention.h"

#include <doctest/doctest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>

#include "core/rng.h"
#include "models/blocked_rows.h"
#include "models/inference.h"
#include "models/kernels/attention_score.h"
#include "models/kernels/simd.h"
#include "models/testing.h"

namespace lb {
namespace {

uint16_t to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  u += 0x7FFFu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

// A unit of random queries (nr, D), keys and values (pos0 + nr, D) with bf16 copies of the
// cache, and unit query scales, for the twin tests; unit() points a BlockedAttention at it.
struct RandomUnit {
  int64_t D, nr, pos0;
  std::vector<float> q, k, v, sc;
  std::vector<uint16_t> k16, v16;
  RandomUnit(int64_t D_, int64_t nr_, int64_t pos0_, uint64_t seed, double qk_scale)
      : D(D_),
        nr(nr_),
        pos0(pos0_),
        q(testing::random_vec(nr_ * D_, seed, qk_scale)),
        k(testing::random_vec((pos0_ + nr_) * D_, seed + 1, qk_scale)),
        v(testing::random_vec((pos0_ + nr_) * D_, seed + 2)),
        sc(nr_, 1.f),
        k16(k.size()),
        v16(v.size()) {
    for (size_t t = 0; t < k.size(); ++t) k16[t] = to_bf16(k[t]), v16[t] = to_bf16(v[t]);
  }
  BlockedAttention unit(const NormalizerSpec& spec, bool bf, float slope, float* out) const {
    BlockedAttention a;
    a.spec = &spec, a.D = D, a.nr = nr, a.pos0 = pos0, a.q = q.data(), a.ldq = D;
    a.scale = sc.data(), a.ld_scale = 1, a.inv_sqrt_d = 1.f / std::sqrt(float(D)), a.slope = slope;
    if (bf)
      a.k16 = k16.data(), a.v16 = v16.data();
    else
      a.k32 = k.data(), a.v32 = v.data();
    a.out = out, a.ldo = D;
    return a;
  }
};

TEST_CASE("blocked attention: equals the plain twin (every supported normalizer, ragged tiles)") {
  // Entmax thresholds: candidates gathered in memory (default), or recomputed tile by tile on
  // every pass (no buffer), or a mix (room for a few rows).
  for (int64_t cap : {-1, 0, 700}) {
    CAPTURE(cap);
    set_blocked_candidate_cap(cap);
    for (const std::string& name : all_normalizer_names()) {
      const NormalizerSpec spec = normalizer_from_name(name);
      for (int64_t D : {16, 32, 64}) {
        if (!blocked_attention_supports(spec, D)) continue;
        // (pos0, nr): within one tile, across tile edges, long rows (many tiles), single rows.
        for (auto geometry : {std::pair<int64_t, int64_t>{0, 7}, {121, 9}, {300, 64}, {700, 3}}) {
          const int64_t pos0 = geometry.first, nr = geometry.second;
          // 0: fp32 cache; 1: bf16 cache, fp32 products; 2: bf16 cache, bf16 products.
          for (int mode : {0, 1, 2}) {
            const bool bf = mode > 0;
            CAPTURE(name);
            CAPTURE(D);
            CAPTURE(pos0);
            CAPTURE(nr);
            CAPTURE(mode);
            // Scores of a few units: sparse normalizers keep a small support.
            RandomUnit u(D, nr, pos0, 1 + D, 1.5);
            const auto r = testing::random_vec(nr, 4);
            for (int64_t i = 0; i < nr; ++i) u.sc[i] = 1.f + 0.3f * std::fabs(r[i]);
            std::vector<float> blocked(nr * D), plain(nr * D);
            BlockedAttention a = u.unit(spec, bf, -0.01f, blocked.data());
            a.bf16_products = mode == 2;
            blocked_attention(a);
            a.out = plain.data();
            plain_attention(a);
            // bf16 products round the weights to bf16 (8 bits): bf16 tolerance.
            const double tol = mode == 2 ? 1e-2 : 1e-4;
            testing::check_close(blocked, plain, tol, tol, "out");
          }
        }
      }
    }
  }
  set_blocked_candidate_cap(-1);
}

TEST_CASE("blocked attention: which normalizers are tiled") {
  CHECK(blocked_attention_supports(normalizer_from_name("softmax"), 32));
  CHECK(blocked_attention_supports(normalizer_from_name("asentmax"), 32));
  CHECK(blocked_attention_supports(normalizer_from_name("sparsemax"), 16));
  CHECK_FALSE(blocked_attention_supports(normalizer_from_name("entmax", {{"alpha", "1.7"}}), 32));
  CHECK_FALSE(blocked_attention_supports(normalizer_from_name("topk"), 32));
  CHECK_FALSE(blocked_attention_supports(normalizer_from_name("stickbreaking"), 32));
  CHECK_FALSE(blocked_attention_supports(normalizer_from_name("adaptive_temperature"), 32));
  CHECK_FALSE(blocked_attention_supports(normalizer_from_name("softmax"), 8));
}

// fast_exp_avx512 on x (16 floats) into y, for the bitwise check against fast_exp.
__attribute__((target("avx512f"))) void fast_exp_16(const float* x, float* y) {
  _mm512_storeu_ps(y, fast_exp_avx512(_mm512_loadu_ps(x)));
}

// fast_exp of x (n) into y, compiled for AVX-512F as the kernels that call it are (under it GCC
// contracts fast_exp's mul + add pairs into FMAs, so its bits depend on the instruction set).
__attribute__((target("avx512f"))) void fast_exp_row(const float* x, float* y, int64_t n) {
  for (int64_t j = 0; j < n; ++j) y[j] = fast_exp(x[j]);
}

// One softmax row written out key by key, compiled for AVX-512F like the kernel: the score of
// attention_score.h with its add fused, z_j = fma(dot_j, f, position_bias(slope, j0 + j − i)), and
// w (cnt) = fast_exp(z_j − m); returns m = max(m_prev, max z_j). err (optional) gets the bound
// on how far an unfused score may round from z: 2^−22 · max_j (|dot_j · f| + |bias_j|).
__attribute__((target("avx512f"))) float softmax_row_written_out(const float* dot, int64_t cnt,
                                                                 int64_t j0, int64_t i, float f,
                                                                 float slope, float m_prev,
                                                                 float* w, double* err) {
  float m = m_prev;
  double mag = 0.0;
  for (int64_t j = 0; j < cnt; ++j) {
    const float bias = position_bias(slope, static_cast<int32_t>(j0 + j - i));
    w[j] = std::fma(dot[j], f, bias);
    m = std::max(m, w[j]);
    mag = std::max(mag, std::fabs(double(dot[j]) * f) + std::fabs(bias));
  }
  if (err) *err = std::ldexp(mag, -22);
  for (int64_t j = 0; j < cnt; ++j) w[j] = fast_exp(w[j] - m);
  return m;
}

uint32_t bits_of(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

TEST_CASE("blocked attention: fast_exp_avx512 gives fast_exp's bits") {
  if (!__builtin_cpu_supports("avx512f")) return;
  std::vector<float> x;
  for (float v = -100.f; v <= 100.f; v += 0.0137f) x.push_back(v);  // both clamps, the cut at -87
  for (float v : {-87.f, std::nextafter(-87.f, -100.f), std::nextafter(-87.f, 0.f), 88.f,
                  std::nextafter(88.f, 100.f), 0.f, -0.f, 1e-30f, -1e-30f,
                  std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                  std::numeric_limits<float>::quiet_NaN()}) {
    x.push_back(v);
  }
  x.resize((x.size() + 15) / 16 * 16, 0.5f);
  std::vector<float> y(x.size()), want(x.size());
  for (size_t c = 0; c < x.size(); c += 16) fast_exp_16(x.data() + c, y.data() + c);
  fast_exp_row(x.data(), want.data(), static_cast<int64_t>(x.size()));
  int64_t differ = 0;
  double rel = 0.0;  // against the baseline build of fast_exp here: an ulp or so
  for (size_t j = 0; j < x.size(); ++j) {
    differ += std::isnan(want[j]) ? !std::isnan(y[j]) : bits_of(want[j]) != bits_of(y[j]);
    const float base = fast_exp(x[j]);
    if (base > 0.f && std::isfinite(base)) rel = std::max(rel, std::fabs(y[j] / base - 1.0));
  }
  CHECK(differ == 0);
  CHECK(rel <= 4e-7);
  MESSAGE("fast_exp_avx512 vs a baseline x86-64 fast_exp: max relative difference " << rel);
}

// The fused softmax row pass against the row written out above and against its plain twin (the
// three passes it replaced): every visible count 0 .. kKeyTile, whole and partial tiles
// (bk < kKeyTile), ALiBi slope 0 and not, score factors != 1/√D, a running max of −inf, below the
// tile's scores and above them. The fused max and weights are the written-out row's bits. The
// twin's are too without bias; with bias its unfused remainder columns may be an ulp of the score
// apart (err), which moves a weight by at most 4·err relative. Sums: float sums of the same cnt
// positive terms in different orders, each within (cnt − 1)·2^−24·Σ of the exact sum.
TEST_CASE("blocked attention: the fused softmax row pass equals its three-pass twin") {
  if (!__builtin_cpu_supports("avx512f")) return;
  constexpr float kSentinel = 12345.f;  // past bk: must stay untouched
  const float inf = std::numeric_limits<float>::infinity();
  const auto dots = testing::random_vec(kKeyTile, 11, 6.0);  // raw products q · k_j
  int64_t rows = 0, rows_apart = 0;
  for (int64_t cnt = 0; cnt <= kKeyTile; ++cnt) {
    for (int64_t bk : {std::max<int64_t>(cnt, 1), (cnt + kKeyTile + 1) / 2, kKeyTile}) {
      // A row that sees cnt < kKeyTile keys of the tile sits at i = j0 + cnt − 1 (the causal
      // edge); a row that sees all of it may sit far past the tile.
      for (int64_t j0 : {int64_t(0), int64_t(4096), int64_t(65408)}) {
        for (int64_t past : {int64_t(0), int64_t(3000)}) {
          if (past > 0 && cnt < kKeyTile) continue;
          const int64_t i = j0 + cnt - 1 + past;
          for (float slope : {0.f, 0.0625f, -0.37f}) {
            for (float f : {1.f / std::sqrt(32.f), 1.7f / std::sqrt(32.f), 0.42f}) {
              for (float m_prev : {-inf, -40.f, 3.f, 500.f}) {
                CAPTURE(cnt);
                CAPTURE(bk);
                CAPTURE(i);
                CAPTURE(j0);
                CAPTURE(slope);
                CAPTURE(f);
                CAPTURE(m_prev);
                std::vector<float> zp(kKeyTile, kSentinel), zf(kKeyTile, kSentinel);
                std::copy(dots.begin(), dots.begin() + bk, zp.begin());
                std::copy(dots.begin(), dots.begin() + bk, zf.begin());
                const SoftmaxRowTile plain =
                    softmax_row_plain(zp.data(), cnt, bk, j0, i, f, slope, m_prev);
                const SoftmaxRowTile fused =
                    softmax_row_avx512(zf.data(), cnt, bk, j0, i, f, slope, m_prev);
                std::vector<float> w(kKeyTile);
                double err = 0.0;
                const float m = softmax_row_written_out(dots.data(), cnt, j0, i, f, slope, m_prev,
                                                        w.data(), &err);
                if (slope == 0.f) err = 0.0;
                double exact = 0.0;
                int64_t differ = 0, plain_differ = 0, plain_far = 0;
                for (int64_t j = 0; j < kKeyTile; ++j) {
                  const float want = j < cnt ? w[j] : j < bk ? 0.f : kSentinel;
                  if (j < cnt) exact += want;
                  differ += bits_of(zf[j]) != bits_of(want);
                  plain_differ += bits_of(zp[j]) != bits_of(want);
                  plain_far += std::fabs(double(zp[j]) - want) > 4.0 * err * want;
                }
                CHECK(differ == 0);
                CHECK(bits_of(fused.m) == bits_of(m));
                CHECK(plain_far == 0);
                CHECK((plain.m == m || std::fabs(double(plain.m) - m) <= err));
                const double bound = std::max<int64_t>(cnt - 1, 0) * std::ldexp(1.0, -24) * exact;
                CHECK(std::fabs(fused.sum - exact) <= bound);
                CHECK(std::fabs(plain.sum - exact) <= bound + 4.0 * err * exact);
                rows_apart += plain_differ > 0 || plain.m != m;
                ++rows;
              }
            }
          }
        }
      }
    }
  }
  MESSAGE(rows << " rows compared; the twin an ulp of the score apart on " << rows_apart);
}

// One unit of 8 rows at positions 632 .. 639 over 640 keys (5 tiles, all visible to every row),
// D = 16, no bias. Sparse: only the keys of tile 2 match the query (score 8, the rest 0), so
// every row's support is tile 2 alone. Flat: every score is 0, so every key is in the support.
struct TileCase {
  static constexpr int64_t kD = 16, kRows = 8, kKeys = 5 * kKeyTile, kPos0 = kKeys - kRows;
  std::vector<float> q = std::vector<float>(kRows * kD, 0.f);  // (kRows, kD)
  std::vector<float> k = std::vector<float>(kKeys * kD, 0.f);  // (kKeys, kD)
  std::vector<float> v = testing::random_vec(kKeys * kD, 7);   // (kKeys, kD)
  std::vector<float> scale = std::vector<float>(kRows, 1.f);   // (kRows)
  explicit TileCase(bool sparse) {
    for (int64_t r = 0; r < kRows; ++r) q[r * kD] = 8.f;
    for (int64_t j = 2 * kKeyTile; j < 3 * kKeyTile && sparse; ++j) k[j * kD] = 1.f;
  }
  BlockedAttention unit(const NormalizerSpec& spec, float* dst) const {
    BlockedAttention a;
    a.spec = &spec, a.D = kD, a.nr = kRows, a.pos0 = kPos0, a.q = q.data(), a.ldq = kD;
    a.scale = scale.data(), a.inv_sqrt_d = 1.f, a.k32 = k.data(), a.v32 = v.data();
    a.out = dst, a.ldo = kD;
    return a;
  }
};

TEST_CASE("blocked attention: tile statistics of the entmax passes (known supports)") {
  for (const char* name : {"sparsemax", "entmax", "asentmax"}) {
    const NormalizerSpec spec = normalizer_from_name(name);
    for (bool sparse : {true, false}) {
      for (int64_t cap : {-1, 0}) {  // candidates searched in the buffer, or tiles recomputed
        CAPTURE(name);
        CAPTURE(sparse);
        CAPTURE(cap);
        const TileCase c(sparse);
        std::vector<float> out(TileCase::kRows * TileCase::kD), ref(out.size());
        set_blocked_candidate_cap(cap);
        reset_blocked_tile_stats();
        blocked_attention(c.unit(spec, out.data()));
        const BlockedTileStats st = blocked_tile_stats();
        set_blocked_candidate_cap(-1);
        plain_attention(c.unit(spec, ref.data()));
        testing::check_close(out, ref, 1e-4, 1e-4, "out");  // the case is what it claims
        CHECK(st.units == 1);
        CHECK(st.tiles == 5);
        CHECK(st.rows == TileCase::kRows);
        CHECK(st.row_tiles == 5 * TileCase::kRows);
        // Sparse: the output pass visits tile 2 alone (1 of 5); flat: all 5.
        CHECK(st.tiles_visited == (sparse ? 1 : 5));
        CHECK(st.row_tiles_support == (sparse ? 1 : 5) * TileCase::kRows);
        if (cap < 0) {
          CHECK(st.rows_buffered == TileCase::kRows);
          CHECK(st.threshold_passes == 0);
          CHECK(st.tiles_recomputed == 0);
        } else {  // every pass recomputes the tiles holding candidates: tile 2, or all 5
          CHECK(st.rows_buffered == 0);
          CHECK(st.threshold_passes >= 1);
          CHECK(st.tiles_recomputed == (sparse ? 1 : 5) * st.threshold_passes);
        }
      }
    }
  }
}

TEST_CASE("blocked attention: candidate gathering (compress stores) equals its plain twin") {
  // Every count 0..128 (partial vectors), α = 1.5 and 2, with and without a compaction cut, and
  // scores exactly on either limit.
  auto z = testing::random_vec(kKeyTile, 31, 2.0);
  z[5] = 1.f, z[6] = -1.f, z[40] = 0.25f;  // on the limits below (lim 2, half 0.5; gm 1, gk −0.375)
  for (float half : {0.5f, 1.f}) {
    for (float gk : {-std::numeric_limits<float>::infinity(), -0.375f}) {
      for (int64_t cnt = 0; cnt <= kKeyTile; ++cnt) {
        CAPTURE(half);
        CAPTURE(gk);
        CAPTURE(cnt);
        std::vector<float> fast(kKeyTile + 16, 7.f), plain(kKeyTile + 16, 7.f);
        const int64_t a = gather_candidates_avx512(z.data(), cnt, 2.f, half, 1.f, gk, fast.data());
        const int64_t b = gather_candidates_plain(z.data(), cnt, 2.f, half, 1.f, gk, plain.data());
        REQUIRE(a == b);
        CHECK(std::memcmp(fast.data(), plain.data(), a * sizeof(float)) == 0);
        CHECK(std::all_of(fast.begin() + a, fast.end(), [](float x) { return x == 7.f; }));
      }
    }
  }
}

TEST_CASE(
    "blocked attention: a full candidate slice is compacted to the scores above its threshold") {
  // Long rows (4,000 keys) whose candidates overflow a slice of 600 scores: each
  // overflow cuts the slice at its own threshold (a lower bound of the row's), so every row still
  // finds its threshold in memory, with no recomputed tile, and equals the plain twin.
  for (const char* name : {"sparsemax", "entmax", "asentmax"}) {
    const NormalizerSpec spec = normalizer_from_name(name);
    for (bool bf : {false, true}) {
      CAPTURE(name);
      CAPTURE(bf);
      const int64_t D = 32, nr = 4;
      const RandomUnit u(D, nr, 4000, 21, 0.6);
      std::vector<float> blocked(nr * D), plain(nr * D);
      BlockedAttention a = u.unit(spec, bf, 0.f, blocked.data());
      set_blocked_candidate_cap(nr * 600);
      reset_blocked_tile_stats();
      blocked_attention(a);
      const BlockedTileStats st = blocked_tile_stats();
      set_blocked_candidate_cap(-1);
      a.out = plain.data();
      plain_attention(a);
      testing::check_close(blocked, plain, 1e-4, 1e-4, "out");
      CHECK(st.compactions >= nr);  // every row's slice overflowed at least once
      CHECK(st.rows_buffered == nr);
      CHECK(st.tiles_recomputed == 0);
    }
  }
}

// ALiBi-like unit: 16 rows at positions 1,280 .. 1,295 over 1,296 keys (11 tiles), D = 32, slope
// 0.5. Random keys: a tile more than a few keys away scores far below the diagonal tile, so the
// bound skips every tile but the last two in all passes. One far key made to match the (equal)
// queries so strongly that it outscores the bias of its distance (about +1,100 against scores
// of a few units nearby): its tile is not skipped, and every row's support is that key alone.
// Both equal the plain twin.
TEST_CASE("blocked attention: far tiles are skipped by the bound, never a tile holding support") {
  constexpr int64_t D = 32, nr = 16, pos0 = 1280, n = pos0 + nr;
  for (const char* name : {"sparsemax", "entmax", "asentmax"}) {
    for (bool strong_far_key : {false, true}) {
      CAPTURE(name);
      CAPTURE(strong_far_key);
      const NormalizerSpec spec = normalizer_from_name(name);
      auto q = testing::random_vec(nr * D, 11);
      auto k = testing::random_vec(n * D, 12);
      auto v = testing::random_vec(n * D, 13);
      std::vector<float> scale(nr, 1.f);
      if (strong_far_key) {  // every query q_0, key 100 (tile 0) = 300 q_0: z ≈ 300|q_0|²/√D − 590
        for (int64_t r = 1; r < nr; ++r) std::copy(q.begin(), q.begin() + D, q.begin() + r * D);
        for (int64_t d = 0; d < D; ++d) k[100 * D + d] = 300.f * q[d];
      }
      BlockedAttention a;
      a.spec = &spec, a.D = D, a.nr = nr, a.pos0 = pos0, a.q = q.data(), a.ldq = D;
      a.scale = scale.data(), a.inv_sqrt_d = 1.f / std::sqrt(float(D)), a.slope = 0.5f;
      a.k32 = k.data(), a.v32 = v.data();
      std::vector<float> out(nr * D), ref(nr * D);
      a.out = out.data(), a.ldo = D;
      reset_blocked_tile_stats();
      blocked_attention(a);
      const BlockedTileStats st = blocked_tile_stats();
      a.out = ref.data();
      plain_attention(a);
      testing::check_close(out, ref, 1e-4, 1e-4, "out");
      CHECK(st.tiles == 11);
      if (strong_far_key) {
        CHECK(st.tiles_far == 8);  // tiles 1 .. 8: tile 0 holds the key, 9 and 10 are near
        CHECK(st.tiles_visited == 1);  // every row's support: key 100 alone
      } else {
        CHECK(st.tiles_far == 9);  // all but the first row's tile (10) and the one before it
        CHECK(st.tiles_visited <= 2);
      }
    }
  }
}

TEST_CASE("blocked attention: tile statistics add up over threads; softmax is not counted") {
  const NormalizerSpec asentmax = normalizer_from_name("asentmax");
  const NormalizerSpec softmax = normalizer_from_name("softmax");
  const TileCase c(true);
  reset_blocked_tile_stats();
  std::vector<std::vector<float>> outs(8, std::vector<float>(TileCase::kRows * TileCase::kD));
#pragma omp parallel for num_threads(2) schedule(dynamic, 1)
  for (int64_t u = 0; u < 8; ++u) blocked_attention(c.unit(asentmax, outs[u].data()));
  blocked_attention(c.unit(softmax, outs[0].data()));
  const BlockedTileStats st = blocked_tile_stats();
  CHECK(st.units == 8);
  CHECK(st.tiles == 8 * 5);
  CHECK(st.tiles_visited == 8);
  CHECK(st.row_tiles_support == 8 * TileCase::kRows);
  reset_blocked_tile_stats();
  CHECK(blocked_tile_stats().units == 0);
  CHECK(blocked_tile_stats().tiles_visited == 0);
}

ModelConfig small_config(const NormalizerSpec& spec, PosEncoding pe, int64_t layers) {
  ModelConfig c = model_preset("tiny");
  c.vocab_size = 13, c.num_labels = 14;
  c.layers = layers, c.hidden = 32, c.heads = 2, c.head_dim = 16, c.ffn = 32;
  c.attention = spec;
  c.position = pe;
  c.init_std = 0.3;
  return c;
}

std::vector<int32_t> random_ids(int64_t n, uint64_t seed) {
  Rng rng(seed);
  std::vector<int32_t> ids(n);
  for (auto& t : ids) t = static_cast<int32_t>(rng.below(13));
  return ids;
}

struct Run {
  std::vector<float> logits;    // prefill logits of rows obs_from .. L−1
  std::vector<int32_t> tokens;  // greedy continuation
  std::vector<float> rows;      // observed attention weights, (layer, head, row) flattened
};

// Prefill of ids with logits and observed rows from obs_from, then `decode` greedy tokens.
Run run_engine(const Transformer& model, const std::vector<int32_t>& ids, bool blocked, bool bf,
               int64_t obs_from, int64_t decode) {
  const ModelConfig& c = model.config();
  InferenceOptions opt;
  opt.chunk = 64, opt.q_block = 24, opt.kv_bf16 = bf, opt.blocked = blocked;
  InferenceEngine eng(model, opt);
  const int64_t L = static_cast<int64_t>(ids.size());
  eng.reserve_positions(L + decode);
  InferenceSession s(eng, L + decode);
  Run out;
  const int64_t n_obs = L - obs_from;
  std::vector<std::vector<float>> rows(c.layers * c.heads * n_obs);
  AttnObserver obs = [&](const AttnRowView& v) {
    if (v.pos < L)
      rows[(v.layer * c.heads + v.head) * n_obs + v.pos - obs_from].assign(v.p, v.p + v.n);
  };
  s.observe(&obs, obs_from, L);
  s.append(ids.data(), L, out.logits, obs_from);
  std::vector<float> logits(out.logits.end() - c.num_labels, out.logits.end());
  for (int64_t t = 0; t < decode; ++t) {
    const auto next = static_cast<int32_t>(argmax(logits.data(), c.num_labels) % c.vocab_size);
    out.tokens.push_back(next);
    s.append(&next, 1, logits);
  }
  for (const auto& r : rows) out.rows.insert(out.rows.end(), r.begin(), r.end());
  return out;
}

// Every normalizer × position encoding at the given lengths: blocked equals plain.
void check_engine(const std::vector<int64_t>& lengths, int64_t layers, bool every_row) {
  for (const std::string& norm : all_normalizer_names()) {
    for (const std::string& pos : all_position_encoding_names()) {
      const NormalizerSpec spec = normalizer_from_name(norm);
      Transformer model(small_config(spec, position_encoding_from_name(pos), layers));
      model.init(11);
      for (int64_t L : lengths) {
        for (bool bf : {false, true}) {
          CAPTURE(norm);
          CAPTURE(pos);
          CAPTURE(L);
          CAPTURE(bf);
          const auto ids = random_ids(L, 5 + L);
          const int64_t obs_from = every_row ? 0 : L - 3;
          const Run b = run_engine(model, ids, true, bf, obs_from, 4);
          const Run p = run_engine(model, ids, false, bf, obs_from, 4);
          // fp32: the order of sums only. bf16 cache: fp32 products too, but a 1e-6 difference
          // upstream can flip the bf16 rounding of a later layer's key or value by one ulp (2^-8):
          // bf16 tolerance, as the bf16-vs-fp32 cache test of inference_test.cpp.
          const double tol = bf ? 3e-2 : 1e-4;
          testing::check_close(b.logits, p.logits, tol, tol, "logits");
          CHECK(b.tokens == p.tokens);
          testing::check_close(b.rows, p.rows, bf ? 3e-2 : 1e-5, bf ? 3e-2 : 1e-4, "observed rows");
        }
      }
    }
  }
}

TEST_CASE("inference: blocked prefill equals the plain path (every normalizer × position)") {
  check_engine({37, 150, 301}, 2, true);
}

TEST_CASE("inference: blocked prefill gives the same numbers on any thread count") {
  for (const char* norm : {"softmax", "asentmax"}) {
    CAPTURE(norm);
    Transformer model(small_config(normalizer_from_name(norm), PosEncoding::kRope, 2));
    model.init(3);
    const auto ids = random_ids(2100, 9);  // long enough for parallel attention units
    const int threads = omp_get_max_threads();
    omp_set_num_threads(1);
    const Run one = run_engine(model, ids, true, true, 2090, 2);
    omp_set_num_threads(2);
    const Run two = run_engine(model, ids, true, true, 2090, 2);
    omp_set_num_threads(threads);
    CHECK(one.logits == two.logits);
    CHECK(one.rows == two.rows);
  }
}

TEST_CASE("inference: blocked prefill equals the plain path at 16,384" *
          doctest::test_suite("slow")) {
  check_engine({16384}, 1, false);
}

}  // namespace
}  // namespace lb
