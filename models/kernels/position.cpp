// Position encodings: registry, ALiBi/NAPE slopes, head selection for length scaling, RoPE.
// Contract: position.h.
#include "models/kernels/position.h"

#include <cmath>

#include "core/check.h"
#include "core/name_table.h"

namespace lb {
namespace {

// A registry row: the name, the kind and whether q and k are rotated by position
// (attention_score.h AttentionPositions::rotate); the rest add a bias slope·(j − i).
struct PositionRow {
  const char* name;
  PosEncoding kind;
  bool rotary;
};

const NameTable<PositionRow>& position_table() {
  static const NameTable<PositionRow> kTable("position encoding",
                                             {
                                                 {"nope", PosEncoding::kNope, false},
                                                 {"rope", PosEncoding::kRope, true},
                                                 {"alibi", PosEncoding::kAlibi, false},
                                                 {"nape", PosEncoding::kNape, false},
                                             });
  return kTable;
}

}  // namespace

const char* position_encoding_name(PosEncoding pe) { return position_table().name_of(pe); }

bool position_encoding_rotates(PosEncoding pe) { return position_table().row(pe).rotary; }

const std::vector<std::string>& all_position_encoding_names() { return position_table().names(); }

PosEncoding position_encoding_from_name(const std::string& name) {
  return position_table().from_name(name);
}

std::vector<float> alibi_slopes(int H) {
  LB_REQUIRE(H >= 1, "alibi_slopes: number of heads " << H << " must be >= 1");
  int P = 1;
  while (P * 2 <= H) P *= 2;
  std::vector<float> out;
  for (int h = 0; h < P; ++h) out.push_back(static_cast<float>(std::exp2(-8.0 * (h + 1) / P)));
  // Not a power of two: every other slope of the 2P sequence, 2^(−8(2h+1)/(2P)).
  for (int h = 0; static_cast<int>(out.size()) < H; ++h) {
    out.push_back(static_cast<float>(std::exp2(-8.0 * (2 * h + 1) / (2.0 * P))));
  }
  return out;
}

std::vector<float> nape_slopes(int H, bool exp_slopes) {
  LB_REQUIRE(H >= 1, "nape_slopes: number of heads " << H << " must be >= 1");
  std::vector<float> out(H, 0.0f);
  for (int h = 0; h < H / 2; ++h) {
    out[h] = exp_slopes ? static_cast<float>(std::exp2(-h)) : 1.0f / static_cast<float>(h + 1);
  }
  return out;
}

std::vector<float> position_slopes(PosEncoding pe, int H) {
  switch (pe) {
    case PosEncoding::kAlibi:
      return alibi_slopes(H);
    case PosEncoding::kNape:
      return nape_slopes(H);
    case PosEncoding::kNope:
    case PosEncoding::kRope:
      break;
  }
  return std::vector<float>(H, 0.0f);
}

const char* position_head_kind(PosEncoding pe, int h, int H) {
  if (position_encoding_rotates(pe)) return "rope";
  return position_slopes(pe, H).at(h) != 0.0f ? "alibi" : "nope";
}

int num_length_scaled_heads(PosEncoding pe, int H) {
  return pe == PosEncoding::kNape ? H - H / 2 : H;
}

bool is_length_scaled_head(PosEncoding pe, int h, int H) {
  return h >= H - num_length_scaled_heads(pe, H) && h < H;
}

RopeTable make_rope_table(int64_t max_pos, int head_dim, double theta) {
  LB_REQUIRE(head_dim >= 2 && head_dim % 2 == 0,
             "RoPE head_dim " << head_dim << " must be even and >= 2");
  LB_REQUIRE(theta > 1.0, "RoPE theta " << theta << " must be > 1");
  LB_REQUIRE(max_pos >= 1, "RoPE max_pos " << max_pos << " must be >= 1");
  RopeTable t;
  t.max_pos = max_pos;
  t.head_dim = head_dim;
  t.theta = theta;
  const int half = head_dim / 2;
  t.cos.resize(static_cast<size_t>(max_pos) * half);
  t.sin.resize(static_cast<size_t>(max_pos) * half);
  for (int k = 0; k < half; ++k) {
    const double inv_freq = std::pow(theta, -2.0 * k / head_dim);
    for (int64_t pos = 0; pos < max_pos; ++pos) {
      const double angle = static_cast<double>(pos) * inv_freq;
      t.cos[pos * half + k] = static_cast<float>(std::cos(angle));
      t.sin[pos * half + k] = static_cast<float>(std::sin(angle));
    }
  }
  return t;
}

namespace {

// Rotates each row by +angle (sign = 1) or −angle (sign = −1).
void rope_rotate(const RopeTable& t, const float* x, int64_t T, int64_t stride, int64_t pos0,
                 float sign, float* y) {
  const int half = t.head_dim / 2;
  LB_CHECK(pos0 >= 0 && pos0 + T <= t.max_pos, "RoPE positions " << pos0 << ".." << pos0 + T - 1
                                                                 << " exceed the table ("
                                                                 << t.max_pos << ")");
  LB_CHECK(stride >= t.head_dim, "RoPE row stride " << stride << " < head_dim " << t.head_dim);
  for (int64_t r = 0; r < T; ++r) {
    const float* c = t.cos.data() + (pos0 + r) * half;
    const float* s = t.sin.data() + (pos0 + r) * half;
    const float* xr = x + r * stride;
    float* yr = y + r * stride;
    for (int k = 0; k < half; ++k) {
      const float a = xr[k], b = xr[k + half];
      const float sk = sign * s[k];
      yr[k] = a * c[k] - b * sk;
      yr[k + half] = b * c[k] + a * sk;
    }
  }
}

}  // namespace

void rope_forward(const RopeTable& table, const float* x, int64_t T, int64_t stride, int64_t pos0,
                  float* y) {
  rope_rotate(table, x, T, stride, pos0, 1.0f, y);
}

void rope_backward(const RopeTable& table, const float* dy, int64_t T, int64_t stride, int64_t pos0,
                   float* dx) {
  rope_rotate(table, dy, T, stride, pos0, -1.0f, dx);
}

}  // namespace lb
