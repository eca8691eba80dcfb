// The fused short-row attention kernel against its plain twin (the oneDNN path of
// models/attention.cpp): forward weights and outputs and every gradient, for every normalizer ×
// position encoding, head dims 16 / 32 / 48 / 64 and lengths that are not multiples of 16, in
// both the AVX-512 and the baseline-ISA builds.
#include "models/kernels/fused_attention.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "models/attention.h"
#include "models/dnnl_util.h"
#include "models/kernels/position.h"
#include "models/testing.h"

namespace lb {
namespace {

using testing::check_close;
using testing::random_vec;

struct Outputs {
  std::vector<float> probs, att, dq, dk, dv, dscale;
};

struct Problem {
  int64_t H, D;
  std::vector<int64_t> offsets;
  std::vector<float> q, k, v, scale, datt, slopes;
};

Problem make_problem(int64_t H, int64_t D, const std::vector<int64_t>& lengths, PosEncoding pe,
                     uint64_t seed) {
  Problem p{H, D, {0}, {}, {}, {}, {}, {}, {}};
  for (int64_t T : lengths) p.offsets.push_back(p.offsets.back() + T);
  const int64_t N = p.offsets.back();
  p.q = random_vec(N * H * D, seed, 1.0);
  p.k = random_vec(N * H * D, seed + 1, 1.0);
  p.v = random_vec(N * H * D, seed + 2, 1.0);
  p.datt = random_vec(N * H * D, seed + 3, 1.0);
  p.scale = random_vec(N * H, seed + 4, 0.3);
  for (float& s : p.scale) s = 1.f + std::abs(s) * 2.f;  // query scales in [1, ~3]
  p.slopes = position_slopes(pe, static_cast<int>(H));
  return p;
}

Outputs run(const NormalizerSpec& spec, const Problem& p) {
  const int64_t N = p.offsets.back(), HD = p.H * p.D;
  Outputs o;
  o.probs.resize(attention_prob_offsets(p.offsets, p.H).back());
  o.att.resize(N * HD), o.dq.resize(N * HD), o.dk.resize(N * HD), o.dv.resize(N * HD);
  o.dscale.resize(N * p.H);
  attention_forward(spec, {p.H, p.D}, p.offsets, p.q.data(), p.k.data(), p.v.data(), p.scale.data(),
                    p.slopes.data(), o.probs.data(), o.att.data());
  attention_backward(spec, {p.H, p.D}, p.offsets, p.q.data(), p.k.data(), p.v.data(),
                     p.scale.data(), p.slopes.data(), o.probs.data(), p.datt.data(), o.dq.data(),
                     o.dk.data(), o.dv.data(), o.dscale.data());
  return o;
}

void check_outputs(const Outputs& a, const Outputs& b) {
  check_close(a.probs, b.probs, 2e-6, 2e-4, "probs");
  check_close(a.att, b.att, 2e-5, 2e-4, "att");
  check_close(a.dq, b.dq, 5e-5, 5e-4, "dq");
  check_close(a.dk, b.dk, 5e-5, 5e-4, "dk");
  check_close(a.dv, b.dv, 5e-5, 5e-4, "dv");
  check_close(a.dscale, b.dscale, 5e-5, 5e-4, "dscale");
}

TEST_CASE("fused attention: matches the plain path, every normalizer x position x head dim") {
  set_num_threads(2);
  // Lengths: 1, non-multiples of 16, an exact multiple, and the longest that fits; together every
  // remainder mod 4 (the kernel's row and column blocks) and the small-model regime's ~34.
  const std::vector<int64_t> lengths = {1, 7, 16, 34, 37, 100};
  for (const auto& norm_name : all_normalizer_names()) {
    for (const auto& pos_name : all_position_encoding_names()) {
      const NormalizerSpec spec = normalizer_from_name(norm_name);
      const PosEncoding pe = position_encoding_from_name(pos_name);
      for (const int64_t D : {16, 32, 48, 64}) {
        const int64_t H = D == 16 ? 4 : 2;
        const Problem p = make_problem(H, D, lengths, pe, 11 + D);
        set_fused_attention(false);
        const Outputs plain = run(spec, p);
        set_fused_attention(true);
        const Outputs fused = run(spec, p);
        set_fused_attention_portable(true);
        const Outputs portable = run(spec, p);
        set_fused_attention_portable(false);
        CAPTURE(norm_name);
        CAPTURE(pos_name);
        CAPTURE(D);
        check_outputs(fused, plain);
        check_outputs(portable, plain);
      }
    }
  }
}

TEST_CASE("fused attention: rows up to the limit, sparse top-k and the div-2 rule") {
  set_num_threads(1);
  const Problem p = make_problem(2, 16, {kFusedMaxT, 129}, PosEncoding::kNape, 5);
  for (const auto& spec : {normalizer_from_name("softmax"), normalizer_from_name("entmax"),
                           normalizer_from_name("topk", {{"k", "5"}}),
                           normalizer_from_name("topk", {{"k", "4"}, {"rule", "div-2"}})}) {
    set_fused_attention(false);
    const Outputs plain = run(spec, p);
    set_fused_attention(true);
    const Outputs fused = run(spec, p);
    CAPTURE(normalizer_name(spec));
    check_outputs(fused, plain);
  }
}

TEST_CASE("fused attention: same bits on any thread count; shapes that do not fit") {
  const Problem p = make_problem(4, 16, {9, 33, 17, 64, 2}, PosEncoding::kAlibi, 8);
  const NormalizerSpec spec = normalizer_from_name("asentmax");
  set_num_threads(1);
  const Outputs one = run(spec, p);
  set_num_threads(2);
  const Outputs two = run(spec, p);
  CHECK(one.att == two.att);
  CHECK(one.dq == two.dq);
  CHECK(one.dk == two.dk);
  CHECK(one.dv == two.dv);
  CHECK(one.dscale == two.dscale);
  CHECK(fused_attention_fits(kFusedMaxT, 16));
  CHECK(fused_attention_fits(1, 64));
  CHECK_FALSE(fused_attention_fits(kFusedMaxT + 1, 16));
  CHECK_FALSE(fused_attention_fits(10, 24));  // not a multiple of 16: plain path
  CHECK_FALSE(fused_attention_fits(10, 8));
  CHECK_FALSE(fused_attention_fits(10, 128));
}

}  // namespace
}  // namespace lb
