// parity: src = L uniform bits; trg = [1 if the number of ones is even, else 0]. Every source
// position matters, so the one trg token aligns to all of them.
#include "tasks/common.h"

namespace lb {
namespace {

void validate(const TaskParams&, int64_t min_length, int64_t) {
  require_min_length("parity", min_length, 1, "a sample needs at least one bit");
}

int32_t max_data_id(const TaskParams&) { return 1; }

struct ParityGenerator : Generator {
  void generate(int64_t length, Rng& rng, RawSample& out) const override {
    fill_uniform(out.src, length, 0, 1, rng);
    int64_t ones = 0;
    for (int32_t b : out.src) ones += b;
    out.trg.assign(1, ones % 2 == 0 ? 1 : 0);
  }
};

void align(const TaskParams&, const RawSample& s, Alignment& out) {
  int64_t ones = 0;
  for (int32_t b : s.src) ones += b;
  LB_REQUIRE(s.trg.size() == 1 && s.trg[0] == (ones % 2 == 0 ? 1 : 0),
             "parity: trg must be 1 for an even number of ones, else 0");
  out.begin.assign(1, 0);
  out.end.assign(1, static_cast<int32_t>(s.src.size()));
  out.pos.resize(s.src.size());
  for (size_t j = 0; j < s.src.size(); ++j) out.pos[j] = static_cast<int32_t>(j);
}

}  // namespace

TaskDef parity_task() {
  return {"parity", 1, "output 1 if the source has an even number of ones, else 0",
          TaskFormat::kSeq2Seq, 1.2, length_params(48, 16), validate, max_data_id, nullptr,
          [](const TaskParams&, Rng&) -> std::unique_ptr<Generator> {
            return std::make_unique<ParityGenerator>();
          },
          align, {64, 128, 256, 512, 1024, 2048, 4096}};
}

}  // namespace lb
