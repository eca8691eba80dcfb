// Causal multi-head attention core over a packed batch: scores, normalisation, mixing, and their
// backward. Projections, RoPE and the query length scale are applied by the caller
// (transformer.cpp); this file owns the part between q, k, v and the mixed output.
//
// Packed layout: the B samples of a batch are stacked row after row, sample b occupying rows
// offsets[b] .. offsets[b+1]−1 (T_b = its length) at positions 0 .. T_b−1. Attention never
// crosses samples; query i of a sample sees keys 0 .. i.
// Per (sample, head h, query i, key j <= i):
//   z_ij = scale[i, h] · ⟨q_i, k_j⟩ / √D + m_h · (j − i),   p_i· = normalize(z_i·),
//   att_i = Σ_j p_ij v_j,
// with m_h = position_slope(spec, slopes[h]) (0 for stickbreaking by default, normalizer.h) and
// each sample one attention call of T_b keys (topk's div-2 rule).
// Shapes: q, k, v, att (N, H·D) with head h in columns h·D .. h·D+D−1 (Hugging Face's view);
// scale (N, H); slopes (H); probs: the (H, T_b, T_b) weights of every sample, sample b at
// prob_offset(b) (zeros above the diagonal), kept for the backward.
// The products run on oneDNN (batched over heads, one primitive per length); the normalizer is
// models/kernels/normalizer.h. Twin: attention_forward_ref / attention_backward_ref (ref_ops.h).
#pragma once
#include <cstdint>
#include <vector>

#include "models/kernels/normalizer.h"

namespace lb {

struct AttentionDims {
  int64_t H = 1;  // heads
  int64_t D = 1;  // head dimension
};

// Start of sample b's weights in `probs`, and the total size: Σ_b H·T_b².
std::vector<int64_t> attention_prob_offsets(const std::vector<int64_t>& offsets, int64_t H);

void attention_forward(const NormalizerSpec& spec, AttentionDims dims,
                       const std::vector<int64_t>& offsets, const float* q, const float* k,
                       const float* v, const float* scale, const float* slopes, float* probs,
                       float* att);

// dq, dk, dv (N, H·D) and dscale (N, H) are overwritten (dscale: ∂L/∂scale for every head).
void attention_backward(const NormalizerSpec& spec, AttentionDims dims,
                        const std::vector<int64_t>& offsets, const float* q, const float* k,
                        const float* v, const float* scale, const float* slopes,
                        const float* probs, const float* datt, float* dq, float* dk, float* dv,
                        float* dscale);

}  // namespace lb
