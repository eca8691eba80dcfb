// bf16 products from copies made once (bf16_rows) against the same products converting their
// inputs themselves: the same bits, for the runtime-shape path (< 1,024 rows) and the row blocks.
#include "models/dnnl_util.h"

#include <doctest/doctest.h>

#include <vector>

#include "models/testing.h"

namespace lb {
namespace {

using testing::random_vec;

TEST_CASE("bf16 copies made once give the products' own numbers") {
  set_num_threads(2);
  const int64_t in = 40, out = 24;
  set_matmul_bf16(true);
  for (int64_t R : {5, 1023, 1025, 2100}) {
    CAPTURE(R);
    auto x = random_vec(R * in, 50 + R), w = random_vec(out * in, 51), dy = random_vec(R * out, 52);
    Bf16Rows x16;
    bf16_rows(x.data(), R, in, x16);
    REQUIRE(x16.src == x.data());
    std::vector<float> y0(R * out), y1(R * out), dx0(R * in, 3.f), dx1(R * in, 3.f);
    std::vector<float> dw0(out * in, 0.5f), dw1(out * in, 0.5f);
    linear_forward(x.data(), w.data(), y0.data(), R, in, out);
    linear_forward(x.data(), w.data(), y1.data(), R, in, out, &x16);
    linear_backward(x.data(), w.data(), dy.data(), dx0.data(), dw0.data(), R, in, out, true);
    linear_backward(x.data(), w.data(), dy.data(), dx1.data(), dw1.data(), R, in, out, true, &x16);
    CHECK(y0 == y1);
    CHECK(dx0 == dx1);
    CHECK(dw0 == dw1);
    // A copy of another array (or of other dimensions) is not used: converted as usual.
    Bf16Rows other;
    bf16_rows(dy.data(), R, out, other);
    std::vector<float> y2(R * out);
    linear_forward(x.data(), w.data(), y2.data(), R, in, out, &other);
    CHECK(y0 == y2);
  }
  set_matmul_bf16(false);
  Bf16Rows off;
  const auto x = random_vec(8, 1);
  bf16_rows(x.data(), 2, 4, off);
  CHECK(off.src == nullptr);  // fp32 products: no copy
}

}  // namespace
}  // namespace lb
