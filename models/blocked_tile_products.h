// The tile products of the blocked prefill (models/blocked_attention.h): key tiles loaded from
// the KV cache (fp32, or bf16 widened), scores of a block of query rows against a key tile, and
// the weights × values accumulation in fp32 or in bf16 pairs (AVX512-BF16). AVX-512 micro-kernels;
// callers check blocked_attention_supports first. A score tile is (rows, ld kKeyTile).
#pragma once
#include <cstdint>

#include "models/blocked_attention.h"

namespace lb {

// kt (D, kKeyTile) = the head's keys j0 .. j0+bk−1 transposed; columns bk .. kKeyTile−1 zero.
void load_kt(const BlockedAttention& a, int64_t j0, int64_t bk, float* kt);

// The value tile (bk, D): the cache itself for fp32, widened into vt (bk, D) for bf16.
const float* load_v(const BlockedAttention& a, int64_t j0, int64_t bk, float* vt);

// S (nr, ld kKeyTile) = raw products of query rows q (nr, D; ldq) with the first `cols` columns
// of kt (rounded up to 64; the padding columns are 0).
void scores_tile(const float* q, int64_t ldq, int64_t nr, const float* kt, int64_t D, int64_t cols,
                 float* s);

// acc (nr, D) += P (nr, ld kKeyTile) columns 0 .. bk−1 · V (bk, D); D in {16, 32, 64}.
void pv_tile(const float* p, int64_t nr, const float* V, int64_t bk, int64_t D, float* acc);

// bf16 weight × value products (vdpbf16ps: two bf16 products summed into each fp32 lane).
// Scores stay fp32 (the keys widened), so thresholds and supports match the plain path; only the
// weights are rounded to bf16 (relative 2^-9) before mixing the bf16 values.
bool cpu_has_bf16();  // AVX512-BF16
// vt2 (ceil(bk/2), D): word (jp, d) = (V[2jp][d], V[2jp+1][d]) of the bf16 cache; a missing odd
// key is 0.
void load_vt2(const BlockedAttention& a, int64_t j0, int64_t bk, uint32_t* vt2);
// acc (nr, D) += pb (nr, ld kKeyTile; bf16 weights) · vt2 over key pairs 0 .. np−1.
void pv_tile_bf16(const uint16_t* pb, int64_t nr, const uint32_t* vt2, int64_t np, int64_t D,
                  float* acc);

}  // namespace lb
