// Position encodings: registry, ALiBi/NAPE slopes, head selection for length scaling, RoPE.
// Contract: position.h.
#include "models/kernels/position.h"

#include <cmath>

#include "core/check.h"

namespace lb {
namespace {

struct PositionEntry {
  const char* name;
  PosEncoding pe;
};

const std::vector<PositionEntry>& position_table() {
  static const std::vector<PositionEntry> kTable = {
      {"nope", PosEncoding::kNope},
      {"rope", PosEncoding::kRope},
      {"alibi", PosEncoding::kAlibi},
      {"nape", PosEncoding::kNape},
  };
  return kTable;
}

}  // namespace

const char* position_encoding_name(PosEncoding pe) {
  for (const auto& e : position_table()) {
    if (e.pe == pe) return e.name;
  }
  LB_CHECK(false, "PosEncoding " << static_cast<int>(pe) << " missing from the registry");
  return "";
}

const std::vector<std::string>& all_position_encoding_names() {
  static const std::vector<std::string> kNames = [] {
    std::vector<std::string> names;
    for (const auto& e : position_table()) names.push_back(e.name);
    return names;
  }();
  return kNames;
}

PosEncoding position_encoding_from_name(const std::string& name) {
  for (const auto& e : position_table()) {
    if (name == e.name) return e.pe;
  }
  throw UsageError(
      unknown_name_message("position encoding", name, all_position_encoding_names()));
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

int num_length_scaled_heads(PosEncoding pe, int H) { return pe == PosEncoding::kNape ? H - H / 2 : H; }

bool is_length_scaled_head(PosEncoding pe, int h, int H) {
  return h >= H - num_length_scaled_heads(pe, H) && h < H;
}

void add_position_bias_row(float slope, int64_t i, float* z) {
  if (slope == 0.0f) return;
  for (int64_t j = 0; j <= i; ++j) z[j] += slope * static_cast<float>(j - i);
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
  LB_CHECK(pos0 >= 0 && pos0 + T <= t.max_pos,
           "RoPE positions " << pos0 << ".." << pos0 + T - 1 << " exceed the table (" << t.max_pos << ")");
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

void rope_backward(const RopeTable& table, const float* dy, int64_t T, int64_t stride,
                   int64_t pos0, float* dx) {
  rope_rotate(table, dy, T, stride, pos0, -1.0f, dx);
}

}  // namespace lb
