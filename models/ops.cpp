#include "models/ops.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "models/parallel.h"
#include "models/profile.h"
#include "models/rmsnorm_rows.h"

namespace lb {

void rmsnorm_forward(const float* x, const float* w, float* y, float* rstd, int64_t R, int64_t C) {
  ProfileScope prof("rmsnorm");
  const int64_t blocks = (R + kRmsLanes - 1) / kRmsLanes;
  parallel_for_static(blocks, [&](int64_t b) {
    const int64_t r0 = b * kRmsLanes;
    rmsnorm_rows_forward(x + r0 * C, w, y + r0 * C, rstd + r0, std::min(kRmsLanes, R - r0), C);
  });
}

void rmsnorm_backward(const float* x, const float* w, const float* rstd, const float* dy,
                      float* dx, float* dw, int64_t R, int64_t C) {
  ProfileScope prof("rmsnorm");
  if (rmsnorm_lanes_enabled()) {
    rmsnorm_backward_lanes(x, w, rstd, dy, dx, dw, R, C);
  } else {
    rmsnorm_backward_plain(x, w, rstd, dy, dx, dw, R, C);
  }
}

void embedding_forward(const int32_t* ids, const float* table, float* y, int64_t R, int64_t C,
                       float scale) {
  ProfileScope prof("embedding");
  parallel_for_static(R, [&](int64_t r) {
    const float* t = table + static_cast<int64_t>(ids[r]) * C;
    float* yr = y + r * C;
    for (int64_t c = 0; c < C; ++c) yr[c] = t[c] * scale;
  });
}

void embedding_backward(const int32_t* ids, const float* dy, float* dtable, int64_t R, int64_t C,
                        float scale, int32_t frozen_id) {
  ProfileScope prof("embedding");
  // Serial in row order: rows sharing an id add in a fixed order.
  for (int64_t r = 0; r < R; ++r) {
    if (ids[r] == frozen_id) continue;
    float* t = dtable + static_cast<int64_t>(ids[r]) * C;
    const float* d = dy + r * C;
    for (int64_t c = 0; c < C; ++c) t[c] += d[c] * scale;
  }
}

double cross_entropy_forward_backward(const float* logits, const int32_t* target,
                                      const uint8_t* mask, float* dlogits, int64_t R, int64_t V,
                                      double denom) {
  ProfileScope prof("cross_entropy");
  // Per-row losses, summed in row order after the parallel loop (0 for unmasked rows), in a
  // buffer of the calling thread reused between calls (grown, never shrunk): no allocation per
  // step.
  thread_local std::vector<double> row_loss_buf;
  std::vector<double>& row_loss = row_loss_buf;  // the caller's buffer inside the region too
  row_loss.assign(R, 0.0);
  const float inv = static_cast<float>(1.0 / denom);
  parallel_for_static(R, [&](int64_t r) {
    float* d = dlogits + r * V;
    if (!mask[r]) {
      std::fill(d, d + V, 0.f);
      return;
    }
    const float* z = logits + r * V;
    float m = z[0];
    for (int64_t v = 1; v < V; ++v) m = std::max(m, z[v]);
    double sum = 0.0;
    for (int64_t v = 0; v < V; ++v) sum += std::exp(static_cast<double>(z[v] - m));
    const double lse = std::log(sum) + m;
    row_loss[r] = lse - z[target[r]];
    for (int64_t v = 0; v < V; ++v) {
      d[v] = static_cast<float>(std::exp(static_cast<double>(z[v]) - lse)) * inv;
    }
    d[target[r]] -= inv;
  });
  double total = 0.0;
  for (int64_t r = 0; r < R; ++r) total += row_loss[r];
  return total;
}

void mul_forward(const float* a, const float* u, float* m, int64_t n) {
  ProfileScope prof("geglu_mul");
  parallel_for_static(n, [&](int64_t i) { m[i] = a[i] * u[i]; });
}

void mul_backward(const float* a, const float* u, const float* dm, float* da, float* du,
                  int64_t n) {
  ProfileScope prof("geglu_mul");
  parallel_for_static(n, [&](int64_t i) {
    da[i] = dm[i] * u[i];
    du[i] = dm[i] * a[i];
  });
}

}  // namespace lb
