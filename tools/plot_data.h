// The data behind `lengthbench plot`: per suite x task, one series per attention setup
// (normalizer x position encoding x suite variant, x lr when the mean protocol has several), one
// point per evaluation length, read from the results database's views. No drawing here
// (tools/svg_plot.h). Variants are never averaged together: each is its own series.
//
// Values are in the metric's own units (exact match and token accuracy as fractions). Per run
// and length the attention statistics are averaged over the layers x heads of the chosen head
// kind (`heads`: by default the NoPE heads, length-scaled under SSMax/ASEntmax, where the run has
// them, else every head; attn_stats.head_kind); the mean protocol then
// takes the mean and sample sd over seeds, the best protocol the single run `v_best_of` chose.
// An evaluation skipped after an earlier 0% length counts as exact match 0 (the table's "0*");
// for every other metric it has no value, and a length no seed has a value at has no point.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "results/db.h"
#include "results/metrics.h"
#include "tools/table.h"

namespace lb {

// A --metric choice: a plotted metric of results/metrics.h, by name. The constants are shorthands;
// every plotted entry of the list is a choice, with no change here.
struct PlotMetric {
  std::string_view name;  // a plotted metrics() name (plot_metric_from_name checks it)
  const MetricDef& def() const;
  friend bool operator==(PlotMetric a, PlotMetric b) { return a.name == b.name; }
  static const PlotMetric kExactMatch, kTokenAccuracy, kEntropyNorm, kSupport, kRelevantMass,
      kMaxWeight;
};
inline constexpr PlotMetric PlotMetric::kExactMatch{"exact_match"};
inline constexpr PlotMetric PlotMetric::kTokenAccuracy{"token_accuracy"};
inline constexpr PlotMetric PlotMetric::kEntropyNorm{"entropy_norm"};
inline constexpr PlotMetric PlotMetric::kSupport{"support"};
inline constexpr PlotMetric PlotMetric::kRelevantMass{"relevant_mass"};
inline constexpr PlotMetric PlotMetric::kMaxWeight{"max_weight"};

// Names as on the command line ("exact_match", ...): the plotted metrics, in list order.
const std::vector<std::string>& plot_metric_names();
const char* plot_metric_name(PlotMetric m);
// UsageError "--metric 'x' is not one of: exact_match, ..." for an unknown name.
PlotMetric plot_metric_from_name(const std::string& name);
// Shown in percent on a fixed 0-100 axis (exact match, token accuracy) or on its own axis.
bool plot_metric_is_percent(PlotMetric m);
// Axis title (MetricDef::title): "exact match (%)", "normalised entropy H/log n (mean over ...)"
std::string plot_metric_title(PlotMetric m);

// "mean" or "best"; UsageError naming the accepted ones otherwise.
TableProtocol plot_protocol_from_name(const std::string& name);
const char* plot_protocol_name(TableProtocol p);

// Which heads an attention statistic averages over: "auto" (NoPE heads where the run has them,
// else all), "all", a position kind ("alibi", "nope", "rope": scaled or not) or an exact
// head_kind ("nope+scaled"). UsageError for anything else.
std::string plot_heads_from_name(const std::string& name);
// The SQL condition on an attn_stats row aliased `a` that keeps the heads of a choice (validated).
std::string head_filter_sql(const std::string& heads);

struct PlotOptions {
  std::string suite, task;  // empty: all
  std::string split = "test";
  TableProtocol protocol = TableProtocol::kMeanSd;
  PlotMetric metric = PlotMetric::kExactMatch;
  std::string heads = "auto";  // attention statistics only (plot_heads_from_name)
};

struct PlotPoint {
  int64_t length = 0;
  double value = 0;   // mean over seeds (mean protocol) or the chosen run's value
  double sd = 0;      // sample sd over seeds; NaN with fewer than 2 seeds or the best protocol
  int64_t seeds = 0;  // runs contributing
  // Every run was skipped here: exact match 0 by the ladder rule, not measured.
  bool implied = false;
};

struct PlotSeries {
  std::string normalizer, pos_encoding, variant;
  std::string lr;  // the run's lr as SQLite prints it; empty for the best protocol
  // "normalizer / pos", plus " / VARIANT" for a suite with variants and " / lr X" when the
  // figure has several lrs
  std::string label;
  std::vector<PlotPoint> points;  // ascending length
};

struct PlotFigure {
  std::string suite, task, split;
  TableProtocol protocol = TableProtocol::kMeanSd;
  PlotMetric metric = PlotMetric::kExactMatch;
  std::string heads;               // attention statistics: the head kinds averaged; else ""
  int64_t train_max_length = 0;    // longest training length over the figure's runs
  std::vector<PlotSeries> series;  // by normalizer, position encoding, variant, lr (numeric)
};

// One figure per suite x task with at least one point, ordered by suite then task. An empty
// selection is a UsageError naming the filters and what the database holds.
std::vector<PlotFigure> plot_figures(ResultsDb& db, const PlotOptions& opts);

}  // namespace lb
