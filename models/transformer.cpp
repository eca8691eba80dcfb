#include "models/transformer.h"

#include <algorithm>
#include <cmath>

#include "core/check.h"
#include "core/rng.h"
#include "models/dnnl_util.h"
#include "models/kernels/length_scale.h"
#include "models/ops.h"
#include "models/profile.h"

namespace lb {

namespace {

void add_into(float* dst, const float* src, int64_t n) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) dst[i] += src[i];
}

template <typename V>
void ensure(V& v, int64_t n) {
  if (static_cast<int64_t>(v.size()) != n) v.resize(n);
}

}  // namespace

int64_t Transformer::add_param(const std::string& name, std::vector<int64_t> shape) {
  params_.emplace_back(name, std::move(shape));
  return static_cast<int64_t>(params_.size()) - 1;
}

Transformer::Transformer(const ModelConfig& cfg) : cfg_(cfg) {
  LB_REQUIRE(cfg.vocab_size > 0 && cfg.num_labels > 0,
             "model vocab_size " << cfg.vocab_size << " and num_labels " << cfg.num_labels
                                 << " must be set (> 0)");
  const int64_t C = cfg.hidden, HD = cfg.heads * cfg.head_dim, F = cfg.ffn;
  const LengthScale ls = cfg.attention.length_scale;
  n_scaled_ = ls == LengthScale::kNone ? 0 : num_length_scaled_heads(cfg.position, cfg.heads);
  const int64_t Hs = n_scaled_;
  embed_ = add_param("model.embed_tokens.weight", {cfg.vocab_size, C});
  for (int64_t l = 0; l < cfg.layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    LayerParams lp;
    lp.w_in = add_param(p + "input_layernorm.weight", {C});
    lp.wq = add_param(p + "self_attn.q_proj.weight", {HD, C});
    lp.wk = add_param(p + "self_attn.k_proj.weight", {HD, C});
    lp.wv = add_param(p + "self_attn.v_proj.weight", {HD, C});
    lp.wo = add_param(p + "self_attn.o_proj.weight", {C, HD});
    if (ls == LengthScale::kNakanishi) {
      lp.ls_a = add_param(p + "self_attn.ssmax_scale", {Hs});
    } else if (ls == LengthScale::kLearn) {
      lp.ls_a = add_param(p + "self_attn.length_scale_beta", {Hs});
      lp.ls_b = add_param(p + "self_attn.length_scale_gamma", {Hs});
    } else if (ls == LengthScale::kAdaptSoftplusTanh) {
      lp.ls_a = add_param(p + "self_attn.asentmax_beta_proj.weight", {Hs, C});
      lp.ls_a_bias = add_param(p + "self_attn.asentmax_beta_proj.bias", {Hs});
      lp.ls_b = add_param(p + "self_attn.asentmax_gamma_proj.weight", {Hs, C});
      lp.ls_b_bias = add_param(p + "self_attn.asentmax_gamma_proj.bias", {Hs});
    }
    lp.w_post_attn = add_param(p + "post_attention_layernorm.weight", {C});
    lp.w_pre_ffn = add_param(p + "pre_feedforward_layernorm.weight", {C});
    lp.wg = add_param(p + "mlp.gate_proj.weight", {F, C});
    lp.wu = add_param(p + "mlp.up_proj.weight", {F, C});
    lp.wd = add_param(p + "mlp.down_proj.weight", {C, F});
    lp.w_post_ffn = add_param(p + "post_feedforward_layernorm.weight", {C});
    layer_params_.push_back(lp);
  }
  final_norm_ = add_param("model.norm.weight", {C});
  head_ = add_param("lm_head.weight", {cfg.num_labels, C});
  slopes_ = position_slopes(cfg.position, static_cast<int>(cfg.heads));
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
  for (Param& p : params_) {
    const std::string& n = p.name;
    auto ends = [&](const std::string& s) {
      return n.size() >= s.size() && n.compare(n.size() - s.size(), s.size(), s) == 0;
    };
    if (ends("layernorm.weight") || n == "model.norm.weight") {
      std::fill(p.value.begin(), p.value.end(), 0.f);
    } else if (ends("ssmax_scale")) {
      for (float& v : p.value) v = nakanishi_scale_init(rng);
    } else if (ends("length_scale_beta")) {
      for (float& v : p.value) v = learn_beta_init(rng);
    } else if (ends("length_scale_gamma")) {
      for (float& v : p.value) v = learn_gamma_init(rng);
    } else if (ends("asentmax_beta_proj.bias")) {
      std::fill(p.value.begin(), p.value.end(), adapt.bias_beta);
    } else if (ends("asentmax_gamma_proj.bias")) {
      std::fill(p.value.begin(), p.value.end(), adapt.bias_gamma);
    } else if (ends("asentmax_beta_proj.weight") || ends("asentmax_gamma_proj.weight")) {
      for (float& v : p.value) v = static_cast<float>(rng.normal()) * adapt.weight_std;
    } else {
      for (float& v : p.value) v = static_cast<float>(rng.normal()) * std;
    }
  }
  const int64_t pad = cfg_.embedding_padding_idx;
  if (pad >= 0 && pad < cfg_.vocab_size) {
    float* row = P(embed_) + pad * cfg_.hidden;
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
  const LayerParams& lp = layer_params_[l];
  const int64_t N = batch_.rows(), H = cfg_.heads, Hs = n_scaled_, C = cfg_.hidden;
  const LengthScale kind = cfg_.attention.length_scale;
  ensure(a.scale, N * H);
  std::fill(a.scale.begin(), a.scale.end(), 1.f);
  if (Hs == 0) return;
  ensure(a.sa, N * Hs);
  ensure(a.sb, N * Hs);
  if (kind == LengthScale::kAdaptSoftplusTanh) {
    // a = xn W_βᵀ + b_β, b = xn W_γᵀ + b_γ   (N, Hs)
    linear_forward(a.xn1.data(), P(lp.ls_a), a.sa.data(), N, C, Hs, &a.xn1_16);
    linear_forward(a.xn1.data(), P(lp.ls_b), a.sb.data(), N, C, Hs, &a.xn1_16);
    for (int64_t r = 0; r < N; ++r) {
      for (int64_t h = 0; h < Hs; ++h) {
        a.sa[r * Hs + h] += P(lp.ls_a_bias)[h];
        a.sb[r * Hs + h] += P(lp.ls_b_bias)[h];
      }
    }
  } else {
    for (int64_t r = 0; r < N; ++r) {
      for (int64_t h = 0; h < Hs; ++h) {
        a.sa[r * Hs + h] = P(lp.ls_a)[h];
        a.sb[r * Hs + h] = lp.ls_b >= 0 ? P(lp.ls_b)[h] : 0.f;
      }
    }
  }
  const LengthScaleParams lsp;
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < N; ++r) {
    for (int64_t h = 0; h < Hs; ++h) {
      a.scale[r * H + (H - Hs + h)] =
          length_scale(kind, batch_.pos[r], a.sa[r * Hs + h], a.sb[r * Hs + h], lsp);
    }
  }
}

void Transformer::scale_backward(int64_t l, const float* dscale, float* dxn) {
  if (n_scaled_ == 0) return;
  ProfileScope prof("length_scale");
  LayerActs& a = acts_[l];
  const LayerParams& lp = layer_params_[l];
  const int64_t N = batch_.rows(), H = cfg_.heads, Hs = n_scaled_, C = cfg_.hidden;
  const LengthScale kind = cfg_.attention.length_scale;
  std::vector<float> da(N * Hs), db(N * Hs);
  const LengthScaleParams lsp;
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < N; ++r) {
    for (int64_t h = 0; h < Hs; ++h) {
      float ga = 0.f, gb = 0.f;
      length_scale_grad(kind, batch_.pos[r], a.sa[r * Hs + h], a.sb[r * Hs + h], lsp, &ga, &gb);
      const float ds = dscale[r * H + (H - Hs + h)];
      da[r * Hs + h] = ds * ga;
      db[r * Hs + h] = ds * gb;
    }
  }
  if (kind == LengthScale::kAdaptSoftplusTanh) {
    linear_backward(a.xn1.data(), P(lp.ls_a), da.data(), dxn, G(lp.ls_a), N, C, Hs, true,
                    &a.xn1_16);
    linear_backward(a.xn1.data(), P(lp.ls_b), db.data(), dxn, G(lp.ls_b), N, C, Hs, true,
                    &a.xn1_16);
    for (int64_t r = 0; r < N; ++r) {
      for (int64_t h = 0; h < Hs; ++h) {
        G(lp.ls_a_bias)[h] += da[r * Hs + h];
        G(lp.ls_b_bias)[h] += db[r * Hs + h];
      }
    }
  } else {
    for (int64_t r = 0; r < N; ++r) {
      for (int64_t h = 0; h < Hs; ++h) {
        G(lp.ls_a)[h] += da[r * Hs + h];
        if (lp.ls_b >= 0) G(lp.ls_b)[h] += db[r * Hs + h];
      }
    }
  }
}

// ---- layer ---------------------------------------------------------------------------------

void Transformer::layer_forward(int64_t l, const float* x_in, float* x_out) {
  LayerActs& a = acts_[l];
  const LayerParams& lp = layer_params_[l];
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
  rmsnorm_forward(a.x.data(), P(lp.w_in), a.xn1.data(), a.rstd1.data(), N, C);
  bf16_rows(a.xn1.data(), N, C, a.xn1_16);
  linear_forward(a.xn1.data(), P(lp.wq), a.q.data(), N, C, HD, &a.xn1_16);
  linear_forward(a.xn1.data(), P(lp.wk), a.k.data(), N, C, HD, &a.xn1_16);
  linear_forward(a.xn1.data(), P(lp.wv), a.v.data(), N, C, HD, &a.xn1_16);
  if (cfg_.position == PosEncoding::kRope) {
    for (int64_t b = 0; b < batch_.samples(); ++b) {
      const int64_t r0 = batch_.offsets[b], T = batch_.offsets[b + 1] - r0;
      for (int64_t h = 0; h < H; ++h) {
        rope_forward(rope_, a.q.data() + r0 * HD + h * D, T, HD, 0, a.q.data() + r0 * HD + h * D);
        rope_forward(rope_, a.k.data() + r0 * HD + h * D, T, HD, 0, a.k.data() + r0 * HD + h * D);
      }
    }
  }
  scale_forward(l);
  attention_forward(cfg_.attention, {H, D}, batch_.offsets, a.q.data(), a.k.data(), a.v.data(),
                    a.scale.data(), slopes_.data(), a.probs.data(), a.att.data());
  bf16_rows(a.att.data(), N, HD, a.att_16);
  linear_forward(a.att.data(), P(lp.wo), a.o.data(), N, HD, C, &a.att_16);
  rmsnorm_forward(a.o.data(), P(lp.w_post_attn), a.h1.data(), a.rstd2.data(), N, C);
  add_into(a.h1.data(), a.x.data(), N * C);

  // Feed-forward block.
  rmsnorm_forward(a.h1.data(), P(lp.w_pre_ffn), a.xn3.data(), a.rstd3.data(), N, C);
  bf16_rows(a.xn3.data(), N, C, a.xn3_16);
  linear_forward(a.xn3.data(), P(lp.wg), a.g.data(), N, C, F, &a.xn3_16);
  linear_forward(a.xn3.data(), P(lp.wu), a.u.data(), N, C, F, &a.xn3_16);
  gelu_tanh_forward(a.g.data(), a.ge.data(), N * F);
  mul_forward(a.ge.data(), a.u.data(), a.m.data(), N * F);
  bf16_rows(a.m.data(), N, F, a.m_16);
  linear_forward(a.m.data(), P(lp.wd), a.d.data(), N, F, C, &a.m_16);
  rmsnorm_forward(a.d.data(), P(lp.w_post_ffn), x_out, a.rstd4.data(), N, C);
  add_into(x_out, a.h1.data(), N * C);
}

void Transformer::layer_backward(int64_t l, float* dh) {
  LayerActs& a = acts_[l];
  const LayerParams& lp = layer_params_[l];
  const int64_t N = batch_.rows(), C = cfg_.hidden, H = cfg_.heads, D = cfg_.head_dim,
                HD = H * D, F = cfg_.ffn;
  ensure(ws_c1_, N * C), ensure(ws_c2_, N * C);
  ensure(ws_f1_, N * F), ensure(ws_f2_, N * F), ensure(ws_f3_, N * F);
  ensure(ws_datt_, N * HD), ensure(ws_dq_, N * HD), ensure(ws_dk_, N * HD), ensure(ws_dv_, N * HD);
  ensure(ws_dscale_, N * H);
  float *dc = ws_c1_.data(), *dc2 = ws_c2_.data();
  float *dm = ws_f1_.data(), *dge = ws_f2_.data(), *dg = ws_f3_.data();

  // Feed-forward block: out = h1 + norm4(d).
  rmsnorm_backward(a.d.data(), P(lp.w_post_ffn), a.rstd4.data(), dh, dc, G(lp.w_post_ffn), N,
                   C);                                                               // dc = ∂d
  linear_backward(a.m.data(), P(lp.wd), dc, dm, G(lp.wd), N, F, C, false, &a.m_16);  // ∂m
  mul_backward(a.ge.data(), a.u.data(), dm, dge, dm, N * F);                  // ∂ge, ∂u (in dm)
  linear_backward(a.xn3.data(), P(lp.wu), dm, dc, G(lp.wu), N, C, F, false, &a.xn3_16);  // ∂xn3
  gelu_tanh_backward(a.g.data(), dge, dg, N * F);                                        // ∂g
  linear_backward(a.xn3.data(), P(lp.wg), dg, dc, G(lp.wg), N, C, F, true, &a.xn3_16);
  rmsnorm_backward(a.h1.data(), P(lp.w_pre_ffn), a.rstd3.data(), dc, dc2, G(lp.w_pre_ffn), N, C);
  add_into(dh, dc2, N * C);  // dh = ∂h1

  // Attention block: h1 = x + norm2(o).
  rmsnorm_backward(a.o.data(), P(lp.w_post_attn), a.rstd2.data(), dh, dc, G(lp.w_post_attn), N,
                   C);  // dc = ∂o
  float *datt = ws_datt_.data(), *dq = ws_dq_.data(), *dk = ws_dk_.data(), *dv = ws_dv_.data();
  float* dscale = ws_dscale_.data();
  linear_backward(a.att.data(), P(lp.wo), dc, datt, G(lp.wo), N, HD, C, false, &a.att_16);
  attention_backward(cfg_.attention, {H, D}, batch_.offsets, a.q.data(), a.k.data(), a.v.data(),
                     a.scale.data(), slopes_.data(), a.probs.data(), datt, dq, dk, dv, dscale);
  if (cfg_.position == PosEncoding::kRope) {
    for (int64_t b = 0; b < batch_.samples(); ++b) {
      const int64_t r0 = batch_.offsets[b], T = batch_.offsets[b + 1] - r0;
      for (int64_t h = 0; h < H; ++h) {
        rope_backward(rope_, dq + r0 * HD + h * D, T, HD, 0, dq + r0 * HD + h * D);
        rope_backward(rope_, dk + r0 * HD + h * D, T, HD, 0, dk + r0 * HD + h * D);
      }
    }
  }
  // dc = ∂xn1. Pre-RoPE q, k are not kept: the projections' weight grads use xn1 and the
  // un-rotated dq, dk, which is all they need.
  linear_backward(a.xn1.data(), P(lp.wq), dq, dc, G(lp.wq), N, C, HD, false, &a.xn1_16);
  linear_backward(a.xn1.data(), P(lp.wk), dk, dc, G(lp.wk), N, C, HD, true, &a.xn1_16);
  linear_backward(a.xn1.data(), P(lp.wv), dv, dc, G(lp.wv), N, C, HD, true, &a.xn1_16);
  scale_backward(l, dscale, dc);
  rmsnorm_backward(a.x.data(), P(lp.w_in), a.rstd1.data(), dc, dc2, G(lp.w_in), N, C);
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
  if (cfg_.position == PosEncoding::kRope) {
    int64_t max_t = 0;
    for (int64_t b = 0; b < batch_.samples(); ++b) {
      max_t = std::max(max_t, batch_.offsets[b + 1] - batch_.offsets[b]);
    }
    if (rope_.max_pos < max_t) {
      rope_ = make_rope_table(std::max<int64_t>(max_t, 2 * rope_.max_pos),
                              static_cast<int>(cfg_.head_dim), cfg_.rope_theta);
    }
  }
  std::vector<float> h(N * C), h_next(N * C);
  embedding_forward(batch_.ids.data(), P(embed_), h.data(), N, C,
                    static_cast<float>(std::sqrt(static_cast<double>(C))));
  for (int64_t l = 0; l < cfg_.layers; ++l) {
    layer_forward(l, h.data(), h_next.data());
    std::swap(h, h_next);
  }
  h_final_ = std::move(h);
  ensure(xnf_, N * C), ensure(rstdf_, N), ensure(logits_, N * Vo), ensure(dlogits_, N * Vo);
  rmsnorm_forward(h_final_.data(), P(final_norm_), xnf_.data(), rstdf_.data(), N, C);
  bf16_rows(xnf_.data(), N, C, xnf_16_);
  linear_forward(xnf_.data(), P(head_), logits_.data(), N, C, Vo, &xnf_16_);
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
  std::vector<float> dxn(N * C), dh(N * C);
  linear_backward(xnf_.data(), P(head_), dlogits_.data(), dxn.data(), G(head_), N, C, Vo, false,
                  &xnf_16_);
  rmsnorm_backward(h_final_.data(), P(final_norm_), rstdf_.data(), dxn.data(), dh.data(),
                   G(final_norm_), N, C);
  for (int64_t l = cfg_.layers - 1; l >= 0; --l) layer_backward(l, dh.data());
  embedding_backward(batch_.ids.data(), dh.data(), G(embed_), N, C,
                     static_cast<float>(std::sqrt(static_cast<double>(C))),
                     static_cast<int32_t>(cfg_.embedding_padding_idx));
}

}  // namespace lb
