// reverse: src = L uniform tokens in [0, vocab); trg = src reversed (trg[t] = src[L-1-t]).
#include "tasks/common.h"

namespace lb {
namespace {

void validate(const TaskParams&, int64_t min_length, int64_t) {
  require_min_length("reverse", min_length, 1, "a sample needs at least one token");
}

int32_t max_data_id(const TaskParams& p) { return static_cast<int32_t>(p.geti("vocab") - 1); }

struct ReverseGenerator : Generator {
  explicit ReverseGenerator(const TaskParams& p) : vocab(static_cast<int32_t>(p.geti("vocab"))) {}
  void generate(int64_t length, Rng& rng, RawSample& out) const override {
    fill_uniform(out.src, length, 0, vocab - 1, rng);
    out.trg.assign(out.src.rbegin(), out.src.rend());
  }
  int32_t vocab;
};

void align(const TaskParams&, const RawSample& s, Alignment& out) {
  const size_t n = s.src.size();
  LB_REQUIRE(s.trg.size() == n && std::equal(s.trg.begin(), s.trg.end(), s.src.rbegin()),
             "reverse: trg is not src reversed");
  std::vector<int32_t> idx(n);
  for (size_t t = 0; t < n; ++t) idx[t] = static_cast<int32_t>(n - 1 - t);
  align_one_to_one(idx, out);
}

}  // namespace

TaskDef reverse_task() {
  return {"reverse", 1, "output the source sequence reversed", TaskFormat::kSeq2Seq, 2.2,
          join_params(length_params(48, 16), std::vector<ParamDef>{vocab_param(32)}),
          validate, max_data_id, nullptr,
          [](const TaskParams& p, Rng&) -> std::unique_ptr<Generator> {
            return std::make_unique<ReverseGenerator>(p);
          },
          align, {64, 128, 256, 512}};
}

}  // namespace lb
