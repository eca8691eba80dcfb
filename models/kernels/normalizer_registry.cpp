// The normalizer registry: one explicit table of names, kinds, defaults and accepted parameters,
// plus JSON round-trip. Adding a normalizer: one NormKind value, one row in kNormalizers, one
// case in normalize.cpp; the registry loop test in normalizer_test.cpp then covers it.
#include <cmath>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "core/check.h"
#include "core/parse.h"
#include "models/kernels/normalizer.h"

namespace lb {
namespace {

struct NormalizerEntry {
  const char* name;
  NormKind kind;
  float alpha;               // default α
  LengthScale length_scale;  // default query scaling
  // Accepted keys are in `params`; the kind-specific defaults (k, rule, bias, poly) are
  // NormalizerSpec's own: stickbreaking's position_bias = false is set in normalizer_from_name.
  const char* params;        // accepted parameter keys, space separated
  const char* summary;
};

const std::vector<NormalizerEntry>& normalizer_table() {
  static const std::vector<NormalizerEntry> kNormalizers = {
      {"softmax", NormKind::kSoftmax, 1.0f, LengthScale::kNone, "scale init",
       "softmax over the visible keys"},
      {"ssmax", NormKind::kSsmax, 1.0f, LengthScale::kNakanishi, "scale init",
       "softmax with the query scaled by s_h log(i+2) (Nakanishi 2025)"},
      {"entmax", NormKind::kEntmax, 1.5f, LengthScale::kNone, "alpha scale init",
       "alpha-entmax (alpha > 1, default 1.5), exact zeros outside the support"},
      {"sparsemax", NormKind::kSparsemax, 2.0f, LengthScale::kNone, "scale init",
       "Euclidean projection onto the simplex (alpha-entmax with alpha = 2)"},
      {"asentmax", NormKind::kAsEntmax, 1.5f, LengthScale::kAdaptSoftplusTanh, "alpha scale init",
       "adaptive-scalable 1.5-entmax: query scaled by 1 + softplus(.) log(i+2)^(2 tanh(.))"},
      {"topk", NormKind::kTopk, 1.0f, LengthScale::kNone, "k rule scale init",
       "softmax over the K largest scores (k required in JSON, rule=none|div-2|div-2-row)"},
      {"stickbreaking", NormKind::kStickbreaking, 1.0f, LengthScale::kNone, "bias scale init",
       "stick-breaking attention (Tan et al. 2024), the query's own key excluded, no position "
       "bias (bias=none|alibi)"},
      {"adaptive_temperature", NormKind::kAdaptiveTemperature, 1.0f, LengthScale::kNone,
       "poly scale init",
       "softmax with an entropy-dependent temperature (Velickovic et al. 2024; "
       "poly=ascending|descending)"},
  };
  return kNormalizers;
}

const NormalizerEntry& entry_for(NormKind kind) {
  for (const auto& e : normalizer_table()) {
    if (e.kind == kind) return e;
  }
  LB_CHECK(false, "NormKind " << static_cast<int>(kind) << " missing from the registry");
}

std::vector<std::string> split_words(const char* s) {
  std::vector<std::string> out;
  std::string cur;
  for (const char* c = s; *c; ++c) {
    if (*c == ' ') {
      if (!cur.empty()) out.push_back(cur);
      cur.clear();
    } else {
      cur += *c;
    }
  }
  if (!cur.empty()) out.push_back(cur);
  return out;
}

std::string json_value_text(const nlohmann::json& v, const std::string& key) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_number_integer()) return std::to_string(v.get<int64_t>());
  if (v.is_number()) {
    std::ostringstream os;
    os.precision(9);
    os << v.get<double>();
    return os.str();
  }
  if (v.is_boolean()) return v.get<bool>() ? "true" : "false";
  throw UsageError("normalizer parameter '" + key + "' must be a number or a string, got " +
                   v.dump());
}

}  // namespace

const std::vector<std::string>& all_normalizer_names() {
  static const std::vector<std::string> kNames = [] {
    std::vector<std::string> names;
    for (const auto& e : normalizer_table()) names.push_back(e.name);
    return names;
  }();
  return kNames;
}

const char* normalizer_name(NormKind kind) { return entry_for(kind).name; }
std::string normalizer_name(const NormalizerSpec& spec) { return normalizer_name(spec.kind); }

bool is_entmax_family(NormKind kind) {
  return kind == NormKind::kEntmax || kind == NormKind::kSparsemax || kind == NormKind::kAsEntmax;
}

NormalizerSpec normalizer_from_name(const std::string& name, const KeyValues& params) {
  const NormalizerEntry* entry = nullptr;
  for (const auto& e : normalizer_table()) {
    if (name == e.name) entry = &e;
  }
  if (!entry) throw UsageError(unknown_name_message("normalizer", name, all_normalizer_names()));
  NormalizerSpec spec;
  spec.kind = entry->kind;
  spec.alpha = entry->alpha;
  spec.length_scale = entry->length_scale;
  spec.position_bias = entry->kind != NormKind::kStickbreaking;  // released code: no slopes
  const std::vector<std::string> accepted = split_words(entry->params);
  for (const auto& [key, value] : params) {
    bool ok = false;
    for (const auto& a : accepted) ok = ok || a == key;
    if (!ok) {
      throw UsageError(unknown_name_message(std::string("parameter of normalizer '") + name + "'",
                                            key, accepted));
    }
    if (key == "alpha") {
      const double a = parse_double(value, "normalizer " + name + " alpha");
      LB_REQUIRE(a > 1.0 && a <= 64.0, "normalizer " << name << " alpha " << value
                                                       << " is out of range; accepted: 1 < alpha <= 64"
                                                       << " (alpha = 1 is softmax: use 'softmax')");
      spec.alpha = static_cast<float>(a);
    } else if (key == "k") {
      const int64_t k = parse_int(value, "normalizer " + name + " k");
      LB_REQUIRE(k >= 1 && k <= (int64_t{1} << 30),
                 "normalizer " << name << " k " << value << " is out of range; accepted: k >= 1");
      spec.topk = static_cast<int>(k);
    } else if (key == "rule") {
      LB_REQUIRE(value == "none" || value == "div-2" || value == "div-2-row",
                 "normalizer " << name << " rule '" << value
                               << "' is not known; accepted: none, div-2, div-2-row");
      spec.topk_rule = value == "div-2"       ? TopkRule::kDiv2
                       : value == "div-2-row" ? TopkRule::kDiv2PerRow
                                              : TopkRule::kNone;
    } else if (key == "bias") {
      LB_REQUIRE(
          value == "none" || value == "alibi",
          "normalizer " << name << " bias '" << value << "' is not known; accepted: none, alibi");
      spec.position_bias = value == "alibi";
    } else if (key == "poly") {
      LB_REQUIRE(value == "ascending" || value == "descending",
                 "normalizer " << name << " poly '" << value
                               << "' is not known; accepted: ascending, descending");
      spec.poly_order = value == "ascending" ? PolyOrder::kAscending : PolyOrder::kDescending;
    } else if (key == "scale") {
      spec.length_scale = length_scale_from_name(value);
    } else if (key == "init") {
      LB_REQUIRE(value == "default" || value == "near-one",
                 "normalizer " << name << " init '" << value
                               << "' is not known; accepted: default, near-one");
      spec.scale_init_near_one = value == "near-one";
    }
  }
  return spec;
}

NormalizerSpec normalizer_from_json(const nlohmann::json& j) {
  // topk's k has no default in the released code; a JSON config (suite, run) must give it.
  const auto require_k = [](const std::string& name, bool has_k) {
    LB_REQUIRE(name != "topk" || has_k,
               "normalizer topk needs its k: write {\"name\": \"topk\", \"k\": K} (K >= 1; "
               "the released code has no default k)");
  };
  if (j.is_string()) {
    require_k(j.get<std::string>(), false);
    return normalizer_from_name(j.get<std::string>());
  }
  LB_REQUIRE(j.is_object() && j.contains("name") && j["name"].is_string(),
             "a normalizer is a name or an object with a \"name\" string, got " << j.dump());
  require_k(j["name"].get<std::string>(), j.contains("k"));
  KeyValues params;
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (it.key() == "name") continue;
    params.emplace_back(it.key(), json_value_text(it.value(), it.key()));
  }
  return normalizer_from_name(j["name"].get<std::string>(), params);
}

nlohmann::json to_json(const NormalizerSpec& spec) {
  const NormalizerEntry& e = entry_for(spec.kind);
  nlohmann::json j;
  j["name"] = e.name;
  for (const auto& key : split_words(e.params)) {
    if (key == "alpha") j["alpha"] = spec.alpha;
    if (key == "k") j["k"] = spec.topk;
    if (key == "rule") {
      j["rule"] = spec.topk_rule == TopkRule::kDiv2         ? "div-2"
                  : spec.topk_rule == TopkRule::kDiv2PerRow ? "div-2-row"
                                                            : "none";
    }
    if (key == "bias") j["bias"] = spec.position_bias ? "alibi" : "none";
    if (key == "poly") j["poly"] = spec.poly_order == PolyOrder::kAscending ? "ascending" : "descending";
    if (key == "scale") j["scale"] = length_scale_name(spec.length_scale);
    if (key == "init") j["init"] = spec.scale_init_near_one ? "near-one" : "default";
  }
  return j;
}

}  // namespace lb
