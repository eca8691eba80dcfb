#include "results/metrics.h"

#include <SQLiteCpp/SQLiteCpp.h>

#include <set>

#include "core/check.h"

namespace lb {

namespace {

using I = MetricInterval;

// The list. Plotted metrics first, in the order help text and error messages give them.
const std::vector<MetricDef> kMetrics = {
    // name, tables, description, title, unit, percent, higher_is_better, interval,
    // selection_rank, plotted, reported, then the fields that hold it.
    {"exact_match", kInEvals | kInSelection,
     "fraction of sequences whose whole target is right (the paper's metric)", "exact match (%)",
     "fraction", true, true, I::kWilson, 1, true, false, &EvalRow::exact_match,
     &SelectionRow::exact_match, nullptr, nullptr, /*zero_when_skipped=*/true},
    {"token_accuracy", kInEvals | kInSelection, "fraction of target tokens right",
     "token accuracy (%)", "fraction", true, true, I::kStudentT, 2, true, false,
     &EvalRow::token_accuracy, &SelectionRow::token_accuracy},
    {"entropy_norm", kInAttn, "attention entropy / log(keys visible)",
     "normalised entropy H/log n (mean over layers × heads)", "fraction", false, false,
     I::kStudentT, 0, true, true, nullptr, nullptr, &AttnRow::entropy_norm},
    {"support", kInAttn,
     "keys attended: non-zeros (dense normalizers: keys holding 99% of the mass)",
     "support, keys (mean over layers × heads)", "keys", false, false, I::kStudentT, 0, true, true,
     nullptr, nullptr, &AttnRow::support},
    {"relevant_mass", kInAttn, "attention mass on the task's relevant positions",
     "mass on relevant positions (mean over layers × heads)", "fraction", false, true, I::kStudentT,
     0, true, true, nullptr, nullptr, &AttnRow::relevant_mass},
    {"max_weight", kInAttn, "largest attention weight", "largest weight (mean over layers × heads)",
     "fraction", false, false, I::kStudentT, 0, true, false, nullptr, nullptr,
     &AttnRow::max_weight},
    {"edit_distance", kInEvals, "mean token-level Levenshtein distance to the target",
     "edit distance (tokens)", "edits", false, false, I::kStudentT, 0, false, false,
     &EvalRow::edit_distance},
    {"loss", kInSelection, "mean target-token cross-entropy under teacher forcing",
     "selection loss (nats)", "nats", false, false, I::kStudentT, 3, false, false, nullptr,
     &SelectionRow::loss},
    {"entropy", kInAttn, "attention entropy", "entropy, nats (mean over layers × heads)", "nats",
     false, false, I::kStudentT, 0, false, false, nullptr, nullptr, &AttnRow::entropy},
    {"scale_p05", kInAttn, "5th percentile of the SSMax/ASEntmax query length scale",
     "query scale, 5th percentile", "scale", false, false, I::kStudentT, 0, false, false, nullptr,
     nullptr, nullptr, &AttnRow::scale_p05},
    {"scale_p50", kInAttn, "median SSMax/ASEntmax query length scale", "query scale, median",
     "scale", false, false, I::kStudentT, 0, false, false, nullptr, nullptr, nullptr,
     &AttnRow::scale_p50},
    {"scale_p95", kInAttn, "95th percentile of the SSMax/ASEntmax query length scale",
     "query scale, 95th percentile", "scale", false, false, I::kStudentT, 0, false, false, nullptr,
     nullptr, nullptr, &AttnRow::scale_p95},
};

}  // namespace

const std::vector<MetricDef>& metrics() { return kMetrics; }

const MetricDef* find_metric(const std::string& name) {
  for (const MetricDef& m : kMetrics) {
    if (name == m.name) return &m;
  }
  return nullptr;
}

std::vector<const MetricDef*> metrics_in(unsigned table) {
  std::vector<const MetricDef*> out;
  for (const MetricDef& m : kMetrics) {
    if (m.tables & table) out.push_back(&m);
  }
  return out;
}

std::string metric_names(const std::vector<const MetricDef*>& ms) {
  std::string out;
  for (const MetricDef* m : ms) out += (out.empty() ? "" : ", ") + std::string(m->name);
  return out;
}

std::string metric_columns(unsigned table, const std::string& prefix) {
  std::string out;
  for (const MetricDef* m : metrics_in(table)) out += ", " + prefix + m->name;
  return out;
}

std::optional<double> attn_value(const MetricDef& m, const AttnRow& row) {
  if (m.attn) return row.*m.attn;
  LB_CHECK(m.attn_optional, "metric " << m.name << " is not an attention statistic");
  return row.*m.attn_optional;
}

namespace {

// The selection metrics in rank order.
std::vector<const MetricDef*> selection_metrics() {
  std::vector<const MetricDef*> out;
  for (int rank = 1;; ++rank) {
    const size_t before = out.size();
    for (const MetricDef& m : kMetrics) {
      if (m.selection_rank == rank) out.push_back(&m);
    }
    if (out.size() == before) return out;
  }
}

}  // namespace

bool selection_better_by_metrics(const SelectionRow& a, const SelectionRow& b) {
  for (const MetricDef* m : selection_metrics()) {
    const double x = a.*(m->selection), y = b.*(m->selection);
    if (x != y) return m->higher_is_better ? x > y : x < y;
  }
  return a.step > b.step;
}

std::string selection_rule() {
  std::string out;
  for (const MetricDef* m : selection_metrics()) {
    out += (m->higher_is_better ? "" : "-") + std::string(m->name) + ">";
  }
  return out + "step";
}

void add_missing_metric_columns(SQLite::Database& db) {
  for (const auto& [bit, table] : {std::pair<unsigned, const char*>{kInEvals, "evals"},
                                   {kInSelection, "selection_evals"},
                                   {kInAttn, "attn_stats"}}) {
    std::set<std::string> columns;
    SQLite::Statement q(db, std::string("SELECT name FROM pragma_table_info('") + table + "')");
    while (q.executeStep()) columns.insert(q.getColumn(0).getString());
    for (const MetricDef* m : metrics_in(bit)) {
      if (!columns.count(m->name)) {
        db.exec(std::string("ALTER TABLE ") + table + " ADD COLUMN " + m->name + " REAL");
      }
    }
  }
}

}  // namespace lb
