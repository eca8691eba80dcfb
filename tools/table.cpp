#include "tools/table.h"

#include <SQLiteCpp/SQLiteCpp.h>

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <tuple>
#include <vector>

#include "core/check.h"
#include "results/metrics.h"
#include "results/paper.h"
#include "tools/plot_data.h"

namespace lb {

namespace {

// One aggregate cell: exact match as a fraction.
struct Cell {
  double mean = NAN, sd = NAN, ci_low = NAN, ci_high = NAN;
  int64_t seeds = 0, skipped = 0, samples = 0;
  bool present() const { return seeds > 0 || !std::isnan(mean); }
};

// A table row: (source, normalizer, position, variant, lr as a number, lr as text, head kind;
// "" for exact match).
using RowKey = std::tuple<std::string, std::string, std::string, std::string, double, std::string,
                          std::string>;
constexpr const char* kOurs = "ours";
constexpr const char* kPaper = "paper";

struct Table {
  std::string suite, task;
  int64_t train_max = 0;
  std::set<int64_t> lengths;
  std::map<RowKey, std::map<int64_t, Cell>> rows;
  std::map<RowKey, std::string> steps;  // --details: "s0:250/1500 s1:1500/1500"
};

double column_or_nan(const SQLite::Column& c) { return c.isNull() ? NAN : c.getDouble(); }

std::string percent(double v, int digits = 1) {
  std::ostringstream os;
  os << std::fixed << std::setprecision(digits) << 100 * v;
  return os.str();
}

std::string number(double v) {
  if (std::isnan(v)) return "";
  std::ostringstream os;
  os << std::setprecision(6) << v;
  return os.str();
}

std::string multiple(int64_t length, int64_t train_max) {
  std::ostringstream os;
  const double m = static_cast<double>(length) / std::max<int64_t>(1, train_max);
  os << length << " (" << std::setprecision(3) << m << "×)";
  return os.str();
}

// The most frequent value of `values` (the smallest on a tie), or 0 when empty.
int64_t mode(const std::vector<int64_t>& values) {
  std::map<int64_t, int64_t> counts;
  for (int64_t v : values) ++counts[v];
  int64_t best = 0, best_count = 0;
  for (const auto& [v, c] : counts) {
    if (c > best_count) best = v, best_count = c;
  }
  return best;
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string q = "\"";
  for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

const MetricDef& table_metric(const TableOptions& o) {
  check_table_metric(o.metric);
  return *find_metric(o.metric);
}

// Mean ± sd over seeds (attention statistics per head kind, other metrics per setup), not a
// proportion with its interval from the views.
bool dispersion(const TableOptions& o) {
  return table_metric(o).interval != MetricInterval::kWilson;
}

bool per_head(const TableOptions& o) { return (table_metric(o).tables & kInAttn) != 0; }

// Reads every table of the selection.
std::map<std::pair<std::string, std::string>, Table> read_tables(ResultsDb& db,
                                                                 const TableOptions& o) {
  const bool best = o.protocol == TableProtocol::kBestOf;
  const std::string name = table_metric(o).name;
  // Per run x length (x head kind): the metric's value (attention statistics: the mean over the
  // run's layers x heads of that kind); skipped lengths have none.
  const std::string per_run =
      per_head(o)
          ? "SELECT suite, task, normalizer, pos_encoding, variant, lr, run_key, length, "
            "length_mult, head_kind, AVG(a." +
                name +
                ") AS v FROM v_attn a WHERE ckpt = 'best' AND split = ?3 AND (?1 = '' OR suite = "
                "?1) "
                "AND (?2 = '' OR task = ?2) AND " +
                head_filter_sql(o.heads) +
                (best ? " AND run_key IN (SELECT run_key FROM v_best_of)" : "") +
                " GROUP BY run_key, length, head_kind"
          : "SELECT v.suite, v.task, v.normalizer, v.pos_encoding, v.variant, v.lr, v.run_key, "
            "v.length, v.length_mult, '' AS head_kind, e." +
                name +
                " AS v FROM v_evals v JOIN evals e ON e.run_key = v.run_key AND e.ckpt = v.ckpt "
                "AND e.split = v.split AND e.length = v.length WHERE v.ckpt = 'best' AND v.split "
                "= ?3 AND e." +
                name + " IS NOT NULL AND (?1 = '' OR v.suite = ?1) AND (?2 = '' OR v.task = ?2)" +
                (best ? " AND v.run_key IN (SELECT run_key FROM v_best_of)" : "");
  // A proportion (MetricInterval::kWilson) reads its view columns NAME_mean, NAME_ci_low, ...
  const std::string sql =
      dispersion(o)
          // The mean and sample sd over seeds (best protocol: the one run v_best_of chose).
          ? "WITH per_run AS (" + per_run +
                ") "
                "SELECT suite, task, normalizer, pos_encoding, variant, lr, length, length_mult, "
                "AVG(v), "
                "CASE WHEN COUNT(*) > 1 THEN sqrt(MAX(0.0, (SUM(v * v) - COUNT(*) * AVG(v) * "
                "AVG(v)) "
                "/ (COUNT(*) - 1))) END, NULL, NULL, COUNT(*), 0, 0, head_kind FROM per_run "
                "GROUP BY suite, task, normalizer, pos_encoding, variant, lr, head_kind, length"
          : best ? "SELECT suite, task, normalizer, pos_encoding, variant, lr, length, "
                   "length_mult, " +
                       name + "_or_0, NULL, " + name + "_ci_low, " + name +
                       "_ci_high, 1, "
                       "status = 'skipped', samples, '' FROM v_best_of "
                       "WHERE (?1 = '' OR suite = ?1) AND (?2 = '' OR task = ?2)"
                 : "SELECT suite, task, normalizer, pos_encoding, variant, lr, length, "
                   "length_mult, " +
                       name + "_mean, " + name + "_sd, " + name + "_ci_low, " + name +
                       "_ci_high, seeds, skipped_seeds, samples, '' FROM v_seed_summary "
                       "WHERE ckpt = 'best' AND split = ?3 AND (?1 = '' OR suite = ?1) "
                       "AND (?2 = '' OR task = ?2)";
  SQLite::Statement q(db.sql(), sql);
  q.bind(1, o.suite);
  q.bind(2, o.task);
  if (!best || dispersion(o)) q.bind(3, o.split);
  std::map<std::pair<std::string, std::string>, Table> tables;
  while (q.executeStep()) {
    Table& t = tables[{q.getColumn(0).getString(), q.getColumn(1).getString()}];
    t.suite = q.getColumn(0).getString();
    t.task = q.getColumn(1).getString();
    const RowKey key{kOurs,
                     q.getColumn(2).getString(),
                     q.getColumn(3).getString(),
                     q.getColumn(4).getString(),
                     q.getColumn(5).getDouble(),
                     q.getColumn(5).getString(),
                     q.getColumn(15).getString()};
    const int64_t L = q.getColumn(6).getInt64();
    Cell c;
    c.mean = column_or_nan(q.getColumn(8));
    c.sd = column_or_nan(q.getColumn(9));
    c.ci_low = column_or_nan(q.getColumn(10));
    c.ci_high = column_or_nan(q.getColumn(11));
    c.seeds = q.getColumn(12).getInt64();
    c.skipped = q.getColumn(13).getInt64();
    c.samples = q.getColumn(14).getInt64();
    t.rows[key][L] = c;
    t.lengths.insert(L);
    t.train_max = std::llround(static_cast<double>(L) / q.getColumn(7).getDouble());
  }
  if (o.details) {
    // The selected ("best") checkpoint of every run in the rows: "sSEED:STEP/STEPS".
    SQLite::Statement s(db.sql(),
                        "SELECT r.suite, r.task, r.normalizer, r.pos_encoding, r.variant, r.lr, "
                        "r.seed, c.step, json_extract(r.config_json, '$.train.steps') "
                        "FROM runs r JOIN checkpoints c ON c.run_key = r.key AND c.ckpt = 'best' "
                        "WHERE r.status = 'done' AND (?2 = 0 OR r.key IN "
                        "(SELECT run_key FROM v_best_of)) ORDER BY r.seed");
    s.bind(2, best ? 1 : 0);
    while (s.executeStep()) {
      const auto it = tables.find({s.getColumn(0).getString(), s.getColumn(1).getString()});
      if (it == tables.end()) continue;
      for (const auto& [key, cells] : it->second.rows) {
        if (std::get<1>(key) != s.getColumn(2).getString() ||
            std::get<2>(key) != s.getColumn(3).getString() ||
            std::get<3>(key) != s.getColumn(4).getString() ||
            std::get<5>(key) != s.getColumn(5).getString()) {
          continue;
        }
        std::string& text = it->second.steps[key];
        text += (text.empty() ? "" : " ") + std::string("s") + s.getColumn(6).getString() + ":" +
                s.getColumn(7).getString() + "/" + s.getColumn(8).getString();
      }
    }
  }
  return tables;
}

// Adds the paper's rows for the table's task, matched by multiple of the training length.
void add_paper_rows(Table& t, const nlohmann::json& paper) {
  const auto& tasks = paper.at("tasks");
  if (!tasks.contains(t.task)) return;
  const auto& task = tasks.at(t.task);
  const auto& multiples = task.at("multiples");
  for (const auto& [name, values] : task.at("rows").items()) {
    std::map<int64_t, Cell> row;
    bool any = false;
    for (int64_t L : t.lengths) {
      const double m = static_cast<double>(L) / std::max<int64_t>(1, t.train_max);
      Cell c;
      for (size_t i = 0; i < multiples.size(); ++i) {
        if (std::fabs(multiples[i].get<double>() - m) < 1e-9 && !values[i].is_null()) {
          c.mean = values[i].get<double>() / 100;
          any = true;
        }
      }
      row[L] = c;
    }
    if (any)
      t.rows[RowKey{kPaper, name, "nape", "", 0.0, "", ""}] = row;  // rows with no cell: left out
  }
}

std::string row_label(const RowKey& k, bool with_variant, bool with_lr) {
  if (std::get<0>(k) == kPaper) return "paper: " + std::get<1>(k) + " / nape";
  std::string s = std::get<1>(k) + " / " + std::get<2>(k);
  if (with_variant) s += " / " + (std::get<3>(k).empty() ? std::string("(none)") : std::get<3>(k));
  if (with_lr) s += " / lr " + std::get<5>(k);
  if (!std::get<6>(k).empty()) s += " / " + std::get<6>(k) + " heads";
  return s;
}

// dispersion: "mean ± sd" (a percent metric's in % with one decimal, others with three).
std::string cell_text(const Cell& c, TableFormat f, bool bold, int64_t common_seeds, bool paper,
                      bool dispersion, bool in_percent) {
  const bool latex = f == TableFormat::kLatex;
  if (!c.present() || std::isnan(c.mean)) return latex ? "--" : "—";
  if (dispersion) {
    std::ostringstream os;
    const double scale = in_percent ? 100 : 1;
    os << std::fixed << std::setprecision(in_percent ? 1 : 3) << scale * c.mean;
    if (!std::isnan(c.sd)) os << (latex ? " $\\pm$ " : " ± ") << scale * c.sd;
    if (c.seeds != common_seeds) os << " (n=" << c.seeds << ")";
    return os.str();
  }
  if (c.skipped > 0 && c.skipped == c.seeds)
    return bold ? (latex ? "\\textbf{0*}" : "**0***") : "0*";
  std::string m = percent(c.mean) + (c.skipped > 0 ? "*" : "");
  if (bold) m = latex ? "\\textbf{" + m + "}" : "**" + m + "**";
  if (paper) return m;
  if (!std::isnan(c.ci_low) && !std::isnan(c.ci_high)) {
    m += " [" + percent(c.ci_low) + ", " + percent(c.ci_high) + "]";
  }
  if (c.seeds != common_seeds) m += " (n=" + std::to_string(c.seeds) + ")";
  return m;
}

void print_tidy(const std::vector<Table>& tables, const TableOptions& o, std::ostream& out) {
  const bool best = o.protocol == TableProtocol::kBestOf;
  const std::vector<std::string> columns = {
      "source",   "suite",   "task",    "split",   "protocol",      "metric",      "normalizer",
      "position", "variant", "heads",   "lr",      "length",        "length_mult", "mean",
      "sd",       "ci_low",  "ci_high", "n_seeds", "skipped_seeds", "samples"};
  constexpr size_t kFirstNumeric = 10;  // lr onwards
  nlohmann::json rows = nlohmann::json::array();
  if (o.format == TableFormat::kCsv) {
    for (size_t i = 0; i < columns.size(); ++i) out << (i ? "," : "") << columns[i];
    out << (o.details ? ",selected_steps" : "") << "\n";
  }
  for (const Table& t : tables) {
    for (const auto& [key, cells] : t.rows) {
      const bool paper = std::get<0>(key) == kPaper;
      for (const auto& [L, c] : cells) {
        if (!c.present() && !paper) continue;
        const double mult = static_cast<double>(L) / std::max<int64_t>(1, t.train_max);
        const std::vector<std::string> text = {std::get<0>(key),
                                               paper ? "paper" : t.suite,
                                               t.task,
                                               paper ? "test" : (best ? "test" : o.split),
                                               paper ? "best" : (best ? "best" : "mean"),
                                               o.metric,
                                               std::get<1>(key),
                                               std::get<2>(key),
                                               std::get<3>(key),
                                               std::get<6>(key),
                                               std::get<5>(key),
                                               std::to_string(L),
                                               number(mult),
                                               number(c.mean),
                                               number(c.sd),
                                               number(c.ci_low),
                                               number(c.ci_high),
                                               paper ? "" : std::to_string(c.seeds),
                                               paper ? "" : std::to_string(c.skipped),
                                               paper ? "" : std::to_string(c.samples)};
        if (o.format == TableFormat::kCsv) {
          for (size_t i = 0; i < text.size(); ++i) out << (i ? "," : "") << csv_field(text[i]);
          if (o.details) {
            const auto it = t.steps.find(key);
            out << "," << csv_field(it == t.steps.end() ? "" : it->second);
          }
          out << "\n";
        } else {
          nlohmann::json j;
          for (size_t i = 0; i < columns.size(); ++i) {
            const bool numeric = i >= kFirstNumeric;
            if (!numeric)
              j[columns[i]] = text[i];
            else if (text[i].empty())
              j[columns[i]] = nullptr;
            else
              j[columns[i]] = std::stod(text[i]);
          }
          if (o.details) {
            const auto it = t.steps.find(key);
            j["selected_steps"] = it == t.steps.end() ? "" : it->second;
          }
          rows.push_back(j);
        }
      }
    }
  }
  if (o.format == TableFormat::kJson) out << rows.dump(1) << "\n";
}

}  // namespace

const std::vector<std::string>& table_metric_names() { return plot_metric_names(); }

void check_table_metric(const std::string& name) {
  const auto& names = table_metric_names();
  if (std::find(names.begin(), names.end(), name) != names.end()) return;
  std::string list;
  for (const auto& n : names) list += (list.empty() ? "" : ", ") + n;
  throw UsageError("--metric '" + name + "' is not one of: " + list);
}

int print_tables(ResultsDb& db, const TableOptions& o, std::ostream& out) {
  const bool best = o.protocol == TableProtocol::kBestOf;
  auto read = read_tables(db, o);
  const nlohmann::json paper = nlohmann::json::parse(paper_table1_json());
  std::vector<Table> tables;
  for (auto& [k, t] : read) {
    // The paper's rows are of one metric ("exact_match_percent": exact_match in %).
    if (o.paper && paper.at("metric").get<std::string>() == o.metric + "_percent") {
      add_paper_rows(t, paper);
    }
    tables.push_back(std::move(t));
  }
  if (o.format == TableFormat::kCsv || o.format == TableFormat::kJson) {
    if (!tables.empty()) print_tidy(tables, o, out);
    return static_cast<int>(tables.size());
  }
  const bool latex = o.format == TableFormat::kLatex;
  for (const Table& t : tables) {
    std::set<std::string> lrs, variants;
    std::vector<int64_t> seeds, samples;
    std::map<int64_t, double> best_mean, worst_mean;  // per column, over our rows
    for (const auto& [key, cells] : t.rows) {
      if (std::get<0>(key) == kPaper) continue;
      lrs.insert(std::get<5>(key));
      variants.insert(std::get<3>(key));
      for (const auto& [L, c] : cells) {
        seeds.push_back(c.seeds);
        if (c.skipped < c.seeds) samples.push_back(c.samples);
        if (!std::isnan(c.mean)) {
          auto it = best_mean.find(L);
          if (it == best_mean.end() || c.mean > it->second) best_mean[L] = c.mean;
          auto jt = worst_mean.find(L);
          if (jt == worst_mean.end() || c.mean < jt->second) worst_mean[L] = c.mean;
        }
      }
    }
    const int64_t ours = static_cast<int64_t>(
        t.rows.size() - std::count_if(t.rows.begin(), t.rows.end(), [](const auto& r) {
          return std::get<0>(r.first) == kPaper;
        }));
    const bool with_variant =
        variants.size() > 1 || (variants.size() == 1 && !variants.begin()->empty());
    const bool with_lr = !best;
    const int64_t n = mode(seeds), per_length = mode(samples);
    std::vector<std::string> header = {"attention / position" +
                                       std::string(with_variant ? " / variant" : "") +
                                       std::string(with_lr ? " / lr" : "")};
    for (int64_t L : t.lengths) header.push_back(multiple(L, t.train_max));
    if (o.details) header.push_back("selected step (seed:step/steps)");
    const std::string title =
        dispersion(o)
            ? std::string(table_metric(o).title) + (per_head(o) ? " by head kind" : "") + ", on " +
                  t.task + ", suite " + t.suite + ", " +
                  (best ? std::string("the best-of run per row") : "mean ± sd over seeds") +
                  ", n = " + std::to_string(n) + " seed" + (n == 1 ? "" : "s") + "; " + o.split +
                  " split"
            : "Exact match (%) on " + t.task + ", suite " + t.suite + ", " +
                  (best ? "best of seeds × learning rates (selected on validation), one run per "
                          "row, "
                          "[95% Wilson interval over its samples]"
                        : "mean over n = " + std::to_string(n) + " seed" + (n == 1 ? "" : "s") +
                              " [95% interval: " +
                              (n == 1 ? std::string("Wilson over samples")
                                      : "Student t over seeds") +
                              "]") +
                  "; " + std::to_string(per_length) + " samples per length; " +
                  (best ? "test" : o.split) + " split";
    if (latex) {
      out << "% " << title << "\n\\begin{tabular}{l" << std::string(header.size() - 1, 'r')
          << "}\n\\toprule\n";
      for (size_t i = 0; i < header.size(); ++i) out << (i ? " & " : "") << header[i];
      out << " \\\\\n\\midrule\n";
    } else {
      out << "**" << title << "**\n\n|";
      for (const auto& h : header) out << " " << h << " |";
      out << "\n|";
      for (size_t i = 0; i < header.size(); ++i) out << (i ? "---:|" : "---|");
      out << "\n";
    }
    bool paper_rule = false;
    for (const auto& [key, cells] : t.rows) {
      const bool paper = std::get<0>(key) == kPaper;
      if (paper && !paper_rule && latex) out << "\\midrule\n";
      paper_rule = paper_rule || paper;
      std::vector<std::string> row = {row_label(key, with_variant, with_lr)};
      for (int64_t L : t.lengths) {
        auto it = cells.find(L);
        const Cell c = it == cells.end() ? Cell{} : it->second;
        // Bold where the column has a best: not when every row of ours has the same mean.
        const bool bold = !paper && ours > 1 && !std::isnan(c.mean) && best_mean.count(L) &&
                          c.mean == best_mean[L] && best_mean[L] > worst_mean[L];
        row.push_back(cell_text(c, o.format, bold && !dispersion(o), n, paper, dispersion(o),
                                table_metric(o).percent));
      }
      if (o.details) {
        const auto it = t.steps.find(key);
        row.push_back(it == t.steps.end() ? "" : it->second);
      }
      if (latex) {
        for (size_t i = 0; i < row.size(); ++i) out << (i ? " & " : "") << row[i];
        out << " \\\\\n";
      } else {
        out << "|";
        for (const auto& c : row) out << " " << c << " |";
        out << "\n";
      }
    }
    if (latex) out << "\\bottomrule\n\\end{tabular}\n";
    const std::string note =
        dispersion(o)
            ? std::string(per_head(o)
                              ? "Each head kind is its own row (alibi, nope, rope; +scaled: "
                                "SSMax/ASEntmax query length scaling); "
                              : "") +
                  "(n=K): a cell with another number of seeds."
            : "Bold: the best mean per column. * = includes seeds skipped after an earlier 0% "
              "length, "
              "counted as 0 (0* = all skipped); (n=K): a cell with another number of seeds.";
    out << (latex ? "% " : "\n") << note << "\n";
    if (paper_rule) {
      out << (latex ? "% " : "") << "Paper rows: " << paper.at("source").get<std::string>()
          << " Protocol: " << paper.at("protocol").get<std::string>()
          << ". Matched by multiple of the longest training length (ours: " << t.train_max
          << "; the paper's: " << paper.at("train_length").get<int64_t>() << ").\n";
    }
    out << "\n";
  }
  return static_cast<int>(tables.size());
}

}  // namespace lb
