// Per-head, per-position query scale of SSMax, the `learn` variant and ASEntmax
// (the released sparse_gemma.py `_apply_length_scaling`). The model multiplies the query of a
// scaled head h at 0-based absolute position i by s = length_scale(kind, i, a, b) before q·k/√d;
// the normalizer itself never sees the scale. Which heads are scaled: position.h
// `is_length_scaled_head`.
//
//   kind                a                      b                      s
//   kNone               -                      -                      1
//   kNakanishi (SSMax)  s_h                    -                      s_h · L
//   kLearn              β_h                    γ_h                    δ + β_h · L^γ_h
//   kAdaptSoftplusTanh  (W_β x_i + b_β)_h      (W_γ x_i + b_γ)_h      δ + softplus(a) · L^(G·tanh
//   b)
//
// with L = log(i + 2) (position 0 uses log 2), δ = 1 and G = 2 by default, x_i the normalised
// layer input. Gradients: length_scale_grad gives ∂s/∂a and ∂s/∂b, so the model chains
// dL/da = dL/ds · ∂s/∂a into s_h, β_h, γ_h or the projections W_β, b_β, W_γ, b_γ.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace lb {

class Rng;

enum class LengthScale { kNone, kNakanishi, kLearn, kAdaptSoftplusTanh };

// Registry names: "none", "nakanishi", "learn", "adapt-softplus-tanh" (the released code's names).
const char* length_scale_name(LengthScale kind);
LengthScale length_scale_from_name(const std::string& name);  // UsageError with "did you mean"
const std::vector<std::string>& all_length_scale_names();

struct LengthScaleParams {
  float delta = 1.0f;        // δ: constant offset, not learned (attn_scale_delta)
  float gamma_range = 2.0f;  // G: γ = G·tanh(·) (attn_scale_gamma_range)
};

// L = log(pos + 2), pos the 0-based absolute query position (>= 0).
double log_position(int64_t pos);

// s for one (head, position); see the table above. pos >= 0.
float length_scale(LengthScale kind, int64_t pos, float a, float b,
                   const LengthScaleParams& params = {});
// ∂s/∂a and ∂s/∂b at the same arguments (either pointer may be null; zero where s ignores it).
void length_scale_grad(LengthScale kind, int64_t pos, float a, float b,
                       const LengthScaleParams& params, float* dscale_da, float* dscale_db);

// s, ∂s/∂a and ∂s/∂b in one evaluation, given L = log_position(pos) and log_L = std::log(L): the
// bits of length_scale and length_scale_grad, its plain twins (tested), with the power, tanh and
// softplus they share computed once. The training's forward keeps the two derivatives for the
// backward instead of evaluating them again there.
struct LengthScaleWithGrad {
  float s, ds_da, ds_db;
};
LengthScaleWithGrad length_scale_with_grad(LengthScale kind, double L, double log_L, float a,
                                           float b, const LengthScaleParams& params = {});

// Initialisation of the scale parameters, per scaled head.
//   kNakanishi: s_h ~ N(1, 0.01) (std 0.01).   kLearn: β_h ~ U(0.1, 1), γ_h ~ N(0, 0.1).
//   kAdaptSoftplusTanh: the released code uses the HF default (W ~ N(0, 0.02), b = 0, so s ≈ 1.69
//   at init); `near_one` is the MQMTAR plateau fix (found by a third-party reproduction): W = 0,
//   b_γ = 0, b_β = softplus⁻¹(0.05), so s = 1.05 at every position. Not in the paper: report as a
//   deviation.
struct AdaptScaleInit {
  float weight_std;  // std of W_β and W_γ entries (0 for near_one)
  float bias_beta;   // b_β
  float bias_gamma;  // b_γ
};
AdaptScaleInit adapt_scale_init(bool near_one);
float nakanishi_scale_init(Rng& rng);  // one s_h
float learn_beta_init(Rng& rng);       // one β_h
float learn_gamma_init(Rng& rng);      // one γ_h

double softplus(double x);          // log(1 + e^x), stable for large |x|
double softplus_inverse(double y);  // y > 0: log(e^y − 1)

}  // namespace lb
