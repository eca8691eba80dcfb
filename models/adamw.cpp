#include "models/adamw.h"

#include <cmath>

namespace lb {

namespace {
constexpr int64_t kParallelMin = 1 << 15;  // smaller tensors: one thread (no fork/join cost)
}  // namespace

double lr_at(const TrainConfig& c, int64_t step) {
  if (step < c.warmup) return c.lr * static_cast<double>(step) / std::max<int64_t>(1, c.warmup);
  const double progress =
      static_cast<double>(step - c.warmup) / std::max<int64_t>(1, c.steps - c.warmup);
  return c.lr * std::max(0.0, 0.5 * (1.0 + std::cos(M_PI * progress)));
}

double global_grad_norm(const std::vector<Param>& params) {
  double total = 0.0;
  for (const Param& p : params) {
    const float* g = p.grad.data();
    const int64_t n = p.size();
    double s = 0.0;
#pragma omp parallel for schedule(static) reduction(+ : s) if (n > kParallelMin)
    for (int64_t i = 0; i < n; ++i) s += static_cast<double>(g[i]) * g[i];
    total += s;
  }
  return std::sqrt(total);
}

void clip_grads(std::vector<Param>& params, double norm, double max_norm) {
  if (max_norm <= 0 || norm <= max_norm) return;
  const float f = static_cast<float>(max_norm / (norm + 1e-6));
  for (Param& p : params) {
    float* g = p.grad.data();
    const int64_t n = p.size();
#pragma omp parallel for schedule(static) if (n > kParallelMin)
    for (int64_t i = 0; i < n; ++i) g[i] *= f;
  }
}

AdamW::AdamW(const std::vector<Param>& params, double beta1, double beta2, double eps,
             double weight_decay)
    : beta1_(beta1), beta2_(beta2), eps_(eps), weight_decay_(weight_decay) {
  for (const Param& p : params) {
    m_.emplace_back(p.size(), 0.f);
    v_.emplace_back(p.size(), 0.f);
  }
}

void AdamW::update(std::vector<Param>& params, double lr) {
  ++step_;
  const double bc1 = 1.0 - std::pow(beta1_, static_cast<double>(step_));
  const double bc2 = 1.0 - std::pow(beta2_, static_cast<double>(step_));
  const float b1 = static_cast<float>(beta1_), b2 = static_cast<float>(beta2_);
  const float step_size = static_cast<float>(lr / bc1);
  const float inv_sqrt_bc2 = static_cast<float>(1.0 / std::sqrt(bc2));
  const float eps = static_cast<float>(eps_);
  const float decay = static_cast<float>(1.0 - lr * weight_decay_);
  for (size_t k = 0; k < params.size(); ++k) {
    float* w = params[k].value.data();
    const float* g = params[k].grad.data();
    float* m = m_[k].data();
    float* v = v_[k].data();
    const int64_t n = params[k].size();
#pragma omp parallel for schedule(static) if (n > kParallelMin)
    for (int64_t i = 0; i < n; ++i) {
      w[i] *= decay;
      m[i] = b1 * m[i] + (1.f - b1) * g[i];
      v[i] = b2 * v[i] + (1.f - b2) * g[i] * g[i];
      w[i] -= step_size * m[i] / (std::sqrt(v[i]) * inv_sqrt_bc2 + eps);
    }
  }
}

}  // namespace lb
