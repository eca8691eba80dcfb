// Query length scaling: values at known points, gradients against central differences, the
// near-one initialisation, registry errors.
#include "models/kernels/length_scale.h"

#include <doctest/doctest.h>

#include <cmath>
#include <string>

#include "core/check.h"
#include "core/rng.h"

namespace lb {

TEST_CASE("length_scale: values at known points") {
  const LengthScaleParams P;
  CHECK(log_position(0) == doctest::Approx(std::log(2.0)));
  CHECK(length_scale(LengthScale::kNone, 100, 3.0f, 4.0f, P) == 1.0f);
  CHECK(length_scale(LengthScale::kNakanishi, 0, 1.0f, 0.0f, P) == doctest::Approx(std::log(2.0)));
  CHECK(length_scale(LengthScale::kNakanishi, 62, 2.0f, 0.0f, P) == doctest::Approx(2 * std::log(64.0)));
  CHECK(length_scale(LengthScale::kLearn, 6, 0.5f, 2.0f, P) ==
        doctest::Approx(1 + 0.5 * std::pow(std::log(8.0), 2.0)));
  // adapt-softplus-tanh at zero pre-activations: 1 + ln2 · L^0 = 1.693 at every position.
  for (int64_t pos : {0, 10, 4095}) {
    CHECK(length_scale(LengthScale::kAdaptSoftplusTanh, pos, 0.0f, 0.0f, P) ==
          doctest::Approx(1.0 + std::log(2.0)));
  }
  const float s = length_scale(LengthScale::kAdaptSoftplusTanh, 1000, 0.3f, 5.0f, P);
  CHECK(s == doctest::Approx(1 + std::log1p(std::exp(0.3)) * std::pow(std::log(1002.0), 2 * std::tanh(5.0))));
}

TEST_CASE("length_scale: gradients match central differences") {
  const LengthScaleParams P;
  for (LengthScale kind : {LengthScale::kNakanishi, LengthScale::kLearn, LengthScale::kAdaptSoftplusTanh}) {
    for (int64_t pos : {0, 3, 500, 65535}) {
      for (float a : {-1.2f, 0.4f}) {
        for (float b : {-0.7f, 0.3f}) {
          CAPTURE(static_cast<int>(kind));
          CAPTURE(pos);
          float da = 0, db = 0;
          length_scale_grad(kind, pos, a, b, P, &da, &db);
          const float h = 1e-3f;
          const double na = (static_cast<double>(length_scale(kind, pos, a + h, b, P)) -
                             length_scale(kind, pos, a - h, b, P)) / (2 * h);
          const double nb = (static_cast<double>(length_scale(kind, pos, a, b + h, P)) -
                             length_scale(kind, pos, a, b - h, P)) / (2 * h);
          CHECK(da == doctest::Approx(na).epsilon(2e-3).scale(1e-2));
          CHECK(db == doctest::Approx(nb).epsilon(2e-3).scale(1e-2));
        }
      }
    }
  }
}

TEST_CASE("length_scale_with_grad: the bits of length_scale and length_scale_grad") {
  for (const std::string& name : all_length_scale_names()) {
    const LengthScale kind = length_scale_from_name(name);
    for (const LengthScaleParams P : {LengthScaleParams{}, LengthScaleParams{0.5f, 1.5f}}) {
      for (int64_t pos : {0, 1, 7, 500, 65535}) {
        const double L = log_position(pos);
        for (float a : {-31.f, -1.2f, 0.f, 0.4f, 2.5f, 40.f}) {
          for (float b : {-3.f, -0.7f, 0.f, 0.3f, 1.1f}) {
            CAPTURE(name);
            CAPTURE(pos);
            CAPTURE(a);
            CAPTURE(b);
            float da = -1.f, db = -1.f;
            length_scale_grad(kind, pos, a, b, P, &da, &db);
            const LengthScaleWithGrad v = length_scale_with_grad(kind, L, std::log(L), a, b, P);
            CHECK(v.s == length_scale(kind, pos, a, b, P));
            CHECK(v.ds_da == da);
            CHECK(v.ds_db == db);
          }
        }
      }
    }
  }
}

TEST_CASE("length_scale: near-one init starts at 1.05; default init and parameter inits") {
  const AdaptScaleInit near = adapt_scale_init(true);
  CHECK(near.weight_std == 0.0f);
  CHECK(near.bias_gamma == 0.0f);
  CHECK(softplus(near.bias_beta) == doctest::Approx(0.05));
  for (int64_t pos : {0, 63, 65535}) {
    CHECK(length_scale(LengthScale::kAdaptSoftplusTanh, pos, near.bias_beta, near.bias_gamma) ==
          doctest::Approx(1.05));
  }
  const AdaptScaleInit def = adapt_scale_init(false);
  CHECK(def.weight_std == 0.02f);
  CHECK(def.bias_beta == 0.0f);
  CHECK(softplus_inverse(softplus(3.0)) == doctest::Approx(3.0));
  CHECK(softplus(100.0) == doctest::Approx(100.0));
  Rng rng(5);
  for (int i = 0; i < 100; ++i) {
    const float beta = learn_beta_init(rng);
    CHECK((beta >= 0.1f && beta <= 1.0f));
    CHECK(std::fabs(nakanishi_scale_init(rng) - 1.0f) < 0.06f);
    CHECK(std::fabs(learn_gamma_init(rng)) < 0.6f);
  }
}

TEST_CASE("length_scale: registry names and errors") {
  for (const auto& name : all_length_scale_names()) {
    CHECK(length_scale_name(length_scale_from_name(name)) == name);
  }
  std::string msg;
  try {
    length_scale_from_name("adapt-softplus");
  } catch (const UsageError& e) {
    msg = e.what();
  }
  CHECK(msg.find("adapt-softplus-tanh") != std::string::npos);
}

}  // namespace lb
