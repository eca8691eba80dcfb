// `lengthbench report`: one self-contained static HTML page of a results database (figures as
// inline SVG, no script, no external file), per suite × task: the exact-match table (mean ± sd
// over seeds, tools/table.h), exact match against length and the dispersion figures
// (tools/svg_plot.h), the training-loss curves of every run (train_metrics), checkpoint
// selection (checkpoints: which step won, by what score) and every run's provenance (seed,
// status, commit and dirty flag, versions, machine, threads, the full config).
//
// Contract: the bytes depend only on the database's contents (no time, no absolute path), so the
// same database gives the same page.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "results/db.h"

namespace lb {

struct ReportOptions {
  std::string suite, task;  // empty: all
  std::string split = "test";
};

std::string html_report(ResultsDb& db, const ReportOptions& opts);

// Training loss against step, one line per run, per suite × task (`plot --metric loss`):
// ("SUITE.TASK.loss.svg", SVG document) pairs, ordered by suite then task. UsageError when no
// run matches or none has training metrics.
std::vector<std::pair<std::string, std::string>> loss_figures(ResultsDb& db,
                                                              const ReportOptions& opts);

// Writes DIR/index.html (DIR created; written to a temporary name and renamed); returns its path.
std::string write_report(ResultsDb& db, const ReportOptions& opts, const std::string& dir);

}  // namespace lb
