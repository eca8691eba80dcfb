#include "models/adamw.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "models/parallel.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif

namespace lb {

namespace {

constexpr int64_t kParallelMin = 1 << 15;  // smaller tensors: one thread (no fork/join cost)

// Σ g² of one tensor in double, elements in ascending order: the sum of a 1-thread run, whose
// rounding a split of the tensor across threads would change (and with it the stored grad_norm
// and, through clipping, every later number).
double sum_squares(const float* g, int64_t n) {
  double s = 0.0;
  for (int64_t i = 0; i < n; ++i) s += static_cast<double>(g[i]) * g[i];
  return s;
}

// One step's scalars, rounded to float once.
struct AdamWScalars {
  float b1, b2, step_size, inv_sqrt_bc2, eps, decay;
};

// The AdamW update of elements [begin, end) of one tensor, element by element in float. The
// AVX-512 loop does the plain loop's operations in its order; both are compiled without fused
// multiply-adds (-ffp-contract=off for this file, models/CMakeLists.txt), so it gives the plain
// loop's bits (IEEE ×, +, ÷ and √ round alike in both).

void update_plain(const AdamWScalars& a, float* w, const float* g, float* m, float* v,
                  int64_t begin, int64_t end) {
  for (int64_t i = begin; i < end; ++i) {
    w[i] *= a.decay;
    m[i] = a.b1 * m[i] + (1.f - a.b1) * g[i];
    v[i] = a.b2 * v[i] + (1.f - a.b2) * g[i] * g[i];
    w[i] -= a.step_size * m[i] / (std::sqrt(v[i]) * a.inv_sqrt_bc2 + a.eps);
  }
}

#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("avx512f"))) void update_avx512(const AdamWScalars& a, float* w,
                                                      const float* g, float* m, float* v,
                                                      int64_t begin, int64_t end) {
  const __m512 b1 = _mm512_set1_ps(a.b1), c1 = _mm512_set1_ps(1.f - a.b1);
  const __m512 b2 = _mm512_set1_ps(a.b2), c2 = _mm512_set1_ps(1.f - a.b2);
  const __m512 step = _mm512_set1_ps(a.step_size), ib = _mm512_set1_ps(a.inv_sqrt_bc2);
  const __m512 eps = _mm512_set1_ps(a.eps), decay = _mm512_set1_ps(a.decay);
  int64_t i = begin;
  for (; i + 16 <= end; i += 16) {
    const __m512 gi = _mm512_loadu_ps(g + i);
    const __m512 wi = _mm512_mul_ps(_mm512_loadu_ps(w + i), decay);
    const __m512 mi =
        _mm512_add_ps(_mm512_mul_ps(b1, _mm512_loadu_ps(m + i)), _mm512_mul_ps(c1, gi));
    const __m512 vi = _mm512_add_ps(_mm512_mul_ps(b2, _mm512_loadu_ps(v + i)),
                                    _mm512_mul_ps(_mm512_mul_ps(c2, gi), gi));
    // (maskz: GCC 12 warns about _mm512_sqrt_ps's undefined source operand)
    const __m512 den = _mm512_add_ps(_mm512_mul_ps(_mm512_maskz_sqrt_ps(0xFFFF, vi), ib), eps);
    _mm512_storeu_ps(m + i, mi);
    _mm512_storeu_ps(v + i, vi);
    _mm512_storeu_ps(w + i, _mm512_sub_ps(wi, _mm512_div_ps(_mm512_mul_ps(step, mi), den)));
  }
  update_plain(a, w, g, m, v, i, end);
}

bool use_avx512() {
  static const bool yes = __builtin_cpu_supports("avx512f") != 0;
  return yes;
}
#else
void update_avx512(const AdamWScalars& a, float* w, const float* g, float* m, float* v,
                   int64_t begin, int64_t end) {
  update_plain(a, w, g, m, v, begin, end);
}
bool use_avx512() { return false; }
#endif

bool g_plain = false;

}  // namespace

double lr_at(const TrainConfig& c, int64_t step) {
  if (step < c.warmup) return c.lr * static_cast<double>(step) / std::max<int64_t>(1, c.warmup);
  const double progress =
      static_cast<double>(step - c.warmup) / std::max<int64_t>(1, c.steps - c.warmup);
  return c.lr * std::max(0.0, 0.5 * (1.0 + std::cos(M_PI * progress)));
}

double global_grad_norm(const std::vector<Param>& params) {
  // Each tensor's sum is one serial chain; the chains of different tensors run in parallel and
  // are added in parameter order, as on one thread.
  const int64_t P = static_cast<int64_t>(params.size());
  std::vector<double> sums(P, 0.0);
  int64_t total_n = 0;
  for (const Param& p : params) total_n += p.size();
  parallel_for_dynamic(
      P, [&](int64_t k) { sums[k] = sum_squares(params[k].grad.data(), params[k].size()); },
      total_n > kParallelMin);
  double total = 0.0;
  for (int64_t k = 0; k < P; ++k) total += sums[k];
  return std::sqrt(total);
}

void clip_grads(std::vector<Param>& params, double norm, double max_norm) {
  if (max_norm <= 0 || norm <= max_norm) return;
  const float f = static_cast<float>(max_norm / (norm + 1e-6));
  for (Param& p : params) {
    float* g = p.grad.data();
    const int64_t n = p.size();
    parallel_for_static(
        n, [&](int64_t i) { g[i] *= f; }, n > kParallelMin);
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
  AdamWScalars a;
  a.b1 = static_cast<float>(beta1_), a.b2 = static_cast<float>(beta2_);
  a.step_size = static_cast<float>(lr / bc1);
  a.inv_sqrt_bc2 = static_cast<float>(1.0 / std::sqrt(bc2));
  a.eps = static_cast<float>(eps_);
  a.decay = static_cast<float>(1.0 - lr * weight_decay_);
  const bool fast = use_avx512() && !g_plain;
  for (size_t k = 0; k < params.size(); ++k) {
    float* w = params[k].value.data();
    const float* g = params[k].grad.data();
    float* m = m_[k].data();
    float* v = v_[k].data();
    const int64_t n = params[k].size();
    // Element-wise: any split of [0, n) over threads gives the same bits.
    const int64_t parts = n > kParallelMin ? omp_get_max_threads() : 1;
    const int64_t per = (n + parts - 1) / parts;
    parallel_for_static(
        parts,
        [&](int64_t t) {
          const int64_t begin = std::min(n, t * per), end = std::min(n, begin + per);
          if (fast) {
            update_avx512(a, w, g, m, v, begin, end);
          } else {
            update_plain(a, w, g, m, v, begin, end);
          }
        },
        parts > 1);
  }
}

void set_adamw_plain(bool on) { g_plain = on; }

}  // namespace lb
