// The parameter table. Contract: layer_params.h.
#include "models/layer_params.h"

#include <algorithm>
#include <optional>

#include "core/check.h"
#include "core/rng.h"

namespace lb {
namespace {

// Sizes a shape is written in.
enum Dim { kOne, kC, kHD, kF, kHs };

struct LayerRow {
  LayerSlot slot;
  const char* name;  // after "model.layers.<l>."
  Dim rows, cols;    // cols kOne: a vector of `rows`
  ParamInit init;
  std::optional<LengthScale> only;  // present only under this length scale
};

// The layer's parameters in checkpoint order.
const std::vector<LayerRow>& layer_table() {
  using LS = LengthScale;
  using PI = ParamInit;
  static const std::vector<LayerRow> kTable = {
      {kInputNorm, "input_layernorm.weight", kC, kOne, PI::kZero, {}},
      {kQProj, "self_attn.q_proj.weight", kHD, kC, PI::kNormal, {}},
      {kKProj, "self_attn.k_proj.weight", kHD, kC, PI::kNormal, {}},
      {kVProj, "self_attn.v_proj.weight", kHD, kC, PI::kNormal, {}},
      {kOProj, "self_attn.o_proj.weight", kC, kHD, PI::kNormal, {}},
      {kScaleA, "self_attn.ssmax_scale", kHs, kOne, PI::kNakanishi, LS::kNakanishi},
      {kScaleA, "self_attn.length_scale_beta", kHs, kOne, PI::kLearnBeta, LS::kLearn},
      {kScaleB, "self_attn.length_scale_gamma", kHs, kOne, PI::kLearnGamma, LS::kLearn},
      {kScaleA, "self_attn.asentmax_beta_proj.weight", kHs, kC, PI::kAdaptWeight,
       LS::kAdaptSoftplusTanh},
      {kScaleABias, "self_attn.asentmax_beta_proj.bias", kHs, kOne, PI::kAdaptBiasBeta,
       LS::kAdaptSoftplusTanh},
      {kScaleB, "self_attn.asentmax_gamma_proj.weight", kHs, kC, PI::kAdaptWeight,
       LS::kAdaptSoftplusTanh},
      {kScaleBBias, "self_attn.asentmax_gamma_proj.bias", kHs, kOne, PI::kAdaptBiasGamma,
       LS::kAdaptSoftplusTanh},
      {kPostAttnNorm, "post_attention_layernorm.weight", kC, kOne, PI::kZero, {}},
      {kPreFfnNorm, "pre_feedforward_layernorm.weight", kC, kOne, PI::kZero, {}},
      {kGateProj, "mlp.gate_proj.weight", kF, kC, PI::kNormal, {}},
      {kUpProj, "mlp.up_proj.weight", kF, kC, PI::kNormal, {}},
      {kDownProj, "mlp.down_proj.weight", kC, kF, PI::kNormal, {}},
      {kPostFfnNorm, "post_feedforward_layernorm.weight", kC, kOne, PI::kZero, {}},
  };
  return kTable;
}

}  // namespace

std::vector<ModelParamDef> model_param_defs(const ModelConfig& cfg) {
  const LengthScale ls = cfg.attention.length_scale;
  const int64_t Hs = num_query_scaled_heads(ls, cfg.position, static_cast<int>(cfg.heads));
  auto size = [&](Dim d) -> int64_t {
    switch (d) {
      case kOne:
        return 1;
      case kC:
        return cfg.hidden;
      case kHD:
        return cfg.heads * cfg.head_dim;
      case kF:
        return cfg.ffn;
      case kHs:
        return Hs;
    }
    return 0;
  };
  std::vector<ModelParamDef> defs;
  defs.push_back(
      {"model.embed_tokens.weight", {cfg.vocab_size, cfg.hidden}, ParamInit::kNormal, -1, kEmbed});
  for (int64_t l = 0; l < cfg.layers; ++l) {
    const std::string prefix = "model.layers." + std::to_string(l) + ".";
    for (const LayerRow& row : layer_table()) {
      if (row.only && *row.only != ls) continue;
      std::vector<int64_t> shape{size(row.rows)};
      if (row.cols != kOne) shape.push_back(size(row.cols));
      defs.push_back({prefix + row.name, shape, row.init, l, row.slot});
    }
  }
  defs.push_back({"model.norm.weight", {cfg.hidden}, ParamInit::kZero, -1, kFinalNorm});
  defs.push_back({"lm_head.weight", {cfg.num_labels, cfg.hidden}, ParamInit::kNormal, -1, kHead});
  return defs;
}

void init_param(ParamInit init, Param& p, Rng& rng, float init_std, const AdaptScaleInit& adapt) {
  switch (init) {
    case ParamInit::kZero:
      std::fill(p.value.begin(), p.value.end(), 0.f);
      break;
    case ParamInit::kNormal:
      for (float& v : p.value) v = static_cast<float>(rng.normal()) * init_std;
      break;
    case ParamInit::kNakanishi:
      for (float& v : p.value) v = nakanishi_scale_init(rng);
      break;
    case ParamInit::kLearnBeta:
      for (float& v : p.value) v = learn_beta_init(rng);
      break;
    case ParamInit::kLearnGamma:
      for (float& v : p.value) v = learn_gamma_init(rng);
      break;
    case ParamInit::kAdaptWeight:
      for (float& v : p.value) v = static_cast<float>(rng.normal()) * adapt.weight_std;
      break;
    case ParamInit::kAdaptBiasBeta:
      std::fill(p.value.begin(), p.value.end(), adapt.bias_beta);
      break;
    case ParamInit::kAdaptBiasGamma:
      std::fill(p.value.begin(), p.value.end(), adapt.bias_gamma);
      break;
  }
}

ParamIndex index_params(const std::vector<ModelParamDef>& defs, int64_t layers) {
  ParamIndex ix;
  std::array<int64_t, kNumLayerSlots> none;
  none.fill(-1);
  ix.layers.assign(layers, none);
  for (size_t i = 0; i < defs.size(); ++i) {
    const ModelParamDef& d = defs[i];
    if (d.layer < 0)
      ix.model[d.slot] = static_cast<int64_t>(i);
    else
      ix.layers[d.layer][d.slot] = static_cast<int64_t>(i);
  }
  return ix;
}

LayerWeights layer_weights(const std::vector<Param>& params, const ParamIndex& index, int64_t l) {
  LayerWeights lw;
  for (int s = 0; s < kNumLayerSlots; ++s) {
    const int64_t at = index.layers[l][s];
    lw.w[s] = at >= 0 ? params[at].data() : nullptr;
  }
  return lw;
}

int64_t model_param_count(const ModelConfig& cfg) {
  int64_t n = 0;
  for (const ModelParamDef& d : model_param_defs(cfg)) {
    int64_t e = 1;
    for (int64_t x : d.shape) e *= x;
    n += e;
  }
  return n;
}

}  // namespace lb
