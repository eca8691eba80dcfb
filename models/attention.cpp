#include "models/attention.h"

#include <algorithm>
#include <cmath>

#include "core/check.h"
#include "models/dnnl_util.h"
#include "models/kernels/attention_score.h"
#include "models/kernels/fused_attention.h"
#include "models/parallel.h"
#include "models/profile.h"

namespace lb {

namespace {

void prob_offsets_into(const std::vector<int64_t>& offsets, int64_t H, std::vector<int64_t>& out) {
  out.assign(offsets.size(), 0);
  for (size_t b = 0; b + 1 < offsets.size(); ++b) {
    const int64_t T = offsets[b + 1] - offsets[b];
    out[b + 1] = out[b] + H * T * T;
  }
}

}  // namespace

std::vector<int64_t> attention_prob_offsets(const std::vector<int64_t>& offsets, int64_t H) {
  std::vector<int64_t> out;
  prob_offsets_into(offsets, H, out);
  return out;
}

namespace {

// Packed (T, H·D) rows of one sample <-> per-head contiguous (H, T, D).
void gather_heads(const float* x, int64_t T, int64_t H, int64_t D, float* out) {
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t h = 0; h < H; ++h) {
      std::copy(x + t * H * D + h * D, x + t * H * D + h * D + D, out + (h * T + t) * D);
    }
  }
}

void scatter_heads(const float* in, int64_t T, int64_t H, int64_t D, float* x) {
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t h = 0; h < H; ++h) {
      std::copy(in + (h * T + t) * D, in + (h * T + t) * D + D, x + t * H * D + h * D);
    }
  }
}

// Per-thread scratch reused across samples and calls (grown, never shrunk).
struct Scratch {
  std::vector<float> q, k, v, o, s, ds, z;
  void reserve(int64_t H, int64_t T, int64_t D) {
    const size_t hd = static_cast<size_t>(H * T * D), tt = static_cast<size_t>(H * T * T);
    if (q.size() < hd) q.resize(hd), k.resize(hd), v.resize(hd), o.resize(hd);
    if (s.size() < tt) s.resize(tt), ds.resize(tt);
    if (z.size() < static_cast<size_t>(T)) z.resize(T);
  }
};

Scratch& scratch() {
  thread_local Scratch s;
  return s;
}

// Samples longest first, so the dynamic schedule ends with short ones (balance); ties in index
// order. Each sample is computed by one thread from its inputs alone: results do not depend on
// the thread count.
void longest_first(const std::vector<int64_t>& offsets, std::vector<int64_t>& order) {
  order.resize(offsets.size() - 1);
  for (size_t b = 0; b < order.size(); ++b) order[b] = static_cast<int64_t>(b);
  std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    const int64_t ta = offsets[a + 1] - offsets[a], tb = offsets[b + 1] - offsets[b];
    return ta != tb ? ta > tb : a < b;
  });
}

// fn(r0, T, prob_offset) for every non-empty sample, in parallel over samples. The calling
// thread's index buffers are reused across calls (no allocation per call once grown).
template <typename Fn>
void for_each_sample(const std::vector<int64_t>& offsets, int64_t H, Fn fn) {
  thread_local std::vector<int64_t> prob_off_buf, order_buf;
  // References bind the calling thread's buffers: inside the parallel region the thread_local
  // names would be each team thread's own (empty) ones.
  std::vector<int64_t>& prob_off = prob_off_buf;
  std::vector<int64_t>& order = order_buf;
  prob_offsets_into(offsets, H, prob_off);
  longest_first(offsets, order);
  const int64_t B = static_cast<int64_t>(order.size());
  parallel_for_dynamic(B, [&](int64_t n) {
    const int64_t b = order[n], r0 = offsets[b], T = offsets[b + 1] - r0;
    if (T > 0) fn(r0, T, prob_off[b]);
  });
}

void forward_sample(const NormalizerSpec& spec, int64_t H, int64_t D, int64_t r0, int64_t T,
                    const float* q, const float* k, const float* v, const float* scale,
                    const float* slopes, float* P, float* att) {
  const float inv_sqrt_d = inv_sqrt_head_dim(D);
  Scratch& sc = scratch();
  sc.reserve(H, T, D);
  gather_heads(q + r0 * H * D, T, H, D, sc.q.data());
  gather_heads(k + r0 * H * D, T, H, D, sc.k.data());
  gather_heads(v + r0 * H * D, T, H, D, sc.v.data());
  // S (H, T, T) = Q Kᵀ
  matmul(false, true, H, T, T, D, sc.q.data(), sc.k.data(), sc.s.data(), false);
  for (int64_t hi = 0; hi < H * T; ++hi) {
    const int64_t h = hi / T, i = hi % T;
    float* z = sc.s.data() + hi * T;
    const float f = score_factor(scale[(r0 + i) * H + h], inv_sqrt_d);
    attention_score_row(z, z, i + 1, f, head_slope(spec, slopes, h), i);
    float* p = P + hi * T;
    normalize_forward(spec, z, i + 1, p, T);  // the call has T keys (topk's div-2 rule)
    std::fill(p + i + 1, p + T, 0.f);
  }
  // O (H, T, D) = P V
  matmul(false, false, H, T, D, T, P, sc.v.data(), sc.o.data(), false);
  scatter_heads(sc.o.data(), T, H, D, att + r0 * H * D);
}

void backward_sample(const NormalizerSpec& spec, int64_t H, int64_t D, int64_t r0, int64_t T,
                     const float* q, const float* k, const float* v, const float* scale,
                     const float* slopes, const float* P, const float* datt, float* dq, float* dk,
                     float* dv, float* dscale) {
  const float inv_sqrt_d = inv_sqrt_head_dim(D);
  Scratch& sc = scratch();
  sc.reserve(H, T, D);
  gather_heads(q + r0 * H * D, T, H, D, sc.q.data());
  gather_heads(k + r0 * H * D, T, H, D, sc.k.data());
  gather_heads(v + r0 * H * D, T, H, D, sc.v.data());
  gather_heads(datt + r0 * H * D, T, H, D, sc.o.data());  // dO
  // dP (H, T, T) = dO Vᵀ;  dV = Pᵀ dO
  matmul(false, true, H, T, T, D, sc.o.data(), sc.v.data(), sc.ds.data(), false);
  matmul(true, false, H, T, D, T, P, sc.o.data(), sc.v.data(), false);
  scatter_heads(sc.v.data(), T, H, D, dv + r0 * H * D);
  // S again (cheaper than keeping it): z is rebuilt per row for the normalizer's backward.
  matmul(false, true, H, T, T, D, sc.q.data(), sc.k.data(), sc.s.data(), false);
  float* z = sc.z.data();  // one row's scores
  for (int64_t hi = 0; hi < H * T; ++hi) {
    const int64_t h = hi / T, i = hi % T;
    const float* s = sc.s.data() + hi * T;
    float* dz = sc.ds.data() + hi * T;
    const float f = score_factor(scale[(r0 + i) * H + h], inv_sqrt_d);
    attention_score_row(s, z, i + 1, f, head_slope(spec, slopes, h), i);
    normalize_backward(spec, z, P + hi * T, dz, i + 1, dz);
    dscale[(r0 + i) * H + h] = attention_score_row_backward(s, dz, i + 1, f, inv_sqrt_d);
    std::fill(dz + i + 1, dz + T, 0.f);
  }
  // dQ = dS K;  dK = dSᵀ Q
  matmul(false, false, H, T, D, T, sc.ds.data(), sc.k.data(), sc.o.data(), false);
  scatter_heads(sc.o.data(), T, H, D, dq + r0 * H * D);
  matmul(true, false, H, T, D, T, sc.ds.data(), sc.q.data(), sc.o.data(), false);
  scatter_heads(sc.o.data(), T, H, D, dk + r0 * H * D);
}

}  // namespace

void attention_forward(const NormalizerSpec& spec, AttentionDims dims,
                       const std::vector<int64_t>& offsets, const float* q, const float* k,
                       const float* v, const float* scale, const float* slopes, float* probs,
                       float* att) {
  ProfileScope prof("attention");
  const bool fused = fused_attention_enabled();
  for_each_sample(offsets, dims.H, [&](int64_t r0, int64_t T, int64_t prob_at) {
    if (fused && fused_attention_fits(T, dims.D)) {  // short rows: one pass per head
      const int64_t at = r0 * dims.H * dims.D;
      fused_attention_forward_sample(spec, dims.H, dims.D, T, q + at, k + at, v + at,
                                     scale + r0 * dims.H, slopes, probs + prob_at, att + at);
      return;
    }
    forward_sample(spec, dims.H, dims.D, r0, T, q, k, v, scale, slopes, probs + prob_at, att);
  });
}

void attention_backward(const NormalizerSpec& spec, AttentionDims dims,
                        const std::vector<int64_t>& offsets, const float* q, const float* k,
                        const float* v, const float* scale, const float* slopes, const float* probs,
                        const float* datt, float* dq, float* dk, float* dv, float* dscale) {
  ProfileScope prof("attention");
  const bool fused = fused_attention_enabled();
  for_each_sample(offsets, dims.H, [&](int64_t r0, int64_t T, int64_t prob_at) {
    if (fused && fused_attention_fits(T, dims.D)) {
      const int64_t at = r0 * dims.H * dims.D;
      fused_attention_backward_sample(spec, dims.H, dims.D, T, q + at, k + at, v + at,
                                      scale + r0 * dims.H, slopes, probs + prob_at, datt + at,
                                      dq + at, dk + at, dv + at, dscale + r0 * dims.H);
      return;
    }
    backward_sample(spec, dims.H, dims.D, r0, T, q, k, v, scale, slopes, probs + prob_at, datt, dq,
                    dk, dv, dscale);
  });
}

}  // namespace lb
