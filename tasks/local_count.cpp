// local_count: blocks of repeated symbols; the label of each token is its 0-based index within
// its run. num_blocks = floor(L / ((max_reps+2)/2)); block symbols uniform in [0, vocab) with no
// two adjacent blocks equal; each repeated r ~ U{2..max_reps} times, so src length is about L
// but random (as the reference). Labels reach max_reps - 1, which may exceed the data vocabulary.
#include "tasks/common.h"

namespace lb {
namespace {

int64_t num_blocks(const TaskParams& p, int64_t length) {
  return static_cast<int64_t>(std::floor(length / ((p.geti("max_reps") + 2) / 2.0)));
}

void validate(const TaskParams& p, int64_t min_length, int64_t) {
  LB_REQUIRE(num_blocks(p, min_length) >= 1,
             "local_count: length " << min_length << " holds no block of up to max_reps "
                                    << p.geti("max_reps") << " (need length >= "
                                    << (p.geti("max_reps") + 2) / 2.0 << ")");
}

int32_t max_data_id(const TaskParams& p) { return static_cast<int32_t>(p.geti("vocab") - 1); }
int32_t max_label(const TaskParams& p) { return static_cast<int32_t>(p.geti("max_reps") - 1); }

struct LocalCountGenerator : Generator {
  explicit LocalCountGenerator(const TaskParams& p)
      : params(p), vocab(static_cast<int32_t>(p.geti("vocab"))), max_reps(p.geti("max_reps")) {}
  void generate(int64_t length, Rng& rng, RawSample& out) const override {
    const int64_t blocks = num_blocks(params, length);
    out.src.clear();
    out.trg.clear();
    int32_t prev = -1;
    for (int64_t b = 0; b < blocks; ++b) {
      // Uniform over the symbols other than the previous one (the reference's resampling).
      int32_t sym = static_cast<int32_t>(rng.below(prev < 0 ? vocab : vocab - 1));
      if (prev >= 0 && sym >= prev) ++sym;
      const int64_t reps = rng.uniform_int(2, max_reps);
      for (int64_t r = 0; r < reps; ++r) {
        out.src.push_back(sym);
        out.trg.push_back(static_cast<int32_t>(r));
      }
      prev = sym;
    }
  }
  TaskParams params;
  int32_t vocab;
  int64_t max_reps;
};

void align(const TaskParams&, const RawSample& s, Alignment& out) {
  const size_t n = s.src.size();
  LB_REQUIRE(s.trg.size() == n, "local_count: trg length " << s.trg.size()
                                                           << " differs from src length " << n);
  std::vector<int32_t> idx(n);
  int32_t start = 0;
  for (size_t i = 0; i < n; ++i) {
    if (i > 0 && s.src[i] != s.src[i - 1]) start = static_cast<int32_t>(i);
    LB_REQUIRE(s.trg[i] == static_cast<int32_t>(i) - start,
               "local_count: label " << s.trg[i] << " at " << i << " should be " << i - start);
    idx[i] = start;
  }
  align_one_to_one(idx, out);
}

}  // namespace

TaskDef local_count_task() {
  return {"local_count", 1, "label every token with its 0-based index in its run",
          TaskFormat::kPerPosition, 1.0,
          join_params(length_params(96, 32),
                      std::vector<ParamDef>{vocab_param(16),
                                            {"max_reps", 48, true, 2, 1 << 20,
                                             "runs repeat 2..max_reps times"}}),
          validate, max_data_id, max_label,
          [](const TaskParams& p, Rng&) -> std::unique_ptr<Generator> {
            return std::make_unique<LocalCountGenerator>(p);
          },
          align, {128, 256, 512, 1024, 2048, 4096}};
}

}  // namespace lb
