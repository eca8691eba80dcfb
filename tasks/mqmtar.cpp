// mqmtar: multi-query multi-token associative recall (the released scripts/generate_data.py
// `MQMTAR`). Ids: 0 = space (filler), 1 = kv_sep, 2 = q_sep, alphabet 3 .. 3+abc_size-1. Per split,
// `vocab` distinct keys and `vocab` distinct values (each k_len / v_len alphabet tokens) are drawn
// once. Per sample, num_kv = floor(L*num_kv/(k_len+v_len+2)) pairs, paired at random, each written
// `k.. 1 v.. 0` inside a row of W = L // num_kv tokens with the fillers split at random before and
// after; then num_q queries `2 k..` (keys drawn with replacement); trg = `2 v..` per query. A trg
// value token aligns to the same token of the queried pair.
#include <unordered_set>

#include "tasks/common.h"

namespace lb {
namespace {

constexpr int32_t kSpace = 0, kKvSep = 1, kQSep = 2, kAlphabetStart = 3;

struct Shape {
  int64_t abc, k_len, v_len, num_q, vocab;
  double ratio;
  explicit Shape(const TaskParams& p)
      : abc(p.geti("abc_size")), k_len(p.geti("k_len")), v_len(p.geti("v_len")),
        num_q(p.geti("num_q")), vocab(p.geti("vocab")), ratio(p.get("num_kv")) {}
  int64_t unit() const { return k_len + v_len + 2; }
  int64_t num_kv(int64_t length) const {
    const int64_t n = static_cast<int64_t>(std::floor(length * ratio / unit()));
    return std::min(n, vocab);
  }
};

// abc^len, saturated (only compared against vocab).
double word_space(int64_t abc, int64_t len) { return std::pow(static_cast<double>(abc), len); }

void validate(const TaskParams& p, int64_t min_length, int64_t) {
  const Shape s(p);
  for (const auto& [what, len] : {std::pair<const char*, int64_t>{"k_len", s.k_len}, {"v_len", s.v_len}}) {
    const double space = word_space(s.abc, len);
    LB_REQUIRE(space <= 0x1.0p62, "mqmtar: abc_size^" << what << " = " << space
                                                      << " is too large; keep it below 2^62");
    LB_REQUIRE(static_cast<double>(s.vocab) <= space,
               "mqmtar: vocab " << s.vocab << " exceeds the " << space << " distinct words of "
                                << "abc_size^" << what << "; lower vocab or raise abc_size");
  }
  const int64_t n = s.num_kv(min_length);
  LB_REQUIRE(n >= s.num_q, "mqmtar: length " << min_length << " gives only " << n
                                             << " key-value pairs (floor(L*num_kv/" << s.unit()
                                             << ")), fewer than num_q " << s.num_q
                                             << "; raise the length or num_kv, or lower num_q");
  LB_REQUIRE(min_length / n >= s.unit(),
             "mqmtar: length " << min_length << " gives rows of " << min_length / n
                               << " tokens, too short for a pair of " << s.unit()
                               << " tokens; lower num_kv");
}

int32_t max_data_id(const TaskParams& p) {
  // The reference tokenizer's max id is abc_size + 3 (one above the alphabet; never used).
  return static_cast<int32_t>(p.geti("abc_size") + kAlphabetStart);
}

// k distinct integers from [0, n) in random order (Floyd's algorithm, then a shuffle).
std::vector<int64_t> sample_distinct(int64_t n, int64_t k, Rng& rng) {
  std::vector<int64_t> out;
  out.reserve(k);
  if (k * 4 >= n) {  // dense: partial Fisher-Yates over all of [0, n)
    std::vector<int64_t> all(n);
    for (int64_t i = 0; i < n; ++i) all[i] = i;
    for (int64_t i = 0; i < k; ++i) std::swap(all[i], all[i + rng.below(n - i)]);
    out.assign(all.begin(), all.begin() + k);
    return out;
  }
  std::unordered_set<int64_t> seen;
  seen.reserve(k * 2);
  for (int64_t j = n - k; j < n; ++j) {
    const int64_t t = static_cast<int64_t>(rng.below(j + 1));
    const int64_t pick = seen.count(t) ? j : t;
    seen.insert(pick);
    out.push_back(pick);
  }
  for (int64_t i = k - 1; i > 0; --i) std::swap(out[i], out[rng.below(i + 1)]);
  return out;
}

void write_word(int64_t code, int64_t abc, int64_t len, std::vector<int32_t>& out) {
  const size_t at = out.size();
  out.resize(at + len);
  for (int64_t d = len - 1; d >= 0; --d) {
    out[at + d] = static_cast<int32_t>(kAlphabetStart + code % abc);
    code /= abc;
  }
}

struct MqmtarGenerator : Generator {
  MqmtarGenerator(const TaskParams& p, Rng& split_rng) : shape(p) {
    // The split's key and value pools, drawn once (the reference's pre_generate).
    const int64_t key_space = static_cast<int64_t>(word_space(shape.abc, shape.k_len));
    const int64_t value_space = static_cast<int64_t>(word_space(shape.abc, shape.v_len));
    keys = sample_distinct(key_space, shape.vocab, split_rng);
    values = sample_distinct(value_space, shape.vocab, split_rng);
  }

  void generate(int64_t length, Rng& rng, RawSample& out) const override {
    const Shape& s = shape;
    const int64_t n = s.num_kv(length);
    const int64_t width = length / n;                   // W: tokens per row
    const int64_t free_total = 2 * (width + 1) - s.unit();  // fillers around the centred unit
    const int64_t free_left = free_total / 2;
    const int64_t to_delete = width + 2;  // a row of 2(W+1) shrinks to W
    const std::vector<int64_t> key_pick = sample_distinct(s.vocab, n, rng);
    const std::vector<int64_t> value_pick = sample_distinct(s.vocab, n, rng);
    out.src.clear();
    out.src.reserve(n * width + s.num_q * (1 + s.k_len));
    for (int64_t r = 0; r < n; ++r) {
      // Choose `to_delete` of the free positions uniformly; count those on the left.
      int64_t deleted_left = 0, need = to_delete;
      for (int64_t f = 0; f < free_left; ++f) {
        if (static_cast<int64_t>(rng.below(free_total - f)) < need) {
          ++deleted_left;
          --need;
        }
      }
      const int64_t left = free_left - deleted_left;
      const int64_t right = width - s.unit() - left;
      out.src.insert(out.src.end(), left, kSpace);
      write_word(keys[key_pick[r]], s.abc, s.k_len, out.src);
      out.src.push_back(kKvSep);
      write_word(values[value_pick[r]], s.abc, s.v_len, out.src);
      out.src.push_back(kSpace);  // the pair's bound
      out.src.insert(out.src.end(), right, kSpace);
    }
    out.trg.clear();
    for (int64_t q = 0; q < s.num_q; ++q) {
      const int64_t r = static_cast<int64_t>(rng.below(n));
      out.src.push_back(kQSep);
      write_word(keys[key_pick[r]], s.abc, s.k_len, out.src);
      out.trg.push_back(kQSep);
      write_word(values[value_pick[r]], s.abc, s.v_len, out.trg);
    }
  }

  Shape shape;
  std::vector<int64_t> keys, values;  // (vocab) word codes
};

// Finds each queried key's pair in src; trg value tokens align to the pair's value tokens.
void align(const TaskParams& p, const RawSample& s, Alignment& out) {
  const Shape sh(p);
  const int64_t query_len = 1 + sh.k_len, answer_len = 1 + sh.v_len;
  const int64_t S = static_cast<int64_t>(s.src.size());
  LB_REQUIRE(static_cast<int64_t>(s.trg.size()) == sh.num_q * answer_len &&
                 S >= sh.num_q * query_len,
             "mqmtar: a sample must end with " << sh.num_q << " queries and have "
                                               << sh.num_q * answer_len << " target tokens");
  const int64_t pairs_end = S - sh.num_q * query_len;
  auto key_of = [&](int64_t at) {
    int64_t code = 0;
    for (int64_t d = 0; d < sh.k_len; ++d) code = code * sh.abc + (s.src[at + d] - kAlphabetStart);
    return code;
  };
  // The queried keys, then one scan over the pairs `k.. 1 v.. 0` to find where each one's value is.
  std::vector<int64_t> query_key(sh.num_q), value_at(sh.num_q, -1);
  for (int64_t q = 0; q < sh.num_q; ++q) {
    const int64_t at = pairs_end + q * query_len;
    LB_REQUIRE(s.src[at] == kQSep && s.trg[q * answer_len] == kQSep,
               "mqmtar: query " << q << " does not start with q_sep " << kQSep);
    query_key[q] = key_of(at + 1);
  }
  for (int64_t j = 0; j + sh.unit() <= pairs_end; ++j) {
    if (s.src[j + sh.k_len] != kKvSep || s.src[j] < kAlphabetStart) continue;
    const int64_t key = key_of(j);
    for (int64_t q = 0; q < sh.num_q; ++q) {
      if (query_key[q] == key && value_at[q] < 0) value_at[q] = j + sh.k_len + 1;
    }
  }
  std::vector<int32_t> idx(s.trg.size(), -1);
  for (int64_t q = 0; q < sh.num_q; ++q) {
    LB_REQUIRE(value_at[q] >= 0, "mqmtar: query " << q << " asks for a key not in the sample");
    for (int64_t d = 0; d < sh.v_len; ++d) {
      LB_REQUIRE(s.trg[q * answer_len + 1 + d] == s.src[value_at[q] + d],
                 "mqmtar: answer " << q << " is not the value paired with its key");
      idx[q * answer_len + 1 + d] = static_cast<int32_t>(value_at[q] + d);
    }
  }
  align_one_to_one(idx, out);
}

}  // namespace

TaskDef mqmtar_task() {
  return {"mqmtar", 1, "multi-query multi-token associative recall: look up values by key",
          TaskFormat::kSeq2Seq, 2.2,
          join_params(length_params(48, 16),
                      std::vector<ParamDef>{
                          vocab_param(10000, "size of the key pool and of the value pool"),
                          {"abc_size", 256, true, 1, 1 << 20, "alphabet of key/value tokens"},
                          {"k_len", 2, true, 1, 8, "tokens per key"},
                          {"v_len", 2, true, 1, 8, "tokens per value"},
                          {"num_q", 4, true, 1, 1 << 20, "queries per sample"},
                          {"num_kv", 0.8, false, 1e-6, 1.0,
                           "pairs = floor(L*num_kv/(k_len+v_len+2))"},
                      }),
          validate, max_data_id, nullptr,
          [](const TaskParams& p, Rng& split_rng) -> std::unique_ptr<Generator> {
            return std::make_unique<MqmtarGenerator>(p, split_rng);
          },
          align,
          {64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536}};
}

}  // namespace lb
