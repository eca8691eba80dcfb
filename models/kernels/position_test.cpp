// Position encodings: slopes and signs of ALiBi/NAPE, the heads that get length scaling, RoPE
// relative-position property and its backward, registry errors.
#include "models/kernels/position.h"

#include <doctest/doctest.h>

#include <cmath>

#include "core/check.h"
#include "core/rng.h"

namespace lb {

TEST_CASE("position: NAPE slopes are 1, 1/2, 1/3, ... on the first half, 0 after") {
  const auto s = nape_slopes(8);
  const std::vector<float> want = {1.0f, 0.5f, 1.0f / 3, 0.25f, 0, 0, 0, 0};
  REQUIRE(s.size() == want.size());
  for (size_t h = 0; h < s.size(); ++h) CHECK(s[h] == doctest::Approx(want[h]));
  CHECK(nape_slopes(16)[7] == doctest::Approx(1.0 / 8));
  CHECK(nape_slopes(16)[8] == 0.0f);
  CHECK(nape_slopes(8, true)[3] == doctest::Approx(0.125));
  CHECK(nape_slopes(1)[0] == 0.0f);  // one head: it is the NoPE head
  CHECK(position_slopes(PosEncoding::kNape, 4) == nape_slopes(4));
  CHECK(position_slopes(PosEncoding::kRope, 4) == std::vector<float>(4, 0.0f));
  CHECK(position_slopes(PosEncoding::kNope, 4) == std::vector<float>(4, 0.0f));
}

TEST_CASE("position: ALiBi slopes are geometric") {
  const auto s = alibi_slopes(8);
  for (int h = 0; h < 8; ++h) CHECK(s[h] == doctest::Approx(std::pow(2.0, -(h + 1))));
  const auto s16 = alibi_slopes(16);
  CHECK(s16[0] == doctest::Approx(std::pow(2.0, -0.5)));
  for (int h = 1; h < 16; ++h) CHECK(s16[h] / s16[h - 1] == doctest::Approx(s16[1] / s16[0]));
  const auto s6 = alibi_slopes(6);  // 4 from the power of two, then 2^(−1), 2^(−3)... of the 8-sequence
  REQUIRE(s6.size() == 6);
  CHECK(s6[0] == doctest::Approx(0.25));
  CHECK(s6[4] == doctest::Approx(std::pow(2.0, -1.0)));
  CHECK(s6[5] == doctest::Approx(std::pow(2.0, -3.0)));
}

TEST_CASE("position: the bias is m (j − i) <= 0 under the causal mask") {
  CHECK(position_bias(0.5f, 10, 10) == 0.0f);
  CHECK(position_bias(0.5f, 10, 4) == -3.0f);
  for (int j = 0; j <= 4; ++j)
    CHECK(position_bias(1.0f / 3, 4, j) == doctest::Approx((j - 4) / 3.0));
  for (int j = 0; j < 4; ++j) {  // nearer keys score higher
    CHECK(position_bias(1.0f / 3, 4, j) < position_bias(1.0f / 3, 4, j + 1));
  }
}

TEST_CASE("position: only NAPE's NoPE heads are length-scaled") {
  for (int h = 0; h < 8; ++h) {
    CHECK(is_length_scaled_head(PosEncoding::kNape, h, 8) == (h >= 4));
    CHECK(is_length_scaled_head(PosEncoding::kNope, h, 8));
    CHECK(is_length_scaled_head(PosEncoding::kRope, h, 8));
    CHECK(is_length_scaled_head(PosEncoding::kAlibi, h, 8));
    CHECK((nape_slopes(8)[h] == 0.0f) == is_length_scaled_head(PosEncoding::kNape, h, 8));
  }
  CHECK(num_length_scaled_heads(PosEncoding::kNape, 7) == 4);
  CHECK(num_length_scaled_heads(PosEncoding::kAlibi, 7) == 7);
}

TEST_CASE("position: RoPE makes q·k depend only on i − j, and backward is the transpose") {
  const int d = 16;
  const RopeTable t = make_rope_table(64, d, 10000.0);
  Rng rng(11);
  std::vector<float> q(d), k(d);
  for (auto& v : q) v = static_cast<float>(rng.normal());
  for (auto& v : k) v = static_cast<float>(rng.normal());
  auto dot_at = [&](int64_t i, int64_t j) {
    std::vector<float> qr(d), kr(d);
    rope_forward(t, q.data(), 1, d, i, qr.data());
    rope_forward(t, k.data(), 1, d, j, kr.data());
    double s = 0.0;
    for (int c = 0; c < d; ++c) s += static_cast<double>(qr[c]) * kr[c];
    return s;
  };
  for (int64_t delta : {0, 1, 5, 17}) {
    const double ref = dot_at(delta, 0);
    for (int64_t j : {3, 20, 40}) CHECK(dot_at(j + delta, j) == doctest::Approx(ref).epsilon(1e-5));
  }
  CHECK(dot_at(5, 0) != doctest::Approx(dot_at(6, 0)));
  // Rotate-half layout at position 1: pair (x_0, x_{d/2}) turns by angle 1 (θ^0).
  std::vector<float> e(d, 0.0f), y(d);
  e[0] = 1.0f;
  rope_forward(t, e.data(), 1, d, 1, y.data());
  CHECK(y[0] == doctest::Approx(std::cos(1.0)));
  CHECK(y[d / 2] == doctest::Approx(std::sin(1.0)));
  // Backward: <rope(x), dy> == <x, rope_backward(dy)> over several rows with a stride.
  const int64_t T = 3, stride = 2 * d;
  std::vector<float> x(T * stride), dy(T * stride), yx(T * stride, 0.0f), dx(T * stride, 0.0f);
  for (auto& v : x) v = static_cast<float>(rng.normal());
  for (auto& v : dy) v = static_cast<float>(rng.normal());
  rope_forward(t, x.data(), T, stride, 7, yx.data());
  rope_backward(t, dy.data(), T, stride, 7, dx.data());
  double a = 0.0, b = 0.0;
  for (int64_t r = 0; r < T; ++r) {
    for (int c = 0; c < d; ++c) {
      a += static_cast<double>(yx[r * stride + c]) * dy[r * stride + c];
      b += static_cast<double>(x[r * stride + c]) * dx[r * stride + c];
    }
  }
  CHECK(a == doctest::Approx(b).epsilon(1e-5));
  // In place, then back: the identity.
  std::vector<float> w = x;
  rope_forward(t, w.data(), T, stride, 7, w.data());
  rope_backward(t, w.data(), T, stride, 7, w.data());
  for (int64_t r = 0; r < T; ++r) {
    for (int c = 0; c < d; ++c) CHECK(w[r * stride + c] == doctest::Approx(x[r * stride + c]).epsilon(1e-5));
  }
}

TEST_CASE("position: registry names and errors") {
  for (const auto& name : all_position_encoding_names()) {
    CHECK(position_encoding_name(position_encoding_from_name(name)) == name);
  }
  std::string msg;
  try {
    position_encoding_from_name("alibu");
  } catch (const UsageError& e) {
    msg = e.what();
  }
  CHECK(msg.find("did you mean 'alibi'") != std::string::npos);
  CHECK_THROWS_AS(make_rope_table(8, 7), UsageError);
}

}  // namespace lb

namespace lb {

TEST_CASE("position: every encoding's heads are named by what they do (rope, alibi, nope)") {
  const int H = 4;
  const std::vector<std::vector<std::string>> want = {
      {"nope", "nope", "nope", "nope"},
      {"rope", "rope", "rope", "rope"},
      {"alibi", "alibi", "alibi", "alibi"},
      {"alibi", "alibi", "nope", "nope"},
  };
  const auto& names = all_position_encoding_names();
  REQUIRE(names.size() == want.size());
  for (size_t e = 0; e < names.size(); ++e) {
    CAPTURE(names[e]);
    const PosEncoding pe = position_encoding_from_name(names[e]);
    CHECK(position_encoding_rotates(pe) == (names[e] == "rope"));
    for (int h = 0; h < H; ++h) CHECK(std::string(position_head_kind(pe, h, H)) == want[e][h]);
  }
}

}  // namespace lb
