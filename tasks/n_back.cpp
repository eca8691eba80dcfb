// n_back: src = [0] + L uniform tokens in [1, vocab); label at i = src[i - num_steps] (0 for
// i < num_steps). Per-position format: one label per src token, no shift.
#include "tasks/common.h"

namespace lb {
namespace {

void validate(const TaskParams& p, int64_t min_length, int64_t) {
  require_min_length("n_back", min_length, p.geti("num_steps"),
                     "the sequence must be longer than num_steps");
}

int32_t max_data_id(const TaskParams& p) { return static_cast<int32_t>(p.geti("vocab") - 1); }

struct NBackGenerator : Generator {
  explicit NBackGenerator(const TaskParams& p)
      : vocab(static_cast<int32_t>(p.geti("vocab"))), steps(p.geti("num_steps")) {}
  void generate(int64_t length, Rng& rng, RawSample& out) const override {
    out.src.resize(length + 1);
    out.src[0] = 0;
    for (int64_t i = 1; i <= length; ++i) out.src[i] = static_cast<int32_t>(rng.uniform_int(1, vocab - 1));
    out.trg.assign(out.src.size(), 0);
    for (int64_t i = steps; i <= length; ++i) out.trg[i] = out.src[i - steps];
  }
  int32_t vocab;
  int64_t steps;
};

void align(const TaskParams& p, const RawSample& s, Alignment& out) {
  const int64_t steps = p.geti("num_steps");
  const int64_t n = static_cast<int64_t>(s.src.size());
  LB_REQUIRE(static_cast<int64_t>(s.trg.size()) == n, "n_back: trg length " << s.trg.size()
                                                       << " differs from src length " << n);
  std::vector<int32_t> idx(n, -1);
  for (int64_t i = 0; i < n; ++i) {
    const int32_t want = i >= steps ? s.src[i - steps] : 0;
    LB_REQUIRE(s.trg[i] == want, "n_back: label " << s.trg[i] << " at " << i << " should be "
                                                  << want << " (src[i-" << steps << "])");
    if (i >= steps) idx[i] = static_cast<int32_t>(i - steps);
  }
  align_one_to_one(idx, out);
}

}  // namespace

TaskDef n_back_task() {
  return {"n_back", 1, "label every token with the token num_steps positions earlier",
          TaskFormat::kPerPosition, 1.0,
          join_params(length_params(48, 16),
                      std::vector<ParamDef>{vocab_param(16, "data ids 1..vocab-1 (0 starts)"),
                                            {"num_steps", 2, true, 1, 1 << 20, "n of n-back"}}),
          validate, max_data_id, nullptr,
          [](const TaskParams& p, Rng&) -> std::unique_ptr<Generator> {
            return std::make_unique<NBackGenerator>(p);
          },
          align, {64, 128, 256, 512, 1024, 2048, 4096}};
}

}  // namespace lb
