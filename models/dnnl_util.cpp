#include "models/dnnl_util.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <tuple>
#include <vector>

#include <omp.h>

#include "harness/check.h"

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

struct MatmulKey {
  bool ta, tb, acc, bf16;
  int64_t batch, m, n, k;
  bool operator<(const MatmulKey& o) const {
    return std::tie(ta, tb, acc, bf16, batch, m, n, k) <
           std::tie(o.ta, o.tb, o.acc, o.bf16, o.batch, o.m, o.n, o.k);
  }
};

struct MatmulEntry {
  dnnl::matmul prim;
};

struct EltKey {
  bool backward;
  int64_t n;
  bool operator<(const EltKey& o) const { return std::tie(backward, n) < std::tie(o.backward, o.n); }
};

std::map<MatmulKey, MatmulEntry> g_matmuls;
std::map<EltKey, dnnl::primitive> g_elts;
std::vector<uint16_t> g_a_bf16, g_b_bf16;  // bf16 copies of the operands (bf16 mode)

constexpr int64_t kRt = DNNL_RUNTIME_DIM_VAL;

// (batch, rows, cols) descriptor of a row-major array, viewed transposed when `trans`. With
// `runtime`, every dimension and stride is given at execution (one primitive for all shapes).
dnnl::memory::desc md3(int64_t batch, int64_t rows, int64_t cols, bool trans, dt type,
                       bool runtime) {
  if (runtime) {
    return dnnl::memory::desc({kRt, kRt, kRt}, type,
                              trans ? dnnl::memory::dims{kRt, 1, kRt}
                                    : dnnl::memory::dims{kRt, kRt, 1});
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
  dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a_md, b_md, c_md), attr, dnnl_engine());
  return g_matmuls.emplace(key, MatmulEntry{dnnl::matmul(pd)}).first->second;
}

// fp32 -> bf16 with round-to-nearest-even (inputs are finite).
void to_bf16(const float* x, int64_t n, std::vector<uint16_t>& out) {
  out.resize(n);
  uint16_t* o = out.data();
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    uint32_t u;
    std::memcpy(&u, &x[i], 4);
    u += 0x7FFFu + ((u >> 16) & 1u);
    o[i] = static_cast<uint16_t>(u >> 16);
  }
}

std::mutex g_mutex;  // the caches are shared; products themselves run on oneDNN's threads

}  // namespace

void set_matmul_bf16(bool on) { g_bf16 = on; }
bool matmul_bf16() { return g_bf16; }

void matmul(bool trans_a, bool trans_b, int64_t batch, int64_t M, int64_t N, int64_t K,
            const float* A, const float* B, float* C, bool accumulate) {
  LB_CHECK(batch >= 1 && M >= 1 && N >= 1 && K >= 1,
           "matmul shape " << batch << "x" << M << "x" << N << "x" << K);
  std::lock_guard<std::mutex> lock(g_mutex);
  // Single products (the linear layers, whose row count changes every batch) use one primitive
  // with runtime shapes (oneDNN's jit gemm); batched products (attention, a fixed set of shapes
  // per sequence length) get one brgemm primitive per shape.
  const bool runtime = batch == 1;
  const MatmulKey key = runtime ? MatmulKey{trans_a, trans_b, accumulate, g_bf16, 0, 0, 0, 0}
                                : MatmulKey{trans_a, trans_b, accumulate, g_bf16, batch, M, N, K};
  MatmulEntry& e = matmul_entry(key, runtime);
  auto& eng = dnnl_engine();
  auto& s = dnnl_stream();
  const dt in_type = g_bf16 ? dt::bf16 : dt::f32;
  const auto a_md = md3(batch, M, K, trans_a, in_type, false);
  const auto b_md = md3(batch, K, N, trans_b, in_type, false);
  const auto c_md = md3(batch, M, N, false, dt::f32, false);
  void* a_ptr = const_cast<float*>(A);
  void* b_ptr = const_cast<float*>(B);
  if (g_bf16) {
    to_bf16(A, batch * M * K, g_a_bf16);
    to_bf16(B, batch * K * N, g_b_bf16);
    a_ptr = g_a_bf16.data();
    b_ptr = g_b_bf16.data();
  }
  dnnl::memory a(a_md, eng, a_ptr), b(b_md, eng, b_ptr), c(c_md, eng, C);
  e.prim.execute(s, {{DNNL_ARG_SRC, a}, {DNNL_ARG_WEIGHTS, b}, {DNNL_ARG_DST, c}});
  s.wait();
}

namespace {

dnnl::primitive& gelu_primitive(bool backward, int64_t n) {
  auto it = g_elts.find({backward, n});
  if (it != g_elts.end()) return it->second;
  dnnl::memory::desc md({n}, dt::f32, tag::a);
  dnnl::eltwise_forward::primitive_desc fwd_pd(
      dnnl::eltwise_forward::desc(dnnl::prop_kind::forward_training,
                                  dnnl::algorithm::eltwise_gelu_tanh, md, 0.f, 0.f),
      dnnl_engine());
  dnnl::primitive p;
  if (!backward) {
    p = dnnl::eltwise_forward(fwd_pd);
  } else {
    dnnl::eltwise_backward::primitive_desc bwd_pd(
        dnnl::eltwise_backward::desc(dnnl::algorithm::eltwise_gelu_tanh, md, md, 0.f, 0.f),
        dnnl_engine(), fwd_pd);
    p = dnnl::eltwise_backward(bwd_pd);
  }
  return g_elts.emplace(EltKey{backward, n}, p).first->second;
}

// Eltwise primitives are built for fixed chunks of kEltChunk elements (plus one for the tail),
// so a varying element count reuses them.
constexpr int64_t kEltChunk = 1 << 16;

}  // namespace

void gelu_tanh_forward(const float* x, float* y, int64_t n) {
  std::lock_guard<std::mutex> lock(g_mutex);
  auto& eng = dnnl_engine();
  for (int64_t off = 0; off < n; off += kEltChunk) {
    const int64_t len = std::min(kEltChunk, n - off);
    dnnl::memory::desc md({len}, dt::f32, tag::a);
    dnnl::memory src(md, eng, const_cast<float*>(x + off)), dst(md, eng, y + off);
    gelu_primitive(false, len).execute(dnnl_stream(), {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, dst}});
  }
  dnnl_stream().wait();
}

void gelu_tanh_backward(const float* x, const float* dy, float* dx, int64_t n) {
  std::lock_guard<std::mutex> lock(g_mutex);
  auto& eng = dnnl_engine();
  for (int64_t off = 0; off < n; off += kEltChunk) {
    const int64_t len = std::min(kEltChunk, n - off);
    dnnl::memory::desc md({len}, dt::f32, tag::a);
    dnnl::memory src(md, eng, const_cast<float*>(x + off)),
        ddst(md, eng, const_cast<float*>(dy + off)), dsrc(md, eng, dx + off);
    gelu_primitive(true, len).execute(
        dnnl_stream(),
        {{DNNL_ARG_SRC, src}, {DNNL_ARG_DIFF_DST, ddst}, {DNNL_ARG_DIFF_SRC, dsrc}});
  }
  dnnl_stream().wait();
}

int64_t dnnl_cache_size() {
  std::lock_guard<std::mutex> lock(g_mutex);
  return static_cast<int64_t>(g_matmuls.size() + g_elts.size());
}

}  // namespace lb
