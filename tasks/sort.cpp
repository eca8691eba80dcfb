// sort: src = L uniform tokens in [0, vocab) (duplicates allowed); trg = src ascending.
// A trg token of value v aligns to every occurrence of v in src (one shared range per value).
#include "tasks/common.h"

namespace lb {
namespace {

void validate(const TaskParams&, int64_t min_length, int64_t) {
  require_min_length("sort", min_length, 1, "a sample needs at least one token");
}

int32_t max_data_id(const TaskParams& p) { return static_cast<int32_t>(p.geti("vocab") - 1); }

struct SortGenerator : Generator {
  explicit SortGenerator(const TaskParams& p) : vocab(static_cast<int32_t>(p.geti("vocab"))) {}
  void generate(int64_t length, Rng& rng, RawSample& out) const override {
    fill_uniform(out.src, length, 0, vocab - 1, rng);
    std::vector<int64_t> count(vocab, 0);  // counting sort: O(L + vocab)
    for (int32_t t : out.src) ++count[t];
    out.trg.resize(out.src.size());
    size_t k = 0;
    for (int32_t v = 0; v < vocab; ++v) {
      for (int64_t c = 0; c < count[v]; ++c) out.trg[k++] = v;
    }
  }
  int32_t vocab;
};

void align(const TaskParams& p, const RawSample& s, Alignment& out) {
  const int32_t vocab = static_cast<int32_t>(p.geti("vocab"));
  LB_REQUIRE(s.trg.size() == s.src.size() && std::is_sorted(s.trg.begin(), s.trg.end()),
             "sort: trg is not src sorted");
  std::vector<int32_t> count(vocab + 1, 0);
  for (int32_t t : s.src) ++count[t + 1];
  for (int32_t v = 0; v < vocab; ++v) count[v + 1] += count[v];  // count[v] = start of group v
  out.pos.assign(s.src.size(), 0);
  std::vector<int32_t> fill(count.begin(), count.end() - 1);
  for (size_t j = 0; j < s.src.size(); ++j) out.pos[fill[s.src[j]]++] = static_cast<int32_t>(j);
  out.begin.resize(s.trg.size());
  out.end.resize(s.trg.size());
  for (size_t t = 0; t < s.trg.size(); ++t) {
    LB_REQUIRE(s.trg[t] == s.src[out.pos[t]], "sort: trg is not src sorted");
    out.begin[t] = count[s.trg[t]];
    out.end[t] = count[s.trg[t] + 1];
  }
}

}  // namespace

TaskDef sort_task() {
  return {"sort", 1, "output the source tokens in ascending order", TaskFormat::kSeq2Seq, 2.1,
          join_params(length_params(48, 16), std::vector<ParamDef>{vocab_param(32)}),
          validate, max_data_id, nullptr,
          [](const TaskParams& p, Rng&) -> std::unique_ptr<Generator> {
            return std::make_unique<SortGenerator>(p);
          },
          align, {64, 128, 256, 512, 1024, 2048, 4096}};
}

}  // namespace lb
