// AdamW's AVX-512 loop against its plain twin, bit for bit; the gradient norm on any thread count.
#include "models/adamw.h"

#include <doctest/doctest.h>
#include <omp.h>

#include <cstring>
#include <random>
#include <vector>

namespace lb {
namespace {

// Tensors of awkward sizes (tails of 1..15 lanes, one above the parallel threshold), random
// values over several magnitudes.
std::vector<Param> random_params(uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.f, 1.f);
  std::uniform_int_distribution<int> ex(-12, 4);
  std::vector<Param> ps;
  for (int64_t n : {1, 15, 16, 17, 100, 1000, 40000, 70001}) {
    Param p("p" + std::to_string(n), {n});
    for (int64_t i = 0; i < n; ++i) {
      p.value[i] = nd(rng);
      p.grad[i] = std::ldexp(nd(rng), ex(rng));
    }
    ps.push_back(std::move(p));
  }
  return ps;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

}  // namespace

TEST_CASE("adamw: the AVX-512 update equals the plain loop bit for bit, on 1 and 3 threads") {
  for (int threads : {1, 3}) {
    omp_set_num_threads(threads);
    std::vector<Param> fast = random_params(7), plain = random_params(7);
    AdamW of(fast, 0.9, 0.99, 1e-8, 0.1), op(plain, 0.9, 0.99, 1e-8, 0.1);
    for (int step = 0; step < 5; ++step) {
      set_adamw_plain(false);
      of.update(fast, 3e-3);
      set_adamw_plain(true);
      op.update(plain, 3e-3);
      // New gradients for the next step, the same on both sides.
      for (size_t k = 0; k < fast.size(); ++k)
        for (size_t i = 0; i < fast[k].grad.size(); ++i)
          fast[k].grad[i] = plain[k].grad[i] = 0.5f * plain[k].grad[i] - 1e-3f * plain[k].value[i];
    }
    set_adamw_plain(false);
    for (size_t k = 0; k < fast.size(); ++k) {
      CAPTURE(fast[k].name);
      CHECK(same_bits(fast[k].value, plain[k].value));
      CHECK(same_bits(of.exp_avg()[k], op.exp_avg()[k]));
      CHECK(same_bits(of.exp_avg_sq()[k], op.exp_avg_sq()[k]));
    }
  }
  omp_set_num_threads(1);
}

TEST_CASE("global_grad_norm: a 1-thread run's serial sum on 1, 2, 3 and 8 threads") {
  const std::vector<Param> ps = random_params(11);
  double serial = 0.0;  // each tensor in ascending order, tensors in order
  for (const Param& p : ps) {
    double s = 0.0;
    for (float g : p.grad) s += static_cast<double>(g) * g;
    serial += s;
  }
  serial = std::sqrt(serial);
  for (int threads : {1, 2, 3, 8}) {
    omp_set_num_threads(threads);
    CAPTURE(threads);
    CHECK(global_grad_norm(ps) == serial);  // exact: a split tensor changes the last bits
  }
  omp_set_num_threads(1);
}

}  // namespace lb
