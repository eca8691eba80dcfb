// The threshold search of exact 1.5-entmax and sparsemax (entmax_kernel.cpp), shared with the
// blocked prefill (models/blocked_attention.cpp), which feeds it statistics gathered over key
// tiles. Domain: shifted scaled scores v = (α−1)(z − max z); the threshold τ' ∈ [−1, −n^(1−α)].
// A caller evaluates the statistics of S = {v > τ} at the trial point, then takes one step.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "models/kernels/simd.h"

namespace lb {
namespace entmax_tau {

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr int kMaxPasses = 64;

struct SupportStats {
  double k = 0.0;         // |S|
  double s1 = 0.0;        // Σ_S d
  double s2 = 0.0;        // Σ_S d² (1.5-entmax only)
  float min_in = kInf;    // min_S d (> 0)
  float max_out = -kInf;  // max_{not S} d (<= 0)
};

// The threshold search state in the shifted domain: τ' ∈ [lo, hi], trial point tau.
struct TauSearch {
  double lo, hi;
  float tau;
  float floor = -1.0f;  // every score outside the statistics has v <= floor <= τ*
};

// One step from the statistics of S = {d > 0} at the trial tau (square: c = 2, else c = 1).
// Returns true when tau is final: either the exact threshold (self-consistent support; the
// scores outside the statistics have v <= floor <= the threshold), or fp32 resolution is reached.
// Inlined into each caller so that it is compiled for the caller's instruction set (a call from
// AVX-512 code into SSE code costs a state transition per call).
LB_INLINE bool tau_search_step(const SupportStats& st, bool square, TauSearch& s) {
  const double f = (square ? st.s2 : st.s1) - 1.0;  // f(τ) = Σ_S d^c − 1
  double delta = 0.0;                               // closed-form root of Σ_S (d − δ)^c = 1
  bool have_delta = false;
  if (st.k > 0.0) {
    if (square) {
      const double disc = st.s1 * st.s1 - st.k * f;
      if (disc >= 0.0 && st.s1 + std::sqrt(disc) > 0.0) {
        delta = f / (st.s1 + std::sqrt(disc));
        have_delta = true;
      }
    } else {
      delta = f / st.k;
      have_delta = true;
    }
  }
  const bool exact =
      have_delta && st.min_in > delta && st.max_out <= delta && s.tau + delta >= s.floor;
  // A far step solves a quadratic whose terms (sums of up to n squares) cancel to 1, so its fp32
  // statistics give τ to ~1e-7·Σd² only: take the step, then confirm from the new point, where
  // the sums are O(1).
  if (exact && std::fabs(f) <= 1.0) {
    s.tau = static_cast<float>(s.tau + delta);
    return true;
  }
  if (f > 0.0) s.lo = std::max(s.lo, static_cast<double>(s.tau));
  if (f < 0.0) s.hi = std::min(s.hi, static_cast<double>(s.tau));
  if (exact) {
    const float next_f = static_cast<float>(s.tau + delta);
    if (next_f == s.tau) return true;
    s.tau = next_f;
    return false;
  }
  double next = s.tau + delta;
  if (!have_delta || !(next > s.lo && next < s.hi)) {
    next = st.s1 > 0.0 ? s.tau + f / ((square ? 2.0 : 1.0) * st.s1) : s.lo;  // Newton
    if (!(next > s.lo && next < s.hi)) next = 0.5 * (s.lo + s.hi);           // bisection
  }
  const float next_f = static_cast<float>(next);
  if (next_f == s.tau) return true;  // converged to fp32 resolution
  if (s.hi - s.lo <= 1e-7) {
    s.tau = static_cast<float>(0.5 * (s.lo + s.hi));
    return true;
  }
  s.tau = next_f;
  return false;
}

// The bracket [−1, −n^(1−α)] for c = 2 (α = 1.5) or c = 1 (α = 2), starting at the left end.
LB_INLINE TauSearch tau_search_start(int64_t n, bool square) {
  const double hi =
      square ? -1.0 / std::sqrt(static_cast<double>(n)) : -1.0 / static_cast<double>(n);
  return {-1.0, hi, -1.0f};
}

}  // namespace entmax_tau
}  // namespace lb
