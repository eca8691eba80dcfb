#include "models/transformer.h"

#include <algorithm>
#include <cmath>

#include "core/check.h"
#include "core/rng.h"
#include "models/dnnl_util.h"
#include "models/kernels/length_scale.h"
#include "models/ops.h"
#include "models/parallel.h"
#include "models/profile.h"

namespace lb {

namespace {

void add_into(float* dst, const float* src, int64_t n) {
  parallel_for_static(n, [&](int64_t i) { dst[i] += src[i]; });
}

// Rows per block of the query length scale's per-row maps (attention_score.h: serial double
// math per scaled head, a fifth of an ASEntmax step at 16 threads when run on one). Rows are
// independent, so blocks on any threads give the same bits.
constexpr int64_t kScaleRows = 256;

template <typename V>
void ensure(V& v, int64_t n) {
  if (static_cast<int64_t>(v.size()) != n) v.resize(n);
}

}  // namespace

Transformer::Transformer(const ModelConfig& cfg) : cfg_(cfg) {
  LB_REQUIRE(cfg.vocab_size > 0 && cfg.num_labels > 0,
             "model vocab_size " << cfg.vocab_size << " and num_labels " << cfg.num_labels
                                 << " must be set (> 0)");
  positions_ = AttentionPositions(cfg.position, cfg.attention.length_scale, cfg.heads, cfg.head_dim,
                                  cfg.rope_theta);
  defs_ = model_param_defs(cfg);
  for (const ModelParamDef& d : defs_) params_.emplace_back(d.name, d.shape);
  index_ = index_params(defs_, cfg.layers);
  acts_.resize(cfg.layers);
}

Param& Transformer::param(const std::string& name) {
  for (auto& p : params_) {
    if (p.name == name) return p;
  }
  std::vector<std::string> names;
  for (auto& p : params_) names.push_back(p.name);
  throw UsageError(unknown_name_message("parameter", name, names));
}

void Transformer::init(uint64_t seed) {
  Rng rng(derive_seed({seed, hash_tag("init")}));
  const float std = static_cast<float>(cfg_.init_std);
  const AdaptScaleInit adapt = adapt_scale_init(cfg_.attention.scale_init_near_one);
  for (size_t i = 0; i < params_.size(); ++i) {
    init_param(defs_[i].init, params_[i], rng, std, adapt);  // the table's rule, in table order
  }
  const int64_t pad = cfg_.embedding_padding_idx;
  if (pad >= 0 && pad < cfg_.vocab_size) {
    float* row = P(index_.model[kEmbed]) + pad * cfg_.hidden;
    std::fill(row, row + cfg_.hidden, 0.f);
  }
  zero_grad();
}

void Transformer::zero_grad() {
  for (Param& p : params_) std::fill(p.grad.begin(), p.grad.end(), 0.f);
}

// ---- query length scale -------------------------------------------------------------------

void Transformer::scale_forward(int64_t l) {
  ProfileScope prof("length_scale");
  LayerActs& a = acts_[l];
  const auto& lp = index_.layers[l];
  const int64_t N = batch_.rows(), H = cfg_.heads, Hs = positions_.n_scaled, C = cfg_.hidden;
  const LengthScale kind = cfg_.attention.length_scale;
  ensure(a.scale, N * H);
  if (Hs > 0)
    ensure(a.sa, N * Hs), ensure(a.sb, N * Hs), ensure(a.sga, N * Hs), ensure(a.sgb, N * Hs);
  if (Hs > 0 && kind == LengthScale::kAdaptSoftplusTanh) {
    // a = xn W_βᵀ, b = xn W_γᵀ   (N, Hs); query_scale_forward adds the biases
    linear_forward(a.xn1.data(), P(lp[kScaleA]), a.sa.data(), N, C, Hs, &a.xn1_16);
    linear_forward(a.xn1.data(), P(lp[kScaleB]), a.sb.data(), N, C, Hs, &a.xn1_16);
  }
  const QueryScaleWeights w = layer_weights(params_, index_, l).query_scale();
  const int64_t blocks = (N + kScaleRows - 1) / kScaleRows;
  parallel_for_static(blocks, [&](int64_t b) {
    const int64_t r0 = b * kScaleRows, n = std::min(kScaleRows, N - r0);
    query_scale_forward(kind, w, n, H, Hs, batch_.pos.data() + r0, 0, a.sa.data() + r0 * Hs,
                        a.sb.data() + r0 * Hs, a.scale.data() + r0 * H, a.sga.data() + r0 * Hs,
                        a.sgb.data() + r0 * Hs);
  });
}

void Transformer::scale_backward(int64_t l, const float* dscale, float* dxn) {
  const int64_t Hs = positions_.n_scaled;
  if (Hs == 0) return;
  ProfileScope prof("length_scale");
  LayerActs& a = acts_[l];
  const auto& lp = index_.layers[l];
  const int64_t N = batch_.rows(), H = cfg_.heads, C = cfg_.hidden;
  const LengthScale kind = cfg_.attention.length_scale;
  std::vector<float> da(N * Hs), db(N * Hs);
  const int64_t blocks = (N + kScaleRows - 1) / kScaleRows;
  parallel_for_static(blocks, [&](int64_t b) {
    const int64_t r0 = b * kScaleRows, n = std::min(kScaleRows, N - r0);
    query_scale_backward(n, H, Hs, a.sga.data() + r0 * Hs, a.sgb.data() + r0 * Hs, dscale + r0 * H,
                         da.data() + r0 * Hs, db.data() + r0 * Hs);
  });
  if (kind == LengthScale::kAdaptSoftplusTanh) {
    linear_backward(a.xn1.data(), P(lp[kScaleA]), da.data(), dxn, G(lp[kScaleA]), N, C, Hs, true,
                    &a.xn1_16);
    linear_backward(a.xn1.data(), P(lp[kScaleB]), db.data(), dxn, G(lp[kScaleB]), N, C, Hs, true,
                    &a.xn1_16);
    for (int64_t r = 0; r < N; ++r) {
      for (int64_t h = 0; h < Hs; ++h) {
        G(lp[kScaleABias])[h] += da[r * Hs + h];
        G(lp[kScaleBBias])[h] += db[r * Hs + h];
      }
    }
  } else {
    for (int64_t r = 0; r < N; ++r) {
      for (int64_t h = 0; h < Hs; ++h) {
        G(lp[kScaleA])[h] += da[r * Hs + h];
        if (lp[kScaleB] >= 0) G(lp[kScaleB])[h] += db[r * Hs + h];
      }
    }
  }
}

// ---- layer ---------------------------------------------------------------------------------

void Transformer::layer_forward(int64_t l, const float* x_in, float* x_out) {
  LayerActs& a = acts_[l];
  const auto& lp = index_.layers[l];
  const int64_t N = batch_.rows(), C = cfg_.hidden, H = cfg_.heads, D = cfg_.head_dim,
                HD = H * D, F = cfg_.ffn;
  ensure(a.x, N * C), ensure(a.xn1, N * C), ensure(a.rstd1, N);
  ensure(a.q, N * HD), ensure(a.k, N * HD), ensure(a.v, N * HD), ensure(a.att, N * HD);
  ensure(a.o, N * C), ensure(a.rstd2, N), ensure(a.h1, N * C), ensure(a.xn3, N * C);
  ensure(a.rstd3, N), ensure(a.g, N * F), ensure(a.u, N * F), ensure(a.ge, N * F);
  ensure(a.m, N * F), ensure(a.d, N * C), ensure(a.rstd4, N);
  const auto prob_off = attention_prob_offsets(batch_.offsets, H);
  ensure(a.probs, prob_off.back());
  std::copy(x_in, x_in + N * C, a.x.begin());

  // Attention block.
  // bf16 products: each activation below is converted once (bf16_rows) for all its products.
  rmsnorm_forward(a.x.data(), P(lp[kInputNorm]), a.xn1.data(), a.rstd1.data(), N, C);
  bf16_rows(a.xn1.data(), N, C, a.xn1_16);
  linear_forward(a.xn1.data(), P(lp[kQProj]), a.q.data(), N, C, HD, &a.xn1_16);
  linear_forward(a.xn1.data(), P(lp[kKProj]), a.k.data(), N, C, HD, &a.xn1_16);
  linear_forward(a.xn1.data(), P(lp[kVProj]), a.v.data(), N, C, HD, &a.xn1_16);
  for (int64_t b = 0; b < batch_.samples(); ++b) {
    const int64_t r0 = batch_.offsets[b], T = batch_.offsets[b + 1] - r0;
    positions_.rotate(a.q.data() + r0 * HD, T, 0);
    positions_.rotate(a.k.data() + r0 * HD, T, 0);
  }
  scale_forward(l);
  attention_forward(cfg_.attention, {H, D}, batch_.offsets, a.q.data(), a.k.data(), a.v.data(),
                    a.scale.data(), positions_.slopes.data(), a.probs.data(), a.att.data());
  bf16_rows(a.att.data(), N, HD, a.att_16);
  linear_forward(a.att.data(), P(lp[kOProj]), a.o.data(), N, HD, C, &a.att_16);
  rmsnorm_forward(a.o.data(), P(lp[kPostAttnNorm]), a.h1.data(), a.rstd2.data(), N, C);
  add_into(a.h1.data(), a.x.data(), N * C);

  // Feed-forward block.
  rmsnorm_forward(a.h1.data(), P(lp[kPreFfnNorm]), a.xn3.data(), a.rstd3.data(), N, C);
  bf16_rows(a.xn3.data(), N, C, a.xn3_16);
  linear_forward(a.xn3.data(), P(lp[kGateProj]), a.g.data(), N, C, F, &a.xn3_16);
  linear_forward(a.xn3.data(), P(lp[kUpProj]), a.u.data(), N, C, F, &a.xn3_16);
  gelu_tanh_forward(a.g.data(), a.ge.data(), N * F);
  mul_forward(a.ge.data(), a.u.data(), a.m.data(), N * F);
  bf16_rows(a.m.data(), N, F, a.m_16);
  linear_forward(a.m.data(), P(lp[kDownProj]), a.d.data(), N, F, C, &a.m_16);
  rmsnorm_forward(a.d.data(), P(lp[kPostFfnNorm]), x_out, a.rstd4.data(), N, C);
  add_into(x_out, a.h1.data(), N * C);
}

void Transformer::layer_backward(int64_t l, float* dh) {
  LayerActs& a = acts_[l];
  const auto& lp = index_.layers[l];
  const int64_t N = batch_.rows(), C = cfg_.hidden, H = cfg_.heads, D = cfg_.head_dim,
                HD = H * D, F = cfg_.ffn;
  ensure(ws_c1_, N * C), ensure(ws_c2_, N * C);
  ensure(ws_f1_, N * F), ensure(ws_f2_, N * F), ensure(ws_f3_, N * F);
  ensure(ws_datt_, N * HD), ensure(ws_dq_, N * HD), ensure(ws_dk_, N * HD), ensure(ws_dv_, N * HD);
  ensure(ws_dscale_, N * H);
  float *dc = ws_c1_.data(), *dc2 = ws_c2_.data();
  float *dm = ws_f1_.data(), *dge = ws_f2_.data(), *dg = ws_f3_.data();

  // Feed-forward block: out = h1 + norm4(d).
  rmsnorm_backward(a.d.data(), P(lp[kPostFfnNorm]), a.rstd4.data(), dh, dc, G(lp[kPostFfnNorm]), N,
                   C);  // dc = ∂d
  linear_backward(a.m.data(), P(lp[kDownProj]), dc, dm, G(lp[kDownProj]), N, F, C, false,
                  &a.m_16);                                                   // ∂m
  mul_backward(a.ge.data(), a.u.data(), dm, dge, dm, N * F);                  // ∂ge, ∂u (in dm)
  linear_backward(a.xn3.data(), P(lp[kUpProj]), dm, dc, G(lp[kUpProj]), N, C, F, false,
                  &a.xn3_16);                                                            // ∂xn3
  gelu_tanh_backward(a.g.data(), dge, dg, N * F);                                        // ∂g
  linear_backward(a.xn3.data(), P(lp[kGateProj]), dg, dc, G(lp[kGateProj]), N, C, F, true,
                  &a.xn3_16);
  rmsnorm_backward(a.h1.data(), P(lp[kPreFfnNorm]), a.rstd3.data(), dc, dc2, G(lp[kPreFfnNorm]), N,
                   C);
  add_into(dh, dc2, N * C);  // dh = ∂h1

  // Attention block: h1 = x + norm2(o).
  // dc = ∂o
  rmsnorm_backward(a.o.data(), P(lp[kPostAttnNorm]), a.rstd2.data(), dh, dc, G(lp[kPostAttnNorm]),
                   N, C);
  float *datt = ws_datt_.data(), *dq = ws_dq_.data(), *dk = ws_dk_.data(), *dv = ws_dv_.data();
  float* dscale = ws_dscale_.data();
  linear_backward(a.att.data(), P(lp[kOProj]), dc, datt, G(lp[kOProj]), N, HD, C, false, &a.att_16);
  attention_backward(cfg_.attention, {H, D}, batch_.offsets, a.q.data(), a.k.data(), a.v.data(),
                     a.scale.data(), positions_.slopes.data(), a.probs.data(), datt, dq, dk, dv,
                     dscale);
  for (int64_t b = 0; b < batch_.samples(); ++b) {
    const int64_t r0 = batch_.offsets[b], T = batch_.offsets[b + 1] - r0;
    positions_.rotate_backward(dq + r0 * HD, T, 0);
    positions_.rotate_backward(dk + r0 * HD, T, 0);
  }
  // dc = ∂xn1. Pre-RoPE q, k are not kept: the projections' weight grads use xn1 and the
  // un-rotated dq, dk, which is all they need.
  linear_backward(a.xn1.data(), P(lp[kQProj]), dq, dc, G(lp[kQProj]), N, C, HD, false, &a.xn1_16);
  linear_backward(a.xn1.data(), P(lp[kKProj]), dk, dc, G(lp[kKProj]), N, C, HD, true, &a.xn1_16);
  linear_backward(a.xn1.data(), P(lp[kVProj]), dv, dc, G(lp[kVProj]), N, C, HD, true, &a.xn1_16);
  scale_backward(l, dscale, dc);
  rmsnorm_backward(a.x.data(), P(lp[kInputNorm]), a.rstd1.data(), dc, dc2, G(lp[kInputNorm]), N, C);
  add_into(dh, dc2, N * C);  // dh = ∂x
}

// ---- model ---------------------------------------------------------------------------------

double Transformer::forward(const Batch& batch) {
  batch_ = batch;
  const int64_t N = batch_.rows(), C = cfg_.hidden, Vo = cfg_.num_labels;
  LB_CHECK(N > 0, "empty batch");
  for (int64_t r = 0; r < N; ++r) {
    LB_REQUIRE(batch_.ids[r] >= 0 && batch_.ids[r] < cfg_.vocab_size,
               "token id " << batch_.ids[r] << " is outside the model vocabulary [0, "
                           << cfg_.vocab_size << ")");
    LB_REQUIRE(!batch_.mask[r] || (batch_.targets[r] >= 0 && batch_.targets[r] < Vo),
               "target " << batch_.targets[r] << " is outside the model labels [0, " << Vo << ")");
  }
  int64_t max_t = 0;
  for (int64_t b = 0; b < batch_.samples(); ++b) {
    max_t = std::max(max_t, batch_.offsets[b + 1] - batch_.offsets[b]);
  }
  positions_.reserve(max_t);
  // The residual stream alternates between two reused buffers; it ends in h_final_.
  ensure(h_final_, N * C), ensure(h_next_, N * C);
  embedding_forward(batch_.ids.data(), P(index_.model[kEmbed]), h_final_.data(), N, C,
                    static_cast<float>(std::sqrt(static_cast<double>(C))));
  for (int64_t l = 0; l < cfg_.layers; ++l) {
    layer_forward(l, h_final_.data(), h_next_.data());
    std::swap(h_final_, h_next_);
  }
  ensure(xnf_, N * C), ensure(rstdf_, N), ensure(logits_, N * Vo), ensure(dlogits_, N * Vo);
  rmsnorm_forward(h_final_.data(), P(index_.model[kFinalNorm]), xnf_.data(), rstdf_.data(), N, C);
  bf16_rows(xnf_.data(), N, C, xnf_16_);
  linear_forward(xnf_.data(), P(index_.model[kHead]), logits_.data(), N, C, Vo, &xnf_16_);
  const double denom = std::max<int64_t>(1, batch_.n_targets);
  const double total = cross_entropy_forward_backward(logits_.data(), batch_.targets.data(),
                                                      batch_.mask.data(), dlogits_.data(), N, Vo,
                                                      denom);
  loss_ = total / denom;
  return loss_;
}

void Transformer::backward() {
  const int64_t N = batch_.rows(), C = cfg_.hidden, Vo = cfg_.num_labels;
  LB_CHECK(N > 0 && static_cast<int64_t>(dlogits_.size()) == N * Vo, "backward without forward");
  ensure(ws_dxn_, N * C), ensure(ws_dh_, N * C);
  float *dxn = ws_dxn_.data(), *dh = ws_dh_.data();
  linear_backward(xnf_.data(), P(index_.model[kHead]), dlogits_.data(), dxn, G(index_.model[kHead]),
                  N, C, Vo, false, &xnf_16_);
  rmsnorm_backward(h_final_.data(), P(index_.model[kFinalNorm]), rstdf_.data(), dxn, dh,
                   G(index_.model[kFinalNorm]), N, C);
  for (int64_t l = cfg_.layers - 1; l >= 0; --l) layer_backward(l, dh);
  embedding_backward(batch_.ids.data(), dh, G(index_.model[kEmbed]), N, C,
                     static_cast<float>(std::sqrt(static_cast<double>(C))),
                     static_cast<int32_t>(cfg_.embedding_padding_idx));
}

}  // namespace lb
