// The model's custom kernels, where oneDNN has no primitive: RMSNorm with (1 + w), the scaled
// token embedding, masked cross-entropy and the GeGLU product. Each has a plain double-precision
// twin in models/ref_ops.h and a test between them (ops_test.cpp).
// Dimensions: R rows (packed tokens), C hidden, V classes, F FFN width. Row-major throughout.
// Gradient contract (models/README.md): parameter grads +=, activation grads =.
#pragma once
#include <cstdint>

namespace lb {

constexpr float kRmsEps = 1e-6f;

// One row: y = x / sqrt(mean(x²) + eps) · (1 + w); returns 1 / sqrt(mean(x²) + eps).
// x, y, w (C). The bits of the training forward and of inference (both run it or the row-lane
// kernels of models/rmsnorm_rows.h, which give its bits; it is defined there).
float rmsnorm_row(const float* x, const float* w, float* y, int64_t C);

// y = x / sqrt(mean(x²) + eps) · (1 + w).  x, y (R, C); w (C); rstd (R) saved for backward.
void rmsnorm_forward(const float* x, const float* w, float* y, float* rstd, int64_t R, int64_t C);
// dx (R, C) =; dw (C) +=. Reads x, w, rstd from the forward and dy (R, C).
void rmsnorm_backward(const float* x, const float* w, const float* rstd, const float* dy,
                      float* dx, float* dw, int64_t R, int64_t C);

// y[r] = table[ids[r]] · scale.  ids (R); table (V, C); y (R, C).
void embedding_forward(const int32_t* ids, const float* table, float* y, int64_t R, int64_t C,
                       float scale);
// dtable[ids[r]] += dy[r] · scale, except rows whose id is `frozen_id` (-1: none), which get no
// gradient (Hugging Face's padding_idx).
void embedding_backward(const int32_t* ids, const float* dy, float* dtable, int64_t R, int64_t C,
                        float scale, int32_t frozen_id);

// Masked cross-entropy: returns Σ_r mask[r] · −log softmax(logits[r])[target[r]] (not averaged)
// and writes dlogits (R, V) = mask · (softmax − onehot) / denom (rows without mask get 0).
// logits (R, V); target (R), in [0, V) where mask is 1; mask (R) 0/1.
double cross_entropy_forward_backward(const float* logits, const int32_t* target,
                                      const uint8_t* mask, float* dlogits, int64_t R, int64_t V,
                                      double denom);

// GeGLU product m = a ⊙ u (a = gelu(gate)). All (n).
void mul_forward(const float* a, const float* u, float* m, int64_t n);
// da = dm ⊙ u, du = dm ⊙ a (both =).
void mul_backward(const float* a, const float* u, const float* dm, float* da, float* du,
                  int64_t n);

}  // namespace lb
