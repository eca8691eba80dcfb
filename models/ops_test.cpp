// The model's kernels against their double twins (ref_ops.h), the twins against finite
// differences, and the gradient contract (parameter grads +=, activation grads =).
#include "models/ops.h"

#include <doctest/doctest.h>

#include <cstring>
#include <iterator>
#include <nlohmann/json.hpp>

#include "models/attention.h"
#include "models/dnnl_util.h"
#include "models/ref_ops.h"
#include "models/testing.h"

namespace lb {
namespace {

using testing::check_close;
using testing::random_vec;
using testing::to_double;

TEST_CASE("rmsnorm: forward and backward match the twin; dw accumulates") {
  const int64_t R = 37, C = 24;
  auto x = random_vec(R * C, 1), w = random_vec(C, 2, 0.3), dy = random_vec(R * C, 3);
  std::vector<float> y(R * C), rstd(R), dx(R * C, 7.f), dw(C, 0.f);
  rmsnorm_forward(x.data(), w.data(), y.data(), rstd.data(), R, C);
  rmsnorm_backward(x.data(), w.data(), rstd.data(), dy.data(), dx.data(), dw.data(), R, C);
  ref::Vec ry, rrstd, rdx, rdw(C, 0.0);
  ref::rmsnorm_forward(to_double(x), to_double(w), ry, rrstd, R, C);
  ref::rmsnorm_backward(to_double(x), to_double(w), rrstd, to_double(dy), rdx, rdw, R, C);
  check_close(y, ry, 1e-5, 1e-5, "y");
  check_close(dx, rdx, 1e-5, 1e-4, "dx");
  check_close(dw, rdw, 1e-4, 1e-4, "dw");
  // Second backward: dx overwritten (same), dw doubled.
  rmsnorm_backward(x.data(), w.data(), rstd.data(), dy.data(), dx.data(), dw.data(), R, C);
  for (auto& v : rdw) v *= 2;
  check_close(dx, rdx, 1e-5, 1e-4, "dx again");
  check_close(dw, rdw, 1e-4, 1e-4, "dw doubled");
}

TEST_CASE("rmsnorm: the twin's backward matches central differences") {
  const int64_t R = 3, C = 5;
  auto x = to_double(random_vec(R * C, 4)), w = to_double(random_vec(C, 5, 0.3));
  auto dy = to_double(random_vec(R * C, 6));
  auto loss = [&](const ref::Vec& xx, const ref::Vec& ww) {
    ref::Vec y, rstd;
    ref::rmsnorm_forward(xx, ww, y, rstd, R, C);
    double s = 0;
    for (size_t i = 0; i < y.size(); ++i) s += y[i] * dy[i];
    return s;
  };
  ref::Vec y, rstd, dx, dw(C, 0.0);
  ref::rmsnorm_forward(x, w, y, rstd, R, C);
  ref::rmsnorm_backward(x, w, rstd, dy, dx, dw, R, C);
  const double h = 1e-6;
  for (size_t i = 0; i < x.size(); ++i) {
    auto xp = x, xm = x;
    xp[i] += h, xm[i] -= h;
    CHECK(dx[i] == doctest::Approx((loss(xp, w) - loss(xm, w)) / (2 * h)).epsilon(1e-6));
  }
  for (size_t c = 0; c < w.size(); ++c) {
    auto wp = w, wm = w;
    wp[c] += h, wm[c] -= h;
    CHECK(dw[c] == doctest::Approx((loss(x, wp) - loss(x, wm)) / (2 * h)).epsilon(1e-6));
  }
}

TEST_CASE("embedding: scaled lookup; backward accumulates and skips the frozen id") {
  const int64_t V = 6, C = 4, R = 5;
  auto table = random_vec(V * C, 7);
  std::vector<int32_t> ids = {1, 0, 3, 1, 5};
  std::vector<float> y(R * C), dtable(V * C, 0.f);
  embedding_forward(ids.data(), table.data(), y.data(), R, C, 2.f);
  for (int64_t r = 0; r < R; ++r) {
    for (int64_t c = 0; c < C; ++c) CHECK(y[r * C + c] == table[ids[r] * C + c] * 2.f);
  }
  auto dy = random_vec(R * C, 8);
  embedding_backward(ids.data(), dy.data(), dtable.data(), R, C, 2.f, 0);
  for (int64_t c = 0; c < C; ++c) {
    CHECK(dtable[0 * C + c] == 0.f);
    CHECK(dtable[1 * C + c] == doctest::Approx(2.f * (dy[0 * C + c] + dy[3 * C + c])));
    CHECK(dtable[2 * C + c] == 0.f);
    CHECK(dtable[5 * C + c] == doctest::Approx(2.f * dy[4 * C + c]));
  }
}

TEST_CASE("cross_entropy: loss and gradient match the twin, masked rows get 0") {
  const int64_t R = 9, V = 7;
  auto logits = random_vec(R * V, 9, 3.0);
  std::vector<int32_t> target = {0, 1, 2, 3, 4, 5, 6, -1, 2};
  std::vector<uint8_t> mask = {1, 0, 1, 1, 1, 0, 1, 0, 1};
  std::vector<float> d(R * V, 5.f);
  const double loss =
      cross_entropy_forward_backward(logits.data(), target.data(), mask.data(), d.data(), R, V, 6);
  ref::Vec rd;
  const double rloss = ref::cross_entropy(to_double(logits), target, mask, rd, R, V, 6);
  CHECK(loss == doctest::Approx(rloss).epsilon(1e-6));
  check_close(d, rd, 1e-7, 1e-5, "dlogits");
}

TEST_CASE("gelu_tanh: oneDNN eltwise matches the twin, forward and backward") {
  const int64_t n = 1000;
  auto x = random_vec(n, 10, 3.0), dy = random_vec(n, 11);
  std::vector<float> y(n), dx(n);
  gelu_tanh_forward(x.data(), y.data(), n);
  gelu_tanh_backward(x.data(), dy.data(), dx.data(), n);
  std::vector<double> ry(n), rdx(n);
  for (int64_t i = 0; i < n; ++i) {
    ry[i] = ref::gelu_tanh(x[i]);
    rdx[i] = ref::gelu_tanh_grad(x[i]) * dy[i];
  }
  check_close(y, ry, 1e-6, 1e-5, "gelu");
  check_close(dx, rdx, 1e-6, 1e-5, "gelu backward");
}

TEST_CASE("linear: oneDNN products match loops; dW accumulates, dx overwrites") {
  const int64_t R = 13, in = 7, out = 5;
  auto x = random_vec(R * in, 12), w = random_vec(out * in, 13), dy = random_vec(R * out, 14);
  std::vector<float> y(R * out), dx(R * in, 3.f), dw(out * in, 0.f);
  linear_forward(x.data(), w.data(), y.data(), R, in, out);
  linear_backward(x.data(), w.data(), dy.data(), dx.data(), dw.data(), R, in, out);
  linear_backward(x.data(), w.data(), dy.data(), dx.data(), dw.data(), R, in, out);
  std::vector<double> ry(R * out, 0), rdx(R * in, 0), rdw(out * in, 0);
  for (int64_t r = 0; r < R; ++r) {
    for (int64_t o = 0; o < out; ++o) {
      for (int64_t i = 0; i < in; ++i) {
        ry[r * out + o] += double(x[r * in + i]) * w[o * in + i];
        rdx[r * in + i] += double(dy[r * out + o]) * w[o * in + i];
        rdw[o * in + i] += 2.0 * dy[r * out + o] * x[r * in + i];
      }
    }
  }
  check_close(y, ry, 1e-5, 1e-5, "y");
  check_close(dx, rdx, 1e-5, 1e-5, "dx");
  check_close(dw, rdw, 1e-5, 1e-5, "dw (twice)");
}

TEST_CASE("fp32_to_bf16: the vectorised conversion gives the twin's bits, ties to even") {
  auto x = random_vec(100003, 31, 3.0);
  // Exact ties (low half 0x8000) with even and odd upper halves, and values that round up into
  // the next binade.
  const uint32_t specials[] = {0x3F808000u, 0x3F818000u, 0xBF808000u, 0x3FFFFFFFu, 0x7F7FFFFFu,
                               0x00000001u, 0x80000000u};
  for (size_t i = 0; i < std::size(specials); ++i) std::memcpy(&x[i * 7], &specials[i], 4);
  for (int64_t n : {0, 1, 15, 16, 17, 31, 32, 33, 16384, 16385, 100003}) {
    std::vector<uint16_t> fast(n + 1, 0xABCD), ref(n + 1, 0xABCD);
    fp32_to_bf16(x.data(), n, fast.data());
    fp32_to_bf16_ref(x.data(), n, ref.data());
    CHECK_MESSAGE(fast == ref, "n = " << n);  // the element past n is untouched in both
  }
  uint16_t tie_even, tie_odd;
  fp32_to_bf16_ref(reinterpret_cast<const float*>(&specials[0]), 1, &tie_even);
  fp32_to_bf16_ref(reinterpret_cast<const float*>(&specials[1]), 1, &tie_odd);
  CHECK(tie_even == 0x3F80);  // 0x3F80'8000 -> stays even
  CHECK(tie_odd == 0x3F82);   // 0x3F81'8000 -> rounds up to even
}

TEST_CASE("fp32_to_bf16_padded: the conversion, then zeros over stale values, on 1-3 threads") {
  auto x = random_vec(70000, 5, 2.0);
  for (int threads : {1, 2, 3}) {
    set_num_threads(threads);
    for (auto [n, total] : {std::pair<int64_t, int64_t>{0, 5},
                            {17, 17},
                            {17, 40000},
                            {16384, 16385},
                            {40000, 65536},
                            {70000, 70001}}) {
      std::vector<uint16_t> got(total + 1, 0xABCD), want(total + 1, 0);
      fp32_to_bf16_ref(x.data(), n, want.data());
      want[total] = 0xABCD;  // past total: untouched
      fp32_to_bf16_padded(x.data(), n, total, got.data());
      CHECK_MESSAGE(got == want, "n = " << n << ", total = " << total << ", threads " << threads);
    }
  }
  set_num_threads(1);
}

// bf16 linear products (row blocks with a padded last block at >= 1,024 rows, one runtime-shape
// product below) against the exact product of the bf16-rounded inputs.
TEST_CASE("linear in bf16: row blocks and the padded tail equal the exact bf16 product") {
  const int64_t in = 40, out = 24;
  auto round = [](const std::vector<float>& v) {
    std::vector<uint16_t> h(v.size());
    fp32_to_bf16_ref(v.data(), static_cast<int64_t>(v.size()), h.data());
    std::vector<double> d(v.size());
    for (size_t i = 0; i < v.size(); ++i) {
      const uint32_t u = static_cast<uint32_t>(h[i]) << 16;
      float f;
      std::memcpy(&f, &u, 4);
      d[i] = f;
    }
    return d;
  };
  set_matmul_bf16(true);
  for (int64_t R : {5, 1023, 1024, 1025, 2100}) {
    CAPTURE(R);
    auto x = random_vec(R * in, 40 + R), w = random_vec(out * in, 41), dy = random_vec(R * out, 42);
    std::vector<float> y(R * out, 7.f), dx(R * in, 3.f), dw(out * in, 0.5f);
    linear_forward(x.data(), w.data(), y.data(), R, in, out);
    linear_backward(x.data(), w.data(), dy.data(), dx.data(), dw.data(), R, in, out,
                    /*accumulate_dx=*/true);
    const auto bx = round(x), bw = round(w), bdy = round(dy);
    std::vector<double> ry(R * out, 0), rdx(R * in, 3.0), rdw(out * in, 0.5);
    for (int64_t r = 0; r < R; ++r) {
      for (int64_t o = 0; o < out; ++o) {
        for (int64_t i = 0; i < in; ++i) {
          ry[r * out + o] += bx[r * in + i] * bw[o * in + i];
          rdx[r * in + i] += bdy[r * out + o] * bw[o * in + i];
          rdw[o * in + i] += bdy[r * out + o] * bx[r * in + i];
        }
      }
    }
    // fp32 accumulation of up to R terms of size ~1: absolute error ~ 1e-6 · √R.
    check_close(y, ry, 1e-5, 1e-5, "y");
    check_close(dx, rdx, 1e-5, 1e-5, "dx (accumulated onto 3)");
    check_close(dw, rdw, 1e-4, 1e-5, "dw (accumulated onto 0.5)");
    // The weight-gradient shape without accumulation: C = dyᵀ x overwrites.
    std::vector<float> c(out * in, 9.f);
    matmul(true, false, 1, out, in, R, dy.data(), x.data(), c.data(), false);
    for (auto& v : rdw) v -= 0.5;
    check_close(c, rdw, 1e-4, 1e-5, "dyᵀ x (overwritten)");
  }
  set_matmul_bf16(false);
}

// Every normalizer in the registry: fast attention against the twin on a ragged packed batch.
TEST_CASE("attention: forward and backward match the twin for every normalizer") {
  const int64_t H = 3, D = 4;
  const std::vector<int64_t> offsets = {0, 5, 6, 17};
  const int64_t N = offsets.back(), HD = H * D;
  auto q = random_vec(N * HD, 20), k = random_vec(N * HD, 21), v = random_vec(N * HD, 22);
  auto scale = random_vec(N * H, 23, 0.2), datt = random_vec(N * HD, 24);
  for (auto& s : scale) s += 1.f;
  const std::vector<float> slopes = {0.5f, 0.25f, 0.f};
  std::vector<std::pair<std::string, KeyValues>> variants;
  for (const auto& name : all_normalizer_names()) variants.push_back({name, {}});
  // The named options of issue 11 (the earlier behaviours) and the released div-2 rule.
  variants.push_back({"topk", {{"k", "2"}, {"rule", "div-2"}}});
  variants.push_back({"topk", {{"k", "2"}, {"rule", "div-2-row"}}});
  variants.push_back({"stickbreaking", {{"bias", "alibi"}}});
  variants.push_back({"adaptive_temperature", {{"poly", "descending"}}});
  for (const auto& [name, params] : variants) {
    const NormalizerSpec spec = normalizer_from_name(name, params);
    CAPTURE(to_json(spec).dump());
    std::vector<float> probs(attention_prob_offsets(offsets, H).back()), att(N * HD);
    std::vector<float> dq(N * HD), dk(N * HD), dv(N * HD), dscale(N * H);
    attention_forward(spec, {H, D}, offsets, q.data(), k.data(), v.data(), scale.data(),
                      slopes.data(), probs.data(), att.data());
    attention_backward(spec, {H, D}, offsets, q.data(), k.data(), v.data(), scale.data(),
                       slopes.data(), probs.data(), datt.data(), dq.data(), dk.data(), dv.data(),
                       dscale.data());
    std::vector<ref::Vec> rprobs;
    ref::Vec ratt, rdq, rdk, rdv, rdscale;
    ref::attention_forward(spec, H, D, offsets, to_double(q), to_double(k), to_double(v),
                           to_double(scale), to_double(slopes), rprobs, ratt);
    ref::attention_backward(spec, H, D, offsets, to_double(q), to_double(k), to_double(v),
                            to_double(scale), to_double(slopes), rprobs, to_double(datt), rdq,
                            rdk, rdv, rdscale);
    check_close(att, ratt, 2e-5, 1e-4, "att");
    check_close(dq, rdq, 2e-5, 1e-3, "dq");
    check_close(dk, rdk, 2e-5, 1e-3, "dk");
    check_close(dv, rdv, 2e-5, 1e-4, "dv");
    check_close(dscale, rdscale, 2e-5, 1e-3, "dscale");
  }
}

// Issue 11: the released code (deep-spin/asentmax) adds no ALiBi/NAPE slope to stick-breaking's
// scores, and its top-k div-2 rule takes K = max(k, T / 2) from the call's T keys for every row.
TEST_CASE("attention: stickbreaking takes no slope; topk div-2 counts the sample's keys") {
  const int64_t H = 3, D = 4, T = 17;
  const std::vector<int64_t> offsets = {0, T};
  const int64_t HD = H * D;
  auto q = random_vec(T * HD, 30, 2.0), k = random_vec(T * HD, 31, 2.0), v = random_vec(T * HD, 32);
  const std::vector<float> scale(T * H, 1.f), slopes = {0.5f, 0.25f, 0.125f}, flat(H, 0.f);
  const int64_t np = attention_prob_offsets(offsets, H).back();
  auto run = [&](const NormalizerSpec& spec, const std::vector<float>& m,
                 std::vector<float>& probs) {
    std::vector<float> att(T * HD);
    probs.assign(np, 0.f);
    attention_forward(spec, {H, D}, offsets, q.data(), k.data(), v.data(), scale.data(), m.data(),
                      probs.data(), att.data());
    return att;
  };
  std::vector<float> p1, p2;
  const auto sb = normalizer_from_name("stickbreaking");
  CHECK(run(sb, slopes, p1) == run(sb, flat, p2));
  const auto sb_alibi = normalizer_from_name("stickbreaking", {{"bias", "alibi"}});
  CHECK(run(sb_alibi, slopes, p1) != run(sb_alibi, flat, p2));
  CHECK(run(normalizer_from_name("softmax"), slopes, p1) !=
        run(normalizer_from_name("softmax"), flat, p2));
  for (const char* rule : {"div-2", "div-2-row"}) {
    CAPTURE(rule);
    run(normalizer_from_name("topk", {{"k", "1"}, {"rule", rule}}), slopes, p1);
    for (int64_t h = 0; h < H; ++h) {
      for (int64_t i = 0; i < T; ++i) {
        int64_t support = 0;
        for (int64_t j = 0; j < T; ++j) support += p1[(h * T + i) * T + j] > 0.f ? 1 : 0;
        const int64_t K = std::string(rule) == "div-2" ? T / 2 : std::max<int64_t>(1, (i + 1) / 2);
        CHECK(support == std::min(i + 1, K));
      }
    }
  }
}

}  // namespace
}  // namespace lb
