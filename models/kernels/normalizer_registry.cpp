// The normalizer registry: one explicit table of rows that carry each normalizer's behaviour
// (forward, backward, plain twin), defaults, accepted parameters and flags; the parameter schema;
// JSON round-trip. Contract: normalizer_registry.h. The registry loop tests in normalizer_test.cpp
// cover every row against its twin and finite differences.
#include "models/kernels/normalizer_registry.h"

#include <cmath>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/check.h"
#include "core/parse.h"
#include "models/kernels/ref_normalizers.h"
#include "models/kernels/row_kernels.h"

namespace lb {
namespace {

using nlohmann::json;

// ---- Row maps shared by several rows -------------------------------------------------------

RowStats softmax_row(const NormalizerSpec&, const float* z, int64_t n, float* p, int64_t) {
  RowStats out;
  out.support = softmax_forward(z, n, 1.0f, p);
  return out;
}
void softmax_row_backward(const NormalizerSpec&, const float*, const float* p, const float* dp,
                          int64_t n, float* dz) {
  softmax_backward(p, dp, n, 1.0f, dz);
}
PlainRow softmax_plain(const NormalizerSpec&, const PlainRow& z, size_t) {
  return ref::softmax_forward(z);
}

RowStats entmax_row(const NormalizerSpec& spec, const float* z, int64_t n, float* p, int64_t) {
  return entmax_forward(z, n, spec.alpha, p);
}
void entmax_row_backward(const NormalizerSpec& spec, const float*, const float* p, const float* dp,
                         int64_t n, float* dz) {
  entmax_backward(p, dp, n, spec.alpha, dz);
}
PlainRow entmax_plain(const NormalizerSpec& spec, const PlainRow& z, size_t) {
  if (spec.alpha == 1.5f) return ref::entmax15_forward(z);
  return ref::entmax_bisect_forward(z, spec.alpha);
}

NormalizerSpec defaults(NormKind kind, float alpha, LengthScale scale, bool position_bias = true) {
  NormalizerSpec spec;
  spec.kind = kind;
  spec.alpha = alpha;
  spec.length_scale = scale;
  spec.position_bias = position_bias;
  return spec;
}

constexpr const char* kEntmaxTau = "threshold of (alpha-1) z";

// Each row's row maps; `.sparse` and `.entmax_family` are false unless given.
std::vector<NormalizerEntry> rows() {
  return {
      {.name = "softmax",
       .kind = NormKind::kSoftmax,
       .defaults = defaults(NormKind::kSoftmax, 1.0f, LengthScale::kNone),
       .params = {"scale", "init"},
       .forward = softmax_row,
       .backward = softmax_row_backward,
       .plain = softmax_plain,
       .summary = "softmax over the visible keys"},
      {.name = "ssmax",
       .kind = NormKind::kSsmax,
       .defaults = defaults(NormKind::kSsmax, 1.0f, LengthScale::kNakanishi),
       .params = {"scale", "init"},
       .forward = softmax_row,
       .backward = softmax_row_backward,
       .plain = softmax_plain,
       .summary = "softmax with the query scaled by s_h log(i+2) (Nakanishi 2025)"},
      {.name = "entmax",
       .kind = NormKind::kEntmax,
       .defaults = defaults(NormKind::kEntmax, 1.5f, LengthScale::kNone),
       .params = {"alpha", "scale", "init"},
       .sparse = true,
       .entmax_family = true,
       .tau = kEntmaxTau,
       .forward = entmax_row,
       .backward = entmax_row_backward,
       .plain = entmax_plain,
       .summary = "alpha-entmax (alpha > 1, default 1.5), exact zeros outside the support"},
      {.name = "sparsemax",
       .kind = NormKind::kSparsemax,
       .defaults = defaults(NormKind::kSparsemax, 2.0f, LengthScale::kNone),
       .params = {"scale", "init"},
       .sparse = true,
       .entmax_family = true,
       .tau = kEntmaxTau,
       .forward = [](const NormalizerSpec&, const float* z, int64_t n, float* p,
                     int64_t) { return sparsemax_forward(z, n, p); },
       .backward = [](const NormalizerSpec&, const float*, const float* p, const float* dp,
                      int64_t n, float* dz) { entmax_backward(p, dp, n, 2.0f, dz); },
       .plain = [](const NormalizerSpec&, const PlainRow& z,
                   size_t) { return ref::sparsemax_forward(z); },
       .summary = "Euclidean projection onto the simplex (alpha-entmax with alpha = 2)"},
      {.name = "asentmax",
       .kind = NormKind::kAsEntmax,
       .defaults = defaults(NormKind::kAsEntmax, 1.5f, LengthScale::kAdaptSoftplusTanh),
       .params = {"alpha", "scale", "init"},
       .sparse = true,
       .entmax_family = true,
       .tau = kEntmaxTau,
       .forward = entmax_row,
       .backward = entmax_row_backward,
       .plain = entmax_plain,
       .summary = "adaptive-scalable 1.5-entmax: query scaled by 1 + softplus(.) "
                  "log(i+2)^(2 tanh(.))"},
      {.name = "topk",
       .kind = NormKind::kTopk,
       .defaults = defaults(NormKind::kTopk, 1.0f, LengthScale::kNone),
       .params = {"k", "rule", "scale", "init"},
       .sparse = true,
       .tau = "the K-th largest score",
       .forward =
           [](const NormalizerSpec& spec, const float* z, int64_t n, float* p, int64_t call_keys) {
             return topk_forward(z, n, topk_k(spec, n, call_keys), p);
           },
       .backward = [](const NormalizerSpec&, const float*, const float* p, const float* dp,
                      int64_t n, float* dz) { topk_backward(p, dp, n, dz); },
       .plain =
           [](const NormalizerSpec& spec, const PlainRow& z, size_t call_keys) {
             if (call_keys == 0) call_keys = z.size();
             size_t k = static_cast<size_t>(spec.topk);
             if (spec.topk_rule == TopkRule::kDiv2) k = std::max(k, call_keys / 2);
             if (spec.topk_rule == TopkRule::kDiv2PerRow) k = std::max(k, z.size() / 2);
             return ref::topk_forward(z, k);
           },
       .summary = "softmax over the K largest scores (k required in JSON, "
                  "rule=none|div-2|div-2-row)"},
      // The released code passes no ALiBi/NAPE slopes to stick-breaking: no position bias.
      {.name = "stickbreaking",
       .kind = NormKind::kStickbreaking,
       .defaults = defaults(NormKind::kStickbreaking, 1.0f, LengthScale::kNone, false),
       .params = {"bias", "scale", "init"},
       .forward = [](const NormalizerSpec&, const float* z, int64_t n, float* p,
                     int64_t) { return stickbreaking_forward(z, n, p); },
       .backward = [](const NormalizerSpec&, const float* z, const float* p, const float* dp,
                      int64_t n, float* dz) { stickbreaking_backward(z, p, dp, n, dz); },
       .plain = [](const NormalizerSpec&, const PlainRow& z,
                   size_t) { return ref::stickbreaking_forward(z); },
       .summary = "stick-breaking attention (Tan et al. 2024), the query's own key excluded, no "
                  "position bias (bias=none|alibi)"},
      {.name = "adaptive_temperature",
       .kind = NormKind::kAdaptiveTemperature,
       .defaults = defaults(NormKind::kAdaptiveTemperature, 1.0f, LengthScale::kNone),
       .params = {"poly", "scale", "init"},
       .forward = [](const NormalizerSpec& spec, const float* z, int64_t n, float* p,
                     int64_t) { return adaptive_temperature_forward(z, n, spec.poly_order, p); },
       .backward =
           [](const NormalizerSpec& spec, const float* z, const float* p, const float* dp,
              int64_t n,
              float* dz) { adaptive_temperature_backward(z, p, dp, n, spec.poly_order, dz); },
       .plain =
           [](const NormalizerSpec& spec, const PlainRow& z, size_t) {
             return ref::adaptive_temperature_forward(z, spec.poly_order == PolyOrder::kDescending);
           },
       .summary = "softmax with an entropy-dependent temperature (Velickovic et al. 2024; "
                  "poly=ascending|descending)"},
  };
}

// ---- Parameter schema ----------------------------------------------------------------------

std::shared_ptr<const NameTable<NameRow<int>>> choice_table(const char* what,
                                                            std::vector<NameRow<int>> names) {
  return std::make_shared<const NameTable<NameRow<int>>>(what, std::move(names));
}

std::vector<NormalizerParam> params() {
  std::vector<NormalizerParam> out;
  {
    NormalizerParam p{"alpha", ParamType::kReal, "the entmax alpha (sparsemax is fixed at 2)"};
    p.real = &NormalizerSpec::alpha;
    p.lo = 1.0, p.hi = 64.0;
    p.range = "1 < alpha <= 64 (alpha = 1 is softmax: use 'softmax')";
    out.push_back(p);
  }
  {
    NormalizerParam p{"k", ParamType::kInt,
                      "topk's K (required in JSON; 32 for a bare name on the command line)"};
    p.integer = &NormalizerSpec::topk;
    p.lo = 1.0, p.hi = static_cast<double>(int64_t{1} << 30);
    p.range = "k >= 1";
    out.push_back(p);
  }
  {
    NormalizerParam p{"rule", ParamType::kChoice,
                      "topk's K per row: none K = k; div-2 max(k, N/2), N the call's keys; "
                      "div-2-row max(k, n/2), n the row's keys"};
    p.choices = choice_table("", {{"none", static_cast<int>(TopkRule::kNone)},
                                  {"div-2", static_cast<int>(TopkRule::kDiv2)},
                                  {"div-2-row", static_cast<int>(TopkRule::kDiv2PerRow)}});
    p.get = [](const NormalizerSpec& s) { return static_cast<int>(s.topk_rule); };
    p.set = [](NormalizerSpec& s, int i) { s.topk_rule = static_cast<TopkRule>(i); };
    out.push_back(p);
  }
  {
    NormalizerParam p{"bias", ParamType::kChoice,
                      "stickbreaking: alibi adds the ALiBi/NAPE position bias, none does not"};
    p.choices = choice_table("", {{"none", 0}, {"alibi", 1}});
    p.get = [](const NormalizerSpec& s) { return s.position_bias ? 1 : 0; };
    p.set = [](NormalizerSpec& s, int i) { s.position_bias = i == 1; };
    out.push_back(p);
  }
  {
    NormalizerParam p{"poly", ParamType::kChoice,
                      "adaptive_temperature's polynomial coefficient order"};
    p.choices = choice_table("", {{"ascending", static_cast<int>(PolyOrder::kAscending)},
                                  {"descending", static_cast<int>(PolyOrder::kDescending)}});
    p.get = [](const NormalizerSpec& s) { return static_cast<int>(s.poly_order); };
    p.set = [](NormalizerSpec& s, int i) { s.poly_order = static_cast<PolyOrder>(i); };
    out.push_back(p);
  }
  {
    NormalizerParam p{"scale", ParamType::kChoice,
                      "the query length scaling the model applies (length_scale.h)"};
    std::vector<NameRow<int>> names;
    for (const auto& n : all_length_scale_names()) {
      names.push_back({n.c_str(), static_cast<int>(length_scale_from_name(n))});
    }
    p.choices = choice_table("length scaling", names);
    p.get = [](const NormalizerSpec& s) { return static_cast<int>(s.length_scale); };
    p.set = [](NormalizerSpec& s, int i) { s.length_scale = static_cast<LengthScale>(i); };
    p.did_you_mean = true;
    out.push_back(p);
  }
  {
    NormalizerParam p{"init", ParamType::kChoice,
                      "adapt-softplus-tanh initialisation: default (HF) or near-one (s = 1.05)"};
    p.choices = choice_table("", {{"default", 0}, {"near-one", 1}});
    p.get = [](const NormalizerSpec& s) { return s.scale_init_near_one ? 1 : 0; };
    p.set = [](NormalizerSpec& s, int i) { s.scale_init_near_one = i == 1; };
    out.push_back(p);
  }
  return out;
}

// A JSON parameter value as text: for messages, and parsed when given as a string.
std::string value_text(const json& v, const std::string& key) {
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

// Reads one parameter value (typed JSON, or a string from the command line) into spec.
void read_param(const std::string& name, const NormalizerParam& param, const json& v,
                NormalizerSpec& spec) {
  const std::string text = value_text(v, param.key);
  const std::string what = "normalizer " + name + " " + param.key;
  switch (param.type) {
    case ParamType::kReal: {
      const double d = v.is_number() ? v.get<double>() : parse_double(text, what);
      const float x = static_cast<float>(d);
      LB_REQUIRE(d > param.lo && d <= param.hi && x > param.lo,
                 what << " " << text << " is out of range; accepted: " << param.range);
      spec.*param.real = x;
      return;
    }
    case ParamType::kInt: {
      const int64_t x = v.is_number_integer() ? v.get<int64_t>() : parse_int(text, what);
      LB_REQUIRE(x >= param.lo && x <= param.hi,
                 what << " " << text << " is out of range; accepted: " << param.range);
      spec.*param.integer = static_cast<int>(x);
      return;
    }
    case ParamType::kChoice: {
      if (param.did_you_mean) {
        param.set(spec, param.choices->from_name(text));
        return;
      }
      const NameRow<int>* row = param.choices->find(text);
      LB_REQUIRE(row, what << " '" << text
                           << "' is not known; accepted: " << param.choices->joined_names());
      param.set(spec, row->kind);
      return;
    }
  }
}

json write_param(const NormalizerParam& param, const NormalizerSpec& spec) {
  switch (param.type) {
    case ParamType::kReal:
      return spec.*param.real;
    case ParamType::kInt:
      return spec.*param.integer;
    case ParamType::kChoice:
      return param.choices->name_of(param.get(spec));
  }
  return nullptr;
}

// Parameters as (key, value) pairs; unknown keys and bad values are UsageErrors.
NormalizerSpec spec_from(const std::string& name,
                         const std::vector<std::pair<std::string, json>>& values) {
  const NormalizerEntry& entry = normalizer_table().row_named(name);
  NormalizerSpec spec = entry.defaults;
  const std::vector<std::string> accepted(entry.params.begin(), entry.params.end());
  for (const auto& [key, value] : values) {
    bool ok = false;
    for (const auto& a : accepted) ok = ok || a == key;
    if (!ok) {
      throw UsageError(unknown_name_message(std::string("parameter of normalizer '") + name + "'",
                                            key, accepted));
    }
    read_param(name, *find_normalizer_param(key), value, spec);
  }
  return spec;
}

}  // namespace

const NameTable<NormalizerEntry>& normalizer_table() {
  static const NameTable<NormalizerEntry> kTable = [] {
    NameTable<NormalizerEntry> t("normalizer", rows());
    for (size_t i = 0; i < t.rows().size(); ++i) {
      const NormalizerEntry& e = t.rows()[i];
      LB_CHECK(static_cast<size_t>(e.kind) == i && e.defaults.kind == e.kind,
               "normalizer row " << e.name << " is out of NormKind order");
      for (const char* key : e.params) {
        LB_CHECK(find_normalizer_param(key), "normalizer " << e.name << ": no parameter " << key);
      }
    }
    return t;
  }();
  return kTable;
}

const NormalizerEntry& normalizer_entry(NormKind kind) {
  const auto& rows = normalizer_table().rows();
  const auto i = static_cast<size_t>(kind);
  LB_CHECK(i < rows.size(), "NormKind " << i << " missing from the registry");
  return rows[i];
}

const std::vector<NormalizerParam>& normalizer_params() {
  static const std::vector<NormalizerParam> kParams = params();
  return kParams;
}

const NormalizerParam* find_normalizer_param(const std::string& key) {
  for (const auto& p : normalizer_params()) {
    if (key == p.key) return &p;
  }
  return nullptr;
}

std::string describe_normalizers() {
  std::ostringstream os;
  for (const auto& e : normalizer_table().rows()) {
    os << "  " << e.name << ": " << e.summary << "\n     ";
    for (const char* key : e.params) {
      const json v = write_param(*find_normalizer_param(key), e.defaults);
      os << " " << key << "=" << (v.is_string() ? v.get<std::string>() : v.dump());
    }
    os << "\n";
  }
  os << "parameters:\n";
  for (const auto& p : normalizer_params()) {
    os << "  " << p.key << ": "
       << (p.type == ParamType::kChoice ? p.choices->joined_names() : std::string(p.range)) << "; "
       << p.help << "\n";
  }
  return os.str();
}

const std::vector<std::string>& all_normalizer_names() { return normalizer_table().names(); }

const char* normalizer_name(NormKind kind) { return normalizer_entry(kind).name; }
std::string normalizer_name(const NormalizerSpec& spec) { return normalizer_name(spec.kind); }

bool is_entmax_family(NormKind kind) { return normalizer_entry(kind).entmax_family; }
bool normalizer_is_sparse(NormKind kind) { return normalizer_entry(kind).sparse; }

NormalizerSpec normalizer_from_name(const std::string& name, const KeyValues& params) {
  std::vector<std::pair<std::string, json>> values;
  for (const auto& [key, value] : params) values.emplace_back(key, json(value));
  return spec_from(name, values);
}

NormalizerSpec normalizer_from_json(const json& j) {
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
  std::vector<std::pair<std::string, json>> values;
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (it.key() == "name") continue;
    value_text(it.value(), it.key());  // every value a number or a string, before the keys
    values.emplace_back(it.key(), it.value());
  }
  return spec_from(j["name"].get<std::string>(), values);
}

json to_json(const NormalizerSpec& spec) {
  const NormalizerEntry& e = normalizer_entry(spec.kind);
  json j;
  j["name"] = e.name;
  for (const char* key : e.params) j[key] = write_param(*find_normalizer_param(key), spec);
  return j;
}

}  // namespace lb
