// Fused causal attention for short rows (issue 13): per (sample, head), scores, position bias,
// normalizer and mixing in one pass over cache-resident tiles, forward and backward, without the
// per-sample oneDNN products and head gathers of the plain path (models/attention.cpp).
//
// Contract: the same as attention_forward / attention_backward (models/attention.h) restricted to
// one sample of T rows (row stride H·D): per head h, query i, key j <= i,
//   s_ij = ⟨q_i, k_j⟩,  z_ij = scale[i, h] · s_ij / √D + m_h · (j − i),  p_i· = normalize(z_i·),
//   att_i = Σ_j p_ij v_j,
// with the row map the registry's normalize_forward / normalize_backward (normalizer.h), called
// once per row with the row's n = i + 1 scores, so a normalizer's semantics are written once.
// What a row cannot know is passed explicitly: `spec` is the spec resolved for this sample (e.g.
// a sample-dependent top-k K) and `slopes` may be nullptr (no position bias, m_h = 0).
//
// Fits: T <= kFusedMaxT and D a multiple of 16 in [16, kFusedMaxD]; the hook in attention.cpp
// routes other shapes to the plain path. AVX-512 where the CPU has it, the same code compiled for
// the baseline ISA otherwise (GCC vector extensions). Reductions run in a fixed order (keys
// ascending within a row, rows ascending for ∂k, ∂v) that depends on nothing but the sample: same
// numbers on any thread count. The plain twin is the oneDNN path; fused_attention_test.cpp holds
// the test between them for every normalizer × position encoding.
#pragma once
#include <cstdint>

#include "models/kernels/normalizer.h"

namespace lb {

constexpr int64_t kFusedMaxT = 256;
constexpr int64_t kFusedMaxD = 64;

bool fused_attention_fits(int64_t T, int64_t D);

// q, k, v, att: (T, H·D) rows of one sample; scale: (T, H); slopes: (H) or nullptr;
// probs: (H, T, T) this sample's weights, written with zeros above the diagonal.
void fused_attention_forward_sample(const NormalizerSpec& spec, int64_t H, int64_t D, int64_t T,
                                    const float* q, const float* k, const float* v,
                                    const float* scale, const float* slopes, float* probs,
                                    float* att);

// probs: the forward's weights; datt: (T, H·D) ∂L/∂att. dq, dk, dv (T, H·D) and dscale (T, H)
// are overwritten.
void fused_attention_backward_sample(const NormalizerSpec& spec, int64_t H, int64_t D, int64_t T,
                                     const float* q, const float* k, const float* v,
                                     const float* scale, const float* slopes, const float* probs,
                                     const float* datt, float* dq, float* dk, float* dv,
                                     float* dscale);

// Switches (process-wide; not while other threads run attention). Off by default (on with the
// environment variable LB_FUSED_ATTENTION=1, or `bench train --kernel fused`): when on, the
// attention layer uses the fused kernel for every sample that fits. `portable` forces the
// baseline-ISA build of the kernel on AVX-512 machines (tests cover both builds).
void set_fused_attention(bool on);
bool fused_attention_enabled();
void set_fused_attention_portable(bool on);

}  // namespace lb
