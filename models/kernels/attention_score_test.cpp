// The attention score module: the row kernel against the one-key formula and the double twin
// for every position encoding, tile offsets, the scale gradient against finite differences,
// RoPE over packed heads against per-head rope_forward, and the query scale of every
// length-scale kind (positions by pointer or offset, gradients against finite differences).
#include "models/kernels/attention_score.h"

#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "core/rng.h"

namespace lb {
namespace {

std::vector<float> randn(int64_t n, uint64_t seed, float std = 1.f) {
  Rng rng(seed);
  std::vector<float> x(n);
  for (float& v : x) v = static_cast<float>(rng.normal()) * std;
  return x;
}

}  // namespace

TEST_CASE("attention_score: the row equals the one-key formula and its double twin, every PE") {
  const int64_t H = 6, D = 16, i = 40;
  const float isd = inv_sqrt_head_dim(D);
  CHECK(isd == 0.25f);
  const NormalizerSpec spec = normalizer_from_name("softmax");
  for (const std::string& name : all_position_encoding_names()) {
    CAPTURE(name);
    const PosEncoding pe = position_encoding_from_name(name);
    const auto slopes = position_slopes(pe, static_cast<int>(H));
    for (int64_t h = 0; h < H; ++h) {
      const float m = head_slope(spec, slopes.data(), h);
      CHECK(m == slopes[h]);
      const auto dot = randn(i + 1, 7 + h);
      const float scale = 1.3f, f = score_factor(scale, isd);
      std::vector<float> z(i + 1), z2(dot);
      attention_score_row(dot.data(), z.data(), i + 1, f, m, i);
      attention_score_row(z2.data(), z2.data(), i + 1, f, m, i);  // in place
      for (int64_t j = 0; j <= i; ++j) {
        CHECK(z[j] == attention_score(dot[j], f, m, static_cast<int32_t>(j - i)));
        CHECK(z2[j] == z[j]);
        CHECK(z[j] ==
              doctest::Approx(attention_score_ref(dot[j], scale, D, m, i, j)).epsilon(1e-6));
      }
      // A tile of keys j0 .. j0 + 15 gives the same scores as the whole row.
      std::vector<float> tile(16);
      attention_score_row(dot.data() + 16, tile.data(), 16, f, m, i, 16);
      for (int64_t c = 0; c < 16; ++c) CHECK(tile[c] == z[16 + c]);
      if (name == "nope" || name == "rope") CHECK(z[0] == dot[0] * f);
    }
  }
  // No slopes, or a normalizer that drops the bias: m = 0.
  const auto alibi = position_slopes(PosEncoding::kAlibi, 4);
  CHECK(head_slope(spec, nullptr, 2) == 0.f);
  CHECK(head_slope(normalizer_from_name("stickbreaking"), alibi.data(), 0) == 0.f);
  CHECK(head_slope(normalizer_from_name("stickbreaking", {{"bias", "alibi"}}), alibi.data(), 0) ==
        alibi[0]);
}

TEST_CASE("attention_score: ∂L/∂scale and ∂L/∂dot of a row match finite differences") {
  const int64_t n = 9, D = 32;
  const float isd = inv_sqrt_head_dim(D), scale = 0.8f, slope = 0.5f;
  const auto dot = randn(n, 3), g = randn(n, 4);  // L = Σ g · z
  std::vector<float> dz(g);
  const float dscale = attention_score_row_backward(dot.data(), dz.data(), n, scale * isd, isd);
  auto loss = [&](float s, const std::vector<float>& d) {
    std::vector<float> z(n);
    attention_score_row(d.data(), z.data(), n, score_factor(s, isd), slope, n - 1);
    double l = 0.0;
    for (int64_t j = 0; j < n; ++j) l += double(g[j]) * z[j];
    return l;
  };
  const float e = 1e-2f;
  CHECK(dscale ==
        doctest::Approx((loss(scale + e, dot) - loss(scale - e, dot)) / (2 * e)).epsilon(1e-3));
  for (int64_t j = 0; j < n; ++j) {
    auto up = dot, dn = dot;
    up[j] += e, dn[j] -= e;
    CHECK(dz[j] == doctest::Approx((loss(scale, up) - loss(scale, dn)) / (2 * e)).epsilon(1e-3));
  }
}

TEST_CASE("attention_score: the float-lane row backward matches the double one") {
  const float isd = inv_sqrt_head_dim(16), f = 1.3f * isd;
  for (const int64_t n : {1, 7, 16, 17, 34, 100}) {
    CAPTURE(n);
    const int64_t np = (n + 15) / 16 * 16;  // read and written up to a multiple of 16
    auto dot = randn(np, 5), g = randn(np, 6);
    std::vector<float> dz(g.begin(), g.begin() + n), ds(np, 7.f);
    const float want = attention_score_row_backward(dot.data(), dz.data(), n, f, isd);
    const float got =
        attention_score_row_backward_lanes(dot.data(), g.data(), n, f, isd, ds.data());
    CHECK(got == doctest::Approx(want).epsilon(1e-5));
    for (int64_t c = 0; c < np; ++c) CHECK(ds[c] == (c < n ? dz[c] : 0.f));  // dz · f, bit for bit
  }
}

TEST_CASE("attention_score: AttentionPositions rotates packed heads exactly as rope_forward") {
  const int64_t H = 3, D = 8, rows = 5, pos0 = 4;
  for (const std::string& name : all_position_encoding_names()) {
    CAPTURE(name);
    const PosEncoding pe = position_encoding_from_name(name);
    AttentionPositions ap(pe, LengthScale::kNakanishi, H, D, 10000.0);
    CHECK(ap.slopes == position_slopes(pe, H));
    CHECK(ap.n_scaled == num_length_scaled_heads(pe, H));
    CHECK(AttentionPositions(pe, LengthScale::kNone, H, D, 1e4).n_scaled == 0);
    CHECK(ap.rotates() == (pe == PosEncoding::kRope));
    ap.reserve(pos0 + rows);
    CHECK((ap.rope.max_pos >= pos0 + rows) == ap.rotates());
    const auto x = randn(rows * H * D, 11);
    auto y = x;
    ap.rotate(y.data(), rows, pos0);
    if (!ap.rotates()) {
      CHECK(y == x);
      continue;
    }
    auto want = x;
    for (int64_t h = 0; h < H; ++h) {
      rope_forward(ap.rope, x.data() + h * D, rows, H * D, pos0, want.data() + h * D);
    }
    CHECK(y == want);
    ap.rotate_backward(y.data(), rows, pos0);  // the transpose of a rotation is its inverse
    for (size_t t = 0; t < x.size(); ++t) CHECK(y[t] == doctest::Approx(x[t]).epsilon(1e-5));
    const int64_t before = ap.rope.max_pos;
    ap.reserve(before + 1);
    CHECK(ap.rope.max_pos >= 2 * before);
  }
}

TEST_CASE("attention_score: query scale rows for every length-scale kind, value and gradient") {
  const int64_t R = 4, H = 4, Hs = 2, C = 3, pos0 = 5;
  const std::vector<int32_t> pos = {5, 6, 7, 8};
  const auto wa = randn(Hs * C, 1, 0.3f), wb = randn(Hs * C, 2, 0.3f);
  const auto ba = randn(Hs, 3, 0.3f), bb = randn(Hs, 4, 0.3f);
  const auto proj_a = randn(R * Hs, 5, 0.5f), proj_b = randn(R * Hs, 6, 0.5f);
  for (const std::string& name : all_length_scale_names()) {
    CAPTURE(name);
    const LengthScale kind = length_scale_from_name(name);
    const bool adapt = kind == LengthScale::kAdaptSoftplusTanh;
    QueryScaleWeights w;
    if (adapt)
      w = {wa.data(), wb.data(), ba.data(), bb.data()};
    else
      w.a = ba.data(), w.b = kind == LengthScale::kLearn ? bb.data() : nullptr;
    // With ga, gb (training) and without (inference): the same scale.
    std::vector<float> ga(R * Hs, -1.f), gb(R * Hs, -1.f);
    auto run = [&](const int32_t* p, std::vector<float>& sa, std::vector<float>& sb, bool grads) {
      sa = proj_a, sb = proj_b;
      std::vector<float> scale(R * H, -1.f);
      query_scale_forward(kind, w, R, H, Hs, p, pos0, sa.data(), sb.data(), scale.data(),
                          grads ? ga.data() : nullptr, grads ? gb.data() : nullptr);
      return scale;
    };
    std::vector<float> sa, sb, sa2, sb2;
    const auto scale = run(pos.data(), sa, sb, false);
    CHECK(run(nullptr, sa2, sb2, false) == scale);  // pos[r] = pos0 + r
    CHECK(run(pos.data(), sa2, sb2, true) == scale);
    for (int64_t r = 0; r < R; ++r) {
      for (int64_t h = 0; h < H; ++h) {
        const int64_t hs = h - (H - Hs);
        if (hs < 0 || kind == LengthScale::kNone) {
          CHECK(scale[r * H + h] == 1.f);
          continue;
        }
        const float a = adapt ? proj_a[r * Hs + hs] + ba[hs] : ba[hs];
        const float b = adapt ? proj_b[r * Hs + hs] + bb[hs] : (w.b ? bb[hs] : 0.f);
        CHECK(sa[r * Hs + hs] == a);
        CHECK(sb[r * Hs + hs] == b);
        CHECK(scale[r * H + h] == length_scale(kind, pos0 + r, a, b));
        float want_a = -1.f, want_b = -1.f;  // the plain twin's bits
        length_scale_grad(kind, pos0 + r, a, b, {}, &want_a, &want_b);
        CHECK(ga[r * Hs + hs] == want_a);
        CHECK(gb[r * Hs + hs] == want_b);
      }
    }
    // da, db against finite differences of L = Σ g · scale in a and b.
    const auto g = randn(R * H, 9);
    std::vector<float> da(R * Hs), db(R * Hs);
    query_scale_backward(R, H, Hs, ga.data(), gb.data(), g.data(), da.data(), db.data());
    const float e = 1e-2f;
    for (int64_t r = 0; r < R; ++r) {
      for (int64_t hs = 0; hs < Hs; ++hs) {
        const float a = sa[r * Hs + hs], b = sb[r * Hs + hs], gg = g[r * H + H - Hs + hs];
        const double na = gg *
                          (double(length_scale(kind, pos0 + r, a + e, b)) -
                           length_scale(kind, pos0 + r, a - e, b)) /
                          (2 * e);
        const double nb = gg *
                          (double(length_scale(kind, pos0 + r, a, b + e)) -
                           length_scale(kind, pos0 + r, a, b - e)) /
                          (2 * e);
        CHECK(da[r * Hs + hs] == doctest::Approx(na).epsilon(2e-3).scale(1e-3));
        CHECK(db[r * Hs + hs] == doctest::Approx(nb).epsilon(2e-3).scale(1e-3));
      }
    }
  }
}

}  // namespace lb
