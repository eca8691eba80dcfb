// The Gemma-2-style decoder (Hugging Face Gemma-2, as the released sparse_gemma.py): embedding ×
// √C; per layer input RMSNorm → attention → post-attention RMSNorm → residual; pre-FFN RMSNorm →
// GeGLU(tanh-GELU) → post-FFN RMSNorm → residual; final RMSNorm; untied lm_head. RMSNorm is
// x/√(mean(x²)+1e-6)·(1+w). Forward and backward over a packed Batch (batch.h); products and GELU
// on oneDNN (dnnl_util.h), the rest in ops.h and attention.h. Gradient contract: models/README.md.
//
// Dimensions: N rows (tokens of the batch), C hidden, H heads, D head_dim, F ffn, V vocabulary,
// Vo output classes, Hs length-scaled heads (the last Hs heads; position.h).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "models/attention.h"
#include "models/batch.h"
#include "models/bf16_rows.h"
#include "models/buffer.h"
#include "models/config.h"
#include "models/kernels/attention_score.h"
#include "models/layer_params.h"
#include "models/param.h"

namespace lb {

// What one layer keeps from the forward for its backward.
struct LayerActs {
  FloatBuffer x;                          // (N, C) layer input (residual stream)
  FloatBuffer xn1, rstd1;                 // (N, C), (N) input_layernorm
  FloatBuffer q, k, v;                    // (N, H·D) after RoPE
  FloatBuffer sa, sb, scale;              // (N, Hs) scale arguments a, b; (N, H) query scale
  FloatBuffer sga, sgb;                   // (N, Hs) ∂scale/∂a, ∂scale/∂b at sa, sb
  FloatBuffer probs;                      // Σ_b H·T_b² attention weights
  FloatBuffer att;                        // (N, H·D) mixed values
  FloatBuffer o, rstd2;                   // (N, C) o_proj output, (N) post_attention_layernorm
  FloatBuffer h1;                         // (N, C) residual after attention
  FloatBuffer xn3, rstd3;                 // (N, C), (N) pre_feedforward_layernorm
  FloatBuffer g, u, ge, m;                // (N, F) gate, up, gelu(gate), gelu(gate)·up
  FloatBuffer d, rstd4;                   // (N, C) down_proj output, (N) post_feedforward_layernorm
  Bf16Rows xn1_16, att_16, xn3_16, m_16;  // bf16 copies of xn1, att, xn3, m (bf16 products only)
};

class Transformer {
 public:
  // cfg.vocab_size and cfg.num_labels must be set (> 0).
  explicit Transformer(const ModelConfig& cfg);

  // Draws every parameter from `seed` (N(0, init_std) for matrices and the embedding, 0 for the
  // norm weights, the length-scale inits of length_scale.h).
  void init(uint64_t seed);

  // Mean masked cross-entropy over the batch's target rows; keeps what backward needs.
  double forward(const Batch& batch);
  // Gradients of the last forward's loss: parameter grads +=.
  void backward();
  void zero_grad();

  std::vector<Param>& params() { return params_; }
  const std::vector<Param>& params() const { return params_; }
  Param& param(const std::string& name);
  const ModelConfig& config() const { return cfg_; }
  // Where each parameter of the table (layer_params.h) sits in params().
  const ParamIndex& param_index() const { return index_; }
  // Logits of the last forward: (N, Vo).
  const std::vector<float>& logits() const { return logits_; }

 private:
  float* P(int64_t i) { return params_[i].value.data(); }
  float* G(int64_t i) { return params_[i].grad.data(); }
  void layer_forward(int64_t l, const float* x_in, float* x_out);
  void layer_backward(int64_t l, float* dh);  // dh (N, C): in = ∂L/∂output, out = ∂L/∂input
  void scale_forward(int64_t l);
  void scale_backward(int64_t l, const float* dscale, float* dxn);

  ModelConfig cfg_;
  std::vector<Param> params_;
  std::vector<ModelParamDef> defs_;  // params_[i] is defs_[i]
  ParamIndex index_;
  AttentionPositions positions_;  // slopes, scaled heads Hs, RoPE table

  // Last forward.
  Batch batch_;
  std::vector<LayerActs> acts_;
  FloatBuffer h_final_, xnf_, rstdf_, dlogits_;
  std::vector<float> logits_;
  FloatBuffer h_next_;  // forward's second residual buffer, swapped with h_final_ per layer
  Bf16Rows xnf_16_;  // bf16 copy of xnf_ (bf16 products only)
  // Backward workspace, reused across steps: (N, C) ×4, (N, F) ×3, (N, H·D) ×4, (N, H).
  FloatBuffer ws_c1_, ws_c2_, ws_dxn_, ws_dh_, ws_f1_, ws_f2_, ws_f3_, ws_datt_, ws_dq_, ws_dk_,
      ws_dv_;
  FloatBuffer ws_dscale_;
  double loss_ = 0.0;
};

}  // namespace lb
