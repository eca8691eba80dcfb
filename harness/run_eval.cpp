#include "harness/run_eval.h"

#include "harness/eval.h"
#include "tasks/registry.h"

namespace lb {

EvalOutcome evaluate_for_run(const Transformer& model, const RunSpec& run, const std::string& split,
                             int64_t length, int64_t samples, int threads, bool with_attention) {
  (void)threads;  // evaluation uses the thread count set for the process (set_num_threads)
  const TaskDef& task = find_task(run.task);
  const TaskParams params = make_params(task, run.train.task_params);
  EvalOptions o;
  o.lengths = {length};
  o.samples = samples;
  o.seed = run.eval.seed;
  o.split = split == "validation" ? SplitKind::kValidation : SplitKind::kTest;
  o.decode.attn_stats = with_attention;
  std::vector<LengthResult> r = evaluate_ladder(model, task, params, o);
  EvalOutcome out;
  out.row = r.at(0).eval;
  out.row.split = split;
  out.attn = std::move(r.at(0).attn);
  return out;
}

}  // namespace lb
