// copy: src = L uniform tokens in [0, vocab); trg = src. Each trg token aligns to its source.
#include "tasks/common.h"

namespace lb {
namespace {

void validate(const TaskParams& p, int64_t min_length, int64_t) {
  require_min_length("copy", min_length, 1, "a sample needs at least one token");
  (void)p;
}

int32_t max_data_id(const TaskParams& p) { return static_cast<int32_t>(p.geti("vocab") - 1); }

struct CopyGenerator : Generator {
  explicit CopyGenerator(const TaskParams& p) : vocab(static_cast<int32_t>(p.geti("vocab"))) {}
  void generate(int64_t length, Rng& rng, RawSample& out) const override {
    fill_uniform(out.src, length, 0, vocab - 1, rng);
    out.trg = out.src;
  }
  int32_t vocab;
};

void align(const TaskParams&, const RawSample& s, Alignment& out) {
  LB_REQUIRE(s.trg == s.src, "copy: trg is not a copy of src");
  std::vector<int32_t> idx(s.trg.size());
  for (size_t t = 0; t < idx.size(); ++t) idx[t] = static_cast<int32_t>(t);
  align_one_to_one(idx, out);
}

}  // namespace

TaskDef copy_task() {
  return {"copy", 1, "repeat the source sequence", TaskFormat::kSeq2Seq, 2.2,
          join_params(length_params(48, 16), std::vector<ParamDef>{vocab_param(32)}),
          validate, max_data_id, nullptr,
          [](const TaskParams& p, Rng&) -> std::unique_ptr<Generator> {
            return std::make_unique<CopyGenerator>(p);
          },
          align, {64, 128, 256, 512, 1024, 2048, 4096}};
}

}  // namespace lb
