// Blocked (flash-style) causal attention of one head over a block of query rows: the prefill
// kernel of models/inference.cpp (issue 14). Keys and values are read in tiles of kKeyTile rows
// straight from the KV cache (fp32 or bf16); no score row of the full length is ever formed, so
// the scratch of a unit is O(rows · kKeyTile + kKeyTile · D) floats plus one float per
// (row, key tile) for the entmax tile maxima (64 rows at 65,536 keys: 128 KiB) and a fixed 4 MiB
// entmax candidate buffer.
//
// Normalizers (blocked_attention_supports):
//   softmax family (softmax, ssmax, any query length scaling): one pass, online normalisation —
//     a running max m and sum l per row, the output rescaled when m grows; each row of a score
//     tile goes through registers once (softmax_row_avx512, models/blocked_rows.h).
//   α-entmax with α = 1.5 or 2 (entmax, sparsemax, asentmax): the exact threshold τ of each row,
//     then one output pass. (0) far tiles: a key whose score is at least 1/(α−1) below its row's
//     max is never in the support (τ ≥ max − 1 in the scaled domain), so a tile whose score bound
//     (Cauchy–Schwarz ‖q‖·|f|·max‖k‖ plus the tile's largest position bias) falls that far below
//     each row's max over the first row's own tile is skipped by every pass: ALiBi heads read
//     a window of keys, not the whole row. (1) max pass: the scores of every key tile, the row max
//     m and the max of each (row, tile). (2) threshold passes: the exact search of entmax_tau.h in
//     the shifted scaled domain v = (α−1)(z − m), bracket [−1, −n^(1−α)]; each pass recomputes only
//     the tiles holding a candidate (v > −1) of a row still searching — or, for the rows whose
//     candidates fit their slice of a per-thread buffer of 2^20 floats, gathers them once (in
//     the max pass) and searches in memory. A full slice is cut to the scores above the slice's
//     own threshold, a lower bound of the row's (adding scores only raises a threshold), and the
//     row gathers above that cut from then on (compact_candidates, models/blocked_rows.h); only
//     rows whose support outgrows a slice recompute tiles. (3) output pass over the tiles holding
//     a support member (tile max above τ): sparse rows skip most of the row.
//   Everything else (top-k, stick-breaking, adaptive temperature: they need the whole row or its
//   order statistics; entmax with other α: Halley iterations over a stored row) stays on the
//   plain path of inference.cpp, as do head_dim not in {16, 32, 64} and CPUs without AVX-512.
// Products (models/blocked_tile_products.h): fp32 AVX-512 FMA micro-kernels for the scores (bf16
// keys widened on load), so scores, thresholds and supports equal the plain path's up to the
// order of fp32 sums. With a bf16 cache on a CPU with AVX512-BF16 the weight × value products
// can be bf16 (bf16_products, off by default; vdpbf16ps: the weights rounded to bf16, relative
// 2^-9; fp32 sums). bf16 scores (the
// query rounded too) moved SSMax logits of a random model by more than 3e-2: not offered.
#pragma once
#include <cstdint>
#include <functional>

#include "models/kernels/normalizer.h"

namespace lb {

constexpr int64_t kKeyTile = 128;  // keys per tile

// One unit: head h of query rows r = 0 .. nr−1 at positions pos0 + r; row r sees keys
// 0 .. pos0 + r. Score of key j for row r: (q_r · k_j) · scale[r·ld_scale] · inv_sqrt_d
// + slope · (j − pos0 − r), computed as the plain path does.
struct BlockedAttention {
  const NormalizerSpec* spec = nullptr;
  int64_t D = 0;             // head_dim
  int64_t nr = 0, pos0 = 0;  // query rows, position of row 0
  const float* q = nullptr;  // (nr, D), row stride ldq
  int64_t ldq = 0;
  const float* scale = nullptr;  // (nr) at stride ld_scale: the query length scale
  int64_t ld_scale = 1;
  float inv_sqrt_d = 1.f, slope = 0.f;
  const float *k32 = nullptr, *v32 = nullptr;     // (pos0 + nr, D): this head's cache, fp32
  const uint16_t *k16 = nullptr, *v16 = nullptr;  // ... or bf16
  // With a bf16 cache, mix values with bf16 products (weights rounded to bf16, fp32 sums;
  // AVX512-BF16) where the CPU has them. Off by default, and the engine leaves it off: behind
  // Gemma-2's post-attention norm, weights rounded to bf16 moved the logits of a random 2-layer
  // model by up to 4e-2 against the plain path. false: fp32 products.
  bool bf16_products = false;
  float* out = nullptr;  // (nr, D), row stride ldo
  int64_t ldo = 0;
  // Rows [obs_lo, obs_hi) are also normalised over their whole row with the plain normalizer
  // and handed to on_row(r, p (n), n, stats) with n = pos0 + r + 1 (an observer's view; O(n)
  // scratch for that row only).
  int64_t obs_lo = 0, obs_hi = 0;
  const std::function<void(int64_t, const float*, int64_t, const RowStats&)>* on_row = nullptr;
};

// Whether blocked_attention handles this normalizer and head_dim on this CPU.
bool blocked_attention_supports(const NormalizerSpec& spec, int64_t head_dim);

// out rows = the attention of the unit. Single-threaded; thread-safe (per-thread scratch).
void blocked_attention(const BlockedAttention& a);

// Test hook: the candidate buffer's capacity in floats (default 2^20; < 0 restores it); 0 sends
// every row through the recomputing threshold passes. Returns the previous value.
int64_t set_blocked_candidate_cap(int64_t floats);

// Tile statistics of the α-entmax units (issue 14): totals over every blocked_attention call since
// the last reset_blocked_tile_stats(), on all threads. Each unit counts locally and adds its counts
// once at its end (relaxed atomics); the outputs do not depend on them. Softmax-family units, which
// visit every tile by construction, are not counted. A unit's key tiles are those of its last row
// (positions 0 .. pos0 + nr − 1): one max pass over them, then the passes counted here.
struct BlockedTileStats {
  int64_t units = 0;              // α-entmax units
  int64_t tiles = 0;              // Σ key tiles causally available to a unit
  int64_t tiles_visited = 0;      // ... that the output pass scored (a support member of some row)
  int64_t row_tiles = 0;          // Σ over rows: key tiles holding a key the row sees
  int64_t row_tiles_support = 0;  // ... holding a member of that row's own support
  int64_t rows = 0;               // α-entmax rows
  int64_t rows_buffered = 0;      // ... whose τ was searched in the candidate buffer
  int64_t threshold_passes = 0;   // recomputing threshold passes (for the other rows)
  int64_t tiles_recomputed = 0;   // key tiles those passes scored again
  int64_t tiles_far = 0;          // key tiles no pass scored: too far for any row (the bound)
  int64_t compactions = 0;        // full candidate slices cut to the scores above their threshold
};
BlockedTileStats blocked_tile_stats();
void reset_blocked_tile_stats();

// The plain twin (test reference): every row scored in full, normalize_forward, weights × V.
void plain_attention(const BlockedAttention& a);

}  // namespace lb
