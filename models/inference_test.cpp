// The inference engine against the training forward: blocked prefill logits equal
// Transformer::forward logits, and KV-cache greedy decoding equals decoding by full
// recomputation, for every normalizer × position encoding on a tiny model.
#include "models/inference.h"

#include <doctest/doctest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <string>

#include "core/rng.h"

namespace lb {
namespace {

ModelConfig tiny_config(const NormalizerSpec& spec, PosEncoding pe) {
  ModelConfig c = model_preset("tiny");
  c.vocab_size = 13, c.num_labels = 14;
  c.hidden = 16, c.heads = 4, c.head_dim = 8, c.ffn = 24;
  c.attention = spec;
  c.position = pe;
  c.init_std = 0.2;
  return c;
}

std::vector<int32_t> random_ids(int64_t n, int64_t vocab, uint64_t seed) {
  Rng rng(seed);
  std::vector<int32_t> ids(n);
  for (auto& t : ids) t = static_cast<int32_t>(rng.below(vocab));
  return ids;
}

// Logits (T, Vo) of the training forward on one sequence.
std::vector<float> training_logits(Transformer& m, const std::vector<int32_t>& ids) {
  Sample s;
  s.input = ids;
  s.target.assign(ids.size(), -1);
  s.loss_mask.assign(ids.size(), 0);
  m.forward(make_batch({s}));
  return m.logits();
}

double max_rel_diff(const std::vector<float>& a, const std::vector<float>& b) {
  REQUIRE(a.size() == b.size());
  double worst = 0.0;
  for (size_t i = 0; i < a.size(); ++i) {
    worst = std::max(worst, std::fabs(double(a[i]) - b[i]) / (1.0 + std::fabs(double(b[i]))));
  }
  return worst;
}

template <typename Fn>
void for_each_variant(Fn fn) {
  for (const std::string& norm : all_normalizer_names()) {
    for (const std::string& pos : all_position_encoding_names()) {
      CAPTURE(norm);
      CAPTURE(pos);
      fn(normalizer_from_name(norm), position_encoding_from_name(pos));
    }
  }
}

TEST_CASE("inference: blocked prefill equals the training forward") {
  for_each_variant([](const NormalizerSpec& spec, PosEncoding pe) {
    Transformer model(tiny_config(spec, pe));
    model.init(7);
    const auto ids = random_ids(45, 13, 3);
    const auto ref = training_logits(model, ids);
    InferenceOptions opt;
    opt.chunk = 16, opt.q_block = 5;  // several chunks and ragged query blocks
    InferenceEngine eng(model, opt);
    eng.reserve_positions(64);
    InferenceSession s(eng, 64);
    std::vector<float> logits;
    s.append(ids.data(), static_cast<int64_t>(ids.size()), logits, 0);
    CHECK(max_rel_diff(logits, ref) < 2e-4);
  });
}

TEST_CASE("inference: KV-cache greedy decoding equals decoding by recomputation") {
  for_each_variant([](const NormalizerSpec& spec, PosEncoding pe) {
    Transformer model(tiny_config(spec, pe));
    model.init(11);
    const int64_t steps = 12;
    std::vector<int32_t> seq = random_ids(9, 13, 5);
    InferenceOptions opt;
    opt.chunk = 4, opt.q_block = 3;
    InferenceEngine eng(model, opt);
    eng.reserve_positions(32);
    InferenceSession s(eng, 32);
    std::vector<float> logits;
    s.append(seq.data(), static_cast<int64_t>(seq.size()), logits);
    std::vector<int32_t> cached, recomputed;
    std::vector<int32_t> ref_seq = seq;
    const int64_t Vo = model.config().num_labels, V = model.config().vocab_size;
    for (int64_t t = 0; t < steps; ++t) {
      const int32_t next = static_cast<int32_t>(argmax(logits.data(), Vo) % V);
      const auto full = training_logits(model, ref_seq);
      const std::vector<float> last(full.end() - Vo, full.end());
      CHECK(max_rel_diff(logits, last) < 2e-4);
      const int32_t ref_next = static_cast<int32_t>(argmax(last.data(), Vo) % V);
      cached.push_back(next);
      recomputed.push_back(ref_next);
      ref_seq.push_back(ref_next);
      s.append(&next, 1, logits);
    }
    CHECK(cached == recomputed);
  });
}

TEST_CASE("inference: same numbers for any thread count, chunking, truncation") {
  Transformer model(tiny_config(normalizer_from_name("asentmax"), PosEncoding::kNape));
  model.init(3);
  const auto ids = random_ids(70, 13, 9);
  auto run = [&](int threads, int64_t chunk) {
    omp_set_num_threads(threads);
    InferenceOptions opt;
    opt.chunk = chunk, opt.q_block = 8;
    InferenceEngine eng(model, opt);
    InferenceSession s(eng, 80);
    std::vector<float> logits;
    s.append(ids.data(), 70, logits, 0);
    return logits;
  };
  const auto a = run(1, 32), b = run(2, 32);
  omp_set_num_threads(2);
  CHECK(a == b);
  CHECK(max_rel_diff(run(2, 7), a) < 2e-4);

  // Truncating and appending again equals a fresh run on the new sequence.
  InferenceEngine eng(model);
  InferenceSession s(eng, 80);
  std::vector<float> l1, l2;
  s.append(ids.data(), 50, l1);
  s.truncate(30);
  s.append(ids.data() + 40, 10, l1, 30);
  std::vector<int32_t> joined(ids.begin(), ids.begin() + 30);
  joined.insert(joined.end(), ids.begin() + 40, ids.begin() + 50);
  InferenceSession fresh(eng, 80);
  fresh.append(joined.data(), 40, l2, 30);
  CHECK(max_rel_diff(l1, l2) < 1e-5);
}

TEST_CASE("inference: decode steps give the same numbers on any thread count") {
  // Wide enough (256 × 512 weights) that a one-row product is split over the threads.
  ModelConfig c = tiny_config(normalizer_from_name("softmax"), PosEncoding::kNape);
  c.hidden = 256, c.heads = 4, c.head_dim = 64, c.ffn = 512;
  Transformer model(c);
  model.init(5);
  const auto ids = random_ids(20, 13, 3);
  auto run = [&](int threads) {
    omp_set_num_threads(threads);
    InferenceEngine eng(model);
    InferenceSession s(eng, 40);
    std::vector<float> logits, all;
    s.append(ids.data(), 10, logits);
    for (int64_t t = 10; t < 20; ++t) {
      s.append(ids.data() + t, 1, logits);
      all.insert(all.end(), logits.begin(), logits.end());
    }
    return all;
  };
  const auto one = run(1), three = run(3);
  omp_set_num_threads(2);
  CHECK(one == three);
}

TEST_CASE("inference: bf16 KV cache stays close to fp32") {
  for (const char* name : {"softmax", "asentmax"}) {
    CAPTURE(name);
    Transformer model(tiny_config(normalizer_from_name(name), PosEncoding::kNape));
    model.init(5);
    const auto ids = random_ids(60, 13, 1);
    std::vector<float> f32, bf16;
    for (bool bf : {false, true}) {
      InferenceOptions opt;
      opt.kv_bf16 = bf;
      opt.chunk = 16;
      InferenceEngine eng(model, opt);
      InferenceSession s(eng, 64);
      s.append(ids.data(), 60, bf ? bf16 : f32, 0);
    }
    CHECK(max_rel_diff(bf16, f32) < 3e-2);
  }
}

TEST_CASE("inference: observer sees normalised rows of the observed positions") {
  Transformer model(tiny_config(normalizer_from_name("entmax"), PosEncoding::kNape));
  model.init(2);
  const auto ids = random_ids(20, 13, 4);
  InferenceEngine eng(model);
  InferenceSession s(eng, 32);
  std::vector<int> seen(2 * 4 * 20, 0);
  AttnObserver obs = [&](const AttnRowView& v) {
    double sum = 0.0;
    for (int64_t j = 0; j < v.n; ++j) sum += v.p[j];
    CHECK(std::fabs(sum - 1.0) < 1e-5);
    CHECK(v.n == v.pos + 1);
    seen[(v.layer * 4 + v.head) * 20 + v.pos] += 1;
  };
  s.observe(&obs, 15, 18);
  std::vector<float> logits;
  s.append(ids.data(), 20, logits);
  for (int64_t l = 0; l < 2; ++l) {
    for (int64_t h = 0; h < 4; ++h) {
      for (int64_t p = 0; p < 20; ++p) CHECK(seen[(l * 4 + h) * 20 + p] == (p >= 15 && p < 18));
    }
  }
}

// Issue 11, as in the released code: stick-breaking takes no ALiBi/NAPE slopes (so NAPE and NoPE
// are the same model for it, in both engines), and top-k's div-2 rule takes K = max(k, N/2)
// with N the keys of the call: T for every row of a prefill (any chunking), i + 1 when decoding.
TEST_CASE("inference: stickbreaking ignores the slopes; topk div-2 counts the call's keys") {
  const auto ids = random_ids(30, 13, 8);
  auto prefill = [&](const ModelConfig& c, std::vector<float>* train) {
    Transformer model(c);
    model.init(5);
    if (train) *train = training_logits(model, ids);
    InferenceOptions opt;
    opt.chunk = 8, opt.q_block = 3;
    InferenceEngine eng(model, opt);
    InferenceSession s(eng, 32);
    std::vector<float> logits;
    s.append(ids.data(), 30, logits, 0);
    return logits;
  };
  std::vector<float> train_nape, train_nope;
  const auto sb = normalizer_from_name("stickbreaking");
  CHECK(prefill(tiny_config(sb, PosEncoding::kNape), &train_nape) ==
        prefill(tiny_config(sb, PosEncoding::kNope), &train_nope));
  CHECK(train_nape == train_nope);
  const auto sb_alibi = normalizer_from_name("stickbreaking", {{"bias", "alibi"}});
  CHECK(prefill(tiny_config(sb_alibi, PosEncoding::kNape), nullptr) !=
        prefill(tiny_config(sb_alibi, PosEncoding::kNope), nullptr));

  for (const char* rule : {"div-2", "div-2-row"}) {
    CAPTURE(rule);
    const bool per_row = std::string(rule) == "div-2-row";
    Transformer model(tiny_config(normalizer_from_name("topk", {{"k", "2"}, {"rule", rule}}),
                                  PosEncoding::kNape));
    model.init(5);
    const auto train = training_logits(model, ids);
    InferenceOptions opt;
    opt.chunk = 8, opt.q_block = 3;  // chunks of 8 keys must not change N = 30
    InferenceEngine eng(model, opt);
    int64_t N = 30, rows = 0;
    AttnObserver obs = [&](const AttnRowView& v) {
      const int64_t K = std::max<int64_t>(2, (per_row ? v.n : N) / 2);
      CHECK(v.stats.support == std::min(v.n, K));
      ++rows;
    };
    InferenceSession pre(eng, 32);
    pre.observe(&obs, 0, 30);
    std::vector<float> logits;
    pre.append(ids.data(), 30, logits, 0);
    CHECK(max_rel_diff(logits, train) < 2e-4);
    InferenceSession dec(eng, 32);
    dec.observe(&obs, 0, 30);
    for (int64_t i = 0; i < 30; ++i) {
      N = i + 1;  // one-token decoding: the call has the i + 1 cached keys
      dec.append(&ids[i], 1, logits);
    }
    CHECK(rows == 2 * 2 * 4 * 30);
  }
}

TEST_CASE("inference: decode kernels for head_dim 16, 32, 64 match the training forward") {
  for (int64_t D : {16, 32, 64}) {
    for (const char* name : {"softmax", "asentmax"}) {
      for (bool bf : {false, true}) {
        CAPTURE(D);
        CAPTURE(name);
        CAPTURE(bf);
        ModelConfig c = tiny_config(normalizer_from_name(name), PosEncoding::kNape);
        c.head_dim = D, c.heads = 2, c.layers = 1;
        Transformer model(c);
        model.init(13);
        const auto ids = random_ids(40, 13, 21);
        const auto ref = training_logits(model, ids);
        InferenceOptions opt;
        opt.kv_bf16 = bf;
        InferenceEngine eng(model, opt);
        InferenceSession s(eng, 40);
        std::vector<float> logits, all;
        s.append(ids.data(), 30, logits, 0);
        all = logits;
        for (int64_t t = 30; t < 40; ++t) {  // one-row steps: the decode kernels
          s.append(ids.data() + t, 1, logits);
          all.insert(all.end(), logits.begin(), logits.end());
        }
        CHECK(max_rel_diff(all, ref) < (bf ? 3e-2 : 2e-4));
      }
    }
  }
}

// Peak resident memory of this process (VmHWM), bytes.
int64_t peak_rss_bytes() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stoll(line.substr(6)) * 1024;
  }
  return 0;
}

TEST_SUITE("slow") {
  TEST_CASE("inference: 16,384 positions in O(T) memory, chunking-independent") {
    ModelConfig c = tiny_config(normalizer_from_name("asentmax"), PosEncoding::kNape);
    Transformer model(c);
    model.init(17);
    const int64_t T = 16384;
    const auto ids = random_ids(T, 13, 23);
    std::vector<float> a, b;
    const int64_t before = peak_rss_bytes();
    {
      InferenceEngine eng(model);
      InferenceSession s(eng, T);
      s.append(ids.data(), T, a);
    }
    // A T×T fp32 matrix of one head alone would be 1 GiB; the cache is T·2·L·H·D·4 = 4 MiB.
    CHECK(peak_rss_bytes() - before < (int64_t(64) << 20));
    InferenceOptions opt;
    opt.chunk = 1000, opt.q_block = 100;
    InferenceEngine eng(model, opt);
    InferenceSession s(eng, T);
    s.append(ids.data(), T, b);
    CHECK(max_rel_diff(a, b) < 2e-4);
  }
}

}  // namespace
}  // namespace lb
