// The evaluation metrics and attention statistics of the results database, each listed once.
//
// A metric is a REAL column of its table(s) (evals and/or selection_evals, or attn_stats per
// head), named like its --metric. Every consumer reads this list instead of naming columns: the
// writer's INSERTs and the reader of selection_evals (results/db.cpp), the comparison of shards in
// `merge`, the upgrade that adds a metric column an older database lacks, `table --metric`, `plot
// --metric` (choices, titles, axes), the report's figures, the commands' help text and `eval
// --json`. The tables themselves are written out in results/schema.sql, which a test checks
// against this list (results/metrics_test.cpp).
//
// Adding a metric: compute it (harness/eval.cpp) into a new field of EvalRow or AttnRow (db.h,
// with kSchemaVersion + 1), add its entry below (kMetrics, results/metrics.cpp) and its column,
// last in its table(s), to schema.sql as `NAME REAL` (nullable, as the upgrade adds it). An older
// database gets the column by `lengthbench upgrade` (NULL in its earlier rows).
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "results/db.h"

namespace SQLite {
class Database;
}

namespace lb {

// Where a metric's values are stored (a bit set: exact_match is in evals and selection_evals).
enum MetricTables : unsigned {
  kInEvals = 1,      // evals: one value per run x checkpoint x split x length (NULL when skipped)
  kInSelection = 2,  // selection_evals: every checkpoint-selection evaluation (NOT NULL)
  kInAttn = 4,       // attn_stats: one value per head (run x checkpoint x split x length x layer)
};

// How an interval around a mean over seeds is formed: a proportion of samples (a single run's
// Wilson interval over its samples; Student t over 2+ seeds), with the view columns NAME_or_0,
// NAME_ci_low/high (v_evals, v_best_of) and NAME_mean, NAME_sd, NAME_ci_low/high (v_seed_summary)
// that `table` reads; or a mean (Student t over seeds; `table` shows mean ± sd).
enum class MetricInterval { kWilson, kStudentT };

struct MetricDef {
  const char* name;         // the column in each of its tables, and the --metric value
  unsigned tables;          // MetricTables
  const char* description;  // one line: what it measures (help text, documentation)
  const char* title;        // figure and table title: "exact match (%)"
  const char* unit;         // "fraction", "edits", "nats", "keys", "scale"
  bool percent;             // a fraction shown in % on a fixed 0-100 axis
  bool higher_is_better;
  MetricInterval interval;
  // Checkpoint and seed selection compares these in increasing rank (0: not used); ties after the
  // last go to the later step (harness/run.h selection_better, v_best_of).
  int selection_rank;
  bool plotted;   // a `plot --metric` and `table --metric` choice
  bool reported;  // an attention-statistic figure of `report` (Dispersion)
  // The value in each row type that holds it (nullptr where the metric is not there).
  double EvalRow::*eval = nullptr;
  double SelectionRow::*selection = nullptr;
  double AttnRow::*attn = nullptr;
  std::optional<double> AttnRow::*attn_optional = nullptr;  // recorded for some heads only
  // A length the ladder skipped after an earlier 0 counts as 0 (the ladder stops on this metric);
  // for the others a skipped length has no value.
  bool zero_when_skipped = false;
};

// Every metric, in --metric order (the plotted ones first, as listed in help and errors).
const std::vector<MetricDef>& metrics();
// The metric named `name`; nullptr when there is none.
const MetricDef* find_metric(const std::string& name);
// The metrics stored in `table` (one of MetricTables), in list order.
std::vector<const MetricDef*> metrics_in(unsigned table);
// "a, b, c": the names of `ms`.
std::string metric_names(const std::vector<const MetricDef*>& ms);
// ", a, b, c": the metric columns of `table` for an INSERT or SELECT, each prefixed by `prefix`
// ("" or "a."); empty when the table has none.
std::string metric_columns(unsigned table, const std::string& prefix = "");

// An attention row's value of an attention statistic (nullopt where the head has none).
std::optional<double> attn_value(const MetricDef& m, const AttnRow& row);

// The checkpoint-selection order: whether `a` beats `b` by the selection metrics in rank order
// (then the later step), and its text for checkpoints.selected_by: "exact_match>token_accuracy>
// -loss>step".
bool selection_better_by_metrics(const SelectionRow& a, const SelectionRow& b);
std::string selection_rule();

// Adds the column of every listed metric that `table` of `db` lacks ("NAME REAL" at the end; its
// earlier rows hold NULL): the upgrade step of a schema version that only adds metrics.
void add_missing_metric_columns(SQLite::Database& db);

}  // namespace lb
