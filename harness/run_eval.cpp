#include "harness/run_eval.h"

#include "harness/eval.h"
#include "results/metrics.h"
#include "tasks/registry.h"

namespace lb {

EvalOptions run_eval_options(const RunSpec& run, const std::string& split, int64_t samples,
                             bool with_attention) {
  EvalOptions o;
  o.samples = samples;
  o.seed = run.eval.seed;
  o.split = parse_eval_split(split);
  o.decode.attn_stats = with_attention;
  return o;
}

EvalOutcome evaluate_for_run(const Transformer& model, const RunSpec& run, const std::string& split,
                             int64_t length, int64_t samples, int threads, bool with_attention,
                             const std::atomic<bool>* stop) {
  (void)threads;  // evaluation uses the thread count set for the process (set_num_threads)
  const TaskDef& task = find_task(run.task);
  EvalOptions o = run_eval_options(run, split, samples, with_attention);
  o.stop = stop;
  LengthResult r =
      evaluate_length(model, task, make_params(task, run.train.task_params), o, length);
  EvalOutcome out;
  out.row = r.eval;
  out.row.split = split;
  out.attn = std::move(r.attn);
  return out;
}

SelectionRow evaluate_selection(const Transformer& model, const RunSpec& run, int threads,
                                const std::atomic<bool>* stop) {
  const EvalOutcome v = evaluate_for_run(model, run, run.select.split, run.select.length,
                                         run.select.samples, threads, false, stop);
  SelectionRow row;
  row.split = run.select.split;
  row.length = run.select.length;
  row.samples = v.row.samples;
  for (const MetricDef* m : metrics_in(kInSelection)) {  // the ladder's metrics; loss below
    if (m->eval) row.*(m->selection) = v.row.*(m->eval);
  }
  Transformer probe(model.config());
  for (size_t i = 0; i < probe.params().size(); ++i) {
    probe.params()[i].value = model.params()[i].value;
  }
  const TaskDef& task = find_task(run.task);
  row.loss = teacher_forced_loss(probe, task, make_params(task, run.train.task_params),
                                 run.eval.seed, parse_eval_split(run.select.split),
                                 run.select.length, run.select.samples);
  return row;
}

}  // namespace lb
