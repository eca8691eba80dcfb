// The attention score, written once for every path (training attention.cpp, the fused kernel,
// the inference engine's plain and blocked prefill, decode steps, and the test twins of
// ref_ops.h): for head h, query position i and key position j <= i,
//
//   z_ij = ⟨q_i, k_j⟩ · f_ih + m_h · (j − i),   f_ih = scale[i, h] / √D,
//
// where q, k are after RoPE (when the position encoding rotates), scale[i, h] is the query length
// scale (1 for unscaled heads; length_scale.h), m_h the head's bias slope (position.h) unless the
// normalizer drops it (normalizer.h position_slope). This file also holds what both engines
// derive from a model's position encoding and length scaling (AttentionPositions: slopes, the
// scaled heads, the RoPE table and the rotation of packed q/k rows) and the query scale of a block
// of rows from a layer's length-scale weights (query_scale_forward/backward).
//
// Bit-for-bit contract: the row helpers are always inlined, so each caller keeps its own
// instruction set (baseline, AVX2/AVX-512 clones); the expression order is the one the engines
// used before this file existed (dot·f first, then + slope·(j − i)).
//
// A new position encoding: bias-like = a slope rule in position.cpp (+ its registry row and
// test); RoPE-like = also a rotation behind AttentionPositions::rotate (attention_score.cpp).
#pragma once
#include <cmath>
#include <cstdint>
#include <vector>

#include "models/kernels/length_scale.h"
#include "models/kernels/normalizer.h"
#include "models/kernels/position.h"
#include "models/kernels/simd.h"

namespace lb {

// 1/√D, the score's fixed factor.
LB_INLINE float inv_sqrt_head_dim(int64_t D) { return 1.f / std::sqrt(static_cast<float>(D)); }

// f = scale · 1/√D: what a query row's products are multiplied by.
LB_INLINE float score_factor(float scale, float inv_sqrt_d) { return scale * inv_sqrt_d; }

// m_h: the bias slope of head h under this normalizer (0 when slopes is null or the normalizer
// drops the bias, as stickbreaking does by default).
LB_INLINE float head_slope(const NormalizerSpec& spec, const float* slopes, int64_t h) {
  return slopes ? position_slope(spec, slopes[h]) : 0.f;
}

// z = dot · f + slope · rel for one key, rel = j − i (<= 0; positions fit in int32).
LB_INLINE float attention_score(float dot, float f, float slope, int32_t rel) {
  return dot * f + position_bias(slope, rel);
}

// z[c] = dot[c] · f + slope · (j0 + c − i) for c < n: query i against keys j0 .. j0 + n − 1.
// dot == z (in place) is allowed.
LB_INLINE void attention_score_row(const float* dot, float* z, int64_t n, float f, float slope,
                                   int64_t i, int64_t j0 = 0) {
  const int32_t base = static_cast<int32_t>(j0 - i);
#pragma omp simd
  for (int32_t c = 0; c < static_cast<int32_t>(n); ++c) {
    z[c] = attention_score(dot[c], f, slope, base + c);
  }
}

// Backward of one row: dz (n) = ∂L/∂z in, ∂L/∂dot out (dz · f); returns ∂L/∂scale =
// Σ_c dz[c] · dot[c] / √D, summed in double in key order.
LB_INLINE float attention_score_row_backward(const float* dot, float* dz, int64_t n, float f,
                                             float inv_sqrt_d) {
  double dsc = 0.0;
  for (int64_t c = 0; c < n; ++c) {
    dsc += static_cast<double>(dz[c]) * dot[c];
    dz[c] *= f;
  }
  return static_cast<float>(dsc * inv_sqrt_d);
}

// The same backward in 16 float lanes (the fused kernel; another summation order than the one
// above, equal within fp32 tolerance): lane l sums the keys c ≡ l (mod 16), then the lanes add
// pairwise. dot and dz are read up to n rounded up to 16 (entries past n are ignored); ds is
// written up to there: dz · f for c < n, 0 past n.
LB_INLINE float attention_score_row_backward_lanes(const float* dot, const float* dz, int64_t n,
                                                   float f, float inv_sqrt_d, float* ds) {
  float acc[16] = {};
  for (int64_t c0 = 0; c0 < n; c0 += 16) {
#pragma omp simd
    for (int l = 0; l < 16; ++l) {
      const float g = c0 + l < n ? dz[c0 + l] : 0.f;
      acc[l] += g * dot[c0 + l];
      ds[c0 + l] = g * f;
    }
  }
  for (int w = 8; w >= 1; w /= 2) {
#pragma omp simd
    for (int l = 0; l < w; ++l) acc[l] += acc[l + w];
  }
  return acc[0] * inv_sqrt_d;
}

// The double-precision twin (ref_ops.h): scale · dot / √D + slope · (j − i).
inline double attention_score_ref(double dot, double scale, int64_t D, double slope, int64_t i,
                                  int64_t j) {
  return scale * dot / std::sqrt(static_cast<double>(D)) + slope * static_cast<double>(j - i);
}

// Heads that get the query length scale: the last ones (position.h), none without a scale.
int num_query_scaled_heads(LengthScale kind, PosEncoding pe, int H);

// What a model's attention takes from its position encoding and length scaling; built once per
// engine from the config, shared by training (transformer.cpp) and inference (inference.cpp).
struct AttentionPositions {
  AttentionPositions() = default;
  AttentionPositions(PosEncoding pe, LengthScale scale, int64_t H, int64_t D, double rope_theta);

  PosEncoding pe = PosEncoding::kNope;
  LengthScale scale = LengthScale::kNone;
  int64_t H = 1, D = 1;
  double rope_theta = 10000.0;
  std::vector<float> slopes;  // (H) bias slopes m_h, before the normalizer's position_slope
  int64_t n_scaled = 0;       // Hs: the last Hs heads are length-scaled
  RopeTable rope;             // rotary encodings only; grown by reserve()

  // Whether q and k are rotated (RoPE).
  bool rotates() const;
  // Makes rotate() valid for positions < max_positions (the table at least doubles when it grows).
  // Not thread-safe.
  void reserve(int64_t max_positions);
  // x: `rows` packed rows of H heads (row stride H·D) at positions pos0 .. pos0 + rows − 1,
  // rotated in place (every head); a no-op for non-rotary encodings. rotate_backward applies the
  // transpose (for gradients).
  void rotate(float* x, int64_t rows, int64_t pos0) const;
  void rotate_backward(float* dx, int64_t rows, int64_t pos0) const;
};

// A layer's length-scale weights (null where the kind has none). Shapes (Hs = scaled heads, C
// hidden): nakanishi a = s (Hs); learn a = β, b = γ (Hs); adapt a = W_β, b = W_γ (Hs, C) with
// a_bias = b_β, b_bias = b_γ (Hs).
struct QueryScaleWeights {
  const float *a = nullptr, *b = nullptr, *a_bias = nullptr, *b_bias = nullptr;
};

// Query scale of R rows at positions pos[r] (pos non-null) or pos0 + r:
//   scale (R, H) = 1 for unscaled heads, length_scale(kind, position, a, b) for the last Hs;
//   sa, sb (R, Hs): on entry (adapt only) the projections xn·W_βᵀ, xn·W_γᵀ, on exit the arguments
//   a, b: adapt a = proj + b_β, b = proj + b_γ; otherwise a = a[h], b = b[h] (0 without b);
//   ga, gb (R, Hs), when given (training): ∂s/∂a and ∂s/∂b there, for the backward
//   (length_scale_with_grad: length_scale_grad's bits, from the same evaluation as s).
void query_scale_forward(LengthScale kind, const QueryScaleWeights& w, int64_t R, int64_t H,
                         int64_t Hs, const int32_t* pos, int64_t pos0, float* sa, float* sb,
                         float* scale, float* ga = nullptr, float* gb = nullptr);
// da, db (R, Hs) = dscale · ga, dscale · gb, with the forward's ga, gb; dscale (R, H).
void query_scale_backward(int64_t R, int64_t H, int64_t Hs, const float* ga, const float* gb,
                          const float* dscale, float* da, float* db);

}  // namespace lb
