// Whole-model gradient check: the analytic gradient of every parameter tensor against central
// finite differences of the loss, for every normalizer × position encoding, on a tiny config.
#include "models/transformer.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>

#include "core/rng.h"
#include "models/dnnl_util.h"
#include "models/kernels/fused_attention.h"

namespace lb {
namespace {

// A hand-made ragged batch: copy-like sequences with targets on the second half.
Batch tiny_batch(int64_t vocab, uint64_t seed) {
  Rng rng(seed);
  std::vector<Sample> samples;
  for (int64_t T : {6, 3, 9}) {
    Sample s;
    for (int64_t t = 0; t < T; ++t) {
      s.input.push_back(static_cast<int32_t>(rng.below(vocab)));
      s.target.push_back(static_cast<int32_t>(rng.below(vocab)));
      s.loss_mask.push_back(t >= T / 2 ? 1 : 0);
    }
    samples.push_back(s);
  }
  return make_batch(samples);
}

// head_dim 4 runs the plain attention path, 16 the fused short-row kernel (fused_attention.h).
ModelConfig tiny_config(const NormalizerSpec& spec, PosEncoding pe, int64_t head_dim = 4) {
  ModelConfig c = model_preset("tiny");
  c.vocab_size = 11, c.num_labels = 12;
  c.hidden = 8, c.heads = 4, c.head_dim = head_dim, c.ffn = 12;
  c.attention = spec;
  c.position = pe;
  c.init_std = 0.3;  // larger than training's 0.02 so every path carries a sizeable gradient
  return c;
}

// Non-zero norm weights, so the (1 + w) factor is exercised too.
void perturb_norms(Transformer& m, uint64_t seed) {
  Rng rng(seed);
  for (Param& p : m.params()) {
    if (p.name.find("norm") != std::string::npos) {
      for (float& v : p.value) v = static_cast<float>(0.3 * rng.normal());
    }
  }
}

// Directional derivative of the loss along a random unit direction per parameter tensor,
// by central differences, against gᵀv. fp32 model, loss summed in double.
void check_gradients(Transformer& m, const Batch& batch, const std::string& what) {
  m.zero_grad();
  m.forward(batch);
  m.backward();
  Rng rng(99);
  for (Param& p : m.params()) {
    std::vector<float> dir(p.size());
    double norm = 0.0;
    for (auto& d : dir) d = static_cast<float>(rng.normal());
    // The frozen embedding row (padding_idx) has no gradient by design: leave it still.
    if (p.name == "model.embed_tokens.weight") {
      const int64_t C = m.config().hidden, pad = m.config().embedding_padding_idx;
      std::fill(dir.begin() + pad * C, dir.begin() + (pad + 1) * C, 0.f);
    }
    for (float d : dir) norm += double(d) * d;
    norm = std::sqrt(norm);
    double analytic = 0.0;
    for (int64_t i = 0; i < p.size(); ++i) {
      dir[i] = static_cast<float>(dir[i] / norm);
      analytic += double(p.grad[i]) * dir[i];
    }
    // Piecewise-smooth normalizers (sparsemax, entmax, topk) have kinks where a support changes;
    // a step that straddles one gives a wrong difference, so a second, smaller step is tried.
    const std::vector<float> saved = p.value;
    bool ok = false;
    double numeric = 0.0;
    for (const double h : {2e-3, 4e-4, 1e-4}) {
      for (int64_t i = 0; i < p.size(); ++i) p.value[i] = saved[i] + static_cast<float>(h) * dir[i];
      const double lp = m.forward(batch);
      for (int64_t i = 0; i < p.size(); ++i) p.value[i] = saved[i] - static_cast<float>(h) * dir[i];
      const double lm = m.forward(batch);
      numeric = (lp - lm) / (2 * h);
      const double noise = 6e-7 / h;  // fp32 loss rounding divided by the step
      if (std::abs(analytic - numeric) <= noise + 2e-2 * std::abs(numeric)) ok = true;
      if (ok) break;
    }
    p.value = saved;
    CAPTURE(what);
    CAPTURE(p.name);
    CAPTURE(analytic);
    CAPTURE(numeric);
    CHECK(ok);
  }
}

TEST_CASE("transformer: gradients match finite differences, every normalizer x position") {
  set_num_threads(2);
  const Batch batch = tiny_batch(11, 5);
  for (const auto& norm_name : all_normalizer_names()) {
    for (const auto& pos_name : all_position_encoding_names()) {
      // adaptive_temperature included: its backward differentiates β(H(z)) (issue 11).
      const NormalizerSpec spec = normalizer_from_name(norm_name);
      for (const int64_t head_dim : {4, 16}) {
        set_fused_attention(head_dim == 16);  // the default is off (fused_attention.h)
        Transformer m(tiny_config(spec, position_encoding_from_name(pos_name), head_dim));
        m.init(3);
        perturb_norms(m, 4);
        check_gradients(m, batch,
                        norm_name + " x " + pos_name + " head_dim " + std::to_string(head_dim));
      }
    }
  }
}

TEST_CASE("transformer: parameter grads accumulate across backward calls") {
  Transformer m(tiny_config(normalizer_from_name("asentmax"), PosEncoding::kNape));
  m.init(3);
  const Batch batch = tiny_batch(11, 6);
  m.forward(batch);
  m.backward();
  std::vector<std::vector<float>> once;
  for (auto& p : m.params()) once.push_back(p.grad);
  m.forward(batch);
  m.backward();
  for (size_t i = 0; i < m.params().size(); ++i) {
    const Param& p = m.params()[i];
    CAPTURE(p.name);
    for (int64_t j = 0; j < p.size(); ++j) {
      REQUIRE(p.grad[j] == doctest::Approx(2.0 * once[i][j]).epsilon(1e-5).scale(1e-6));
    }
  }
}

TEST_CASE("transformer: the frozen embedding row stays zero and gets no gradient") {
  Transformer m(tiny_config(normalizer_from_name("softmax"), PosEncoding::kNape));
  m.init(3);
  Batch batch = tiny_batch(11, 7);
  batch.ids[0] = 0;
  m.forward(batch);
  m.backward();
  const Param& e = m.param("model.embed_tokens.weight");
  for (int64_t c = 0; c < 8; ++c) {
    CHECK(e.value[c] == 0.f);
    CHECK(e.grad[c] == 0.f);
  }
}

}  // namespace
}  // namespace lb
