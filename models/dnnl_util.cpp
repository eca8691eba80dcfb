#include "models/dnnl_util.h"

#include <omp.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <tuple>
#include <unordered_map>
#include <vector>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "core/check.h"
#include "models/bf16.h"
#include "models/profile.h"

namespace lb {

using tag = dnnl::memory::format_tag;
using dt = dnnl::memory::data_type;

dnnl::engine& dnnl_engine() {
  static dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  return eng;
}

dnnl::stream& dnnl_stream() {
  static dnnl::stream s(dnnl_engine());
  return s;
}

void set_num_threads(int n) {
  LB_REQUIRE(n >= 1 && n <= 1024, "thread count " << n << " is outside [1, 1024]");
  omp_set_num_threads(n);
}

int num_threads() { return omp_get_max_threads(); }

namespace {

bool g_bf16 = false;

// A primitive is created for the thread count current at its creation (oneDNN fixes its
// partitioning then), so the count is part of the key: a process that changes its thread count
// (bench train --threads 1,2,..,16) gets primitives made for the new count, not the first one's.
struct MatmulKey {
  bool ta, tb, acc, bf16;
  int64_t batch, m, n, k;
  int threads = omp_get_max_threads();
  bool operator<(const MatmulKey& o) const {
    return std::tie(ta, tb, acc, bf16, batch, m, n, k, threads) <
           std::tie(o.ta, o.tb, o.acc, o.bf16, o.batch, o.m, o.n, o.k, o.threads);
  }
};

struct MatmulEntry {
  dnnl::matmul prim;
  size_t scratchpad_bytes = 0;  // user scratchpad (static shapes only); 0: oneDNN's own
};

struct EltKey {
  bool backward;
  int64_t n;
  int threads = omp_get_max_threads();  // as MatmulKey
  bool operator<(const EltKey& o) const {
    return std::tie(backward, n, threads) < std::tie(o.backward, o.n, o.threads);
  }
};

std::map<MatmulKey, MatmulEntry> g_matmuls;
std::map<EltKey, dnnl::primitive> g_elts;

constexpr int64_t kRt = DNNL_RUNTIME_DIM_VAL;

// (batch, rows, cols) descriptor of a row-major array, viewed transposed when `trans`. With
// `runtime`, every dimension and stride is given at execution (one primitive for all shapes).
dnnl::memory::desc md3(int64_t batch, int64_t rows, int64_t cols, bool trans, dt type,
                       bool runtime) {
  if (runtime) {
    return dnnl::memory::desc(
        {kRt, kRt, kRt}, type,
        trans ? dnnl::memory::dims{kRt, 1, kRt} : dnnl::memory::dims{kRt, kRt, 1});
  }
  return dnnl::memory::desc({batch, rows, cols}, type, trans ? tag::acb : tag::abc);
}

MatmulEntry& matmul_entry(const MatmulKey& key, bool runtime) {
  auto it = g_matmuls.find(key);
  if (it != g_matmuls.end()) return it->second;
  const dt in_type = key.bf16 ? dt::bf16 : dt::f32;
  auto a_md = md3(key.batch, key.m, key.k, key.ta, in_type, runtime);
  auto b_md = md3(key.batch, key.k, key.n, key.tb, in_type, runtime);
  auto c_md = md3(key.batch, key.m, key.n, false, dt::f32, runtime);
  dnnl::primitive_attr attr;
  if (key.acc) {
    dnnl::post_ops po;
    po.append_sum(1.f);
    attr.set_post_ops(po);
  }
  // Static-shape products may run concurrently from several threads (attention, one sample per
  // thread): each thread then passes its own scratchpad.
  if (!runtime) attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a_md, b_md, c_md), attr, dnnl_engine());
  MatmulEntry e{dnnl::matmul(pd), runtime ? 0 : pd.scratchpad_desc().get_size()};
  return g_matmuls.emplace(key, e).first->second;
}

std::mutex g_mutex;  // the caches are shared; products themselves run on oneDNN's threads

}  // namespace

void fp32_to_bf16_ref(const float* x, int64_t n, uint16_t* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = bf16_round(x[i]);
}

namespace {

#if defined(__x86_64__) && defined(__GNUC__)
// vcvtne2ps2bf16: 32 values per instruction, round to nearest even as the twin does.
__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16"))) void fp32_to_bf16_avx512(
    const float* x, int64_t n, uint16_t* out) {
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m512bh v = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(x + i + 16), _mm512_loadu_ps(x + i));
    _mm512_storeu_si512(out + i, reinterpret_cast<const __m512i&>(v));
  }
  for (; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << (n - i)) - 1);
    const __m256bh v = _mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, x + i));
    _mm256_mask_storeu_epi16(out + i, m, reinterpret_cast<const __m256i&>(v));
  }
}

bool has_avx512_bf16() {
  static const bool yes = __builtin_cpu_supports("avx512bf16") != 0;
  return yes;
}
#else
void fp32_to_bf16_avx512(const float* x, int64_t n, uint16_t* out) { fp32_to_bf16_ref(x, n, out); }
bool has_avx512_bf16() { return false; }
#endif

}  // namespace

void fp32_to_bf16(const float* x, int64_t n, uint16_t* out) { fp32_to_bf16_padded(x, n, n, out); }

void fp32_to_bf16_padded(const float* x, int64_t n, int64_t total, uint16_t* out) {
  // Chunks of 16 Ki values over the threads (outside parallel regions); memory-bound. Chunks
  // past n write the padding's zeros (a serial fill was a tenth of a bf16 step at 16 threads).
  constexpr int64_t kChunk = 1 << 14;
  const int64_t chunks = (total + kChunk - 1) / kChunk;
  const bool fast = has_avx512_bf16();
#pragma omp parallel for schedule(static) if (chunks > 1 && !omp_in_parallel())
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t lo = c * kChunk, hi = std::min(total, lo + kChunk);
    const int64_t len = std::max<int64_t>(0, std::min(hi, n) - lo);
    if (len > 0) (fast ? fp32_to_bf16_avx512 : fp32_to_bf16_ref)(x + lo, len, out + lo);
    std::fill(out + lo + len, out + hi, uint16_t{0});
  }
}

void set_matmul_bf16(bool on) { g_bf16 = on; }
bool matmul_bf16() { return g_bf16; }

namespace {

// bf16 products of the linear layers, whose row count changes every batch, run in fixed-shape
// blocks of this many rows, the last block zero-padded: oneDNN 2.6 picks its AMX brgemm kernels
// only for fixed shapes (2.2–2.5× its runtime-shape bf16 gemm on the AMX machines for the copy
// model's products), and few block sizes keep the primitive count at one or two per layer shape.
constexpr int64_t kBf16RowBlock = 1024;
// Forward and ∂x products take blocks of this many rows while that many remain, then the blocks
// above: at 16 threads on the lent AMX machine their shapes ran at 2.6–3.4 TFLOP/s against
// 2.0–3.1 in 1,024-row blocks (results/bench/device_16threads_448c012_bulk/, README there). A
// row's result does not depend on its block (tested). Weight gradients keep 1,024-row blocks:
// their sums over the rows would change order with the block, and so every bf16 run's numbers
// (there the gate/up gradients ran 1.6× faster in 4,096 rows, the others no faster).
constexpr int64_t kBf16BulkRows = 4 * kBf16RowBlock;

// Executes one cached primitive on the calling thread's stream: A, B, C already in the
// primitive's input types, laid out as md3(batch, ·, ·, trans) describes.
void execute_matmul(const MatmulKey& key, bool runtime, bool trans_a, bool trans_b, int64_t batch,
                    int64_t M, int64_t N, int64_t K, const void* A, const void* B, float* C) {
  const MatmulEntry* e;
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    e = &matmul_entry(key, runtime);  // std::map: entries never move
  }
  thread_local dnnl::stream stream(dnnl_engine());
  thread_local std::vector<uint8_t> scratchpad;
  auto& eng = dnnl_engine();
  const dt in_type = key.bf16 ? dt::bf16 : dt::f32;
  dnnl::memory a(md3(batch, M, K, trans_a, in_type, false), eng, const_cast<void*>(A));
  dnnl::memory b(md3(batch, K, N, trans_b, in_type, false), eng, const_cast<void*>(B));
  dnnl::memory c(md3(batch, M, N, false, dt::f32, false), eng, C);
  std::unordered_map<int, dnnl::memory> args = {
      {DNNL_ARG_SRC, a}, {DNNL_ARG_WEIGHTS, b}, {DNNL_ARG_DST, c}};
  if (e->scratchpad_bytes > 0) {
    if (scratchpad.size() < e->scratchpad_bytes) scratchpad.resize(e->scratchpad_bytes);
    args[DNNL_ARG_SCRATCHPAD] = dnnl::memory(
        {{static_cast<int64_t>(e->scratchpad_bytes)}, dt::u8, tag::a}, eng, scratchpad.data());
  }
  e->prim.execute(stream, args);
  stream.wait();
}

// The calling thread's bf16 copies of a product's two inputs (grown, never shrunk).
struct Bf16Inputs {
  Bf16Buffer a, b;
};
Bf16Inputs& bf16_inputs() {
  thread_local Bf16Inputs in;
  return in;
}

// bf16 copy of `rows` rows of `cols` values, followed by zero rows up to `padded_rows`.
void to_bf16_padded(const float* x, int64_t rows, int64_t cols, int64_t padded_rows,
                    Bf16Buffer& out) {
  ProfileScope prof("matmul.linear.to_bf16");
  out.resize(padded_rows * cols);  // grown part left unset: written just below
  fp32_to_bf16_padded(x, rows * cols, padded_rows * cols, out.data());
}

int64_t padded_rows(int64_t rows) {
  return (rows + kBf16RowBlock - 1) / kBf16RowBlock * kBf16RowBlock;
}

// The operand's prepared copy when it is one of x (rows, cols), else nullptr.
const uint16_t* prepared(const Bf16Rows* c, const float* x, int64_t rows, int64_t cols) {
  return c && c->src == x && c->rows == rows && c->cols == cols ? c->data.data() : nullptr;
}

// The linear layers' bf16 products in row blocks. Forward and ∂x (op(A) = A, M = rows): blocks of
// kBf16BulkRows, then of kBf16RowBlock, each rows r.. of A and C, the padded last block through a
// scratch C. Weight gradient (op(A) = Aᵀ, K = rows, B not transposed): C accumulates the
// kBf16RowBlock blocks' partial products, the padding rows adding zero.
void matmul_bf16_row_blocks(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
                            const float* A, const float* B, float* C, bool accumulate,
                            const Bf16Rows* a_copy, const Bf16Rows* b_copy) {
  Bf16Buffer& a16 = bf16_inputs().a;
  Bf16Buffer& b16 = bf16_inputs().b;
  thread_local std::vector<float> c_tail;
  const int64_t rows = trans_a ? K : M;
  const int64_t padded = padded_rows(rows);
  if (!trans_a) {
    const uint16_t* a = prepared(a_copy, A, M, K);
    if (!a) to_bf16_padded(A, M, K, padded, a16), a = a16.data();
    const uint16_t* b = prepared(b_copy, B, trans_b ? N : K, trans_b ? K : N);
    if (!b)
      to_bf16_padded(B, trans_b ? N : K, trans_b ? K : N, trans_b ? N : K, b16), b = b16.data();
    const MatmulKey key{false, trans_b, accumulate, true, 1, kBf16RowBlock, N, K};
    const MatmulKey bulk_key{false, trans_b, accumulate, true, 1, kBf16BulkRows, N, K};
    int64_t r = 0;
    for (; r + kBf16BulkRows <= M; r += kBf16BulkRows)
      execute_matmul(bulk_key, false, false, trans_b, 1, kBf16BulkRows, N, K, a + r * K, b,
                     C + r * N);
    for (; r + kBf16RowBlock <= M; r += kBf16RowBlock)
      execute_matmul(key, false, false, trans_b, 1, kBf16RowBlock, N, K, a + r * K, b, C + r * N);
    if (r < M) {  // the padded last block, through a scratch C
      c_tail.resize(kBf16RowBlock * N);
      if (accumulate) std::copy(C + r * N, C + M * N, c_tail.begin());
      execute_matmul(key, false, false, trans_b, 1, kBf16RowBlock, N, K, a + r * K, b,
                     c_tail.data());
      std::copy(c_tail.begin(), c_tail.begin() + (M - r) * N, C + r * N);
    }
    return;
  }
  // A (K, M) and B (K, N) are row-major with the rows as the reduction.
  const uint16_t* a = prepared(a_copy, A, K, M);
  if (!a) to_bf16_padded(A, K, M, padded, a16), a = a16.data();
  const uint16_t* b = prepared(b_copy, B, K, N);
  if (!b) to_bf16_padded(B, K, N, padded, b16), b = b16.data();
  for (int64_t r = 0; r < padded; r += kBf16RowBlock) {
    const bool acc = accumulate || r > 0;
    const MatmulKey key{true, false, acc, true, 1, M, N, kBf16RowBlock};
    execute_matmul(key, false, true, false, 1, M, N, kBf16RowBlock, a + r * M, b + r * N, C);
  }
}

}  // namespace

void matmul(bool trans_a, bool trans_b, int64_t batch, int64_t M, int64_t N, int64_t K,
            const float* A, const float* B, float* C, bool accumulate) {
  matmul(trans_a, trans_b, batch, M, N, K, A, B, C, accumulate, nullptr, nullptr);
}

void bf16_rows(const float* x, int64_t rows, int64_t cols, Bf16Rows& out) {
  if (!g_bf16) {
    out.src = nullptr;
    return;
  }
  to_bf16_padded(x, rows, cols, padded_rows(rows), out.data);
  out.src = x, out.rows = rows, out.cols = cols;
}

void linear_backward(const float* x, const float* w, const float* dy, float* dx, float* dw,
                     int64_t rows, int64_t in, int64_t out, bool accumulate_dx,
                     const Bf16Rows* x16) {
  thread_local Bf16Rows dy16;
  bf16_rows(dy, rows, out, dy16);
  if (dx) matmul(false, false, 1, rows, in, out, dy, w, dx, accumulate_dx, &dy16, nullptr);
  matmul(true, false, 1, out, in, rows, dy, x, dw, true, &dy16, x16);
}

// Rows of C below which a single weight-gradient product runs on one thread when more than
// kSerialWeightGradThreads threads are set (see matmul; up to 4 threads oneDNN did not split the
// sums of these products, so they keep their threads there).
constexpr int64_t kSerialWeightGradRows = 256;
constexpr int kSerialWeightGradThreads = 4;

void matmul(bool trans_a, bool trans_b, int64_t batch, int64_t M, int64_t N, int64_t K,
            const float* A, const float* B, float* C, bool accumulate, const Bf16Rows* a_copy,
            const Bf16Rows* b_copy) {
  LB_CHECK(batch >= 1 && M >= 1 && N >= 1 && K >= 1,
           "matmul shape " << batch << "x" << M << "x" << N << "x" << K);
  ProfileScope prof(batch == 1 ? "matmul.linear" : nullptr);  // attention: timed as a whole
  // Single products (the linear layers, whose row count changes every batch) use one primitive
  // with runtime shapes (oneDNN's jit gemm), or fixed-shape row blocks in bf16; batched products
  // (attention, a fixed set of shapes per sequence length) get one brgemm primitive per shape.
  const bool runtime = batch == 1;
  const bool bf16 = g_bf16;
  if (runtime && bf16 && (trans_a ? K : M) >= kBf16RowBlock && !(trans_a && trans_b)) {
    matmul_bf16_row_blocks(trans_a, trans_b, M, N, K, A, B, C, accumulate, a_copy, b_copy);
    return;
  }
  const void* a_ptr = A;
  const void* b_ptr = B;
  if (bf16) {
    Bf16Buffer& a16 = bf16_inputs().a;
    Bf16Buffer& b16 = bf16_inputs().b;
    ProfileScope conv(runtime ? "matmul.linear.to_bf16" : nullptr);
    // A prepared copy holds the operand's leading rows (then padding) in the same layout.
    const uint16_t* a =
        batch == 1 ? prepared(a_copy, A, trans_a ? K : M, trans_a ? M : K) : nullptr;
    const uint16_t* b =
        batch == 1 ? prepared(b_copy, B, trans_b ? N : K, trans_b ? K : N) : nullptr;
    if (!a) a16.resize(batch * M * K), fp32_to_bf16(A, batch * M * K, a16.data()), a = a16.data();
    if (!b) b16.resize(batch * K * N), fp32_to_bf16(B, batch * K * N, b16.data()), b = b16.data();
    a_ptr = a;
    b_ptr = b;
  }
  // A weight-gradient product (op(A) = Aᵀ: the sum runs over the batch's rows) with few rows of C
  // runs on the calling thread alone above 4 threads: oneDNN's gemm splits the sum of such a
  // product across threads from 8 threads on (C of 64 or 128 rows; 192 and more were split by
  // rows only, up to 32 threads), which changes its order and so the numbers of a run with its
  // thread count. On one thread it gives a 1-thread run's numbers at any count.
  const bool one_thread = runtime && trans_a && M < kSerialWeightGradRows &&
                          omp_get_max_threads() > kSerialWeightGradThreads && !omp_in_parallel();
  const int threads = omp_get_max_threads();
  if (one_thread) omp_set_num_threads(1);
  const MatmulKey key = runtime ? MatmulKey{trans_a, trans_b, accumulate, bf16, 0, 0, 0, 0}
                                : MatmulKey{trans_a, trans_b, accumulate, bf16, batch, M, N, K};
  execute_matmul(key, runtime, trans_a, trans_b, batch, M, N, K, a_ptr, b_ptr, C);
  if (one_thread) omp_set_num_threads(threads);
}

namespace {

dnnl::primitive make_gelu_primitive(bool backward, int64_t n) {
  dnnl::memory::desc md({n}, dt::f32, tag::a);
  dnnl::eltwise_forward::primitive_desc fwd_pd(
      dnnl::eltwise_forward::desc(dnnl::prop_kind::forward_training,
                                  dnnl::algorithm::eltwise_gelu_tanh, md, 0.f, 0.f),
      dnnl_engine());
  if (!backward) return dnnl::eltwise_forward(fwd_pd);
  dnnl::eltwise_backward::primitive_desc bwd_pd(
      dnnl::eltwise_backward::desc(dnnl::algorithm::eltwise_gelu_tanh, md, md, 0.f, 0.f),
      dnnl_engine(), fwd_pd);
  return dnnl::eltwise_backward(bwd_pd);
}

dnnl::primitive& gelu_primitive(bool backward, int64_t n) {
  auto it = g_elts.find(EltKey{backward, n});
  if (it != g_elts.end()) return it->second;
  return g_elts.emplace(EltKey{backward, n}, make_gelu_primitive(backward, n)).first->second;
}

// Eltwise primitives are built for a few sizes only. A batch's row count changes with every
// batch, and a primitive per element count JIT-compiled a new kernel for most batches (220 in 300
// steps of the small-model regime, 1.8% of the step; `ONEDNN_VERBOSE=2` lists them). Counts below
// kEltGranule get a primitive of their own. Larger counts are covered by chunks of kEltGranule·2^k
// elements, the binary digits of n / kEltGranule (at most kEltChunk each), and the remainder by
// one kEltGranule chunk ending at n, which overlaps the chunk before it. The overlap recomputes
// the same values: oneDNN's eltwise gives every element the same bits wherever it sits in a
// chunk (the test against one primitive of n elements, dnnl_util_test), and outputs must not
// alias inputs.
constexpr int64_t kEltGranule = 1 << 12;
constexpr int64_t kEltChunk = 1 << 20;

template <typename Fn>
void for_chunks(int64_t n, Fn fn) {
  if (n <= kEltGranule) {
    fn(0, n);
    return;
  }
  int64_t off = 0;
  while (n - off >= kEltGranule) {
    int64_t len = kEltChunk;
    while (len > n - off) len /= 2;
    fn(off, len);
    off += len;
  }
  if (off < n) fn(n - kEltGranule, kEltGranule);
}

}  // namespace

void gelu_tanh_forward(const float* x, float* y, int64_t n) {
  ProfileScope prof("gelu");
  LB_CHECK(x != y, "gelu_tanh_forward: y must not alias x");
  std::lock_guard<std::mutex> lock(g_mutex);
  auto& eng = dnnl_engine();
  for_chunks(n, [&](int64_t off, int64_t len) {
    dnnl::memory::desc md({len}, dt::f32, tag::a);
    dnnl::memory src(md, eng, const_cast<float*>(x + off)), dst(md, eng, y + off);
    gelu_primitive(false, len).execute(dnnl_stream(), {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, dst}});
  });
  dnnl_stream().wait();
}

void gelu_tanh_one_primitive(bool backward, const float* x, const float* dy, float* out,
                             int64_t n) {
  LB_CHECK(out != x && out != dy, "gelu_tanh_one_primitive: out must not alias x or dy");
  std::lock_guard<std::mutex> lock(g_mutex);
  auto& eng = dnnl_engine();
  dnnl::memory::desc md({n}, dt::f32, tag::a);
  dnnl::memory src(md, eng, const_cast<float*>(x)), o(md, eng, out);
  if (!backward) {
    make_gelu_primitive(false, n).execute(dnnl_stream(), {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, o}});
  } else {
    dnnl::memory ddst(md, eng, const_cast<float*>(dy));
    make_gelu_primitive(true, n).execute(
        dnnl_stream(), {{DNNL_ARG_SRC, src}, {DNNL_ARG_DIFF_DST, ddst}, {DNNL_ARG_DIFF_SRC, o}});
  }
  dnnl_stream().wait();
}

void gelu_tanh_backward(const float* x, const float* dy, float* dx, int64_t n) {
  ProfileScope prof("gelu");
  LB_CHECK(dx != dy && dx != x, "gelu_tanh_backward: dx must not alias x or dy");
  std::lock_guard<std::mutex> lock(g_mutex);
  auto& eng = dnnl_engine();
  for_chunks(n, [&](int64_t off, int64_t len) {
    dnnl::memory::desc md({len}, dt::f32, tag::a);
    dnnl::memory src(md, eng, const_cast<float*>(x + off)),
        ddst(md, eng, const_cast<float*>(dy + off)), dsrc(md, eng, dx + off);
    gelu_primitive(true, len).execute(
        dnnl_stream(), {{DNNL_ARG_SRC, src}, {DNNL_ARG_DIFF_DST, ddst}, {DNNL_ARG_DIFF_SRC, dsrc}});
  });
  dnnl_stream().wait();
}

}  // namespace lb
