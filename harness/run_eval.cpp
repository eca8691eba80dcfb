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

SelectionRow evaluate_selection(const Transformer& model, const RunSpec& run, int threads) {
  const EvalOutcome v = evaluate_for_run(model, run, run.select.split, run.select.length,
                                         run.select.samples, threads, false);
  SelectionRow row;
  row.split = run.select.split;
  row.length = run.select.length;
  row.samples = v.row.samples;
  row.exact_match = v.row.exact_match;
  row.token_accuracy = v.row.token_accuracy;
  Transformer probe(model.config());
  for (size_t i = 0; i < probe.params().size(); ++i) {
    probe.params()[i].value = model.params()[i].value;
  }
  const TaskDef& task = find_task(run.task);
  row.loss = teacher_forced_loss(
      probe, task, make_params(task, run.train.task_params), run.eval.seed,
      run.select.split == "validation" ? SplitKind::kValidation : SplitKind::kTest,
      run.select.length, run.select.samples);
  return row;
}

}  // namespace lb
