// bf16 products from copies made once (bf16_rows) against the same products converting their
// inputs themselves: the same bits, for the runtime-shape path (< 1,024 rows) and the row blocks.
#include "models/dnnl_util.h"

#include <doctest/doctest.h>

#include <cstring>
#include <vector>

#include "models/testing.h"

namespace lb {
namespace {

using testing::random_vec;

TEST_CASE("bf16 copies made once give the products' own numbers") {
  set_num_threads(2);
  const int64_t in = 40, out = 24;
  set_matmul_bf16(true);
  for (int64_t R : {5, 1023, 1025, 2100, 5300}) {
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

TEST_CASE("bf16 forward and dx products: a row's result is the same in a 4,096-row block") {
  // The row blocks' twin: the same rows as 1,024-row products of their own (one block each).
  set_num_threads(2);
  set_matmul_bf16(true);
  const int64_t N = 48, K = 40;
  for (int64_t M : {5120, 9216})
    for (bool tb : {false, true})
      for (bool acc : {false, true}) {
        CAPTURE(M);
        CAPTURE(tb);
        CAPTURE(acc);
        const auto A = random_vec(M * K, 60), B = random_vec(K * N, 61);
        std::vector<float> C(M * N, 0.5f), ref(M * N, 0.5f);
        matmul(false, tb, 1, M, N, K, A.data(), B.data(), C.data(), acc);
        for (int64_t r = 0; r < M; r += 1024)
          matmul(false, tb, 1, 1024, N, K, A.data() + r * K, B.data(), ref.data() + r * N, acc);
        CHECK(C == ref);
      }
  set_matmul_bf16(false);
}

}  // namespace
}  // namespace lb

namespace lb {
namespace {

TEST_CASE("products give the same numbers on 1 to 5, 8 and 16 threads") {
  // The linear layers' products at the model sizes of the suites (weight gradients with 64 to 512
  // rows of C over 1,600 to 4,000 rows of the batch, forward and ∂x products), the attention's
  // batched products and the bf16 row blocks. Without the one-thread rule for weight gradients
  // with few rows of C, oneDNN split their sums at 8 and 16 threads (matmul in dnnl_util.cpp).
  struct Case {
    bool ta, tb, bf16;
    int64_t batch, M, N, K;
  };
  std::vector<Case> cases;
  for (int64_t M : {64, 128, 192, 256, 512})
    for (int64_t N : {64, 256})
      cases.push_back({true, false, false, 1, M, N, M < 256 ? 1600 : 4000});
  cases.push_back({false, true, false, 1, 1600, 192, 64});   // forward
  cases.push_back({false, false, false, 1, 1600, 64, 192});  // ∂x
  cases.push_back({false, true, false, 64, 50, 50, 16});     // attention scores
  cases.push_back({false, false, false, 64, 50, 16, 50});    // attention mixing
  cases.push_back({true, false, true, 1, 64, 192, 2100});    // bf16 row blocks (weight gradient)
  cases.push_back({true, false, true, 1, 64, 192, 700});     // bf16 runtime shape
  cases.push_back({false, true, true, 1, 5300, 64, 48});     // bf16 4,096 + 1,024 + padded rows
  for (const Case& c : cases) {
    CAPTURE(c.ta);
    CAPTURE(c.bf16);
    CAPTURE(c.batch);
    CAPTURE(c.M);
    CAPTURE(c.N);
    CAPTURE(c.K);
    const auto A = random_vec(c.batch * c.M * c.K, 7), B = random_vec(c.batch * c.K * c.N, 8);
    set_matmul_bf16(c.bf16);
    std::vector<float> ref;
    for (int t : {1, 2, 3, 4, 5, 8, 16}) {
      set_num_threads(t);
      std::vector<float> C(c.batch * c.M * c.N, 0.25f);
      matmul(c.ta, c.tb, c.batch, c.M, c.N, c.K, A.data(), B.data(), C.data(), true);
      if (t == 1) ref = C;
      CAPTURE(t);
      CHECK(C == ref);
    }
  }
  set_matmul_bf16(false);
  set_num_threads(2);
}

}  // namespace
}  // namespace lb

namespace lb {
namespace {

TEST_CASE("gelu_tanh: chunks of a few sizes give the bits of one primitive of n elements") {
  // Counts below, at and above the granule (4,096), several binary digits, a remainder that
  // overlaps, and one past the largest chunk (2^20).
  for (int threads : {1, 3}) {
    set_num_threads(threads);
    for (int64_t n : {1, 17, 4095, 4096, 4097, 12345, 3 * 4096, 139008, (1 << 20) + 4097}) {
      CAPTURE(threads);
      CAPTURE(n);
      auto x = testing::random_vec(n, 70 + n), dy = testing::random_vec(n, 71 + n);
      for (float& v : x) v *= 4.f;  // both tails of the tanh
      std::vector<float> y(n), y1(n), dx(n), dx1(n);
      gelu_tanh_forward(x.data(), y.data(), n);
      gelu_tanh_backward(x.data(), dy.data(), dx.data(), n);
      gelu_tanh_one_primitive(false, x.data(), nullptr, y1.data(), n);
      gelu_tanh_one_primitive(true, x.data(), dy.data(), dx1.data(), n);
      CHECK(std::memcmp(y.data(), y1.data(), n * sizeof(float)) == 0);
      CHECK(std::memcmp(dx.data(), dx1.data(), n * sizeof(float)) == 0);
    }
  }
  set_num_threads(1);
}

}  // namespace
}  // namespace lb
