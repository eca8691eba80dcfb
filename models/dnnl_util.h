// oneDNN plumbing for the model: one CPU engine and stream, and cached primitives for the
// products and activations the model runs every step. A primitive is built the first time its
// shape is seen and only executed afterwards (the cache is keyed by every field of the shape).
// All tensors are row-major fp32 host arrays; with `set_matmul_bf16(true)` products convert their
// inputs to bf16 (round to nearest even) and accumulate in fp32.
#pragma once
#include <cstdint>
#include <dnnl.hpp>

#include "models/bf16_rows.h"

namespace lb {

dnnl::engine& dnnl_engine();
dnnl::stream& dnnl_stream();

// Sets the thread count used by oneDNN and by our OpenMP loops. Any count, the same numbers: the
// products whose sums oneDNN would split across threads run on one (matmul), tested on 1 to 5, 8
// and 16 threads (dnnl_util_test.cpp, harness/trainer_test.cpp).
void set_num_threads(int n);
int num_threads();

// C = op(A) · op(B) (+ C when accumulate), batched over `batch` independent products stored one
// after the other. Threads: batched products (batch > 1, one primitive per shape) may run
// concurrently, each on the calling thread (per-thread stream and scratchpad), e.g. one sample
// per thread; single products (batch == 1, one runtime-shape primitive) are parallelised by
// oneDNN itself and must be called from outside parallel regions. op(A) is (M, K): A is (M, K)
// row-major, or (K, M) when trans_a. op(B) is (K, N): B is (K, N), or (N, K) when trans_b. C is (M,
// N). `+=` uses oneDNN's sum post-op.
void matmul(bool trans_a, bool trans_b, int64_t batch, int64_t M, int64_t N, int64_t K,
            const float* A, const float* B, float* C, bool accumulate);
// The same with bf16 copies of A and B made beforehand (bf16_rows; nullptr or a copy of another
// array: converted here as above). Same numbers as converting here.
void matmul(bool trans_a, bool trans_b, int64_t batch, int64_t M, int64_t N, int64_t K,
            const float* A, const float* B, float* C, bool accumulate, const Bf16Rows* a16,
            const Bf16Rows* b16);

// Makes `out` the bf16 copy of x (rows, cols) when bf16 products are on; clears it otherwise.
void bf16_rows(const float* x, int64_t rows, int64_t cols, Bf16Rows& out);

// Linear layer y = x · Wᵀ with W (out, in) as Hugging Face stores it. x (rows, in), y (rows, out).
// x16: x's bf16 copy (bf16_rows) or nullptr.
inline void linear_forward(const float* x, const float* w, float* y, int64_t rows, int64_t in,
                           int64_t out, const Bf16Rows* x16 = nullptr) {
  matmul(false, true, 1, rows, out, in, x, w, y, false, x16, nullptr);
}
// dx = dy · W (overwritten; accumulated when accumulate_dx), dW += dyᵀ · x. In bf16, dy is
// converted once for both products; x16: x's bf16 copy or nullptr.
void linear_backward(const float* x, const float* w, const float* dy, float* dx, float* dw,
                     int64_t rows, int64_t in, int64_t out, bool accumulate_dx = false,
                     const Bf16Rows* x16 = nullptr);

// Products in bf16 with fp32 accumulation and fp32 outputs (off by default). Linear-layer
// products with at least 1,024 rows run in fixed-shape blocks (AMX kernels where the CPU has
// them): forward and ∂x products in 4,096 rows while that many remain, then 1,024; weight
// gradients in 1,024. A row's result is the same in any block. Their results equal the exact
// product of the bf16-rounded inputs up to fp32 accumulation error.
void set_matmul_bf16(bool on);
bool matmul_bf16();

// fp32 -> bf16 (the upper 16 bits, round to nearest even; inputs finite). Vectorised with
// AVX512-BF16 where the CPU has it and threaded outside parallel regions; the twin is one loop.
// Both give the same bits.
void fp32_to_bf16(const float* x, int64_t n, uint16_t* out);
// The same, then zeros in out[n, total): one pass over the threads (total >= n).
void fp32_to_bf16_padded(const float* x, int64_t n, int64_t total, uint16_t* out);
void fp32_to_bf16_ref(const float* x, int64_t n, uint16_t* out);

// tanh-approximated GELU through oneDNN eltwise: y = gelu(x); dx = gelu'(x) · dy. n elements;
// outputs must not alias inputs.
void gelu_tanh_forward(const float* x, float* y, int64_t n);
void gelu_tanh_backward(const float* x, const float* dy, float* dx, int64_t n);
// The twin of both: one primitive built for exactly n elements (what the two above did before
// they reused primitives of a few sizes), uncached; backward reads dy, forward ignores it. The
// two above give its bits (test).
void gelu_tanh_one_primitive(bool backward, const float* x, const float* dy, float* out, int64_t n);

}  // namespace lb
