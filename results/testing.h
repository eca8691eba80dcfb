// Test fixtures for code that reads the results database (results/, tools/): run records and
// finished runs with evaluations and attention statistics, written through ResultsDb.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "results/db.h"

namespace lb::testing {

// A copy run (training length 64, selected on validation at 512) with NAPE; config hash "h-KEY".
inline RunRecord make_run(const std::string& key, const std::string& normalizer, int64_t seed,
                          double lr, const std::string& variant = "") {
  RunRecord r;
  r.key = key;
  r.variant = variant;
  r.suite = "s";
  r.task = "copy";
  r.normalizer = normalizer;
  r.pos_encoding = "nape";
  r.seed = seed;
  r.lr = lr;
  r.train_max_length = 64;
  r.select_length = 512;
  r.config_json = "{}";
  r.config_hash = "h-" + key;
  return r;
}

struct TestEval {
  int64_t length;
  double exact_match, token_accuracy;
  bool skipped;
};

// Optional extras of a finished run: its variant, and its selection: evaluations at these steps
// (validation at 512, exact match `val`, token accuracy 1) with these losses; the chosen (the
// 'best' checkpoint and the evaluated step) is `chosen_step` (default: the last one).
struct RunExtras {
  std::string variant;
  std::vector<std::pair<int64_t, double>> selection;  // (step, loss)
  int64_t chosen_step = -1;
};

// make_run's run, finished: validation exact match `val` at 512, then the test evaluations in the
// order given; every evaluated (not skipped) length gets 2 layers x 2 heads of attention
// statistics whose entropy_norm averages to `entropy`: head 0 (kind "alibi") entropy − 0.1,
// head 1 ("nope+scaled") entropy + 0.1 (support 4 x entropy_norm). 10 samples per length.
inline void add_finished_run(ResultsDb& db, const std::string& key, const std::string& normalizer,
                             int64_t seed, double lr, double val,
                             const std::vector<TestEval>& evals, double entropy = 0.5,
                             const RunExtras& extras = {}) {
  db.begin_run(make_run(key, normalizer, seed, lr, extras.variant), Provenance::current(1));
  int64_t step = 0;
  for (const auto& [s, loss] : extras.selection) {
    SelectionRow row;
    row.step = s;
    row.length = 512;
    row.samples = 10;
    row.exact_match = val;
    row.token_accuracy = 1;
    row.loss = loss;
    db.add_selection_eval(key, row);
    step = s;
  }
  if (extras.chosen_step >= 0) step = extras.chosen_step;
  db.add_checkpoint(key, {"best", step, "/nowhere", "", "test", val});
  EvalRow e;
  e.step = step;
  e.samples = 10;
  e.split = "validation";
  e.length = 512;
  e.exact_match = val;
  e.token_accuracy = 1;
  db.add_eval(key, e, {});
  for (const auto& ev : evals) {
    e.split = "test";
    e.length = ev.length;
    e.exact_match = ev.exact_match;
    e.token_accuracy = ev.token_accuracy;
    e.skipped = ev.skipped;
    std::vector<AttnRow> attn;
    if (!ev.skipped) {
      for (int layer = 0; layer < 2; ++layer) {
        for (int head = 0; head < 2; ++head) {
          AttnRow a;
          a.layer = layer;
          a.head = head;
          a.head_kind = head ? "nope+scaled" : "alibi";
          a.queries = 8;
          a.entropy_norm = entropy + (head ? 0.1 : -0.1);  // averages to `entropy`
          a.support = 4 * a.entropy_norm;
          attn.push_back(a);
        }
      }
    }
    db.add_eval(key, e, attn);
  }
  db.finish_run(key, RunStatus::kDone);
}

}  // namespace lb::testing
