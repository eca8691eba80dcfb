// flip_flop (Liu et al. 2023): n = floor(L/2) (command, bit) pairs; commands 2 = write,
// 3 = ignore, 4 = read. The first command writes, the last reads, the middle ones write with
// probability write_prob. Bits are uniform, ignored ones included. src = the pairs flattened
// without the final bit (2n-1 tokens, ending in 4); trg = the bit of the last write.
#include "tasks/common.h"

namespace lb {
namespace {

constexpr int32_t kWrite = 2, kIgnore = 3, kRead = 4;

void validate(const TaskParams&, int64_t min_length, int64_t) {
  require_min_length("flip_flop", min_length, 4, "a write and a read need two (command, bit) pairs");
}

int32_t max_data_id(const TaskParams&) { return kRead; }

struct FlipFlopGenerator : Generator {
  explicit FlipFlopGenerator(const TaskParams& p) : write_prob(p.get("write_prob")) {}
  void generate(int64_t length, Rng& rng, RawSample& out) const override {
    const int64_t n = length / 2;
    out.src.resize(2 * n - 1);
    int32_t last_bit = 0;
    for (int64_t i = 0; i < n; ++i) {
      int32_t cmd = kIgnore;
      if (i == 0) cmd = kWrite;
      else if (i == n - 1) cmd = kRead;
      else if (rng.bernoulli(write_prob)) cmd = kWrite;
      const int32_t bit = static_cast<int32_t>(rng.below(2));
      out.src[2 * i] = cmd;
      if (i < n - 1) out.src[2 * i + 1] = bit;
      if (cmd == kWrite) last_bit = bit;
    }
    out.trg.assign(1, last_bit);
  }
  double write_prob;
};

void align(const TaskParams&, const RawSample& s, Alignment& out) {
  const int64_t S = static_cast<int64_t>(s.src.size());
  LB_REQUIRE(S >= 3 && S % 2 == 1 && s.src[S - 1] == kRead && s.trg.size() == 1,
             "flip_flop: src must be (command, bit) pairs ending in read " << kRead
                                                                          << ", trg one bit");
  int64_t last = -1;
  for (int64_t j = 0; j + 1 < S; j += 2) {
    LB_REQUIRE(s.src[j] == kWrite || s.src[j] == kIgnore,
               "flip_flop: command " << s.src[j] << " at " << j << " is not write/ignore");
    if (s.src[j] == kWrite) last = j + 1;
  }
  LB_REQUIRE(last >= 0 && s.trg[0] == s.src[last],
             "flip_flop: trg is not the bit of the last write");
  align_one_to_one({static_cast<int32_t>(last)}, out);
}

}  // namespace

TaskDef flip_flop_task() {
  return {"flip_flop", 1, "after (command, bit) pairs, recall the bit of the last write",
          TaskFormat::kSeq2SeqNoSep, 1.2,
          join_params(length_params(48, 16),
                      std::vector<ParamDef>{{"write_prob", 0.1, false, 0.0, 1.0,
                                             "probability that a middle command is a write"}}),
          validate, max_data_id, nullptr,
          [](const TaskParams& p, Rng&) -> std::unique_ptr<Generator> {
            return std::make_unique<FlipFlopGenerator>(p);
          },
          align, {64, 128, 256, 512, 1024, 2048, 4096}};
}

}  // namespace lb
