// The fast fp32 row kernels behind normalize_forward / normalize_backward (normalizer.h), one
// pair per row map. Rows: z, p, g (= ∂L/∂p), dz all of shape (n), n >= 1, z and p not aliased;
// dz may alias g. Sums over long rows are accumulated in float blocks folded into double.
// Each kernel has a plain double twin in ref_normalizers.h and a doctest between them.
#pragma once
#include <cstdint>

#include "models/kernels/normalizer.h"

namespace lb {

// softmax_kernel.cpp. softmax(scale·z), scale > 0: p_i = exp(scale·(z_i − max)) / Σ. Uses a
// vectorisable polynomial exp (relative error ~2.5e-7); arguments below −87 give exact 0.
// Returns the number of nonzero weights.
int64_t softmax_forward(const float* z, int64_t n, float scale, float* p);
// dz = scale · p ⊙ (g − pᵀg).
void softmax_backward(const float* p, const float* g, int64_t n, float scale, float* dz);
// The same forward with std::exp, no blocking tricks: the plain fp32 twin used to check the fast
// exp and as the benchmark's "libm softmax".
void softmax_forward_plain(const float* z, int64_t n, float scale, float* p);

// entmax_kernel.cpp. α-entmax in the shifted scaled domain v = (α−1)(z − max):
// p_i = [v_i − τ']_+^(1/(α−1)), τ' ∈ [−1, −n^(1−α)]; the returned RowStats.tau is τ' + (α−1)max.
// Dispatch: α == 2 -> sparsemax_forward, α == 1.5 -> entmax15_forward, else entmax_root_forward.
RowStats entmax_forward(const float* z, int64_t n, float alpha, float* p);
// Exact 1.5-entmax: exact-quadratic / Newton / bisection passes on the support statistics of the
// candidates v > −1, finished when the support is self-consistent (τ solves the quadratic of its
// own support exactly). Rows <= 128 run in registers (AVX-512) or a padded buffer (<= 64).
RowStats entmax15_forward(const float* z, int64_t n, float* p);
// Exact sparsemax (α = 2): Michelot-style passes, finished when the support is self-consistent.
RowStats sparsemax_forward(const float* z, int64_t n, float* p);
// Generic α > 1: safeguarded Halley (Newton where Halley leaves the bracket, bisection where both
// do) on f(τ) = Σ[v − τ]_+^(1/(α−1)) − 1 over [−1, −n^(1−α)], in double on the candidates
// v > −1, to double resolution (fp32 accuracy and beyond); then p is normalised exactly (divided
// by its sum). Large α is ill-conditioned: weights d^(1/(α−1)) need d near double resolution.
RowStats entmax_root_forward(const float* z, int64_t n, float alpha, float* p);
// Test hook: true makes the softmax, entmax and topk kernels and RMSNorm's row lanes
// (models/rmsnorm_rows.h) skip their AVX-512 intrinsic paths (the compiler's multiversioned loops
// still pick AVX-512), so tests cover the portable paths on any CPU. Process-wide; not for use
// while other threads run kernels.
void force_portable_kernels(bool on);
// Backward of every α-entmax: u = p^(2−α) on the support, dz = u⊙g − u·(uᵀg)/Σu.
void entmax_backward(const float* p, const float* g, int64_t n, float alpha, float* dz);

// topk.cpp. Softmax over the K largest scores (K >= n: plain softmax over the row, which is what
// the released code gives a row with fewer visible keys than K). Ties at the K-th value keep the
// lowest indices. RowStats.tau = the K-th largest score.
RowStats topk_forward(const float* z, int64_t n, int64_t k, float* p);
// Gradient flows to the kept entries only: softmax backward on p (p = 0 elsewhere).
void topk_backward(const float* p, const float* g, int64_t n, float* dz);
// K for a row of n visible keys in an attention call of call_keys keys (0: n), clamped to n:
// rule none k; div-2 max(k, call_keys / 2); div-2-row max(k, n / 2).
int64_t topk_k(const NormalizerSpec& spec, int64_t n, int64_t call_keys = 0);

// stickbreaking.cpp. attend_current = False: the last key (the query itself) gets 0; for j < n−1,
// log p_j = log σ(z_j) + Σ_{j<k<n−1} log σ(−z_k), computed in log space with a double running
// sum. Σp <= 1; the remainder is discarded.
RowStats stickbreaking_forward(const float* z, int64_t n, float* p);
// dz_k = σ(−z_k)·g_k p_k − σ(z_k)·Σ_{j<k} g_j p_j for k < n−1; dz_{n−1} = 0.
void stickbreaking_backward(const float* z, const float* p, const float* g, int64_t n, float* dz);

// adaptive_temperature.cpp. Veličković et al. (2024) as in the released code: q = softmax(z),
// H = −Σ q log(q + 1e-9); β = max(1, P(H)) if H > 0.5 else 1; p = softmax(β z).
// P(H) = −0.037 + 0.481 H − 2.3 H² + 4.917 H³ − 1.791 H⁴ (kAscending, the released code's
// order, default) or −0.037 H⁴ + 0.481 H³ − 2.3 H² + 4.917 H − 1.791 (kDescending, np.polyval).
double adaptive_temperature_beta(const float* z, int64_t n, PolyOrder order);
RowStats adaptive_temperature_forward(const float* z, int64_t n, PolyOrder order, float* p);
// Exact: β(H(z)) is differentiated, dz = β gy + (gyᵀz) β'(H) ∇H with gy = p ⊙ (g − pᵀg),
// ∇H = q ⊙ (h − qᵀh), h_i = −log(q_i + 1e-9) − q_i/(q_i + 1e-9); β' = P'(H) where β = P(H) >= 1
// and H > 0.5, else 0.
void adaptive_temperature_backward(const float* z, const float* p, const float* g, int64_t n,
                                   PolyOrder order, float* dz);

}  // namespace lb
