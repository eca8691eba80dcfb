// The runner's view of evaluation: one split at one length for one model, as database rows.
#pragma once
#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "harness/eval.h"
#include "harness/suite.h"
#include "models/transformer.h"
#include "results/db.h"

namespace lb {

struct EvalOutcome {
  EvalRow row;                // ckpt/step are filled by the caller
  std::vector<AttnRow> attn;  // empty when with_attention is false
};

// The evaluation options of run `run` on `split` with `samples` per length (no lengths set).
EvalOptions run_eval_options(const RunSpec& run, const std::string& split, int64_t samples,
                             bool with_attention);

// stop: see EvalOptions::stop (EvalInterrupted when raised).
EvalOutcome evaluate_for_run(const Transformer& model, const RunSpec& run, const std::string& split,
                             int64_t length, int64_t samples, int threads, bool with_attention,
                             const std::atomic<bool>* stop = nullptr);

// One checkpoint-selection evaluation of `model` (step left 0 for the caller): exact match and
// token accuracy by greedy decoding, and the teacher-forced loss, on run.select's split, length
// and samples. The loss runs on a copy of the weights, so `model`'s training state is untouched.
SelectionRow evaluate_selection(const Transformer& model, const RunSpec& run, int threads,
                                const std::atomic<bool>* stop = nullptr);

}  // namespace lb
