#include "tools/plot_data.h"

#include <SQLiteCpp/SQLiteCpp.h>

#include <cmath>
#include <map>
#include <set>
#include <sstream>
#include <tuple>

#include "core/check.h"

namespace lb {

namespace {

std::string joined(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& s : items) out += (out.empty() ? "" : ", ") + s;
  return out;
}

}  // namespace

std::string head_filter_sql(const std::string& name) {
  const std::string heads = plot_heads_from_name(name);
  if (heads == "all") return "1";
  if (heads == "auto") {
    return "(a.head_kind LIKE 'nope%' OR NOT EXISTS (SELECT 1 FROM attn_stats n WHERE "
           "n.run_key = a.run_key AND n.ckpt = a.ckpt AND n.split = a.split AND "
           "n.length = a.length AND n.head_kind LIKE 'nope%'))";
  }
  if (heads.find('+') == std::string::npos) return "a.head_kind LIKE '" + heads + "%'";
  return "a.head_kind = '" + heads + "'";
}

namespace {

// The per-run value of the metric at one evaluation (NULL when there is none), read from its
// table. Attention statistics are averaged over the run's layers x chosen heads at that length.
std::string value_sql(PlotMetric m, const std::string& heads) {
  const MetricDef& d = m.def();
  const auto at = [](const char* t) {
    return std::string(" WHERE ") + t + ".run_key = v.run_key AND " + t + ".ckpt = v.ckpt AND " +
           t + ".split = v.split AND " + t + ".length = v.length";
  };
  if (d.tables & kInAttn) {
    return std::string("(SELECT AVG(a.") + d.name + ") FROM attn_stats a" + at("a") + " AND " +
           head_filter_sql(heads) + ")";
  }
  return std::string("(SELECT e.") + d.name + " FROM evals e" + at("e") + ")";
}

// What the database holds, for the error message of an empty selection.
std::string holdings(ResultsDb& db) {
  std::string out;
  for (const char* column : {"suite", "task", "split"}) {
    SQLite::Statement q(db.sql(), std::string("SELECT DISTINCT ") + column +
                                      " FROM v_evals WHERE ckpt = 'best' ORDER BY 1");
    std::vector<std::string> values;
    while (q.executeStep()) values.push_back(q.getColumn(0).getString());
    out += (out.empty() ? "" : "; ") + std::string(column) + "s " +
           (values.empty() ? std::string("none") : joined(values));
  }
  return out;
}

// Accumulates the runs' values of one series at one length.
struct PointAcc {
  std::vector<double> values;
  int64_t skipped = 0;
};

// (normalizer, position encoding, variant, lr as a number, lr as text): the series order.
using SeriesKey = std::tuple<std::string, std::string, std::string, double, std::string>;

struct FigureAcc {
  int64_t train_max_length = 0;
  std::set<double> lrs;
  std::set<std::string> variants;
  std::map<SeriesKey, std::map<int64_t, PointAcc>> series;
};

PlotPoint summarise(int64_t length, const PointAcc& acc, bool mean_protocol) {
  PlotPoint p;
  p.length = length;
  p.seeds = static_cast<int64_t>(acc.values.size());
  p.implied = acc.skipped == p.seeds;
  double sum = 0;
  for (double v : acc.values) sum += v;
  p.value = sum / static_cast<double>(p.seeds);
  p.sd = NAN;
  if (mean_protocol && p.seeds > 1) {
    double ss = 0;
    for (double v : acc.values) ss += (v - p.value) * (v - p.value);
    p.sd = std::sqrt(ss / static_cast<double>(p.seeds - 1));
  }
  return p;
}

}  // namespace

const MetricDef& PlotMetric::def() const {
  const MetricDef* m = find_metric(std::string(name));
  LB_CHECK(m && m->plotted, "PlotMetric '" << name << "' is not a plotted metric");
  return *m;
}

const std::vector<std::string>& plot_metric_names() {
  static const std::vector<std::string> kNames = [] {
    std::vector<std::string> out;
    for (const MetricDef& m : metrics()) {
      if (m.plotted) out.push_back(m.name);
    }
    return out;
  }();
  return kNames;
}

const char* plot_metric_name(PlotMetric m) { return m.def().name; }

PlotMetric plot_metric_from_name(const std::string& name) {
  const MetricDef* m = find_metric(name);
  if (m && m->plotted) return PlotMetric{m->name};
  throw UsageError("--metric '" + name + "' is not one of: " + joined(plot_metric_names()));
}

bool plot_metric_is_percent(PlotMetric m) { return m.def().percent; }

std::string plot_metric_title(PlotMetric m) { return m.def().title; }

std::string plot_heads_from_name(const std::string& name) {
  static const std::vector<std::string> kNames = {
      "auto", "all", "alibi", "nope", "rope", "alibi+scaled", "nope+scaled", "rope+scaled"};
  for (const auto& n : kNames) {
    if (n == name) return n;
  }
  throw UsageError("--heads '" + name + "' is not one of: " + joined(kNames));
}

TableProtocol plot_protocol_from_name(const std::string& name) {
  if (name == "mean") return TableProtocol::kMeanSd;
  if (name == "best") return TableProtocol::kBestOf;
  throw UsageError("--protocol '" + name + "' is not one of: mean, best");
}

const char* plot_protocol_name(TableProtocol p) {
  return p == TableProtocol::kMeanSd ? "mean" : "best";
}

std::vector<PlotFigure> plot_figures(ResultsDb& db, const PlotOptions& o) {
  const bool mean = o.protocol == TableProtocol::kMeanSd;
  // One row per finished run x length of the split, at the selected ("best") checkpoint; the
  // best protocol keeps the runs v_best_of chose (on their selection split) per variant.
  const std::string sql =
      "SELECT v.suite, v.task, v.normalizer, v.pos_encoding, v.lr, v.length, v.status, "
      "r.train_max_length, " +
      value_sql(o.metric, plot_heads_from_name(o.heads)) + ", v.variant" +
      " FROM v_evals v JOIN runs r ON r.key = v.run_key "
      "WHERE v.ckpt = 'best' AND v.split = ?3 AND (?1 = '' OR v.suite = ?1) "
      "AND (?2 = '' OR v.task = ?2)" +
      std::string(mean ? "" : " AND v.run_key IN (SELECT DISTINCT run_key FROM v_best_of)");
  SQLite::Statement q(db.sql(), sql);
  q.bind(1, o.suite);
  q.bind(2, o.task);
  q.bind(3, o.split);
  std::map<std::pair<std::string, std::string>, FigureAcc> figures;
  while (q.executeStep()) {
    FigureAcc& f = figures[{q.getColumn(0).getString(), q.getColumn(1).getString()}];
    const double lr = q.getColumn(4).getDouble();
    const SeriesKey key{q.getColumn(2).getString(), q.getColumn(3).getString(),
                        q.getColumn(9).getString(), mean ? lr : 0.0,
                        mean ? q.getColumn(4).getString() : std::string()};
    f.variants.insert(q.getColumn(9).getString());
    PointAcc& p = f.series[key][q.getColumn(5).getInt64()];
    f.train_max_length = std::max(f.train_max_length, q.getColumn(7).getInt64());
    f.lrs.insert(lr);
    if (q.getColumn(6).getString() == "skipped") {
      if (!o.metric.def().zero_when_skipped) continue;
      p.values.push_back(0.0);
      ++p.skipped;
    } else if (!q.getColumn(8).isNull()) {
      p.values.push_back(q.getColumn(8).getDouble());
    }
  }
  std::vector<PlotFigure> out;
  for (const auto& [names, acc] : figures) {
    PlotFigure fig;
    fig.suite = names.first;
    fig.task = names.second;
    fig.split = o.split;
    fig.protocol = o.protocol;
    fig.metric = o.metric;
    if (!plot_metric_is_percent(o.metric)) {
      fig.heads =
          o.heads == "auto" ? "NoPE heads (all heads where a run has none)" : o.heads + " heads";
    }
    fig.train_max_length = acc.train_max_length;
    for (const auto& [key, points] : acc.series) {
      PlotSeries s;
      s.normalizer = std::get<0>(key);
      s.pos_encoding = std::get<1>(key);
      s.variant = std::get<2>(key);
      s.lr = std::get<4>(key);
      s.label = s.normalizer + " / " + s.pos_encoding;
      const bool variants = acc.variants.size() > 1 || !acc.variants.begin()->empty();
      if (variants) s.label += " / " + (s.variant.empty() ? std::string("(none)") : s.variant);
      if (mean && acc.lrs.size() > 1) s.label += " / lr " + s.lr;
      for (const auto& [length, p] : points) {
        if (!p.values.empty()) s.points.push_back(summarise(length, p, mean));
      }
      if (!s.points.empty()) fig.series.push_back(std::move(s));
    }
    if (!fig.series.empty()) out.push_back(std::move(fig));
  }
  const auto named = [](const std::string& v) {
    return v.empty() ? std::string("any") : "'" + v + "'";
  };
  LB_REQUIRE(!out.empty(), "plot: nothing to plot in '"
                               << db.path() << "' for suite " << named(o.suite) << ", task "
                               << named(o.task) << ", split '" << o.split << "', metric '"
                               << plot_metric_name(o.metric) << "' (it holds: " << holdings(db)
                               << ")");
  return out;
}

}  // namespace lb
