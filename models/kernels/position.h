// Position encodings of the attention layer: NoPE, RoPE (rotate-half), ALiBi (geometric slopes)
// and NAPE (the paper's hybrid: the first H/2 heads ALiBi with slopes 1, 1/2, 1/3, ..., the rest
// NoPE). References: arXiv 2506.16640 §3; the released sparse_gemma.py (RoPE, NAPE slopes).
//
// Bias: for head h, query position i and key position j <= i, b_h(i, j) = m_h · (j − i) <= 0,
// added to the score after the 1/√d scaling (and after the query length scaling).
// Length scaling (SSMax/ASEntmax): under NAPE only the NoPE heads (h >= H/2); otherwise all heads.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace lb {

enum class PosEncoding { kNope, kRope, kAlibi, kNape };

// Registry names: "nope", "rope", "alibi", "nape". Unknown names: UsageError with "did you mean".
const char* position_encoding_name(PosEncoding pe);
PosEncoding position_encoding_from_name(const std::string& name);
const std::vector<std::string>& all_position_encoding_names();
// Whether the encoding rotates q and k (RoPE); the others add a bias slope·(j − i) to the score.
bool position_encoding_rotates(PosEncoding pe);
// What head h of H does with positions: "rope", "alibi" (a nonzero slope) or "nope".
const char* position_head_kind(PosEncoding pe, int h, int H);

// ALiBi slopes (Press et al.): geometric, m_h = 2^(−8(h+1)/H) for H a power of two; otherwise the
// first P = 2^⌊log2 H⌋ of those plus every other slope of the 2P sequence. (H)
std::vector<float> alibi_slopes(int H);
// NAPE slopes: heads 0 .. H/2−1 get 1/(h+1) ("linear", the released default) or 2^(−h)
// (exp_slopes); heads H/2 .. H−1 get 0. (H)
std::vector<float> nape_slopes(int H, bool exp_slopes = false);
// Slopes for any encoding: zeros for nope and rope. (H)
std::vector<float> position_slopes(PosEncoding pe, int H);
// Whether head h of H gets the SSMax/ASEntmax query scaling.
bool is_length_scaled_head(PosEncoding pe, int h, int H);
// Number of length-scaled heads (they are the last ones: heads H − count .. H − 1).
int num_length_scaled_heads(PosEncoding pe, int H);

// b_h(i, j) = slope · rel with rel = j − i: the one bias formula (attention_score.h adds it to
// the scaled product; positions fit in int32). Always inlined, so each caller keeps its ISA.
__attribute__((always_inline)) inline float position_bias(float slope, int32_t rel) {
  return slope * static_cast<float>(rel);
}
inline float position_bias(float slope, int64_t i, int64_t j) {
  return position_bias(slope, static_cast<int32_t>(j - i));
}

// RoPE, GPT-NeoX rotate-half layout: pairs (x_k, x_{k+d/2}) rotate by angle pos · θ^(−2k/d),
//   y_k       = x_k cos − x_{k+d/2} sin
//   y_{k+d/2} = x_{k+d/2} cos + x_k sin,         k = 0 .. d/2 − 1.
// Angles are computed in double, stored as fp32 cos/sin of shape (max_pos, d/2).
struct RopeTable {
  int64_t max_pos = 0;
  int head_dim = 0;  // d, even
  double theta = 10000.0;
  std::vector<float> cos, sin;  // (max_pos, d/2)
};
RopeTable make_rope_table(int64_t max_pos, int head_dim, double theta = 10000.0);

// x, y: T rows of one head, row t at x + t·stride (stride >= d), at positions pos0 .. pos0+T−1
// (< max_pos). In place (x == y) is allowed.
void rope_forward(const RopeTable& table, const float* x, int64_t T, int64_t stride, int64_t pos0,
                  float* y);
// The transpose: rotation by −angle. dy -> dx, same layout; dx == dy allowed.
void rope_backward(const RopeTable& table, const float* dy, int64_t T, int64_t stride,
                   int64_t pos0, float* dx);

}  // namespace lb
