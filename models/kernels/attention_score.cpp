// Position encoding and query length scale as both engines apply them. Contract:
// attention_score.h.
#include "models/kernels/attention_score.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/check.h"

namespace lb {

int num_query_scaled_heads(LengthScale kind, PosEncoding pe, int H) {
  return kind == LengthScale::kNone ? 0 : num_length_scaled_heads(pe, H);
}

AttentionPositions::AttentionPositions(PosEncoding pe_, LengthScale scale_, int64_t H_, int64_t D_,
                                       double rope_theta_)
    : pe(pe_), scale(scale_), H(H_), D(D_), rope_theta(rope_theta_) {
  slopes = position_slopes(pe, static_cast<int>(H));
  n_scaled = num_query_scaled_heads(scale, pe, static_cast<int>(H));
}

bool AttentionPositions::rotates() const { return position_encoding_rotates(pe); }

void AttentionPositions::reserve(int64_t max_positions) {
  if (!rotates() || rope.max_pos >= max_positions) return;
  rope = make_rope_table(std::max<int64_t>(max_positions, 2 * rope.max_pos), static_cast<int>(D),
                         rope_theta);
}

void AttentionPositions::rotate(float* x, int64_t rows, int64_t pos0) const {
  if (!rotates() || rows <= 0) return;
  for (int64_t h = 0; h < H; ++h) rope_forward(rope, x + h * D, rows, H * D, pos0, x + h * D);
}

void AttentionPositions::rotate_backward(float* dx, int64_t rows, int64_t pos0) const {
  if (!rotates() || rows <= 0) return;
  for (int64_t h = 0; h < H; ++h) rope_backward(rope, dx + h * D, rows, H * D, pos0, dx + h * D);
}

void query_scale_forward(LengthScale kind, const QueryScaleWeights& w, int64_t R, int64_t H,
                         int64_t Hs, const int32_t* pos, int64_t pos0, float* sa, float* sb,
                         float* scale, float* ga, float* gb) {
  std::fill(scale, scale + R * H, 1.f);
  if (Hs == 0 || R <= 0) return;
  if (kind == LengthScale::kAdaptSoftplusTanh) {
    for (int64_t r = 0; r < R; ++r) {
      for (int64_t h = 0; h < Hs; ++h) {
        sa[r * Hs + h] += w.a_bias[h];
        sb[r * Hs + h] += w.b_bias[h];
      }
    }
  } else {
    for (int64_t r = 0; r < R; ++r) {
      for (int64_t h = 0; h < Hs; ++h) {
        sa[r * Hs + h] = w.a[h];
        sb[r * Hs + h] = w.b ? w.b[h] : 0.f;
      }
    }
  }
  const LengthScaleParams lsp;
  if (!ga || !gb) {
    for (int64_t r = 0; r < R; ++r) {
      const int64_t p = pos ? pos[r] : pos0 + r;
      for (int64_t h = 0; h < Hs; ++h) {
        scale[r * H + (H - Hs + h)] = length_scale(kind, p, sa[r * Hs + h], sb[r * Hs + h], lsp);
      }
    }
    return;
  }
  // L and log L of each position, computed once per thread and position (the same calls as
  // length_scale's): the rows of a packed batch repeat the positions 0, 1, ... of every sample.
  thread_local std::vector<double> logs;  // (positions, 2): L, log L
  for (int64_t r = 0; r < R; ++r) {
    const int64_t p = pos ? pos[r] : pos0 + r;
    while (static_cast<int64_t>(logs.size()) <= 2 * p) {
      const double L = log_position(static_cast<int64_t>(logs.size() / 2));
      logs.push_back(L);
      logs.push_back(std::log(L));
    }
    for (int64_t h = 0; h < Hs; ++h) {
      const LengthScaleWithGrad v = length_scale_with_grad(kind, logs[2 * p], logs[2 * p + 1],
                                                           sa[r * Hs + h], sb[r * Hs + h], lsp);
      scale[r * H + (H - Hs + h)] = v.s;
      ga[r * Hs + h] = v.ds_da;
      gb[r * Hs + h] = v.ds_db;
    }
  }
}

void query_scale_backward(int64_t R, int64_t H, int64_t Hs, const float* ga, const float* gb,
                          const float* dscale, float* da, float* db) {
  for (int64_t r = 0; r < R; ++r) {
    for (int64_t h = 0; h < Hs; ++h) {
      const float ds = dscale[r * H + (H - Hs + h)];
      da[r * Hs + h] = ds * ga[r * Hs + h];
      db[r * Hs + h] = ds * gb[r * Hs + h];
    }
  }
}

}  // namespace lb
