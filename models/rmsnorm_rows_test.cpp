// RMSNorm's row-lane kernels against their plain twins, bit for bit (rmsnorm_rows.h); the twins
// against the double reference are in ops_test.cpp.
#include "models/rmsnorm_rows.h"

#include <doctest/doctest.h>
#include <omp.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "core/rng.h"
#include "models/kernels/row_kernels.h"
#include "models/ops.h"

namespace lb {
namespace {

const int64_t kRows[] = {1, 15, 16, 17, 33, 100, 1000};
const int64_t kCols[] = {1, 3, 16, 17, 64, 100, 256, 1024};

bool cpu_has_avx512f() {
#if defined(__x86_64__) && defined(__GNUC__)
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") != 0;
#else
  return false;
#endif
}

// Normal values times 10^k, k in [−lo, hi] per element, some rows scaled by 10^±6 more: large and
// small magnitudes, sums whose rounding depends on their order.
std::vector<float> wide_vec(int64_t R, int64_t C, uint64_t seed, int lo = 4, int hi = 4) {
  Rng rng(seed);
  std::vector<float> v(R * C);
  for (int64_t r = 0; r < R; ++r) {
    const double row = r % 7 == 3 ? 1e6 : (r % 7 == 5 ? 1e-6 : 1.0);
    for (int64_t c = 0; c < C; ++c) {
      v[r * C + c] =
          static_cast<float>(rng.normal() * row * std::pow(10.0, rng.uniform_int(-lo, hi)));
    }
  }
  return v;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

}  // namespace

TEST_CASE("rmsnorm_rows: the lane kernels run where the CPU has AVX-512F") {
  CHECK(rmsnorm_lanes_enabled() == cpu_has_avx512f());
  if (!cpu_has_avx512f()) MESSAGE("no AVX-512F: the lane tests only check the plain twins");
}

TEST_CASE("rmsnorm_rows: the lane forward gives the plain twin's bits") {
  if (!cpu_has_avx512f()) return;
  for (int64_t R : kRows) {
    for (int64_t C : kCols) {
      CAPTURE(R);
      CAPTURE(C);
      const auto x = wide_vec(R, C, 10 + R * 7 + C), w = wide_vec(1, C, 20 + C, 1, 0);
      std::vector<float> y(R * C), rstd(R), y2(R * C, 5.f), rstd2(R, 5.f), y3(R * C);
      rmsnorm_rows_forward_plain(x.data(), w.data(), y.data(), rstd.data(), R, C);
      rmsnorm_rows_forward_lanes(x.data(), w.data(), y2.data(), rstd2.data(), R, C);
      CHECK(same_bits(y, y2));
      CHECK(same_bits(rstd, rstd2));
      rmsnorm_rows_forward_lanes(x.data(), w.data(), y3.data(), nullptr, R, C);
      CHECK(same_bits(y, y3));
    }
  }
}

TEST_CASE("rmsnorm_rows: the lane backward gives the plain twin's bits at 1, 2 and 3 threads") {
  if (!cpu_has_avx512f()) return;
  const int threads_before = omp_get_max_threads();
  for (int64_t R : kRows) {
    for (int64_t C : kCols) {
      CAPTURE(R);
      CAPTURE(C);
      const auto x = wide_vec(R, C, 30 + R * 7 + C), w = wide_vec(1, C, 40 + C, 1, 0);
      const auto dy = wide_vec(R, C, 50 + R * 7 + C), dw0 = wide_vec(1, C, 60 + C);
      std::vector<float> y(R * C), rstd(R);
      rmsnorm_rows_forward_plain(x.data(), w.data(), y.data(), rstd.data(), R, C);
      std::vector<float> dx(R * C, 7.f), dw = dw0;
      omp_set_num_threads(1);
      rmsnorm_backward_plain(x.data(), w.data(), rstd.data(), dy.data(), dx.data(), dw.data(), R,
                             C);
      for (int threads : {1, 2, 3}) {
        CAPTURE(threads);
        omp_set_num_threads(threads);
        std::vector<float> dx2(R * C, 7.f), dw2 = dw0, dx3(R * C, 7.f), dw3 = dw0;
        rmsnorm_backward_lanes(x.data(), w.data(), rstd.data(), dy.data(), dx2.data(), dw2.data(),
                               R, C);
        rmsnorm_backward_plain(x.data(), w.data(), rstd.data(), dy.data(), dx3.data(), dw3.data(),
                               R, C);
        CHECK(same_bits(dx, dx2));
        CHECK(same_bits(dw, dw2));
        CHECK(same_bits(dx, dx3));
        CHECK(same_bits(dw, dw3));
      }
    }
  }
  omp_set_num_threads(threads_before);
}

TEST_CASE("rmsnorm_rows: ops.h's rmsnorm gives the same bits with and without the lanes") {
  const int threads_before = omp_get_max_threads();
  const int64_t R = 1088, C = 64;
  const auto x = wide_vec(R, C, 70), w = wide_vec(1, C, 71, 1, 0), dy = wide_vec(R, C, 72);
  const auto dw0 = wide_vec(1, C, 73);
  std::vector<float> y[2], rstd[2], dx[2], dw[2];
  for (int threads : {1, 2, 3}) {
    CAPTURE(threads);
    omp_set_num_threads(threads);
    for (int portable = 0; portable < 2; ++portable) {
      force_portable_kernels(portable == 1);
      y[portable].assign(R * C, 0.f), rstd[portable].assign(R, 0.f);
      dx[portable].assign(R * C, 0.f), dw[portable] = dw0;
      rmsnorm_forward(x.data(), w.data(), y[portable].data(), rstd[portable].data(), R, C);
      rmsnorm_backward(x.data(), w.data(), rstd[portable].data(), dy.data(), dx[portable].data(),
                       dw[portable].data(), R, C);
    }
    force_portable_kernels(false);
    CHECK(same_bits(y[0], y[1]));
    CHECK(same_bits(rstd[0], rstd[1]));
    CHECK(same_bits(dx[0], dx[1]));
    CHECK(same_bits(dw[0], dw[1]));
  }
  omp_set_num_threads(threads_before);
}

}  // namespace lb
