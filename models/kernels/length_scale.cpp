// Query length scaling of SSMax / learn / ASEntmax: values, gradients, initialisation.
// Contract and formulas: length_scale.h.
#include "models/kernels/length_scale.h"

#include <cmath>

#include "core/check.h"
#include "core/name_table.h"
#include "core/rng.h"

namespace lb {
namespace {

const NameTable<NameRow<LengthScale>>& length_scale_table() {
  static const NameTable<NameRow<LengthScale>> kTable(
      "length scaling", {
                            {"none", LengthScale::kNone},
                            {"nakanishi", LengthScale::kNakanishi},
                            {"learn", LengthScale::kLearn},
                            {"adapt-softplus-tanh", LengthScale::kAdaptSoftplusTanh},
                        });
  return kTable;
}

double sigmoid(double x) {
  if (x >= 0) return 1.0 / (1.0 + std::exp(-x));
  const double e = std::exp(x);
  return e / (1.0 + e);
}

}  // namespace

const char* length_scale_name(LengthScale kind) { return length_scale_table().name_of(kind); }

const std::vector<std::string>& all_length_scale_names() { return length_scale_table().names(); }

LengthScale length_scale_from_name(const std::string& name) {
  return length_scale_table().from_name(name);
}

double log_position(int64_t pos) { return std::log(static_cast<double>(pos) + 2.0); }

double softplus(double x) {
  if (x > 30.0) return x + std::log1p(std::exp(-x));
  return std::log1p(std::exp(x));
}

double softplus_inverse(double y) {
  LB_CHECK(y > 0.0, "softplus_inverse needs y > 0, got " << y);
  if (y > 30.0) return y + std::log(-std::expm1(-y));
  return std::log(std::expm1(y));
}

float length_scale(LengthScale kind, int64_t pos, float a, float b,
                   const LengthScaleParams& params) {
  const double L = log_position(pos);
  switch (kind) {
    case LengthScale::kNone:
      return 1.0f;
    case LengthScale::kNakanishi:
      return static_cast<float>(a * L);
    case LengthScale::kLearn:
      return static_cast<float>(params.delta + a * std::pow(L, static_cast<double>(b)));
    case LengthScale::kAdaptSoftplusTanh: {
      const double gamma = params.gamma_range * std::tanh(static_cast<double>(b));
      return static_cast<float>(params.delta + softplus(a) * std::pow(L, gamma));
    }
  }
  return 1.0f;
}

void length_scale_grad(LengthScale kind, int64_t pos, float a, float b,
                       const LengthScaleParams& params, float* dscale_da, float* dscale_db) {
  const double L = log_position(pos);
  const double log_L = std::log(L);
  double da = 0.0, db = 0.0;
  switch (kind) {
    case LengthScale::kNone:
      break;
    case LengthScale::kNakanishi:
      da = L;
      break;
    case LengthScale::kLearn: {
      const double Lg = std::pow(L, static_cast<double>(b));
      da = Lg;
      db = a * Lg * log_L;
      break;
    }
    case LengthScale::kAdaptSoftplusTanh: {
      const double t = std::tanh(static_cast<double>(b));
      const double gamma = params.gamma_range * t;
      const double Lg = std::pow(L, gamma);
      da = sigmoid(a) * Lg;  // softplus' = sigmoid
      db = softplus(a) * Lg * log_L * params.gamma_range * (1.0 - t * t);
      break;
    }
  }
  if (dscale_da) *dscale_da = static_cast<float>(da);
  if (dscale_db) *dscale_db = static_cast<float>(db);
}

LengthScaleWithGrad length_scale_with_grad(LengthScale kind, double L, double log_L, float a,
                                           float b, const LengthScaleParams& params) {
  // Each expression as length_scale / length_scale_grad write it (same order, same types).
  switch (kind) {
    case LengthScale::kNone:
      return {1.0f, 0.0f, 0.0f};
    case LengthScale::kNakanishi:
      return {static_cast<float>(a * L), static_cast<float>(L), 0.0f};
    case LengthScale::kLearn: {
      const double Lg = std::pow(L, static_cast<double>(b));
      return {static_cast<float>(params.delta + a * Lg), static_cast<float>(Lg),
              static_cast<float>(a * Lg * log_L)};
    }
    case LengthScale::kAdaptSoftplusTanh: {
      const double t = std::tanh(static_cast<double>(b));
      const double gamma = params.gamma_range * t;
      const double Lg = std::pow(L, gamma);
      const double sp = softplus(a);
      return {static_cast<float>(params.delta + sp * Lg), static_cast<float>(sigmoid(a) * Lg),
              static_cast<float>(sp * Lg * log_L * params.gamma_range * (1.0 - t * t))};
    }
  }
  return {1.0f, 0.0f, 0.0f};
}

AdaptScaleInit adapt_scale_init(bool near_one) {
  if (near_one) return {0.0f, static_cast<float>(softplus_inverse(0.05)), 0.0f};
  return {0.02f, 0.0f, 0.0f};
}

float nakanishi_scale_init(Rng& rng) { return static_cast<float>(1.0 + 0.01 * rng.normal()); }
float learn_beta_init(Rng& rng) { return static_cast<float>(0.1 + 0.9 * rng.uniform()); }
float learn_gamma_init(Rng& rng) { return static_cast<float>(0.1 * rng.normal()); }

}  // namespace lb
