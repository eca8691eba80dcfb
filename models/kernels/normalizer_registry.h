// The normalizer registry (normalizer_registry.cpp): one row per normalizer that carries its
// behaviour — forward and backward row maps, the plain double twin the tests compare against,
// its defaults, the parameters it accepts and the flags the model and evaluation read. Every
// dispatch over normalizers (normalize.cpp, the kernel tests, `lengthbench normalize`, the
// evaluation's support statistics) reads these rows.
//
// Adding a normalizer, four files: its kernel (a foo.h/foo.cpp pair with the fast forward/backward
// and the plain twin; the build picks up every .cpp here), its row in normalizer_registry.cpp and
// its NormKind value (normalizer.h). The registry loops in normalizer_test.cpp check every row
// against its twin and finite differences, so it is tested without a test of its own. Engines,
// evaluation and the commands need no change.
//
// Parameters are a schema shared by the rows (normalizer_params()): each has a JSON type (real,
// integer or a choice of names), its accepted range or names, and help; a row lists the keys it
// accepts. Values are read typed from JSON, or from command-line text.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/name_table.h"
#include "models/kernels/normalizer.h"

namespace lb {

// z: (n) scores -> p: (n) weights; call_keys as in normalizer.h (0: n).
using RowForwardFn = RowStats (*)(const NormalizerSpec& spec, const float* z, int64_t n, float* p,
                                  int64_t call_keys);
// z, p, dp: (n) -> dz: (n), dz may alias dp.
using RowBackwardFn = void (*)(const NormalizerSpec& spec, const float* z, const float* p,
                               const float* dp, int64_t n, float* dz);
// The double twin of the forward (ref_normalizers.h), for tests: z (n) -> p (n).
using PlainRow = std::vector<double>;
using PlainForwardFn = PlainRow (*)(const NormalizerSpec& spec, const PlainRow& z,
                                    size_t call_keys);

enum class ParamType { kReal, kInt, kChoice };

// One normalizer parameter: key=value on the command line, "key": value in JSON.
struct NormalizerParam {
  const char* key;
  ParamType type;
  const char* help;
  // kReal: a float field, lo < v <= hi; kInt: an int field, lo <= v <= hi. `range` names the
  // accepted values in errors ("1 < alpha <= 64").
  float NormalizerSpec::*real = nullptr;
  int NormalizerSpec::*integer = nullptr;
  double lo = 0.0, hi = 0.0;
  const char* range = "";
  // kChoice: the accepted names, each with the index get/set exchange with the spec. A choice
  // table whose noun is not "" (scale: "length scaling") reports unknown names in the
  // did-you-mean style; the others as "normalizer N key 'v' is not known; accepted: a, b".
  std::shared_ptr<const NameTable<NameRow<int>>> choices = nullptr;
  int (*get)(const NormalizerSpec& spec) = nullptr;
  void (*set)(NormalizerSpec& spec, int index) = nullptr;
  bool did_you_mean = false;
};

struct NormalizerEntry {
  const char* name;
  NormKind kind;
  NormalizerSpec defaults;  // what the bare name means (kind, α, query scaling, position bias)
  std::vector<const char*> params;  // accepted parameter keys, in the order JSON lists them
  bool sparse = false;              // exact zeros outside a support (evaluation reports its size)
  bool entmax_family = false;       // the row map is α-entmax
  const char* tau = nullptr;  // what RowStats.tau means ("threshold of (alpha-1) z"); nullptr:
                              // the row map has no threshold (RowStats.has_tau false)
  RowForwardFn forward = nullptr;
  RowBackwardFn backward = nullptr;
  PlainForwardFn plain = nullptr;  // the double twin (ref_normalizers.h), for tests
  const char* summary = "";
};

// The rows, in NormKind order; names unique.
const NameTable<NormalizerEntry>& normalizer_table();
const NormalizerEntry& normalizer_entry(NormKind kind);
// The parameter schema; find_normalizer_param gives nullptr for an unknown key.
const std::vector<NormalizerParam>& normalizer_params();
const NormalizerParam* find_normalizer_param(const std::string& key);

// Every row (name, summary, default parameters) and every parameter (accepted values, help), one
// line each, for `lengthbench normalize --help`.
std::string describe_normalizers();

}  // namespace lb
