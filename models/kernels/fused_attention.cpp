// Fused short-row attention (contract: fused_attention.h). One head at a time: K (and, for the
// backward, V) are packed transposed into a (D, Tp) tile, Tp = T rounded up to 16 with zero
// columns (16 x 16 shuffle transposes). The causal score tile Q Kᵀ (and ∂att Vᵀ) is computed four
// query rows at a time sharing the key loads; each row then goes through the score map and the
// registry's normalizer. The products with the weights (P V, ∂s K, ∂sᵀ Q, Pᵀ ∂att) are
// register-blocked over four rows or columns of the triangle and written straight to the outputs,
// dense over the triangle (a sparse row's zeros are multiplied, not skipped). Vectors are GCC
// vector extensions: the same body is compiled for AVX-512 (target attribute) and for the
// baseline ISA.
#include "models/kernels/fused_attention.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "core/check.h"
#include "models/kernels/attention_score.h"

namespace lb {

namespace {

// Off unless LB_FUSED_ATTENTION=1: the committed results (results/paper_cpu) were trained on the
// plain path, and the fused kernel sums in another order (equal within fp32 tolerance, not bit
// for bit), so turning it on by default would change every stored number's last bits.
bool g_enabled = [] {
  const char* v = std::getenv("LB_FUSED_ATTENTION");
  return v != nullptr && std::string(v) == "1";
}();
bool g_portable = false;

typedef float v16 __attribute__((vector_size(64), aligned(4)));

#define LB_FA_INLINE inline __attribute__((always_inline))

LB_FA_INLINE v16 load16(const float* p) {
  v16 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
LB_FA_INLINE void store16(float* p, v16 v) { std::memcpy(p, &v, sizeof v); }

typedef int32_t v16i __attribute__((vector_size(64)));

// Per-thread tiles (grown, never shrunk): kt, vt (D, Tp); s, ds (T, Tp); a row buffer z (Tp).
struct Tiles {
  std::vector<float> kt, vt, s, ds, z;
  void reserve(int64_t T, int64_t Tp, int64_t D) {
    const size_t t = static_cast<size_t>(Tp * D), tt = static_cast<size_t>(T * Tp);
    if (kt.size() < t) kt.resize(t), vt.resize(t);
    if (s.size() < tt) s.resize(tt), ds.resize(tt);
    if (z.size() < static_cast<size_t>(Tp)) z.resize(Tp);
  }
};

Tiles& tiles() {
  thread_local Tiles t;
  return t;
}

// In-place transpose of a 16 x 16 block held in 16 vectors: four stages, stage b swapping the
// off-diagonal b x b sub-blocks of every 2b x 2b block.
LB_FA_INLINE void transpose16(v16* r) {
#if defined(__clang__)
  float m[16][16];
  for (int a = 0; a < 16; ++a) store16(m[a], r[a]);
  for (int a = 0; a < 16; ++a) {
    for (int b = 0; b < 16; ++b) r[a][b] = m[b][a];
  }
#else
#pragma GCC unroll 4
  for (int b = 1; b < 16; b *= 2) {
    v16i lo, hi;
#pragma GCC unroll 16
    for (int l = 0; l < 16; ++l) {
      lo[l] = (l & b) ? 16 + l - b : l;
      hi[l] = (l & b) ? 16 + l : l + b;
    }
#pragma GCC unroll 16
    for (int a = 0; a < 16; ++a) {
      if (a & b) continue;
      const v16 x = r[a], y = r[a + b];
      r[a] = __builtin_shuffle(x, y, lo);
      r[a + b] = __builtin_shuffle(x, y, hi);
    }
  }
#endif
}

// (D, Tp) transposed tile of head h's columns of x (T rows of stride ld), zero past T.
template <int ND>
LB_FA_INLINE void pack_transposed(const float* x, int64_t ld, int64_t T, int64_t Tp, float* out) {
  for (int64_t j0 = 0; j0 < Tp; j0 += 16) {
    for (int c = 0; c < ND; ++c) {
      v16 r[16];
#pragma GCC unroll 16
      for (int a = 0; a < 16; ++a) r[a] = j0 + a < T ? load16(x + (j0 + a) * ld + 16 * c) : v16{};
      transpose16(r);
#pragma GCC unroll 16
      for (int a = 0; a < 16; ++a) store16(out + (16 * c + a) * Tp + j0, r[a]);
    }
  }
}

// Rows i0 .. i0 + R − 1 of the score tile against keys j0 .. j0 + 16·NB − 1:
// s[r, j] = Σ_d a_r[d] · bt[d, j], a_r = a + r·ld, bt (D, Tp), s_r = s + r·Tp; d ascending.
template <int R, int NB>
LB_FA_INLINE void tile_block(const float* a, int64_t ld, const float* bt, int64_t Tp, int64_t D,
                             int64_t j0, float* s) {
  v16 acc[R][NB] = {};
  for (int64_t d = 0; d < D; ++d) {
    v16 kv[NB];
    for (int b = 0; b < NB; ++b) kv[b] = load16(bt + d * Tp + j0 + 16 * b);
    for (int r = 0; r < R; ++r) {
      const float x = a[r * ld + d];
      for (int b = 0; b < NB; ++b) acc[r][b] += x * kv[b];
    }
  }
  for (int r = 0; r < R; ++r) {
    for (int b = 0; b < NB; ++b) store16(s + r * Tp + j0 + 16 * b, acc[r][b]);
  }
}

template <int R>
LB_FA_INLINE void tile_rows(const float* a, int64_t ld, const float* bt, int64_t Tp, int64_t D,
                            int64_t n, float* s) {
  int64_t j0 = 0;
  for (; j0 + 64 <= n; j0 += 64) tile_block<R, 4>(a, ld, bt, Tp, D, j0, s);
  switch ((n - j0 + 15) / 16) {  // 0 .. 4 blocks left
    case 4:
      tile_block<R, 4>(a, ld, bt, Tp, D, j0, s);
      break;
    case 3:
      tile_block<R, 3>(a, ld, bt, Tp, D, j0, s);
      break;
    case 2:
      tile_block<R, 2>(a, ld, bt, Tp, D, j0, s);
      break;
    case 1:
      tile_block<R, 1>(a, ld, bt, Tp, D, j0, s);
      break;
    default:
      break;
  }
}

// The causal (T, Tp) tile s = A Btᵀ restricted to the visible keys: row i holds keys j <= i
// (written up to i + 1 rounded up to 16, at least), four rows at a time sharing the key loads.
// a_i = a + i·ld (D values), bt (D, Tp).
LB_FA_INLINE void score_tile(const float* a, int64_t ld, const float* bt, int64_t Tp, int64_t D,
                             int64_t T, float* s) {
  int64_t i0 = 0;
  for (; i0 + 4 <= T; i0 += 4) tile_rows<4>(a + i0 * ld, ld, bt, Tp, D, i0 + 4, s + i0 * Tp);
  switch (T - i0) {
    case 3:
      tile_rows<3>(a + i0 * ld, ld, bt, Tp, D, i0 + 3, s + i0 * Tp);
      break;
    case 2:
      tile_rows<2>(a + i0 * ld, ld, bt, Tp, D, i0 + 2, s + i0 * Tp);
      break;
    case 1:
      tile_rows<1>(a + i0 * ld, ld, bt, Tp, D, i0 + 1, s + i0 * Tp);
      break;
    default:
      break;
  }
}

// Rows i0 .. i0 + R − 1 of Y = W X: y_r = Σ_{j < i0 + R} w[r, j] · x_j (keys ascending), with
// w rows of stride ldw (zero past each row's own i + 1 keys), x_j = x + j·ld, y_r = y + r·ld.
template <int ND, int R>
LB_FA_INLINE void rows_product(const float* w, int64_t ldw, int64_t i0, const float* x, int64_t ld,
                               float* y) {
  v16 acc[R][ND] = {};
  const int64_t n = i0 + R;
  for (int64_t j = 0; j < n; ++j) {
    v16 xj[ND];
    for (int c = 0; c < ND; ++c) xj[c] = load16(x + j * ld + 16 * c);
    for (int r = 0; r < R; ++r) {
      const float wr = w[r * ldw + j];
      for (int c = 0; c < ND; ++c) acc[r][c] += wr * xj[c];
    }
  }
  for (int r = 0; r < R; ++r) {
    for (int c = 0; c < ND; ++c) store16(y + r * ld + 16 * c, acc[r][c]);
  }
}

// Columns j0 .. j0 + C − 1 of Y = Wᵀ X over T rows: y_c = Σ_{i = j0}^{T−1} w[i, j0 + c] · x_i
// (rows ascending), w of stride ldw with zeros above the diagonal, x_i = x + i·ld, y_c = y + c·ld.
template <int ND, int C>
LB_FA_INLINE void cols_product(const float* w, int64_t ldw, int64_t j0, int64_t T, const float* x,
                               int64_t ld, float* y) {
  v16 acc[C][ND] = {};
  for (int64_t i = j0; i < T; ++i) {
    v16 xi[ND];
    for (int c = 0; c < ND; ++c) xi[c] = load16(x + i * ld + 16 * c);
    for (int k = 0; k < C; ++k) {
      const float wk = w[i * ldw + j0 + k];
      for (int c = 0; c < ND; ++c) acc[k][c] += wk * xi[c];
    }
  }
  for (int k = 0; k < C; ++k) {
    for (int c = 0; c < ND; ++c) store16(y + k * ld + 16 * c, acc[k][c]);
  }
}

// Y = W X over T rows, four rows at a time (four independent chains per vector).
template <int ND>
LB_FA_INLINE void mix_rows(const float* w, int64_t ldw, int64_t T, const float* x, int64_t ld,
                           float* y) {
  int64_t i0 = 0;
  for (; i0 + 4 <= T; i0 += 4) rows_product<ND, 4>(w + i0 * ldw, ldw, i0, x, ld, y + i0 * ld);
  switch (T - i0) {
    case 3:
      rows_product<ND, 3>(w + i0 * ldw, ldw, i0, x, ld, y + i0 * ld);
      break;
    case 2:
      rows_product<ND, 2>(w + i0 * ldw, ldw, i0, x, ld, y + i0 * ld);
      break;
    case 1:
      rows_product<ND, 1>(w + i0 * ldw, ldw, i0, x, ld, y + i0 * ld);
      break;
    default:
      break;
  }
}

// Y = Wᵀ X over T rows, four columns at a time.
template <int ND>
LB_FA_INLINE void mix_cols(const float* w, int64_t ldw, int64_t T, const float* x, int64_t ld,
                           float* y) {
  int64_t j0 = 0;
  for (; j0 + 4 <= T; j0 += 4) cols_product<ND, 4>(w, ldw, j0, T, x, ld, y + j0 * ld);
  switch (T - j0) {
    case 3:
      cols_product<ND, 3>(w, ldw, j0, T, x, ld, y + j0 * ld);
      break;
    case 2:
      cols_product<ND, 2>(w, ldw, j0, T, x, ld, y + j0 * ld);
      break;
    case 1:
      cols_product<ND, 1>(w, ldw, j0, T, x, ld, y + j0 * ld);
      break;
    default:
      break;
  }
}

template <int ND>
LB_FA_INLINE void forward_head(const NormalizerSpec& spec, int64_t H, int64_t h, int64_t T,
                               const float* q, const float* k, const float* v, const float* scale,
                               const float* slopes, float* P, float* att) {
  constexpr int64_t D = ND * 16;
  const int64_t ld = H * D, Tp = (T + 15) / 16 * 16;
  const float inv_sqrt_d = inv_sqrt_head_dim(D);
  const float m = head_slope(spec, slopes, h);  // 0 for stickbreaking
  Tiles& tl = tiles();
  tl.reserve(T, Tp, D);
  float *kt = tl.kt.data(), *S = tl.s.data();
  pack_transposed<ND>(k + h * D, ld, T, Tp, kt);
  score_tile(q + h * D, ld, kt, Tp, D, T, S);  // S = Q Kᵀ (causal part)
  float* Ph = P + h * T * T;
  for (int64_t i = 0; i < T; ++i) {
    const int64_t n = i + 1;
    float* z = S + i * Tp;
    attention_score_row(z, z, n, score_factor(scale[i * H + h], inv_sqrt_d), m, i);
    float* p = Ph + i * T;
    normalize_forward(spec, z, n, p, T);  // the call has T keys (topk's div-2 rule)
    std::fill(p + n, p + T, 0.f);
  }
  mix_rows<ND>(Ph, T, T, v + h * D, ld, att + h * D);  // att = P V
}

// ∂P = ∂att Vᵀ and S = Q Kᵀ again (cheaper than keeping S) as tiles; per row the normalizer's
// and the score's backward turn ∂p into ∂s in place; then ∂q = ∂s K, ∂k = ∂sᵀ Q and
// ∂v = Pᵀ ∂att as blocked products written straight to the outputs.
template <int ND>
LB_FA_INLINE void backward_head(const NormalizerSpec& spec, int64_t H, int64_t h, int64_t T,
                                const float* q, const float* k, const float* v, const float* scale,
                                const float* slopes, const float* P, const float* datt, float* dq,
                                float* dk, float* dv, float* dscale) {
  constexpr int64_t D = ND * 16;
  const int64_t ld = H * D, Tp = (T + 15) / 16 * 16;
  const float inv_sqrt_d = inv_sqrt_head_dim(D);
  const float m = head_slope(spec, slopes, h);  // 0 for stickbreaking
  Tiles& tl = tiles();
  tl.reserve(T, Tp, D);
  float *kt = tl.kt.data(), *vt = tl.vt.data(), *S = tl.s.data(), *ds = tl.ds.data();
  float* z = tl.z.data();
  pack_transposed<ND>(k + h * D, ld, T, Tp, kt);
  pack_transposed<ND>(v + h * D, ld, T, Tp, vt);
  score_tile(datt + h * D, ld, vt, Tp, D, T, ds);  // ∂L/∂p_ij = ⟨∂att_i, v_j⟩
  score_tile(q + h * D, ld, kt, Tp, D, T, S);
  const float* Ph = P + h * T * T;
  for (int64_t i = 0; i < T; ++i) {
    const int64_t n = i + 1;
    const float *p = Ph + i * T, *s = S + i * Tp;
    float* dsi = ds + i * Tp;
    const float f = score_factor(scale[i * H + h], inv_sqrt_d);
    attention_score_row(s, z, n, f, m, i);
    normalize_backward(spec, z, p, dsi, n, dsi);
    dscale[i * H + h] = attention_score_row_backward_lanes(s, dsi, n, f, inv_sqrt_d, dsi);
    std::fill(dsi + (n + 15) / 16 * 16, dsi + Tp, 0.f);
  }
  mix_rows<ND>(ds, Tp, T, k + h * D, ld, dq + h * D);    // ∂q_i = Σ_j ∂s_ij k_j
  mix_cols<ND>(ds, Tp, T, q + h * D, ld, dk + h * D);    // ∂k_j = Σ_i ∂s_ij q_i
  mix_cols<ND>(Ph, T, T, datt + h * D, ld, dv + h * D);  // ∂v_j = Σ_i p_ij ∂att_i
}

// The sample loops over heads, dispatched on D / 16; LB_FA_BODY is instantiated twice below.
#define LB_FA_SAMPLE_FUNCTIONS(SUFFIX, ATTR)                                                       \
  ATTR void forward_sample_##SUFFIX(                                                               \
      const NormalizerSpec& spec, int64_t H, int64_t D, int64_t T, const float* q, const float* k, \
      const float* v, const float* scale, const float* slopes, float* probs, float* att) {         \
    for (int64_t h = 0; h < H; ++h) {                                                              \
      switch (D / 16) {                                                                            \
        case 1:                                                                                    \
          forward_head<1>(spec, H, h, T, q, k, v, scale, slopes, probs, att);                      \
          break;                                                                                   \
        case 2:                                                                                    \
          forward_head<2>(spec, H, h, T, q, k, v, scale, slopes, probs, att);                      \
          break;                                                                                   \
        case 3:                                                                                    \
          forward_head<3>(spec, H, h, T, q, k, v, scale, slopes, probs, att);                      \
          break;                                                                                   \
        default:                                                                                   \
          forward_head<4>(spec, H, h, T, q, k, v, scale, slopes, probs, att);                      \
          break;                                                                                   \
      }                                                                                            \
    }                                                                                              \
  }                                                                                                \
  ATTR void backward_sample_##SUFFIX(                                                              \
      const NormalizerSpec& spec, int64_t H, int64_t D, int64_t T, const float* q, const float* k, \
      const float* v, const float* scale, const float* slopes, const float* probs,                 \
      const float* datt, float* dq, float* dk, float* dv, float* dscale) {                         \
    for (int64_t h = 0; h < H; ++h) {                                                              \
      switch (D / 16) {                                                                            \
        case 1:                                                                                    \
          backward_head<1>(spec, H, h, T, q, k, v, scale, slopes, probs, datt, dq, dk, dv,         \
                           dscale);                                                                \
          break;                                                                                   \
        case 2:                                                                                    \
          backward_head<2>(spec, H, h, T, q, k, v, scale, slopes, probs, datt, dq, dk, dv,         \
                           dscale);                                                                \
          break;                                                                                   \
        case 3:                                                                                    \
          backward_head<3>(spec, H, h, T, q, k, v, scale, slopes, probs, datt, dq, dk, dv,         \
                           dscale);                                                                \
          break;                                                                                   \
        default:                                                                                   \
          backward_head<4>(spec, H, h, T, q, k, v, scale, slopes, probs, datt, dq, dk, dv,         \
                           dscale);                                                                \
          break;                                                                                   \
      }                                                                                            \
    }                                                                                              \
  }

LB_FA_SAMPLE_FUNCTIONS(portable, )

#if defined(__x86_64__) && defined(__GNUC__)
LB_FA_SAMPLE_FUNCTIONS(avx512, __attribute__((target("avx512f,avx512vl,avx512dq,avx512bw,fma"))))
bool use_avx512() {
  static const bool yes = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
                          __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512bw");
  return yes && !g_portable;
}
#else
bool use_avx512() { return false; }
#define forward_sample_avx512 forward_sample_portable
#define backward_sample_avx512 backward_sample_portable
#endif

}  // namespace

bool fused_attention_fits(int64_t T, int64_t D) {
  return T >= 1 && T <= kFusedMaxT && D >= 16 && D <= kFusedMaxD && D % 16 == 0;
}

void fused_attention_forward_sample(const NormalizerSpec& spec, int64_t H, int64_t D, int64_t T,
                                    const float* q, const float* k, const float* v,
                                    const float* scale, const float* slopes, float* probs,
                                    float* att) {
  LB_CHECK(fused_attention_fits(T, D) && H >= 1,
           "fused attention: T " << T << ", D " << D << ", H " << H << " does not fit");
  if (use_avx512()) {
    forward_sample_avx512(spec, H, D, T, q, k, v, scale, slopes, probs, att);
  } else {
    forward_sample_portable(spec, H, D, T, q, k, v, scale, slopes, probs, att);
  }
}

void fused_attention_backward_sample(const NormalizerSpec& spec, int64_t H, int64_t D, int64_t T,
                                     const float* q, const float* k, const float* v,
                                     const float* scale, const float* slopes, const float* probs,
                                     const float* datt, float* dq, float* dk, float* dv,
                                     float* dscale) {
  LB_CHECK(fused_attention_fits(T, D) && H >= 1,
           "fused attention: T " << T << ", D " << D << ", H " << H << " does not fit");
  if (use_avx512()) {
    backward_sample_avx512(spec, H, D, T, q, k, v, scale, slopes, probs, datt, dq, dk, dv, dscale);
  } else {
    backward_sample_portable(spec, H, D, T, q, k, v, scale, slopes, probs, datt, dq, dk, dv,
                             dscale);
  }
}

void set_fused_attention(bool on) { g_enabled = on; }
bool fused_attention_enabled() { return g_enabled; }
void set_fused_attention_portable(bool on) { g_portable = on; }

}  // namespace lb
