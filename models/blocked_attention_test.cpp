// The blocked prefill (issue 14) against its plain twins: the kernel against plain_attention for
// every supported normalizer, head_dim, KV storage and ragged block geometry; the inference
// engine's blocked prefill against its plain path (InferenceOptions::blocked = false) for every
// normalizer × position encoding at lengths that are not multiples of the tile — logits, greedy
// tokens and observed attention rows.
#include "models/blocked_attention.h"

#include <doctest/doctest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "core/rng.h"
#include "models/inference.h"
#include "models/testing.h"

namespace lb {
namespace {

uint16_t to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  u += 0x7FFFu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

TEST_CASE("blocked attention: equals the plain twin (every supported normalizer, ragged tiles)") {
  // Entmax thresholds: candidates gathered in memory (default), or recomputed tile by tile on
  // every pass (no buffer), or a mix (room for a few rows).
  for (int64_t cap : {-1, 0, 700}) {
    CAPTURE(cap);
    set_blocked_candidate_cap(cap);
    for (const std::string& name : all_normalizer_names()) {
      const NormalizerSpec spec = normalizer_from_name(name);
      for (int64_t D : {16, 32, 64}) {
        if (!blocked_attention_supports(spec, D)) continue;
        // (pos0, nr): within one tile, across tile edges, long rows (many tiles), single rows.
        for (auto geometry : {std::pair<int64_t, int64_t>{0, 7}, {121, 9}, {300, 64}, {700, 3}}) {
          const int64_t pos0 = geometry.first, nr = geometry.second;
          // 0: fp32 cache; 1: bf16 cache, fp32 products; 2: bf16 cache, bf16 products.
          for (int mode : {0, 1, 2}) {
            const bool bf = mode > 0;
            CAPTURE(name);
            CAPTURE(D);
            CAPTURE(pos0);
            CAPTURE(nr);
            CAPTURE(mode);
            const int64_t n = pos0 + nr;
            // Scores of a few units: sparse normalizers keep a small support.
            auto q = testing::random_vec(nr * D, 1 + D, 1.5);
            auto k = testing::random_vec(n * D, 2 + D, 1.5);
            auto v = testing::random_vec(n * D, 3 + D);
            auto sc = testing::random_vec(nr, 4);
            for (auto& x : sc) x = 1.f + 0.3f * std::fabs(x);
            std::vector<uint16_t> k16(n * D), v16(n * D);
            for (int64_t t = 0; t < n * D; ++t) k16[t] = to_bf16(k[t]), v16[t] = to_bf16(v[t]);
            BlockedAttention a;
            a.spec = &spec, a.D = D, a.nr = nr, a.pos0 = pos0, a.q = q.data(), a.ldq = D;
            a.scale = sc.data(), a.ld_scale = 1;
            a.inv_sqrt_d = 1.f / std::sqrt(float(D)), a.slope = -0.01f;
            a.bf16_products = mode == 2;
            if (bf)
              a.k16 = k16.data(), a.v16 = v16.data();
            else
              a.k32 = k.data(), a.v32 = v.data();
            std::vector<float> blocked(nr * D), plain(nr * D);
            a.out = blocked.data(), a.ldo = D;
            blocked_attention(a);
            a.out = plain.data();
            plain_attention(a);
            // bf16 products round the weights to bf16 (8 bits): bf16 tolerance.
            const double tol = mode == 2 ? 1e-2 : 1e-4;
            testing::check_close(blocked, plain, tol, tol, "out");
          }
        }
      }
    }
  }
  set_blocked_candidate_cap(-1);
}

TEST_CASE("blocked attention: which normalizers are tiled") {
  CHECK(blocked_attention_supports(normalizer_from_name("softmax"), 32));
  CHECK(blocked_attention_supports(normalizer_from_name("asentmax"), 32));
  CHECK(blocked_attention_supports(normalizer_from_name("sparsemax"), 16));
  CHECK_FALSE(blocked_attention_supports(normalizer_from_name("entmax", {{"alpha", "1.7"}}), 32));
  CHECK_FALSE(blocked_attention_supports(normalizer_from_name("topk"), 32));
  CHECK_FALSE(blocked_attention_supports(normalizer_from_name("stickbreaking"), 32));
  CHECK_FALSE(blocked_attention_supports(normalizer_from_name("adaptive_temperature"), 32));
  CHECK_FALSE(blocked_attention_supports(normalizer_from_name("softmax"), 8));
}

ModelConfig small_config(const NormalizerSpec& spec, PosEncoding pe, int64_t layers) {
  ModelConfig c = model_preset("tiny");
  c.vocab_size = 13, c.num_labels = 14;
  c.layers = layers, c.hidden = 32, c.heads = 2, c.head_dim = 16, c.ffn = 32;
  c.attention = spec;
  c.position = pe;
  c.init_std = 0.3;
  return c;
}

std::vector<int32_t> random_ids(int64_t n, uint64_t seed) {
  Rng rng(seed);
  std::vector<int32_t> ids(n);
  for (auto& t : ids) t = static_cast<int32_t>(rng.below(13));
  return ids;
}

struct Run {
  std::vector<float> logits;    // prefill logits of rows obs_from .. L−1
  std::vector<int32_t> tokens;  // greedy continuation
  std::vector<float> rows;      // observed attention weights, (layer, head, row) flattened
};

// Prefill of ids with logits and observed rows from obs_from, then `decode` greedy tokens.
Run run_engine(const Transformer& model, const std::vector<int32_t>& ids, bool blocked, bool bf,
               int64_t obs_from, int64_t decode) {
  const ModelConfig& c = model.config();
  InferenceOptions opt;
  opt.chunk = 64, opt.q_block = 24, opt.kv_bf16 = bf, opt.blocked = blocked;
  InferenceEngine eng(model, opt);
  const int64_t L = static_cast<int64_t>(ids.size());
  eng.reserve_positions(L + decode);
  InferenceSession s(eng, L + decode);
  Run out;
  const int64_t n_obs = L - obs_from;
  std::vector<std::vector<float>> rows(c.layers * c.heads * n_obs);
  AttnObserver obs = [&](const AttnRowView& v) {
    if (v.pos < L)
      rows[(v.layer * c.heads + v.head) * n_obs + v.pos - obs_from].assign(v.p, v.p + v.n);
  };
  s.observe(&obs, obs_from, L);
  s.append(ids.data(), L, out.logits, obs_from);
  std::vector<float> logits(out.logits.end() - c.num_labels, out.logits.end());
  for (int64_t t = 0; t < decode; ++t) {
    const auto next = static_cast<int32_t>(argmax(logits.data(), c.num_labels) % c.vocab_size);
    out.tokens.push_back(next);
    s.append(&next, 1, logits);
  }
  for (const auto& r : rows) out.rows.insert(out.rows.end(), r.begin(), r.end());
  return out;
}

// Every normalizer × position encoding at the given lengths: blocked equals plain.
void check_engine(const std::vector<int64_t>& lengths, int64_t layers, bool every_row) {
  for (const std::string& norm : all_normalizer_names()) {
    for (const std::string& pos : all_position_encoding_names()) {
      const NormalizerSpec spec = normalizer_from_name(norm);
      Transformer model(small_config(spec, position_encoding_from_name(pos), layers));
      model.init(11);
      for (int64_t L : lengths) {
        for (bool bf : {false, true}) {
          CAPTURE(norm);
          CAPTURE(pos);
          CAPTURE(L);
          CAPTURE(bf);
          const auto ids = random_ids(L, 5 + L);
          const int64_t obs_from = every_row ? 0 : L - 3;
          const Run b = run_engine(model, ids, true, bf, obs_from, 4);
          const Run p = run_engine(model, ids, false, bf, obs_from, 4);
          // fp32: the order of sums only. bf16 cache: fp32 products too, but a 1e-6 difference
          // upstream can flip the bf16 rounding of a later layer's key or value by one ulp (2^-8):
          // bf16 tolerance, as the bf16-vs-fp32 cache test of inference_test.cpp.
          const double tol = bf ? 3e-2 : 1e-4;
          testing::check_close(b.logits, p.logits, tol, tol, "logits");
          CHECK(b.tokens == p.tokens);
          testing::check_close(b.rows, p.rows, bf ? 3e-2 : 1e-5, bf ? 3e-2 : 1e-4, "observed rows");
        }
      }
    }
  }
}

TEST_CASE("inference: blocked prefill equals the plain path (every normalizer × position)") {
  check_engine({37, 150, 301}, 2, true);
}

TEST_CASE("inference: blocked prefill gives the same numbers on any thread count") {
  for (const char* norm : {"softmax", "asentmax"}) {
    CAPTURE(norm);
    Transformer model(small_config(normalizer_from_name(norm), PosEncoding::kRope, 2));
    model.init(3);
    const auto ids = random_ids(2100, 9);  // long enough for parallel attention units
    const int threads = omp_get_max_threads();
    omp_set_num_threads(1);
    const Run one = run_engine(model, ids, true, true, 2090, 2);
    omp_set_num_threads(2);
    const Run two = run_engine(model, ids, true, true, 2090, 2);
    omp_set_num_threads(threads);
    CHECK(one.logits == two.logits);
    CHECK(one.rows == two.rows);
  }
}

TEST_CASE("inference: blocked prefill equals the plain path at 16,384" *
          doctest::test_suite("slow")) {
  check_engine({16384}, 1, false);
}

}  // namespace
}  // namespace lb
