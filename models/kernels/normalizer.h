// Attention row normalizers: score row z (the visible keys of one causal query) -> weights p.
// This header is the contract the attention layer codes against: a NormalizerSpec (selected by
// name or JSON through the explicit table in normalizer_registry.{h,cpp}, whose rows carry each
// normalizer's forward, backward, plain twin, defaults, parameters and flags) and one
// forward/backward pair over fp32 rows. The per-kind fast kernels live in row_kernels.h, their
// double-precision twins in ref_normalizers.h.
//
// Rows. A causal row of query position i holds n = i + 1 scores z[0..n-1]; z[n-1] is the query's
// own key. Scores are the final logits: q'·k/√d plus the position bias (position.h) for the
// normalizers that take it (all but stickbreaking by default, see `bias` below); the query length
// scaling of ssmax/asentmax (length_scale.h) is applied by the model before this.
//
//   name                  kind                   row map                              scaling
//   softmax               kSoftmax               softmax(z)                           none
//   ssmax                 kSsmax                 softmax(z)                           nakanishi
//   entmax                kEntmax                α-entmax(z), α = 1.5 by default       none
//   sparsemax             kSparsemax             α-entmax with α = 2                  none
//   asentmax              kAsEntmax              α-entmax(z), α = 1.5 adapt-softplus-tanh topk
//   kTopk                  softmax over the K largest scores    none stickbreaking kStickbreaking
//   stick-breaking, self excluded        none adaptive_temperature  kAdaptiveTemperature
//   softmax(β(H)·z), H = entropy         none
//
// The defaults are the semantics of the paper's released code (deep-spin/asentmax, issue 11);
// our earlier behaviours remain as named options.
//
// Parameters (`--param k=v`, or JSON keys next to "name"):
//   alpha=A   entmax, asentmax: α > 1 (sparsemax is fixed at 2, softmax-family at 1)
//   k=K       topk: K >= 1. Required in JSON (suites, run configs), as the released code has no
//             default; 32 when a bare name is given on the command line or in a benchmark.
//   rule=R    topk: "none" (default: K = k), "div-2" (the released rule: K = max(k, N/2) with N
//             the number of keys of the attention call — T for every row in training and
//             prefill, i + 1 in one-token cached decoding, so the two differ), or "div-2-row"
//             (our earlier rule: K = max(k, n/2) with n = i + 1 the row's own keys, everywhere).
//             K >= n: softmax over all n visible keys (what the released code gives such rows;
//             where it raises, K > N, we keep that softmax: see topk.cpp).
//   bias=B    stickbreaking: "none" (default; the released code passes no ALiBi/NAPE slopes to
//             stick-breaking) or "alibi" (adds the position bias slope·(j − i) like the others).
//   poly=P    adaptive_temperature: "ascending" (default, the released code: P(H) = −0.037 +
//             0.481 H − 2.3 H² + 4.917 H³ − 1.791 H⁴) or "descending" (np.polyval order of the
//             same coefficients); see adaptive_temperature.cpp
//   scale=S   every normalizer: the query length scaling the model applies: none, nakanishi,
//             learn, adapt-softplus-tanh (defaults in the table)
//   init=I    every normalizer with adapt-softplus-tanh: "default" (HF init) or "near-one"
//             (length_scale.h: a third-party MQMTAR fix)
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "models/kernels/length_scale.h"

namespace lb {

enum class NormKind {
  kSoftmax,
  kSsmax,
  kEntmax,
  kSparsemax,
  kAsEntmax,
  kTopk,
  kStickbreaking,
  kAdaptiveTemperature
};

// Order of the adaptive-temperature polynomial's coefficients (−0.037, 0.481, −2.3, 4.917, −1.791).
enum class PolyOrder { kAscending, kDescending };

// Top-K's K for a row: kNone K = k; kDiv2 K = max(k, N/2), N = keys of the attention call;
// kDiv2PerRow K = max(k, n/2), n = the row's visible keys.
enum class TopkRule { kNone, kDiv2, kDiv2PerRow };

struct NormalizerSpec {
  NormKind kind = NormKind::kSoftmax;
  float alpha = 1.0f;       // 1 for the softmax family, > 1 for the entmax family
  int topk = 32;            // kTopk: k
  TopkRule topk_rule = TopkRule::kNone;           // kTopk
  bool position_bias = true;                      // false: the ALiBi/NAPE slopes are not added
  LengthScale length_scale = LengthScale::kNone;  // applied by the model, not by the row map
  bool scale_init_near_one = false;               // adapt-softplus-tanh init (length_scale.h)
  PolyOrder poly_order = PolyOrder::kAscending;   // kAdaptiveTemperature
};

// The ALiBi/NAPE slope a head's scores get under this normalizer: `slope`, or 0 where the spec
// takes no position bias (stickbreaking by default). Both engines and the plain twin use this.
inline float position_slope(const NormalizerSpec& spec, float slope) {
  return spec.position_bias ? slope : 0.0f;
}

// Registry (normalizer_registry.cpp). Unknown names, unknown parameter keys and bad values are
// UsageErrors naming the value and what is accepted.
using KeyValues = std::vector<std::pair<std::string, std::string>>;
NormalizerSpec normalizer_from_name(const std::string& name, const KeyValues& params = {});
// JSON: "entmax" or {"name": "entmax", "alpha": 1.5, ...}; values may be numbers or strings.
NormalizerSpec normalizer_from_json(const nlohmann::json& j);
nlohmann::json to_json(const NormalizerSpec& spec);  // {"name": ..., every parameter}
const char* normalizer_name(NormKind kind);
std::string normalizer_name(const NormalizerSpec& spec);
const std::vector<std::string>& all_normalizer_names();
// True for the kinds whose row map is α-entmax (entmax, sparsemax, asentmax).
bool is_entmax_family(NormKind kind);
// True for the kinds with exact zeros outside a support (the entmax family and topk): the
// evaluation reports their support sizes. The registry row's `sparse` flag.
bool normalizer_is_sparse(NormKind kind);

struct RowStats {
  int64_t support = 0;   // number of nonzero weights (exact zeros elsewhere)
  float tau = 0.0f;      // entmax family: threshold in the (α−1)-scaled domain,
                         // p_i = [(α−1) z_i − τ]_+^(1/(α−1)); topk: the K-th largest score
  bool has_tau = false;  // false for softmax, stickbreaking, adaptive_temperature
};

// Forward. z: (n) scores, p: (n) weights out; n >= 1; z and p must not alias.
// call_keys: the number of keys N of the attention call the row belongs to (topk's div-2 rule):
// the sequence length T in training and prefill, the cache length i + 1 in one-token decoding;
// 0 means n (the row is a call of its own, as in `lengthbench normalize`). N >= n.
// Rows sum to 1 (stickbreaking: to <= 1, the remainder is discarded as in the released code).
RowStats normalize_forward(const NormalizerSpec& spec, const float* z, int64_t n, float* p,
                           int64_t call_keys = 0);
// Backward (vector-Jacobian product). z, p: (n) the forward's input and output; dp: (n) ∂L/∂p;
// dz: (n) ∂L/∂z, overwritten. dz may alias dp. For entmax-family rows only p is read.
// adaptive_temperature differentiates through its temperature β(H(z)), as autograd does in the
// released code (β is not detached there).
void normalize_backward(const NormalizerSpec& spec, const float* z, const float* p,
                        const float* dp, int64_t n, float* dz);

// Batched over rows of a row-major (rows, ld) matrix: row r uses its first lengths[r] entries
// (1 <= lengths[r] <= ld; lengths == nullptr means every row has ld). Entries past a row's
// length are set to 0 in p / dz. stats: (rows) or nullptr. Every row is its own call (N = n).
void normalize_forward_rows(const NormalizerSpec& spec, const float* z, int64_t rows, int64_t ld,
                            const int64_t* lengths, float* p, RowStats* stats = nullptr);
void normalize_backward_rows(const NormalizerSpec& spec, const float* z, const float* p,
                             const float* dp, int64_t rows, int64_t ld, const int64_t* lengths,
                             float* dz);

}  // namespace lb
