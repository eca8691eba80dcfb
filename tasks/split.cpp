#include "tasks/split.h"

#include "core/check.h"

namespace lb {

const char* split_kind_name(SplitKind k) {
  switch (k) {
    case SplitKind::kTrain: return "train";
    case SplitKind::kValidation: return "validation";
    case SplitKind::kTest: return "test";
  }
  return "?";
}

SplitKind parse_eval_split(const std::string& name, const std::string& what) {
  if (name == "test") return SplitKind::kTest;
  if (name == "validation") return SplitKind::kValidation;
  throw UsageError(what + " '" + name + "' is not one of: test, validation");
}

Split::Split(const TaskDef& task, TaskParams params, uint64_t seed, SplitKind kind, int64_t length)
    : task_(&task), params_(std::move(params)), kind_(kind), length_(length) {
  LB_REQUIRE(length >= 0, "length " << length << " must be positive");
  LB_REQUIRE(length > 0 || kind == SplitKind::kTrain,
             "an evaluation split needs a fixed length (got 0)");
  if (length > 0) task.validate(params_, length, length);
  stream_ = derive_seed({hash_tag("lengthbench.split"), hash_tag(task.name), seed,
                         hash_tag(split_kind_name(kind)), static_cast<uint64_t>(length)});
  Rng split_rng(derive_seed({stream_, hash_tag("split-state")}));
  gen_ = task.make_generator(params_, split_rng);
}

RawSample Split::raw(int64_t index) const {
  Rng rng(derive_seed({stream_, static_cast<uint64_t>(index)}));
  int64_t length = length_;
  if (length == 0) {
    const auto [lo, hi] = train_length_range(params_);
    length = rng.uniform_int(lo, hi);
  }
  RawSample out;
  gen_->generate(length, rng, out);
  return out;
}

}  // namespace lb
