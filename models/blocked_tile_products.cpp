// The blocked prefill's tile products (contract: blocked_tile_products.h).
#include "models/blocked_tile_products.h"

// GCC 12's AVX-512 intrinsics trip -Wmaybe-uninitialized on internal temporaries (as in
// models/kernels/entmax_kernel.cpp).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "models/bf16.h"

namespace lb {

namespace {

constexpr int64_t kBk = kKeyTile;  // columns of a score tile (a multiple of 64)
static_assert(kBk % 64 == 0, "score micro-kernel works on 64 columns");

// S (R rows, ld kBk) columns c0 .. c0+63 = Q (R, D; ldq) · kt (D, kBk). R ≤ 4 rows × 4 vectors
// of 16 columns in 16 accumulators.
template <int R>
__attribute__((target("avx512f"))) void scores_micro(const float* q, int64_t ldq, const float* kt,
                                                     int64_t D, int64_t c0, float* s) {
  __m512 acc[R][4];
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < 4; ++v) acc[r][v] = _mm512_setzero_ps();
  for (int64_t d = 0; d < D; ++d) {
    const float* k = kt + d * kBk + c0;
    const __m512 k0 = _mm512_loadu_ps(k), k1 = _mm512_loadu_ps(k + 16);
    const __m512 k2 = _mm512_loadu_ps(k + 32), k3 = _mm512_loadu_ps(k + 48);
    for (int r = 0; r < R; ++r) {
      const __m512 qv = _mm512_set1_ps(q[r * ldq + d]);
      acc[r][0] = _mm512_fmadd_ps(qv, k0, acc[r][0]);
      acc[r][1] = _mm512_fmadd_ps(qv, k1, acc[r][1]);
      acc[r][2] = _mm512_fmadd_ps(qv, k2, acc[r][2]);
      acc[r][3] = _mm512_fmadd_ps(qv, k3, acc[r][3]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < 4; ++v) _mm512_storeu_ps(s + r * kBk + c0 + 16 * v, acc[r][v]);
}

// acc (R rows, D) += P (R, ld kBk) columns 0..bk−1 · V (bk, D), D = 16·NV.
template <int R, int NV>
__attribute__((target("avx512f"))) void pv_micro(const float* p, const float* V, int64_t bk,
                                                 float* acc) {
  __m512 o[R][NV];
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < NV; ++v) o[r][v] = _mm512_loadu_ps(acc + r * 16 * NV + 16 * v);
  for (int64_t j = 0; j < bk; ++j) {
    __m512 vv[NV];
    for (int v = 0; v < NV; ++v) vv[v] = _mm512_loadu_ps(V + j * 16 * NV + 16 * v);
    for (int r = 0; r < R; ++r) {
      const __m512 w = _mm512_set1_ps(p[r * kBk + j]);
      for (int v = 0; v < NV; ++v) o[r][v] = _mm512_fmadd_ps(w, vv[v], o[r][v]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < NV; ++v) _mm512_storeu_ps(acc + r * 16 * NV + 16 * v, o[r][v]);
}

template <int NV>
void pv_rows(const float* p, int64_t nr, const float* V, int64_t bk, float* acc) {
  constexpr int RB = NV == 4 ? 3 : 4;  // rows per step (accumulators: RB · NV <= 16)
  int64_t r = 0;
  for (; r + RB <= nr; r += RB) pv_micro<RB, NV>(p + r * kBk, V, bk, acc + r * 16 * NV);
  for (; r < nr; ++r) pv_micro<1, NV>(p + r * kBk, V, bk, acc + r * 16 * NV);
}

// acc (R, D = 16·NV) += pb (R, ld kBk; bf16) · vt2 over key pairs 0 .. np−1.
template <int R, int NV>
__attribute__((target("avx512f,avx512bf16"))) void pv_micro_bf16(const uint16_t* pb,
                                                                 const uint32_t* vt2, int64_t np,
                                                                 float* acc) {
  __m512 o[R][NV];
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < NV; ++v) o[r][v] = _mm512_loadu_ps(acc + r * 16 * NV + 16 * v);
  for (int64_t jp = 0; jp < np; ++jp) {
    __m512bh vv[NV];
    for (int v = 0; v < NV; ++v) vv[v] = (__m512bh)_mm512_loadu_si512(vt2 + jp * 16 * NV + 16 * v);
    for (int r = 0; r < R; ++r) {
      uint32_t w;
      std::memcpy(&w, pb + r * kBk + 2 * jp, 4);
      const __m512bh pw = (__m512bh)_mm512_set1_epi32(static_cast<int>(w));
      for (int v = 0; v < NV; ++v) o[r][v] = _mm512_dpbf16_ps(o[r][v], pw, vv[v]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < NV; ++v) _mm512_storeu_ps(acc + r * 16 * NV + 16 * v, o[r][v]);
}

template <int NV>
void pv_rows_bf16(const uint16_t* pb, int64_t nr, const uint32_t* vt2, int64_t np, float* acc) {
  constexpr int RB = NV == 4 ? 3 : 4;
  int64_t r = 0;
  for (; r + RB <= nr; r += RB) pv_micro_bf16<RB, NV>(pb + r * kBk, vt2, np, acc + r * 16 * NV);
  for (; r < nr; ++r) pv_micro_bf16<1, NV>(pb + r * kBk, vt2, np, acc + r * 16 * NV);
}

}  // namespace

// kt (D, kBk) = K rows j0 .. j0+bk−1 transposed; columns bk .. kBk−1 zero.
void load_kt(const BlockedAttention& a, int64_t j0, int64_t bk, float* kt) {
  const int64_t D = a.D;
  if (bk < kBk) {
    for (int64_t d = 0; d < D; ++d) std::fill(kt + d * kBk + bk, kt + (d + 1) * kBk, 0.f);
  }
  if (a.k32) {
    const float* K = a.k32 + j0 * D;
    for (int64_t j = 0; j < bk; ++j)
      for (int64_t d = 0; d < D; ++d) kt[d * kBk + j] = K[j * D + d];
  } else {
    const uint16_t* K = a.k16 + j0 * D;
    for (int64_t j = 0; j < bk; ++j)
      for (int64_t d = 0; d < D; ++d) kt[d * kBk + j] = bf16_widen(K[j * D + d]);
  }
}

// The value tile (bk, D): the cache itself for fp32, widened into vt for bf16.
const float* load_v(const BlockedAttention& a, int64_t j0, int64_t bk, float* vt) {
  const int64_t D = a.D;
  if (a.v32) return a.v32 + j0 * D;
  const uint16_t* V = a.v16 + j0 * D;
  for (int64_t t = 0; t < bk * D; ++t) vt[t] = bf16_widen(V[t]);
  return vt;
}

// S (nr, kBk) = raw products of rows 0..nr−1 with the tile's first `cols` columns (rounded up to
// 64; the padding columns are 0).
void scores_tile(const float* q, int64_t ldq, int64_t nr, const float* kt, int64_t D, int64_t cols,
                 float* s) {
  for (int64_t c0 = 0; c0 < cols; c0 += 64) {
    int64_t r = 0;
    for (; r + 4 <= nr; r += 4) scores_micro<4>(q + r * ldq, ldq, kt, D, c0, s + r * kBk);
    switch (nr - r) {
      case 3:
        scores_micro<3>(q + r * ldq, ldq, kt, D, c0, s + r * kBk);
        break;
      case 2:
        scores_micro<2>(q + r * ldq, ldq, kt, D, c0, s + r * kBk);
        break;
      case 1:
        scores_micro<1>(q + r * ldq, ldq, kt, D, c0, s + r * kBk);
        break;
      default:
        break;
    }
  }
}

// acc (nr, D) += P (nr, ld kBk) · V (bk, D).
void pv_tile(const float* p, int64_t nr, const float* V, int64_t bk, int64_t D, float* acc) {
  if (D == 16)
    pv_rows<1>(p, nr, V, bk, acc);
  else if (D == 32)
    pv_rows<2>(p, nr, V, bk, acc);
  else
    pv_rows<4>(p, nr, V, bk, acc);
}

bool cpu_has_bf16() {
  static const bool yes = __builtin_cpu_supports("avx512bf16");
  return yes;
}

// vt2 (ceil(bk/2), D): word (jp, d) = (V[2jp][d], V[2jp+1][d]); a missing odd key is 0.
void load_vt2(const BlockedAttention& a, int64_t j0, int64_t bk, uint32_t* vt2) {
  const int64_t D = a.D;
  const uint16_t* V = a.v16 + j0 * D;
  for (int64_t jp = 0; jp < (bk + 1) / 2; ++jp) {
    const uint16_t* v0 = V + 2 * jp * D;
    const bool odd = 2 * jp + 1 < bk;
    for (int64_t d = 0; d < D; ++d) {
      const uint32_t hi = odd ? v0[D + d] : 0u;
      vt2[jp * D + d] = static_cast<uint32_t>(v0[d]) | (hi << 16);
    }
  }
}

void pv_tile_bf16(const uint16_t* pb, int64_t nr, const uint32_t* vt2, int64_t np, int64_t D,
                  float* acc) {
  if (D == 16)
    pv_rows_bf16<1>(pb, nr, vt2, np, acc);
  else if (D == 32)
    pv_rows_bf16<2>(pb, nr, vt2, np, acc);
  else
    pv_rows_bf16<4>(pb, nr, vt2, np, acc);
}

}  // namespace lb
