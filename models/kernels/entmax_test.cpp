// Softmax and α-entmax kernels: fast paths against the double twins, twins against finite
// differences, and the properties of issue 3 (sums, exact zeros, limits, bracket, extremes).
#include <doctest/doctest.h>

#include <limits>

#include "models/kernels/kernel_testing.h"

namespace lb {
namespace {

using testing::max_abs_diff;
using testing::random_row;
using testing::to_double;

ref::Vec gradient_of_twin(const std::function<ref::Vec(const ref::Vec&)>& fwd, const ref::Vec& z,
                          const ref::Vec& g) {
  return ref::numeric_grad(
      [&](const ref::Vec& zz) {
        const ref::Vec p = fwd(zz);
        double l = 0.0;
        for (size_t i = 0; i < p.size(); ++i) l += g[i] * p[i];
        return l;
      },
      z);
}

double max_abs_diff_d(const ref::Vec& a, const ref::Vec& b) {
  double d = 0.0;
  for (size_t i = 0; i < a.size(); ++i) d = std::max(d, std::fabs(a[i] - b[i]));
  return d;
}

}  // namespace

TEST_CASE("softmax: fast exp kernel matches the plain twin and the double twin") {
  Rng rng(1);
  for (int64_t n : {1, 5, 16, 17, 513, 4096}) {
    for (double sigma : {0.1, 3.0, 30.0}) {
      const auto z = random_row(rng, n, sigma);
      std::vector<float> p(n), q(n);
      softmax_forward(z.data(), n, 1.0f, p.data());
      softmax_forward_plain(z.data(), n, 1.0f, q.data());
      const ref::Vec r = ref::softmax_forward(to_double(z));
      CHECK(max_abs_diff(p, r) < 1e-6);
      CHECK(max_abs_diff(q, r) < 1e-6);
      // Relative error: the polynomial's 2.5e-7 plus the fp32 rounding of the argument z − max.
      const float m = *std::max_element(z.begin(), z.end());
      for (size_t i = 0; i < r.size(); ++i) {
        const double tol = (4e-7 + 1.2e-7 * std::fabs(z[i] - m)) * r[i] + 1e-37;
        CHECK(std::fabs(p[i] - r[i]) <= tol);
      }
    }
  }
}

TEST_CASE("softmax: twin backward matches finite differences") {
  Rng rng(2);
  const ref::Vec z = to_double(random_row(rng, 11));
  const ref::Vec g = to_double(random_row(rng, 11));
  const ref::Vec p = ref::softmax_forward(z, 1.7);
  const ref::Vec num = gradient_of_twin([](const ref::Vec& x) { return ref::softmax_forward(x, 1.7); }, z, g);
  CHECK(max_abs_diff_d(ref::softmax_backward(p, g, 1.7), num) < 1e-7);
}

TEST_CASE("entmax: twins agree with each other and with finite differences") {
  Rng rng(3);
  for (int rep = 0; rep < 5; ++rep) {
    const ref::Vec z = to_double(random_row(rng, 13, 1.5));
    const ref::Vec g = to_double(random_row(rng, 13));
    double t_sort = 0.0, t_bis = 0.0;
    CHECK(max_abs_diff_d(ref::entmax15_forward(z, &t_sort), ref::entmax_bisect_forward(z, 1.5, &t_bis)) < 1e-12);
    CHECK(t_sort == doctest::Approx(t_bis).epsilon(1e-12));
    CHECK(max_abs_diff_d(ref::sparsemax_forward(z, &t_sort), ref::entmax_bisect_forward(z, 2.0, &t_bis)) < 1e-12);
    CHECK(t_sort == doctest::Approx(t_bis).epsilon(1e-12));
    for (double alpha : {1.25, 1.5, 2.0, 3.0}) {
      CAPTURE(alpha);
      const auto fwd = [alpha](const ref::Vec& x) { return ref::entmax_bisect_forward(x, alpha); };
      const ref::Vec p = fwd(z);
      CHECK(max_abs_diff_d(ref::entmax_backward(p, g, alpha), gradient_of_twin(fwd, z, g)) < 1e-6);
    }
  }
}

TEST_CASE("entmax: fast kernels match the twins for any alpha, with exact zeros") {
  Rng rng(4);
  for (float alpha : {1.1f, 1.25f, 1.5f, 1.75f, 2.0f, 3.0f, 4.0f}) {
    for (int64_t n : {1, 2, 3, 10, 64, 1000, 5000}) {
      for (double sigma : {0.3, 2.0, 20.0}) {
        CAPTURE(alpha);
        CAPTURE(n);
        CAPTURE(sigma);
        const auto z = random_row(rng, n, sigma);
        std::vector<float> p(n);
        const RowStats st = entmax_forward(z.data(), n, alpha, p.data());
        double tau_ref = 0.0;
        const ref::Vec r = alpha == 1.5f   ? ref::entmax15_forward(to_double(z), &tau_ref)
                           : alpha == 2.0f ? ref::sparsemax_forward(to_double(z), &tau_ref)
                                           : ref::entmax_bisect_forward(to_double(z), alpha, &tau_ref);
        // (Much larger α is ill-conditioned: p = d^(1/(α−1)) needs d below double resolution.)
        CHECK(max_abs_diff(p, r) < 1e-6);
        CHECK(std::fabs(testing::row_sum(p) - 1.0) < 1e-6);
        CHECK(st.has_tau);
        CHECK(st.tau == doctest::Approx(tau_ref).epsilon(1e-6).scale(1.0));
        // Exact zeros outside the support, positive inside (away from the threshold).
        int64_t mismatched = 0;
        for (int64_t i = 0; i < n; ++i) {
          if (r[i] == 0.0 && p[i] != 0.0f) ++mismatched;
          if (r[i] > 1e-6 && p[i] == 0.0f) ++mismatched;
        }
        CHECK(mismatched == 0);
        // τ lies in its bracket [max − 1, max − n^(1−α)] of the scaled scores.
        const double m = (alpha - 1.0) * *std::max_element(z.begin(), z.end());
        CHECK(st.tau >= m - 1.0 - 1e-5 * (1 + std::fabs(m)));
        CHECK(st.tau <= m - std::pow(static_cast<double>(n), 1.0 - alpha) + 1e-5 * (1 + std::fabs(m)));
      }
    }
  }
}

TEST_CASE("entmax: 1.5 fast path equals the root-finder, alpha = 2 equals sparsemax") {
  Rng rng(5);
  for (int64_t n : {1, 4, 100, 3000}) {
    const auto z = random_row(rng, n, 2.0);
    std::vector<float> fast(n), root(n), sp(n), root2(n);
    const RowStats a = entmax15_forward(z.data(), n, fast.data());
    const RowStats b = entmax_root_forward(z.data(), n, 1.5f, root.data());
    CHECK(max_abs_diff(fast, to_double(root)) < 1e-6);
    CHECK(a.tau == doctest::Approx(b.tau).epsilon(1e-6));
    CHECK(a.support == b.support);
    sparsemax_forward(z.data(), n, sp.data());
    entmax_root_forward(z.data(), n, 2.0f, root2.data());
    CHECK(max_abs_diff(sp, to_double(root2)) < 1e-6);
  }
}

TEST_CASE("entmax: alpha -> 1 approaches softmax") {
  Rng rng(6);
  const int64_t n = 50;
  const auto z = random_row(rng, n);
  const ref::Vec soft = ref::softmax_forward(to_double(z));
  double prev = 1.0;
  for (float alpha : {1.1f, 1.01f, 1.001f}) {
    std::vector<float> p(n);
    entmax_root_forward(z.data(), n, alpha, p.data());
    const double d = max_abs_diff(p, soft);
    CHECK(d < prev);
    prev = d;
  }
  CHECK(prev < 2e-3);
}

TEST_CASE("entmax: extremes — n = 1, ties, scores of ±1e4") {
  for (float alpha : {1.5f, 2.0f, 1.3f}) {
    CAPTURE(alpha);
    float one = 3.0f, p1 = 0.0f;
    entmax_forward(&one, 1, alpha, &p1);
    CHECK(p1 == 1.0f);
    const std::vector<float> tied(8, -2.5f);
    std::vector<float> p(8);
    RowStats st = entmax_forward(tied.data(), 8, alpha, p.data());
    for (float v : p) CHECK(v == doctest::Approx(0.125).epsilon(1e-6));
    CHECK(st.support == 8);
    const std::vector<float> two = {1.0f, 5.0f, -3.0f, 5.0f};
    std::vector<float> q(4);
    entmax_forward(two.data(), 4, alpha, q.data());
    CHECK(q[1] == doctest::Approx(0.5).epsilon(1e-6));
    CHECK(q[3] == doctest::Approx(0.5).epsilon(1e-6));
    CHECK(q[0] == 0.0f);
    CHECK(q[2] == 0.0f);
    const std::vector<float> big = {1e4f, -1e4f, 9999.5f, 1e4f - 0.25f, -1e4f, 0.0f};
    std::vector<float> b(big.size());
    st = entmax_forward(big.data(), 6, alpha, b.data());
    const ref::Vec r = ref::entmax_bisect_forward(to_double(big), alpha);
    CHECK(max_abs_diff(b, r) < 1e-6);
    for (float v : b) CHECK(std::isfinite(v));
    CHECK(std::isfinite(st.tau));
    std::vector<float> s(big.size());
    softmax_forward(big.data(), 6, 1.0f, s.data());
    CHECK(max_abs_diff(s, ref::softmax_forward(to_double(big))) < 1e-6);
  }
}

TEST_CASE("entmax: rows of 65,536") {
  Rng rng(8);
  const int64_t n = 65536;
  const auto z = random_row(rng, n, 1.0);
  for (float alpha : {1.5f, 2.0f}) {
    std::vector<float> p(n);
    entmax_forward(z.data(), n, alpha, p.data());
    const ref::Vec r = alpha == 1.5f ? ref::entmax15_forward(to_double(z)) : ref::sparsemax_forward(to_double(z));
    CHECK(max_abs_diff(p, r) < 1e-6);
    CHECK(std::fabs(testing::row_sum(p) - 1.0) < 1e-6);
  }
  // A flat row: a support of all 65,536 keys.
  std::vector<float> flat(n), p(n);
  for (int64_t i = 0; i < n; ++i) flat[i] = 1e-4f * static_cast<float>(rng.normal());
  entmax15_forward(flat.data(), n, p.data());
  CHECK(std::fabs(testing::row_sum(p) - 1.0) < 1e-6);
  CHECK(max_abs_diff(p, ref::entmax15_forward(to_double(flat))) < 1e-6);
  std::vector<float> s(n);
  softmax_forward(z.data(), n, 1.0f, s.data());
  CHECK(std::fabs(testing::row_sum(s) - 1.0) < 1e-6);
  CHECK(max_abs_diff(s, ref::softmax_forward(to_double(z))) < 1e-7);
}

TEST_CASE("entmax: fast backward matches the twin") {
  Rng rng(9);
  for (float alpha : {1.5f, 2.0f, 1.3f, 2.5f}) {
    CAPTURE(alpha);
    const int64_t n = 40;
    const auto z = random_row(rng, n, 2.0);
    const auto g = random_row(rng, n);
    std::vector<float> p(n), dz(n);
    entmax_forward(z.data(), n, alpha, p.data());
    entmax_backward(p.data(), g.data(), n, alpha, dz.data());
    const ref::Vec pr = ref::entmax_bisect_forward(to_double(z), alpha);
    CHECK(max_abs_diff(dz, ref::entmax_backward(pr, to_double(g), alpha)) < 1e-5);
    // dz may alias g.
    std::vector<float> g2 = g;
    entmax_backward(p.data(), g2.data(), n, alpha, g2.data());
    CHECK(max_abs_diff(g2, to_double(dz)) == 0.0);
  }
}

}  // namespace lb

namespace lb {

TEST_CASE("entmax: every length 1..200 (short-row and gathered paths) matches the twins") {
  for (bool portable : {false, true}) {
  CAPTURE(portable);
  force_portable_kernels(portable);
  Rng rng(12);
  for (int64_t n = 1; n <= 200; ++n) {
    CAPTURE(n);
    const auto z = random_row(rng, n, n % 3 == 0 ? 0.2 : 2.0);
    std::vector<float> p(n);
    entmax15_forward(z.data(), n, p.data());
    CHECK(max_abs_diff(p, ref::entmax15_forward(to_double(z))) < 1e-6);
    sparsemax_forward(z.data(), n, p.data());
    CHECK(max_abs_diff(p, ref::sparsemax_forward(to_double(z))) < 1e-6);
    softmax_forward(z.data(), n, 1.0f, p.data());
    CHECK(max_abs_diff(p, ref::softmax_forward(to_double(z))) < 1e-6);
  }
  }
  force_portable_kernels(false);
}

TEST_CASE("entmax: masked keys at -inf get exact zeros and do not disturb the rest") {
  const float inf = std::numeric_limits<float>::infinity();
  for (int64_t n : {5, 40, 300}) {
    Rng rng(13);
    auto z = random_row(rng, n, 1.0);
    for (int64_t i = 0; i < n; i += 3) z[i] = -inf;
    std::vector<float> kept;
    for (int64_t i = 0; i < n; ++i) {
      if (i % 3 != 0) kept.push_back(z[i]);
    }
    for (float alpha : {1.5f, 2.0f, 1.25f}) {
      std::vector<float> p(n);
      entmax_forward(z.data(), n, alpha, p.data());
      const ref::Vec r = ref::entmax_bisect_forward(to_double(kept), alpha);
      size_t k = 0;
      for (int64_t i = 0; i < n; ++i) {
        if (i % 3 == 0) {
          CHECK(p[i] == 0.0f);
        } else {
          CHECK(std::fabs(p[i] - r[k++]) < 1e-6);
        }
      }
    }
    std::vector<float> s(n);
    softmax_forward(z.data(), n, 1.0f, s.data());
    for (int64_t i = 0; i < n; i += 3) CHECK(s[i] == 0.0f);
    CHECK(std::fabs(testing::row_sum(s) - 1.0) < 1e-6);
  }
}

TEST_CASE("entmax: near-ties at the threshold still sum to 1 with tau in the bracket") {
  // Many scores a hair apart around where the threshold lands.
  for (int64_t n : {50, 2000}) {
    std::vector<float> z(n);
    for (int64_t i = 0; i < n; ++i) z[i] = 1.0f - 1e-7f * static_cast<float>(i % 7) - (i < 3 ? 0.0f : 1.0f);
    for (float alpha : {1.5f, 2.0f}) {
      std::vector<float> p(n);
      const RowStats st = entmax_forward(z.data(), n, alpha, p.data());
      CHECK(std::fabs(testing::row_sum(p) - 1.0) < 1e-6);
      const ref::Vec r = ref::entmax_bisect_forward(to_double(z), alpha);
      CHECK(max_abs_diff(p, r) < 1e-6);
      const double m = (alpha - 1.0) * 1.0;
      CHECK(st.tau >= m - 1.0 - 1e-6);
      CHECK(st.tau <= m - std::pow(static_cast<double>(n), 1.0 - alpha) + 1e-6);
    }
  }
}

TEST_SUITE("slow") {
  TEST_CASE("entmax: random sweep of lengths, spreads and alphas against the twins") {
    Rng rng(99);
    for (int rep = 0; rep < 300; ++rep) {
      const int64_t n = 1 + static_cast<int64_t>(rng.below(rep % 10 == 0 ? 262144 : 4096));
      const double sigma = std::exp(rng.uniform() * 8.0 - 4.0);  // e^-4 .. e^4
      const float alphas[3] = {1.5f, 2.0f, 1.0f + static_cast<float>(rng.uniform()) * 2.0f};
      const auto z = random_row(rng, n, sigma);
      for (float alpha : alphas) {
        CAPTURE(n);
        CAPTURE(sigma);
        CAPTURE(alpha);
        std::vector<float> p(n);
        entmax_forward(z.data(), n, alpha, p.data());
        const ref::Vec r = alpha == 1.5f   ? ref::entmax15_forward(to_double(z))
                           : alpha == 2.0f ? ref::sparsemax_forward(to_double(z))
                                           : ref::entmax_bisect_forward(to_double(z), alpha);
        CHECK(max_abs_diff(p, r) < 1e-6);
        CHECK(std::fabs(testing::row_sum(p) - 1.0) < 1e-6);
      }
      std::vector<float> s(n);
      softmax_forward(z.data(), n, 1.0f, s.data());
      CHECK(std::fabs(testing::row_sum(s) - 1.0) < 1e-6);
    }
  }
}

}  // namespace lb
