// Paper-style tables from the results database: per suite x task, one row per attention setup
// (normalizer x position encoding x variant, x lr for the mean protocol), one column per
// evaluation length ("64 (1×)"), cells the exact match in %.
//
// Mean protocol (v_seed_summary): the mean over seeds with its 95% interval (Student t over the
// seeds; a single seed's Wilson interval over its samples); a length skipped after an earlier 0%
// counts as 0 and is marked "*". Best protocol (v_best_of): per setup, the run (over seeds x lrs)
// with the best selection score, with its Wilson interval. Every table says n (seeds, samples
// per length) in its caption, or in a cell whose n differs. Markdown and LaTeX bold the best mean
// per column. CSV and JSON are tidy: one row per (suite, task, normalizer, position, variant, lr,
// length), numeric columns mean, sd, ci_low, ci_high, n_seeds, skipped_seeds, samples (fractions,
// not %). `paper` adds the paper's Table 1 (results/paper_table1.json) rows for the same task,
// matched by multiple of the training length; `details` shows each run's selected step.
// `metric`: any plotted metric of results/metrics.h. A proportion (exact match: Wilson/t
// intervals from the views) as above; any other the mean ± sd over seeds, and an attention
// statistic's rows are split by head kind (attn_stats.head_kind).
#pragma once
#include <ostream>
#include <string>
#include <vector>

#include "results/db.h"

namespace lb {

enum class TableProtocol { kMeanSd, kBestOf };
enum class TableFormat { kMarkdown, kLatex, kCsv, kJson };

struct TableOptions {
  std::string suite, task;  // empty: all
  std::string split = "test";
  TableProtocol protocol = TableProtocol::kMeanSd;
  TableFormat format = TableFormat::kMarkdown;
  bool details = false;  // the selected checkpoint step of every run (a column; CSV/JSON field)
  bool paper = false;    // the paper's Table 1 rows beside ours
  // "exact_match", another evaluation metric (cells the mean ± sd over seeds of each run's value;
  // skipped lengths have none) or an attention statistic (entropy_norm, support, ...): then one
  // row per setup x head kind, cells the mean ± sd over seeds of each run's mean over its layers
  // x heads of that kind; `heads` keeps some kinds only (plot_heads_from_name; "auto" and "all"
  // keep every kind). table_metric_names() lists the choices.
  std::string metric = "exact_match";
  std::string heads = "all";
};

// The --metric choices (plot_metric_names: the plotted metrics of results/metrics.h), and the
// check: UsageError "--metric 'x' is not one of: exact_match, ..." for another name.
const std::vector<std::string>& table_metric_names();
void check_table_metric(const std::string& name);

// Returns the number of tables (suite x task) printed; CSV and JSON print one document for all.
int print_tables(ResultsDb& db, const TableOptions& opts, std::ostream& out);

}  // namespace lb
