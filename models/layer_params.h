// The model's parameters, declared once (issue 16): the one table of names (Hugging Face
// Gemma-2's, the checkpoint names), shapes and initialisations that the training model
// (transformer.h), the inference engine (inference.h) and checkpoint loading (trainer.cpp, by
// name through Transformer::params) all bind to, and the description of one decoder layer that
// both engines read their weights through (LayerWeights).
//
// Order: model.embed_tokens.weight; per layer l (prefix model.layers.l.) input_layernorm,
// q/k/v/o_proj, the length-scale weights of the configured kind (length_scale.h), then
// post_attention, pre_feedforward layernorms, gate/up/down_proj, post_feedforward_layernorm;
// model.norm.weight; lm_head.weight. The order is the checkpoint order and the order of the
// initialisation's random draws, so it never changes.
//
// Dimensions: V vocabulary, Vo output classes, C hidden, H·D attention width, F ffn, Hs
// length-scaled heads (attention_score.h num_query_scaled_heads).
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "models/config.h"
#include "models/kernels/attention_score.h"
#include "models/param.h"

namespace lb {

class Rng;

// The weights of one layer.
enum LayerSlot : int {
  kInputNorm,     // input_layernorm.weight (C)
  kQProj,         // self_attn.q_proj.weight (H·D, C)
  kKProj,         // self_attn.k_proj.weight (H·D, C)
  kVProj,         // self_attn.v_proj.weight (H·D, C)
  kOProj,         // self_attn.o_proj.weight (C, H·D)
  kScaleA,        // length scale a: ssmax_scale | length_scale_beta (Hs); W_β (Hs, C)
  kScaleABias,    // adapt b_β (Hs)
  kScaleB,        // length scale b: length_scale_gamma (Hs); W_γ (Hs, C)
  kScaleBBias,    // adapt b_γ (Hs)
  kPostAttnNorm,  // post_attention_layernorm.weight (C)
  kPreFfnNorm,    // pre_feedforward_layernorm.weight (C)
  kGateProj,      // mlp.gate_proj.weight (F, C)
  kUpProj,        // mlp.up_proj.weight (F, C)
  kDownProj,      // mlp.down_proj.weight (C, F)
  kPostFfnNorm,   // post_feedforward_layernorm.weight (C)
  kNumLayerSlots
};
// The weights outside the layers.
enum ModelSlot : int { kEmbed, kFinalNorm, kHead };

// How a parameter is initialised (Transformer::init; the scale inits of length_scale.h).
enum class ParamInit {
  kZero,            // norm weights (RMSNorm's (1 + w))
  kNormal,          // N(0, init_std): projections, embedding, lm_head
  kNakanishi,       // nakanishi_scale_init per entry
  kLearnBeta,       // learn_beta_init per entry
  kLearnGamma,      // learn_gamma_init per entry
  kAdaptWeight,     // N(0, adapt weight_std)
  kAdaptBiasBeta,   // adapt bias_beta
  kAdaptBiasGamma,  // adapt bias_gamma
};

struct ModelParamDef {
  std::string name;
  std::vector<int64_t> shape;
  ParamInit init = ParamInit::kNormal;
  int64_t layer = -1;  // -1: a ModelSlot, else the layer of a LayerSlot
  int slot = 0;
};

// Every parameter of a model with this config, in checkpoint order.
std::vector<ModelParamDef> model_param_defs(const ModelConfig& cfg);
// The number of parameters of a model with this config: the elements of model_param_defs.
int64_t model_param_count(const ModelConfig& cfg);

// Fills p.value as `init` says, drawing from rng in element order.
void init_param(ParamInit init, Param& p, Rng& rng, float init_std, const AdaptScaleInit& adapt);

// Where each parameter sits in a model's params() vector (-1: absent).
struct ParamIndex {
  std::array<int64_t, 3> model{-1, -1, -1};                 // by ModelSlot
  std::vector<std::array<int64_t, kNumLayerSlots>> layers;  // by layer, LayerSlot
};
ParamIndex index_params(const std::vector<ModelParamDef>& defs, int64_t layers);

// One layer's weights as both engines read them (null: absent).
struct LayerWeights {
  std::array<const float*, kNumLayerSlots> w{};
  const float* operator[](LayerSlot s) const { return w[s]; }
  QueryScaleWeights query_scale() const {
    return {w[kScaleA], w[kScaleB], w[kScaleABias], w[kScaleBBias]};
  }
};
LayerWeights layer_weights(const std::vector<Param>& params, const ParamIndex& index, int64_t l);

}  // namespace lb
