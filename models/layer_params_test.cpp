// The parameter table: the Transformer's parameters are the table's, in the fixed checkpoint
// order, for every length-scale kind × position encoding; every entry is bound exactly once;
// the layer description holds the length-scale weights its kind needs; the init rules.
#include "models/layer_params.h"

#include <doctest/doctest.h>

#include <set>
#include <string>
#include <vector>

#include "models/transformer.h"

namespace lb {
namespace {

ModelConfig config(LengthScale ls, PosEncoding pe) {
  ModelConfig c = model_preset("tiny");
  c.vocab_size = 11, c.num_labels = 12, c.layers = 2;
  c.hidden = 8, c.heads = 4, c.head_dim = 4, c.ffn = 12;
  c.attention.length_scale = ls;
  c.position = pe;
  return c;
}

}  // namespace

TEST_CASE("layer_params: the Transformer's parameters are the table's, for every kind") {
  for (const std::string& ls_name : all_length_scale_names()) {
    for (const std::string& pe_name : all_position_encoding_names()) {
      CAPTURE(ls_name);
      CAPTURE(pe_name);
      const LengthScale ls = length_scale_from_name(ls_name);
      const ModelConfig cfg = config(ls, position_encoding_from_name(pe_name));
      const auto defs = model_param_defs(cfg);
      Transformer m(cfg);
      REQUIRE(m.params().size() == defs.size());
      std::set<std::string> names;
      for (size_t i = 0; i < defs.size(); ++i) {
        CHECK(m.params()[i].name == defs[i].name);
        CHECK(m.params()[i].shape == defs[i].shape);
        names.insert(defs[i].name);
      }
      CHECK(names.size() == defs.size());
      int64_t elements = 0;
      for (const Param& p : m.params()) elements += static_cast<int64_t>(p.value.size());
      CHECK(model_param_count(cfg) == elements);
      const ParamIndex& ix = m.param_index();
      CHECK(ix.model[kEmbed] == 0);
      CHECK(ix.model[kHead] == static_cast<int64_t>(defs.size()) - 1);
      int64_t bound = 3;
      for (int64_t l = 0; l < cfg.layers; ++l) {
        const LayerWeights w = layer_weights(m.params(), ix, l);
        for (int s = 0; s < kNumLayerSlots; ++s) {
          const int64_t at = ix.layers[l][s];
          if (at < 0) {
            CHECK(w.w[s] == nullptr);
            continue;
          }
          ++bound;
          CHECK(defs[at].layer == l);
          CHECK(defs[at].slot == s);
          CHECK(w.w[s] == m.params()[at].data());
        }
        const QueryScaleWeights q = w.query_scale();
        CHECK((q.a != nullptr) == (ls != LengthScale::kNone));
        CHECK((q.b != nullptr) ==
              (ls == LengthScale::kLearn || ls == LengthScale::kAdaptSoftplusTanh));
        CHECK((q.a_bias != nullptr) == (ls == LengthScale::kAdaptSoftplusTanh));
        CHECK((q.b_bias != nullptr) == (ls == LengthScale::kAdaptSoftplusTanh));
      }
      CHECK(bound == static_cast<int64_t>(defs.size()));  // every entry bound once
    }
  }
}

TEST_CASE("layer_params: the checkpoint order and shapes are fixed") {
  ModelConfig cfg = config(LengthScale::kAdaptSoftplusTanh, PosEncoding::kNape);
  cfg.layers = 1;
  const auto defs = model_param_defs(cfg);
  const std::vector<std::string> want = {
      "model.embed_tokens.weight",
      "model.layers.0.input_layernorm.weight",
      "model.layers.0.self_attn.q_proj.weight",
      "model.layers.0.self_attn.k_proj.weight",
      "model.layers.0.self_attn.v_proj.weight",
      "model.layers.0.self_attn.o_proj.weight",
      "model.layers.0.self_attn.asentmax_beta_proj.weight",
      "model.layers.0.self_attn.asentmax_beta_proj.bias",
      "model.layers.0.self_attn.asentmax_gamma_proj.weight",
      "model.layers.0.self_attn.asentmax_gamma_proj.bias",
      "model.layers.0.post_attention_layernorm.weight",
      "model.layers.0.pre_feedforward_layernorm.weight",
      "model.layers.0.mlp.gate_proj.weight",
      "model.layers.0.mlp.up_proj.weight",
      "model.layers.0.mlp.down_proj.weight",
      "model.layers.0.post_feedforward_layernorm.weight",
      "model.norm.weight",
      "lm_head.weight",
  };
  REQUIRE(defs.size() == want.size());
  for (size_t i = 0; i < want.size(); ++i) CHECK(defs[i].name == want[i]);
  const int64_t Hs = 2;  // NAPE: the NoPE half of 4 heads
  CHECK(defs[0].shape == std::vector<int64_t>{11, 8});
  CHECK(defs[2].shape == std::vector<int64_t>{16, 8});
  CHECK(defs[5].shape == std::vector<int64_t>{8, 16});
  CHECK(defs[6].shape == std::vector<int64_t>{Hs, 8});
  CHECK(defs[7].shape == std::vector<int64_t>{Hs});
  CHECK(defs[14].shape == std::vector<int64_t>{8, 12});
  CHECK(defs[17].shape == std::vector<int64_t>{12, 8});
  cfg.attention.length_scale = LengthScale::kLearn;
  const auto learn = model_param_defs(cfg);
  CHECK(learn[6].name == "model.layers.0.self_attn.length_scale_beta");
  CHECK(learn[7].name == "model.layers.0.self_attn.length_scale_gamma");
  cfg.attention.length_scale = LengthScale::kNakanishi;
  CHECK(model_param_defs(cfg)[6].name == "model.layers.0.self_attn.ssmax_scale");
}

TEST_CASE("layer_params: init follows the table (norms 0, adapt biases, learn ranges)") {
  for (const bool near_one : {false, true}) {
    ModelConfig cfg = config(LengthScale::kAdaptSoftplusTanh, PosEncoding::kNope);
    cfg.attention.scale_init_near_one = near_one;
    Transformer m(cfg);
    m.init(3);
    const AdaptScaleInit adapt = adapt_scale_init(near_one);
    const auto defs = model_param_defs(cfg);
    for (size_t i = 0; i < defs.size(); ++i) {
      CAPTURE(defs[i].name);
      const auto& v = m.params()[i].value;
      switch (defs[i].init) {
        case ParamInit::kZero:
          for (float x : v) CHECK(x == 0.f);
          break;
        case ParamInit::kAdaptBiasBeta:
          for (float x : v) CHECK(x == adapt.bias_beta);
          break;
        case ParamInit::kAdaptBiasGamma:
          for (float x : v) CHECK(x == adapt.bias_gamma);
          break;
        case ParamInit::kAdaptWeight:
          if (near_one)
            for (float x : v) CHECK(x == 0.f);
          break;
        default:
          break;
      }
    }
  }
  ModelConfig cfg = config(LengthScale::kLearn, PosEncoding::kAlibi);
  Transformer m(cfg);
  m.init(5);
  for (float x : m.param("model.layers.1.self_attn.length_scale_beta").value) {
    CHECK(x >= 0.1f);
    CHECK(x <= 1.f);
  }
}

}  // namespace lb
