#include "models/inference.h"

#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <dnnl.hpp>
#include <map>
#include <mutex>
#include <type_traits>

#include "core/check.h"
#include "models/bf16.h"
#include "models/blocked_attention.h"
#include "models/dnnl_util.h"
#include "models/kernels/length_scale.h"
#include "models/kernels/simd.h"
#include "models/ops.h"
#include "models/parallel.h"
#include "models/rmsnorm_rows.h"

namespace lb {

bool blocked_prefill_default() {
  const char* v = std::getenv("LB_BLOCKED_PREFILL");
  return v != nullptr && std::string(v) == "1";
}


namespace {

// ---- products -------------------------------------------------------------------------------

// C (M, N; ldc) = A (M, K; lda) · op(B): op(B) = Bᵀ with B (N, K; ldb) when trans_b, else B
// (K, N; ldb). fp32, one oneDNN primitive with runtime shapes per trans_b, executed
// concurrently from worker threads (oneDNN is built with concurrent execution). It always runs
// on the calling thread alone: the calling thread's OpenMP thread count is 1 during the call, so
// the result never depends on the thread count and no parallel region is opened per product.
void gemm(bool trans_b, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda,
          const float* B, int64_t ldb, float* C, int64_t ldc) {
  using dt = dnnl::memory::data_type;
  constexpr int64_t kRt = DNNL_RUNTIME_DIM_VAL;
  static std::mutex mutex;
  static std::map<bool, dnnl::matmul> prims;
  dnnl::matmul prim;
  {
    std::lock_guard<std::mutex> lock(mutex);
    auto it = prims.find(trans_b);
    if (it == prims.end()) {
      dnnl::memory::desc a_md({kRt, kRt}, dt::f32, dnnl::memory::dims{kRt, 1});
      dnnl::memory::desc b_md({kRt, kRt}, dt::f32,
                              trans_b ? dnnl::memory::dims{1, kRt} : dnnl::memory::dims{kRt, 1});
      dnnl::memory::desc c_md({kRt, kRt}, dt::f32, dnnl::memory::dims{kRt, 1});
      dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a_md, b_md, c_md), dnnl_engine());
      it = prims.emplace(trans_b, dnnl::matmul(pd)).first;
    }
    prim = it->second;
  }
  thread_local dnnl::stream stream(dnnl_engine());
  auto& eng = dnnl_engine();
  dnnl::memory::desc a_md({M, K}, dt::f32, dnnl::memory::dims{lda, 1});
  dnnl::memory::desc b_md({K, N}, dt::f32,
                          trans_b ? dnnl::memory::dims{1, ldb} : dnnl::memory::dims{ldb, 1});
  dnnl::memory::desc c_md({M, N}, dt::f32, dnnl::memory::dims{ldc, 1});
  dnnl::memory a(a_md, eng, const_cast<float*>(A)), b(b_md, eng, const_cast<float*>(B)),
      c(c_md, eng, C);
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  prim.execute(stream, {{DNNL_ARG_SRC, a}, {DNNL_ARG_WEIGHTS, b}, {DNNL_ARG_DST, c}});
  stream.wait();
  omp_set_num_threads(threads);
}

constexpr int64_t kRowBlock = 64;   // rows per linear-layer unit
constexpr int64_t kColBlock = 256;  // output columns per linear-layer unit
// Work (multiply-adds) below which a loop stays on the calling thread: a parallel region costs
// microseconds, and much more on a loaded machine when a team member is descheduled.
constexpr int64_t kParallelWork = int64_t(1) << 22;

// One row through a weight matrix: y (out) = W (out, in) · x (in), in % 16 == 0. A decode step
// is bound by reading W; this reads it once, with no packing.
__attribute__((target("avx512f"))) void gemv_avx512(const float* x, const float* w, float* y,
                                                    int64_t in, int64_t out) {
  for (int64_t o = 0; o < out; ++o) {
    const float* wr = w + o * in;
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    int64_t k = 0;
    for (; k + 32 <= in; k += 32) {
      a0 = _mm512_fmadd_ps(_mm512_loadu_ps(x + k), _mm512_loadu_ps(wr + k), a0);
      a1 = _mm512_fmadd_ps(_mm512_loadu_ps(x + k + 16), _mm512_loadu_ps(wr + k + 16), a1);
    }
    if (k < in) a0 = _mm512_fmadd_ps(_mm512_loadu_ps(x + k), _mm512_loadu_ps(wr + k), a0);
    y[o] = _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
  }
}

// Output columns per unit of a one-row product, and the weights (in · out floats) above which it
// is spread over the threads. A decode step reads every weight once per token; on one thread that
// read alone took ~4 ms per token of the MQMTAR preset (40 MiB of fp32 weights), as long as the
// KV-cache read at 65,536 tokens on 16 threads. Each output is one gemv_avx512 dot product
// whichever unit computes it, so the split does not change any number.
constexpr int64_t kGemvCols = 32;
constexpr int64_t kGemvParallel = int64_t(1) << 16;

// y (rows, out) = x (rows, in) · Wᵀ, W (out, in). Fixed units of kRowBlock × kColBlock; a single
// row with in % 16 == 0 takes the AVX-512 GEMV where the CPU has it, in units of kGemvCols.
void linear(const float* x, const float* w, float* y, int64_t rows, int64_t in, int64_t out) {
  if (rows <= 0) return;
  static const bool avx512 = __builtin_cpu_supports("avx512f");
  if (rows == 1 && in % 16 == 0 && avx512) {
    const int64_t cb = (out + kGemvCols - 1) / kGemvCols;
    parallel_for_static(
        cb,
        [&](int64_t u) {
          const int64_t c0 = u * kGemvCols, nc = std::min(kGemvCols, out - c0);
          gemv_avx512(x, w + c0 * in, y + c0, in, nc);
        },
        in * out >= kGemvParallel);
    return;
  }
  const int64_t rb = (rows + kRowBlock - 1) / kRowBlock, cb = (out + kColBlock - 1) / kColBlock;
  parallel_for_dynamic(
      rb * cb,
      [&](int64_t u) {
        const int64_t r0 = (u / cb) * kRowBlock, c0 = (u % cb) * kColBlock;
        const int64_t nr = std::min(kRowBlock, rows - r0), nc = std::min(kColBlock, out - c0);
        gemm(true, nr, nc, in, x + r0 * in, in, w + c0 * in, in, y + r0 * out + c0, out);
      },
      rows * in * out >= kParallelWork);
}

// ---- decode kernels (few query rows): scores and sparse/dense mixing straight from the cache --

// s[j] = ⟨q, K_j⟩ for j < n. K (n, D).
LB_SIMD_CLONES void scores_f32(const float* q, const float* K, int64_t n, int64_t D, float* s) {
  for (int64_t j = 0; j < n; ++j) {
    const float* k = K + j * D;
    float acc = 0.f;
#pragma omp simd reduction(+ : acc)
    for (int64_t d = 0; d < D; ++d) acc += q[d] * k[d];
    s[j] = acc;
  }
}
LB_SIMD_CLONES void scores_bf16(const float* q, const uint16_t* K, int64_t n, int64_t D,
                                float* s) {
  for (int64_t j = 0; j < n; ++j) {
    const uint16_t* k = K + j * D;
    float acc = 0.f;
#pragma omp simd reduction(+ : acc)
    for (int64_t d = 0; d < D; ++d) acc += q[d] * bf16_widen(k[d]);
    s[j] = acc;
  }
}
// out (D) = Σ_{j in idx} p[j] V_j.
LB_SIMD_CLONES void mix_f32(const float* p, const int32_t* idx, int64_t cnt, const float* V,
                            int64_t D, float* out) {
  for (int64_t d = 0; d < D; ++d) out[d] = 0.f;
  for (int64_t t = 0; t < cnt; ++t) {
    const float w = p[idx[t]];
    const float* v = V + static_cast<int64_t>(idx[t]) * D;
#pragma omp simd
    for (int64_t d = 0; d < D; ++d) out[d] += w * v[d];
  }
}
LB_SIMD_CLONES void mix_bf16(const float* p, const int32_t* idx, int64_t cnt, const uint16_t* V,
                             int64_t D, float* out) {
  for (int64_t d = 0; d < D; ++d) out[d] = 0.f;
  for (int64_t t = 0; t < cnt; ++t) {
    const float w = p[idx[t]];
    const uint16_t* v = V + static_cast<int64_t>(idx[t]) * D;
#pragma omp simd
    for (int64_t d = 0; d < D; ++d) out[d] += w * bf16_widen(v[d]);
  }
}
// AVX-512 versions of the two decode kernels for D = 16·NB: a key's D values are NB vectors, q
// stays in registers, one horizontal sum per key; mixing keeps the output in NB registers.
template <typename KV>
__attribute__((target("avx512f"))) inline __m512 load16(const KV* x) {
  if constexpr (std::is_same<KV, float>::value) {
    return _mm512_loadu_ps(x);
  } else {
    const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x));
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  }
}
template <int NB, typename KV>
__attribute__((target("avx512f"))) void scores_avx512(const float* q, const KV* K, int64_t n,
                                                      float* s) {
  __m512 qv[NB];
  for (int b = 0; b < NB; ++b) qv[b] = _mm512_loadu_ps(q + 16 * b);
  for (int64_t j = 0; j < n; ++j) {
    const KV* k = K + j * 16 * NB;
    __m512 acc = _mm512_mul_ps(qv[0], load16(k));
    for (int b = 1; b < NB; ++b) acc = _mm512_fmadd_ps(qv[b], load16(k + 16 * b), acc);
    s[j] = _mm512_reduce_add_ps(acc);
  }
}
template <int NB, typename KV>
__attribute__((target("avx512f"))) void mix_avx512(const float* p, const int32_t* idx,
                                                   int64_t cnt, const KV* V, float* out) {
  __m512 acc[NB];
  for (int b = 0; b < NB; ++b) acc[b] = _mm512_setzero_ps();
  for (int64_t t = 0; t < cnt; ++t) {
    const __m512 w = _mm512_set1_ps(p[idx[t]]);
    const KV* v = V + static_cast<int64_t>(idx[t]) * 16 * NB;
    for (int b = 0; b < NB; ++b) acc[b] = _mm512_fmadd_ps(w, load16(v + 16 * b), acc[b]);
  }
  for (int b = 0; b < NB; ++b) _mm512_storeu_ps(out + 16 * b, acc[b]);
}
bool has_avx512() {
  static const bool yes = __builtin_cpu_supports("avx512f");
  return yes;
}
// Decode kernels: the AVX-512 ones where D is 16, 32 or 64, the portable loops otherwise.
template <typename KV>
void scores_row(const float* q, const KV* K, int64_t n, int64_t D, float* s) {
  if (has_avx512() && D == 32) return scores_avx512<2>(q, K, n, s);
  if (has_avx512() && D == 16) return scores_avx512<1>(q, K, n, s);
  if (has_avx512() && D == 64) return scores_avx512<4>(q, K, n, s);
  if constexpr (std::is_same<KV, float>::value) scores_f32(q, K, n, D, s);
  else scores_bf16(q, K, n, D, s);
}
template <typename KV>
void mix_row(const float* p, const int32_t* idx, int64_t cnt, const KV* V, int64_t D, float* out) {
  if (has_avx512() && D == 32) return mix_avx512<2>(p, idx, cnt, V, out);
  if (has_avx512() && D == 16) return mix_avx512<1>(p, idx, cnt, V, out);
  if (has_avx512() && D == 64) return mix_avx512<4>(p, idx, cnt, V, out);
  if constexpr (std::is_same<KV, float>::value) mix_f32(p, idx, cnt, V, D, out);
  else mix_bf16(p, idx, cnt, V, D, out);
}

// Indices of the nonzero weights of p (n) into idx; returns their count. Blocks of 16 are
// tested with one vector comparison first, so a sparse row costs little more than a read.
LB_SIMD_CLONES int64_t nonzeros(const float* p, int64_t n, int32_t* idx) {
  int64_t c = 0, j = 0;
  for (; j + 16 <= n; j += 16) {
    int any = 0;
#pragma omp simd reduction(| : any)
    for (int k = 0; k < 16; ++k) any |= p[j + k] != 0.f;
    if (!any) continue;
    for (int k = 0; k < 16; ++k) {
      idx[c] = static_cast<int32_t>(j + k);
      c += p[j + k] != 0.f;
    }
  }
  for (; j < n; ++j) {
    idx[c] = static_cast<int32_t>(j);
    c += p[j] != 0.f;
  }
  return c;
}
// Raw products z (n) of query i with keys 0 .. n − 1 -> scores, in place (attention_score.h),
// compiled for each instruction set.
LB_SIMD_CLONES void scale_and_bias(float* z, int64_t n, float f, float slope, int64_t i) {
  attention_score_row(z, z, n, f, slope, i);
}
LB_SIMD_CLONES void bf16_to_f32(const uint16_t* x, int64_t n, float* y) {
#pragma omp simd
  for (int64_t t = 0; t < n; ++t) y[t] = bf16_widen(x[t]);
}

float gelu_tanh(float x) {
  return 0.5f * x * (1.f + std::tanh(0.7978845608028654f * (x + 0.044715f * x * x * x)));
}

// Per-thread scratch of the attention units (grown, never shrunk).
struct UnitScratch {
  std::vector<float> s, p, kf, vf;
  std::vector<int32_t> idx;
};
UnitScratch& unit_scratch() {
  thread_local UnitScratch s;
  return s;
}
template <typename V>
void grow(V& v, size_t n) {
  if (v.size() < n) v.resize(n);
}

}  // namespace

int64_t argmax(const float* x, int64_t n) {
  int64_t best = 0;
  for (int64_t i = 1; i < n; ++i) {
    if (x[i] > x[best]) best = i;
  }
  return best;
}

// ---- engine ---------------------------------------------------------------------------------

InferenceEngine::InferenceEngine(const Transformer& model, InferenceOptions opts)
    : cfg_(model.config()), opts_(opts) {
  LB_REQUIRE(opts_.chunk >= 1 && opts_.q_block >= 1,
             "inference chunk " << opts_.chunk << " and q_block " << opts_.q_block
                                << " must be >= 1");
  const auto& params = model.params();
  const ParamIndex& ix = model.param_index();
  embed_ = params[ix.model[kEmbed]].data();
  final_norm_ = params[ix.model[kFinalNorm]].data();
  head_ = params[ix.model[kHead]].data();
  for (int64_t l = 0; l < cfg_.layers; ++l) layers_.push_back(layer_weights(params, ix, l));
  positions_ = AttentionPositions(cfg_.position, cfg_.attention.length_scale, cfg_.heads,
                                  cfg_.head_dim, cfg_.rope_theta);
}

void InferenceEngine::reserve_positions(int64_t max_positions) {
  positions_.reserve(max_positions);
}

int64_t InferenceEngine::kv_bytes_per_position(const ModelConfig& c, bool kv_bf16) {
  return c.layers * 2 * c.heads * c.head_dim * (kv_bf16 ? 2 : 4);
}

// ---- session --------------------------------------------------------------------------------

struct InferenceSession::Impl {
  // KV cache, layer l head h position t at ((l·H + h)·T_max + t)·D. Allocated without
  // initialisation, so untouched pages cost no memory.
  std::unique_ptr<float[]> k32, v32;
  std::unique_ptr<uint16_t[]> k16, v16;
  // Chunk activations (R rows).
  std::vector<float> x, xn, q, k, v, att, o, h1, g, u, scale, sa, sb;
  const AttnObserver* obs = nullptr;
  int64_t obs_begin = 0, obs_end = 0;
};

InferenceSession::InferenceSession(const InferenceEngine& engine, int64_t max_length)
    : impl_(std::make_unique<Impl>()), eng_(engine), max_length_(max_length) {
  LB_REQUIRE(max_length >= 1, "inference max_length " << max_length << " must be >= 1");
  LB_REQUIRE(!engine.positions_.rotates() || engine.positions_.rope.max_pos >= max_length,
             "call reserve_positions(" << max_length << ") on the engine first");
  const auto& c = engine.cfg_;
  const size_t n = static_cast<size_t>(c.layers * c.heads * max_length * c.head_dim);
  if (engine.opts_.kv_bf16) {
    impl_->k16.reset(new uint16_t[n]);
    impl_->v16.reset(new uint16_t[n]);
  } else {
    impl_->k32.reset(new float[n]);
    impl_->v32.reset(new float[n]);
  }
}

InferenceSession::~InferenceSession() = default;

void InferenceSession::truncate(int64_t n) {
  LB_CHECK(n >= 0 && n <= length_, "truncate to " << n << " of " << length_);
  length_ = n;
}

void InferenceSession::observe(const AttnObserver* obs, int64_t begin, int64_t end) {
  impl_->obs = obs;
  impl_->obs_begin = begin;
  impl_->obs_end = end;
}

void InferenceSession::append(const int32_t* ids, int64_t n, std::vector<float>& logits,
                              int64_t logits_from) {
  const ModelConfig& c = eng_.cfg_;
  const InferenceOptions& opt = eng_.opts_;
  LB_REQUIRE(length_ + n <= max_length_, "sequence of " << length_ + n
                                                        << " positions exceeds the reserved "
                                                        << max_length_);
  if (logits_from < 0) logits_from = length_ + n - 1;
  LB_CHECK(logits_from >= length_ && logits_from <= length_ + n, "logits_from " << logits_from);
  const int64_t C = c.hidden, H = c.heads, D = c.head_dim, HD = H * D, F = c.ffn, Vo = c.num_labels,
                Tm = max_length_, Hs = eng_.positions_.n_scaled;
  const LengthScale ls_kind = c.attention.length_scale;
  const bool sparse = normalizer_is_sparse(c.attention.kind);
  const float inv_sqrt_d = inv_sqrt_head_dim(D);
  const float emb_scale = static_cast<float>(std::sqrt(static_cast<double>(C)));
  for (int64_t i = 0; i < n; ++i) {
    LB_REQUIRE(ids[i] >= 0 && ids[i] < c.vocab_size,
               "token id " << ids[i] << " is outside the model vocabulary [0, " << c.vocab_size
                           << ")");
  }
  logits.assign(static_cast<size_t>((length_ + n - logits_from) * Vo), 0.f);
  Impl& m = *impl_;
  // Keys of this call, as in the released code's one call per append (topk's div-2 rule): the
  // prompt length in prefill, i + 1 in one-token decoding; the chunks below do not change it.
  const int64_t call_keys = length_ + n;

  for (int64_t c0 = 0; c0 < n; c0 += opt.chunk) {
    const int64_t R = std::min(opt.chunk, n - c0), p0 = length_ + c0;
    // First row (within the chunk) whose last-layer output is needed.
    int64_t need = logits_from;
    if (m.obs && m.obs_end > p0 && m.obs_begin < p0 + R) {
      need = std::min(need, std::max(m.obs_begin, p0));
    }
    need = std::clamp<int64_t>(need - p0, 0, R);
    grow(m.x, R * C), grow(m.xn, R * C), grow(m.o, R * C), grow(m.h1, R * C);
    grow(m.q, R * HD), grow(m.k, R * HD), grow(m.v, R * HD), grow(m.att, R * HD);
    grow(m.g, R * F), grow(m.u, R * F), grow(m.scale, R * H), grow(m.sa, R * H), grow(m.sb, R * H);
    for (int64_t r = 0; r < R; ++r) {
      const float* e = eng_.embed_ + static_cast<int64_t>(ids[c0 + r]) * C;
      for (int64_t j = 0; j < C; ++j) m.x[r * C + j] = e[j] * emb_scale;
    }
    for (int64_t l = 0; l < c.layers; ++l) {
      const LayerWeights& L = eng_.layers_[l];
      const int64_t lo = (l == c.layers - 1) ? need : 0;  // rows lo .. R−1 go on
      const int64_t Rq = R - lo;
      rmsnorm_rows_forward(m.x.data(), L[kInputNorm], m.xn.data(), nullptr, R, C);
      linear(m.xn.data(), L[kKProj], m.k.data(), R, C, HD);
      linear(m.xn.data(), L[kVProj], m.v.data(), R, C, HD);
      linear(m.xn.data() + lo * C, L[kQProj], m.q.data() + lo * HD, Rq, C, HD);
      eng_.positions_.rotate(m.k.data(), R, p0);
      eng_.positions_.rotate(m.q.data() + lo * HD, Rq, p0 + lo);
      // Query scale (R, H): 1 except the last Hs heads.
      std::fill(m.scale.begin(), m.scale.begin() + R * H, 1.f);
      if (Hs > 0 && Rq > 0) {
        if (ls_kind == LengthScale::kAdaptSoftplusTanh) {
          linear(m.xn.data() + lo * C, L[kScaleA], m.sa.data(), Rq, C, Hs);
          linear(m.xn.data() + lo * C, L[kScaleB], m.sb.data(), Rq, C, Hs);
        }
        query_scale_forward(ls_kind, L.query_scale(), Rq, H, Hs, nullptr, p0 + lo, m.sa.data(),
                            m.sb.data(), m.scale.data() + lo * H);
      }
      // Cache the chunk's keys and values.
      const int64_t base = l * H * Tm;
      for (int64_t h = 0; h < H; ++h) {
        for (int64_t r = 0; r < R; ++r) {
          const int64_t at = ((base + h * Tm) + p0 + r) * D;
          const float* kr = m.k.data() + r * HD + h * D;
          const float* vr = m.v.data() + r * HD + h * D;
          if (opt.kv_bf16) {
            for (int64_t d = 0; d < D; ++d) m.k16[at + d] = bf16_round(kr[d]);
            for (int64_t d = 0; d < D; ++d) m.v16[at + d] = bf16_round(vr[d]);
          } else {
            std::copy(kr, kr + D, m.k32.get() + at);
            std::copy(vr, vr + D, m.v32.get() + at);
          }
        }
      }
      // Attention units: head × query block.
      const int64_t qb = opt.q_block, nqb = (Rq + qb - 1) / qb;
      const bool blocked = opt.blocked && blocked_attention_supports(c.attention, D);
      // One unit per head × query block; on one thread (or nested) the units run in order.
      parallel_for_dynamic(
          H * nqb,
          [&](int64_t unit) {
            const int64_t h = unit / nqb, r0 = lo + (unit % nqb) * qb;
            const int64_t nr = std::min(qb, R - r0), n_end = p0 + r0 + nr;
            const int64_t kv_at = (base + h * Tm) * D;
            if (blocked && nr > 2) {  // prefill blocks: tiled, O(tile) scratch
              BlockedAttention ba;
              ba.spec = &c.attention, ba.D = D, ba.nr = nr, ba.pos0 = p0 + r0;
              ba.q = m.q.data() + r0 * HD + h * D, ba.ldq = HD;
              ba.scale = m.scale.data() + r0 * H + h, ba.ld_scale = H;
              ba.inv_sqrt_d = inv_sqrt_d,
              ba.slope = head_slope(c.attention, eng_.positions_.slopes.data(), h);
              if (opt.kv_bf16)
                ba.k16 = m.k16.get() + kv_at, ba.v16 = m.v16.get() + kv_at;
              else
                ba.k32 = m.k32.get() + kv_at, ba.v32 = m.v32.get() + kv_at;
              ba.out = m.att.data() + r0 * HD + h * D, ba.ldo = HD;
              const std::function<void(int64_t, const float*, int64_t, const RowStats&)> on_row =
                  [&](int64_t r, const float* p, int64_t nk, const RowStats& st) {
                    AttnRowView view;
                    view.layer = l, view.head = h, view.pos = p0 + r0 + r, view.n = nk, view.p = p;
                    view.stats = st, view.scale = m.scale[(r0 + r) * H + h],
                    view.scaled = h >= H - Hs;
                    (*m.obs)(view);
                  };
              if (m.obs) {
                ba.obs_lo = std::clamp<int64_t>(m.obs_begin - (p0 + r0), 0, nr);
                ba.obs_hi = std::clamp<int64_t>(m.obs_end - (p0 + r0), 0, nr);
                ba.on_row = &on_row;
              }
              blocked_attention(ba);
              return;
            }
            UnitScratch& s = unit_scratch();
            grow(s.s, nr * n_end), grow(s.p, nr * n_end), grow(s.idx, n_end);
            const float* Kf = nullptr;
            const float* Vf = nullptr;
            const bool few = nr <= 2;
            if (!opt.kv_bf16) {
              Kf = m.k32.get() + kv_at, Vf = m.v32.get() + kv_at;
            } else if (!few) {
              grow(s.kf, n_end * D), grow(s.vf, n_end * D);
              bf16_to_f32(m.k16.get() + kv_at, n_end * D, s.kf.data());
              bf16_to_f32(m.v16.get() + kv_at, n_end * D, s.vf.data());
              Kf = s.kf.data(), Vf = s.vf.data();
            }
            const float* qh = m.q.data() + r0 * HD + h * D;
            if (few) {
              for (int64_t r = 0; r < nr; ++r) {
                if (Kf)
                  scores_row(qh + r * HD, Kf, p0 + r0 + r + 1, D, s.s.data() + r * n_end);
                else
                  scores_row(qh + r * HD, m.k16.get() + kv_at, p0 + r0 + r + 1, D,
                             s.s.data() + r * n_end);
              }
            } else {
              gemm(true, nr, n_end, D, qh, HD, Kf, D, s.s.data(), n_end);
            }
            const float slope = head_slope(c.attention, eng_.positions_.slopes.data(), h);
            int64_t support_total = 0;
            for (int64_t r = 0; r < nr; ++r) {
              const int64_t i = p0 + r0 + r, nk = i + 1;
              const float sc = m.scale[(r0 + r) * H + h];
              const float f = score_factor(sc, inv_sqrt_d);
              float* z = s.s.data() + r * n_end;
              float* p = s.p.data() + r * n_end;
              scale_and_bias(z, nk, f, slope, i);
              const RowStats st = normalize_forward(c.attention, z, nk, p, call_keys);
              if (!few) std::fill(p + nk, p + n_end, 0.f);
              support_total += sparse ? st.support : nk;
              if (m.obs && i >= m.obs_begin && i < m.obs_end) {
                AttnRowView view;
                view.layer = l, view.head = h, view.pos = i, view.n = nk, view.p = p,
                view.stats = st;
                view.scale = sc, view.scaled = h >= H - Hs;
                (*m.obs)(view);
              }
              if (few) {
                float* out = m.att.data() + (r0 + r) * HD + h * D;
                const int64_t cnt = nonzeros(p, nk, s.idx.data());
                if (Vf)
                  mix_row(p, s.idx.data(), cnt, Vf, D, out);
                else
                  mix_row(p, s.idx.data(), cnt, m.v16.get() + kv_at, D, out);
              }
            }
            // Mixing a block: rows whose supports are small gather only their support's values;
            // a block whose supports cover more than 1/8 of its keys (and every dense normalizer)
            // takes one product over the whole block, cheaper there (the weights are 0 elsewhere).
            if (!few && support_total * 8 <= nr * n_end) {
              for (int64_t r = 0; r < nr; ++r) {
                const float* p = s.p.data() + r * n_end;
                const int64_t cnt = nonzeros(p, p0 + r0 + r + 1, s.idx.data());
                mix_row(p, s.idx.data(), cnt, Vf, D, m.att.data() + (r0 + r) * HD + h * D);
              }
            } else if (!few) {
              gemm(false, nr, D, n_end, s.p.data(), n_end, Vf, D, m.att.data() + r0 * HD + h * D,
                   HD);
            }
          },
          Rq * (p0 + R) * HD >= kParallelWork);
      if (Rq == 0) continue;
      // Output projection, post-attention norm, residual; then the feed-forward block.
      float* xl = m.x.data() + lo * C;
      float* h1 = m.h1.data() + lo * C;
      float* xn = m.xn.data() + lo * C;
      linear(m.att.data() + lo * HD, L[kOProj], m.o.data(), Rq, HD, C);
      rmsnorm_rows_forward(m.o.data(), L[kPostAttnNorm], h1, nullptr, Rq, C);
      for (int64_t t = 0; t < Rq * C; ++t) h1[t] += xl[t];
      rmsnorm_rows_forward(h1, L[kPreFfnNorm], xn, nullptr, Rq, C);
      linear(xn, L[kGateProj], m.g.data(), Rq, C, F);
      linear(xn, L[kUpProj], m.u.data(), Rq, C, F);
      for (int64_t t = 0; t < Rq * F; ++t) m.g[t] = gelu_tanh(m.g[t]) * m.u[t];
      linear(m.g.data(), L[kDownProj], m.o.data(), Rq, F, C);
      rmsnorm_rows_forward(m.o.data(), L[kPostFfnNorm], xl, nullptr, Rq, C);
      for (int64_t t = 0; t < Rq * C; ++t) xl[t] += h1[t];
    }
    // Final norm and head for the rows whose logits are asked for.
    const int64_t f0 = std::clamp<int64_t>(logits_from - p0, 0, R);
    if (f0 < R) {
      rmsnorm_rows_forward(m.x.data() + f0 * C, eng_.final_norm_, m.xn.data(), nullptr, R - f0, C);
      linear(m.xn.data(), eng_.head_, logits.data() + (p0 + f0 - logits_from) * Vo, R - f0, C,
             Vo);
    }
  }
  length_ += n;
}

}  // namespace lb
