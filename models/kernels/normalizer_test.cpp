// Registry and dispatch: every registry entry against its double twin and finite differences,
// batched rows, JSON round-trip, and the errors for bad names and parameters.
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include "core/check.h"
#include "models/kernels/kernel_testing.h"
#include "models/kernels/normalizer_registry.h"

namespace lb {
namespace {

using testing::max_abs_diff;
using testing::random_row;
using testing::ref_forward;
using testing::to_double;

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const UsageError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("normalizer: every registry entry matches its twin, sums, and backprops") {
  Rng rng(7);
  for (const auto& name : all_normalizer_names()) {
    const NormalizerSpec spec = normalizer_from_name(name);
    CAPTURE(name);
    CHECK(normalizer_name(spec) == name);
    for (int64_t n : {1, 2, 3, 7, 33, 100, 1000}) {
      CAPTURE(n);
      const auto z = random_row(rng, n, 2.0);
      std::vector<float> p(n);
      const RowStats st = normalize_forward(spec, z.data(), n, p.data());
      const ref::Vec pr = ref_forward(spec, to_double(z));
      CHECK(max_abs_diff(p, pr) < 2e-6);
      int64_t nonzero = 0;
      for (float v : p) nonzero += v > 0.0f ? 1 : 0;
      CHECK(st.support == nonzero);
      const double s = testing::row_sum(p);
      if (spec.kind == NormKind::kStickbreaking) {
        CHECK(s <= 1.0 + 1e-6);
        CHECK(p[n - 1] == 0.0f);
      } else {
        CHECK(std::fabs(s - 1.0) < 1e-6);
      }
      // Backward against central differences of the double twin, L = gᵀ p(z).
      if (n > 100) continue;  // keeps the fast suite fast; long rows are in entmax_test
      const auto g = random_row(rng, n);
      std::vector<float> dz(n);
      normalize_backward(spec, z.data(), p.data(), g.data(), n, dz.data());
      std::vector<float> in_place = g;  // dz may alias dp (the attention layer does this)
      normalize_backward(spec, z.data(), p.data(), in_place.data(), n, in_place.data());
      CHECK(max_abs_diff(in_place, to_double(dz)) == 0.0);
      ref::Vec zd = to_double(z);
      auto loss = [&](const ref::Vec& zz) {  // adaptive_temperature: β(H(z)) moves with z
        const ref::Vec pp = ref_forward(spec, zz);
        double l = 0.0;
        for (size_t i = 0; i < pp.size(); ++i) l += g[i] * pp[i];
        return l;
      };
      const ref::Vec num = ref::numeric_grad(loss, zd, 1e-5);
      CHECK(max_abs_diff(dz, num) < 2e-4);
    }
  }
}

TEST_CASE("normalizer: batched rows equal row-by-row and zero the padding") {
  Rng rng(3);
  const int64_t rows = 6, ld = 9;
  const auto z = random_row(rng, rows * ld);
  const auto g = random_row(rng, rows * ld);
  const std::vector<int64_t> lengths = {1, 2, 5, 9, 3, 9};
  for (const auto& name : all_normalizer_names()) {
    CAPTURE(name);
    const NormalizerSpec spec = normalizer_from_name(name);
    std::vector<float> p(rows * ld, -1.0f), dz(rows * ld, -1.0f);
    std::vector<RowStats> stats(rows);
    normalize_forward_rows(spec, z.data(), rows, ld, lengths.data(), p.data(), stats.data());
    normalize_backward_rows(spec, z.data(), p.data(), g.data(), rows, ld, lengths.data(), dz.data());
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t n = lengths[r];
      std::vector<float> pr(n), dr(n);
      const RowStats s = normalize_forward(spec, z.data() + r * ld, n, pr.data());
      normalize_backward(spec, z.data() + r * ld, pr.data(), g.data() + r * ld, n, dr.data());
      CHECK(s.support == stats[r].support);
      for (int64_t i = 0; i < ld; ++i) {
        CHECK(p[r * ld + i] == (i < n ? pr[i] : 0.0f));
        CHECK(dz[r * ld + i] == (i < n ? dr[i] : 0.0f));
      }
    }
  }
}

TEST_CASE("normalizer: names, defaults and JSON round-trip") {
  CHECK(normalizer_from_name("entmax").alpha == 1.5f);
  CHECK(normalizer_from_name("sparsemax").alpha == 2.0f);
  CHECK(normalizer_from_name("ssmax").length_scale == LengthScale::kNakanishi);
  CHECK(normalizer_from_name("asentmax").length_scale == LengthScale::kAdaptSoftplusTanh);
  CHECK(normalizer_from_name("asentmax").alpha == 1.5f);
  CHECK(normalizer_from_name("entmax").length_scale == LengthScale::kNone);
  CHECK(normalizer_from_name("asentmax", {{"scale", "learn"}}).length_scale == LengthScale::kLearn);
  CHECK(normalizer_from_name("asentmax", {{"init", "near-one"}}).scale_init_near_one);
  // Issue 11: the released code's semantics are the defaults, the earlier ones named options.
  const auto topk = normalizer_from_name("topk", {{"k", "4"}, {"rule", "div-2"}});
  CHECK(topk.topk == 4);
  CHECK(topk.topk_rule == TopkRule::kDiv2);
  CHECK(normalizer_from_name("topk").topk_rule == TopkRule::kNone);
  CHECK(topk_k(topk, 3) == 3);      // a row alone: N = n = 3, K = 4 clamped to 3
  CHECK(topk_k(topk, 20) == 10);    // N = n = 20
  CHECK(topk_k(topk, 5, 40) == 5);  // training/prefill: N = 40, K = 20 >= n
  CHECK(topk_k(topk, 30, 40) == 20);
  CHECK(topk_k(topk, 30, 30) == 15);  // decoding: N = i + 1
  const auto per_row = normalizer_from_name("topk", {{"k", "4"}, {"rule", "div-2-row"}});
  CHECK(topk_k(per_row, 30, 40) == 15);
  CHECK(topk_k(per_row, 5, 40) == 4);
  CHECK(topk_k(normalizer_from_name("topk", {{"k", "4"}}), 30, 40) == 4);
  CHECK(!normalizer_from_name("stickbreaking").position_bias);
  CHECK(normalizer_from_name("stickbreaking", {{"bias", "alibi"}}).position_bias);
  CHECK(normalizer_from_name("softmax").position_bias);
  CHECK(position_slope(normalizer_from_name("stickbreaking"), 0.5f) == 0.0f);
  CHECK(position_slope(normalizer_from_name("topk"), 0.5f) == 0.5f);
  CHECK(normalizer_from_name("adaptive_temperature").poly_order == PolyOrder::kAscending);
  CHECK(normalizer_from_name("adaptive_temperature", {{"poly", "descending"}}).poly_order ==
        PolyOrder::kDescending);
  for (const auto& name : all_normalizer_names()) {
    const NormalizerSpec a = normalizer_from_name(name);
    const NormalizerSpec b = normalizer_from_json(nlohmann::json::parse(to_json(a).dump()));
    CHECK(to_json(a) == to_json(b));
    if (name != "topk") CHECK(normalizer_from_json(nlohmann::json(name)).kind == a.kind);
  }
  for (const auto& [key, value] : KeyValues{
           {"rule", "div-2"}, {"rule", "div-2-row"}, {"bias", "alibi"}, {"poly", "descending"}}) {
    const std::string name = key == "rule"   ? "topk"
                             : key == "bias" ? "stickbreaking"
                                             : "adaptive_temperature";
    const NormalizerSpec a = normalizer_from_name(name, {{key, value}});
    CHECK(to_json(a)[key] == value);
    CHECK(to_json(normalizer_from_json(to_json(a))) == to_json(a));
  }
  const auto e = normalizer_from_json(nlohmann::json::parse(R"({"name": "entmax", "alpha": 1.25})"));
  CHECK(e.alpha == 1.25f);
  CHECK(to_json(e)["alpha"].get<double>() == doctest::Approx(1.25));
}

TEST_CASE("normalizer: bad names and parameters are one-line usage errors") {
  CHECK(error_of([] { normalizer_from_name("entmx"); }).find("did you mean 'entmax'") !=
        std::string::npos);
  CHECK(error_of([] { normalizer_from_name("entmax", {{"alpha", "1"}}); }).find("alpha 1 ") !=
        std::string::npos);
  CHECK(error_of([] { normalizer_from_name("entmax", {{"alpha", "0.5"}}); }).find("1 < alpha") !=
        std::string::npos);
  CHECK(error_of([] { normalizer_from_name("entmax", {{"alpha", "abc"}}); }).find("'abc'") !=
        std::string::npos);
  CHECK(error_of([] { normalizer_from_name("topk", {{"k", "0"}}); }).find("k >= 1") !=
        std::string::npos);
  CHECK(error_of([] {
          normalizer_from_name("topk", {{"rule", "div2"}});
        }).find("div-2-row") != std::string::npos);
  CHECK(error_of([] {
          normalizer_from_name("stickbreaking", {{"bias", "nape"}});
        }).find("accepted: none, alibi") != std::string::npos);
  CHECK(error_of([] {
          normalizer_from_name("softmax", {{"bias", "none"}});
        }).find("unknown parameter") != std::string::npos);
  // topk's k has no default in the released code: JSON (suites, run configs) must give it.
  CHECK(error_of([] { normalizer_from_json(nlohmann::json("topk")); }).find("needs its k") !=
        std::string::npos);
  CHECK(error_of([] {
          normalizer_from_json(nlohmann::json::parse(R"({"name": "topk"})"));
        }).find("needs its k") != std::string::npos);
  CHECK(normalizer_from_json(nlohmann::json::parse(R"({"name": "topk", "k": 3})")).topk == 3);
  CHECK(error_of([] { normalizer_from_name("softmax", {{"alpha", "2"}}); })
            .find("unknown parameter of normalizer 'softmax' 'alpha'") != std::string::npos);
  CHECK(error_of([] { normalizer_from_name("entmax", {{"alpah", "2"}}); }).find("did you mean 'alpha'") !=
        std::string::npos);
  CHECK(error_of([] { normalizer_from_name("ssmax", {{"scale", "nakanishy"}}); })
            .find("did you mean 'nakanishi'") != std::string::npos);
  CHECK(error_of([] { normalizer_from_json(nlohmann::json::parse(R"({"alpha": 2})")); })
            .find("\"name\"") != std::string::npos);
  CHECK(error_of([] { normalizer_from_json(nlohmann::json::parse(R"({"name": "topk", "k": [1]})")); })
            .find("number or a string") != std::string::npos);
}

}  // namespace lb

namespace lb {

TEST_CASE("normalizer: adaptive_temperature's beta in both polynomial orders") {
  Rng rng(21);
  for (PolyOrder order : {PolyOrder::kDescending, PolyOrder::kAscending}) {
    for (int64_t n : {2, 20, 300}) {
      const auto z = testing::random_row(rng, n, 0.5);
      const double b = adaptive_temperature_beta(z.data(), n, order);
      const double r = ref::adaptive_temperature_beta(testing::to_double(z), order == PolyOrder::kDescending);
      CHECK(b == doctest::Approx(r).epsilon(1e-5));
    }
  }
  // H = log 20 ≈ 3.0 for a flat row of 20: descending P(3.0) ≈ 2.26 > 1.
  const std::vector<float> flat(20, 0.0f);
  CHECK(adaptive_temperature_beta(flat.data(), 20, PolyOrder::kDescending) == doctest::Approx(
        -0.037 * std::pow(std::log(20.0), 4) + 0.481 * std::pow(std::log(20.0), 3) -
        2.3 * std::pow(std::log(20.0), 2) + 4.917 * std::log(20.0) - 1.791).epsilon(1e-5));
  // The default is the released code's ascending order: H = log 6 ≈ 1.79, P ≈ 2.20 (the
  // descending order would give ≈ 1.91).
  const double H6 = std::log(6.0);
  const std::vector<float> flat6(6, 0.0f);
  CHECK(adaptive_temperature_beta(flat6.data(), 6, PolyOrder::kAscending) ==
        doctest::Approx(-0.037 + 0.481 * H6 - 2.3 * H6 * H6 + 4.917 * std::pow(H6, 3) -
                        1.791 * std::pow(H6, 4))
            .epsilon(1e-5));
  const auto spec = normalizer_from_name("adaptive_temperature");
  CHECK(spec.poly_order == PolyOrder::kAscending);
  std::vector<float> p6(6);
  const std::vector<float> z6 = {0.f, 1.f, 0.f, 0.f, 0.f, 0.f};
  normalize_forward(spec, z6.data(), 6, p6.data());
  const double b6 = ref::adaptive_temperature_beta(testing::to_double(z6), false);
  CHECK(p6[1] / p6[0] == doctest::Approx(std::exp(b6)).epsilon(1e-5));
  const auto z = testing::random_row(rng, 50, 0.3);
  std::vector<float> p(50);
  normalize_forward(spec, z.data(), 50, p.data());
  CHECK(testing::max_abs_diff(p, testing::ref_forward(spec, testing::to_double(z))) < 2e-6);
}

}  // namespace lb

namespace lb {

TEST_CASE("normalizer: topk keeps the lowest-index ties and the K-th score as tau") {
  const std::vector<float> z = {1.0f, 3.0f, 3.0f, 3.0f, 0.0f, 3.0f};
  std::vector<float> p(z.size());
  const RowStats st = topk_forward(z.data(), 6, 2, p.data());
  CHECK(p[1] == doctest::Approx(0.5));
  CHECK(p[2] == doctest::Approx(0.5));
  CHECK(p[3] == 0.0f);
  CHECK(p[5] == 0.0f);
  CHECK(st.support == 2);
  CHECK(st.tau == 3.0f);
  // Spread-out rows: the widening window must reach far below the max.
  Rng rng(5);
  for (double sigma : {0.01, 1.0, 300.0}) {
    const auto w = testing::random_row(rng, 5000, sigma);
    std::vector<float> q(w.size());
    topk_forward(w.data(), 5000, 40, q.data());
    CHECK(testing::max_abs_diff(q, ref::topk_forward(testing::to_double(w), 40)) < 1e-6);
  }
}

}  // namespace lb

namespace lb {

// Issue 11: the released code does not detach β, so autograd differentiates through β(H(z)).
// Rows in each branch: H > 0.5 with P(H) > 1 (β = P(H), differentiated), H > 0.5 with P(H) < 1
// (β = 1), H <= 0.5 (β = 1); both polynomial orders. Fast kernel, plain twin (full Jacobian) and
// central differences of the twin's forward must agree.
TEST_CASE("normalizer: adaptive_temperature's backward differentiates beta in every branch") {
  struct Row {
    std::vector<float> z;
    bool active;  // β = P(H) > 1 with H > 0.5
  };
  Rng rng(41);
  std::vector<Row> rows;
  rows.push_back({testing::random_row(rng, 8, 0.3), true});    // H ≈ 2.0, P ≈ 1.8 (2.1 desc.)
  rows.push_back({testing::random_row(rng, 24, 0.8), false});  // H ≈ 2.9: P < 1 asc., > 1 desc.
  rows.push_back({{0.1f, -0.05f}, false});                     // H ≈ 0.69 > 0.5, P < 1
  rows.push_back({{4.0f, 0.0f, 0.5f}, false});                 // H ≈ 0.14 <= 0.5
  for (PolyOrder order : {PolyOrder::kAscending, PolyOrder::kDescending}) {
    const bool desc = order == PolyOrder::kDescending;
    NormalizerSpec spec = normalizer_from_name("adaptive_temperature");
    spec.poly_order = order;
    for (const Row& row : rows) {
      const int64_t n = static_cast<int64_t>(row.z.size());
      CAPTURE(n);
      CAPTURE(desc);
      const ref::Vec zd = testing::to_double(row.z);
      const ref::AdaptiveTemperature t = ref::adaptive_temperature(zd, desc);
      if (n == 24 && desc) {
        CHECK(t.dbeta != 0.0);  // P(2.9) > 1 descending only
      } else {
        CHECK((t.dbeta != 0.0) == row.active);
      }
      if (n == 2) CHECK((t.H > 0.5 && t.beta == 1.0));
      if (n == 3) CHECK(t.H <= 0.5);
      const auto g = testing::random_row(rng, n);
      std::vector<float> p(n), dz(n);
      normalize_forward(spec, row.z.data(), n, p.data());
      normalize_backward(spec, row.z.data(), p.data(), g.data(), n, dz.data());
      const ref::Vec twin = ref::adaptive_temperature_backward(zd, testing::to_double(g), desc);
      auto loss = [&](const ref::Vec& zz) {
        const ref::Vec pp = ref::adaptive_temperature_forward(zz, desc);
        double l = 0.0;
        for (size_t i = 0; i < pp.size(); ++i) l += g[i] * pp[i];
        return l;
      };
      const ref::Vec num = ref::numeric_grad(loss, zd, 1e-6);
      double scale = 0.0;
      for (double v : num) scale = std::max(scale, std::fabs(v));
      CHECK(testing::max_abs_diff(dz, twin) < 1e-5 * std::max(1.0, scale) + 1e-6);
      double twin_off = 0.0;
      for (size_t i = 0; i < num.size(); ++i)
        twin_off = std::max(twin_off, std::fabs(twin[i] - num[i]));
      CHECK(twin_off < 1e-7 * std::max(1.0, scale));
      CHECK(testing::max_abs_diff(dz, num) < 1e-5 * std::max(1.0, scale) + 1e-6);
      // β's own term matters in the active branch: the constant-β gradient is off there.
      if (t.dbeta != 0.0) {
        const ref::Vec fixed =
            ref::softmax_backward(ref::softmax_forward(zd, t.beta), testing::to_double(g), t.beta);
        double off = 0.0;
        for (size_t i = 0; i < num.size(); ++i) off = std::max(off, std::fabs(fixed[i] - num[i]));
        CHECK(off > 1e-5 * scale);  // far above the differences' error (~1e-10)
      }
    }
  }
}

}  // namespace lb

namespace lb {

// Issue 16: the registry rows carry behaviour and a typed parameter schema.
TEST_CASE("normalizer registry: rows, flags and the parameter schema") {
  Rng rng(16);
  for (const NormalizerEntry& e : normalizer_table().rows()) {
    const std::string name = e.name;
    CAPTURE(name);
    CHECK(&normalizer_entry(e.kind) == &e);
    CHECK(to_json(normalizer_from_name(e.name)) == to_json(e.defaults));
    CHECK(is_entmax_family(e.kind) == e.entmax_family);
    CHECK(normalizer_is_sparse(e.kind) == e.sparse);
    // The flags describe the row map: sparse rows leave keys out of a wide row, the others keep
    // every key (stickbreaking: all but the query's own); tau is reported exactly where the row
    // names its meaning.
    const int64_t n = 64;
    const auto z = random_row(rng, n, e.sparse ? 4.0 : 0.5);
    std::vector<float> p(n);
    const RowStats st = normalize_forward(e.defaults, z.data(), n, p.data());
    if (e.sparse) {
      CHECK(st.support < n);
    } else {
      CHECK(st.support >= n - 1);
    }
    CHECK(st.has_tau == (e.tau != nullptr));
    // Every accepted parameter: each choice round-trips through JSON typed values, a bad value
    // is a one-line error naming it.
    for (const char* key_text : e.params) {
      const std::string key = key_text;
      CAPTURE(key);
      const NormalizerParam* param = find_normalizer_param(key);
      REQUIRE(param != nullptr);
      CHECK(describe_normalizers().find("  " + key + ": ") != std::string::npos);
      if (param->type == ParamType::kChoice) {
        for (const std::string& choice : param->choices->names()) {
          nlohmann::json j = to_json(e.defaults);
          j[key] = choice;
          CHECK(to_json(normalizer_from_json(j))[key] == choice);
        }
        const std::string err = error_of([&] { normalizer_from_name(e.name, {{key, "bogus"}}); });
        CHECK(err.find("'bogus'") != std::string::npos);
      } else {
        nlohmann::json j = to_json(e.defaults);
        j[key] = param->type == ParamType::kReal ? nlohmann::json(param->hi + 1.0)
                                                 : nlohmann::json(int64_t(param->hi) + 1);
        CHECK(error_of([&] { normalizer_from_json(j); }).find("out of range") != std::string::npos);
        j[key] = param->type == ParamType::kReal ? nlohmann::json(1.75) : nlohmann::json(5);
        CHECK(to_json(normalizer_from_json(j))[key] == j[key]);
        j[key] = param->type == ParamType::kReal ? "1.75" : "5";  // strings are parsed
        CHECK(to_json(normalizer_from_json(j))[key] ==
              nlohmann::json(param->type == ParamType::kReal ? nlohmann::json(1.75)
                                                             : nlohmann::json(5)));
      }
    }
  }
  CHECK(describe_normalizers().find("adaptive_temperature: ") != std::string::npos);
}

// An alpha just above 1 that rounds to the float 1 would make entmax a softmax with a division
// by alpha - 1 = 0: it is out of range, not silently accepted.
TEST_CASE("normalizer registry: alpha is checked after rounding to float") {
  CHECK(error_of([] {
          normalizer_from_json(nlohmann::json::parse(R"({"name": "entmax", "alpha": 1.00000001})"));
        }).find("alpha 1.00000001 is out of range") != std::string::npos);
  CHECK(error_of([] {
          normalizer_from_name("entmax", {{"alpha", "1.00000001"}});
        }).find("out of range") != std::string::npos);
  CHECK(normalizer_from_name("entmax", {{"alpha", "1.0001"}}).alpha > 1.0f);
}

}  // namespace lb
