#include "tools/table.h"

#include <cmath>
#include <iomanip>
#include <map>
#include <set>
#include <sstream>
#include <vector>

#include <SQLiteCpp/SQLiteCpp.h>

namespace lb {

namespace {

struct Cell {
  double mean = NAN, sd = NAN;
  int64_t n = 0;
  bool skipped = false;
};

std::string percent(double v, int digits = 1) {
  std::ostringstream os;
  os << std::fixed << std::setprecision(digits) << 100 * v;
  return os.str();
}

std::string cell_text(const Cell& c, TableFormat f) {
  if (c.skipped) return "0*";
  if (std::isnan(c.mean)) return f == TableFormat::kLatex ? "--" : "—";
  std::string s = percent(c.mean);
  if (!std::isnan(c.sd) && c.n > 1) {
    s += f == TableFormat::kLatex ? " $\\pm$ " : f == TableFormat::kCsv ? " +- " : " ± ";
    s += percent(c.sd);
  }
  return s;
}

std::string multiple(int64_t length, int64_t train_max) {
  std::ostringstream os;
  const double m = static_cast<double>(length) / std::max<int64_t>(1, train_max);
  os << length << " (" << std::setprecision(3) << m << "×)";
  return os.str();
}

}  // namespace

int print_tables(ResultsDb& db, const TableOptions& o, std::ostream& out) {
  // Rows: (suite, task) -> (row label) -> length -> cell.
  const bool best = o.protocol == TableProtocol::kBestOf;
  const std::string sql =
      best ? "SELECT v.suite, v.task, v.normalizer, v.pos_encoding, '' AS lr, v.length, "
             "MAX(r.train_max_length), AVG(v.exact_match), NULL, COUNT(*), MAX(v.status = 'skipped') "
             "FROM v_best_of v JOIN runs r ON r.key = v.run_key "
             "WHERE (?1 = '' OR v.suite = ?1) AND (?2 = '' OR v.task = ?2) "
             "GROUP BY v.suite, v.task, v.normalizer, v.pos_encoding, v.length"
           : "SELECT v.suite, v.task, v.normalizer, v.pos_encoding, v.lr, v.length, "
             "MAX(r.train_max_length), AVG(v.exact_match), "
             "CASE WHEN COUNT(v.exact_match) > 1 THEN sqrt(MAX(0.0, (SUM(v.exact_match * v.exact_match) "
             "- COUNT(v.exact_match) * AVG(v.exact_match) * AVG(v.exact_match)) / (COUNT(v.exact_match) - 1))) END, "
             "COUNT(v.exact_match), MIN(v.status = 'skipped') "
             "FROM v_evals v JOIN runs r ON r.key = v.run_key "
             "WHERE v.ckpt = 'best' AND v.split = ?3 AND (?1 = '' OR v.suite = ?1) AND (?2 = '' OR v.task = ?2) "
             "GROUP BY v.suite, v.task, v.normalizer, v.pos_encoding, v.lr, v.length";
  SQLite::Statement q(db.sql(), sql);
  q.bind(1, o.suite);
  q.bind(2, o.task);
  if (!best) q.bind(3, o.split);
  std::map<std::pair<std::string, std::string>, std::map<std::string, std::map<int64_t, Cell>>> tables;
  std::map<std::pair<std::string, std::string>, std::set<int64_t>> lengths;
  std::map<std::pair<std::string, std::string>, int64_t> train_max;
  std::set<std::string> lrs;
  while (q.executeStep()) {
    const std::pair<std::string, std::string> t{q.getColumn(0).getString(), q.getColumn(1).getString()};
    const std::string lr = q.getColumn(4).isNull() ? "" : q.getColumn(4).getString();
    lrs.insert(lr);
    std::string label = q.getColumn(2).getString() + " / " + q.getColumn(3).getString();
    if (!best) label += " / lr " + lr;
    Cell c;
    c.mean = q.getColumn(7).isNull() ? NAN : q.getColumn(7).getDouble();
    c.sd = q.getColumn(8).isNull() ? NAN : q.getColumn(8).getDouble();
    c.n = q.getColumn(9).getInt64();
    c.skipped = q.getColumn(10).getInt() == 1;
    const int64_t L = q.getColumn(5).getInt64();
    tables[t][label][L] = c;
    lengths[t].insert(L);
    train_max[t] = q.getColumn(6).getInt64();
  }
  for (const auto& [t, rows] : tables) {
    std::vector<std::string> header = {"attention / position" + std::string(best ? "" : " / lr")};
    for (int64_t L : lengths[t]) header.push_back(multiple(L, train_max[t]));
    const std::string title = "Exact match (%) on " + t.second + ", suite " + t.first + ", " +
                              (best ? "best of seeds × learning rates (selected on validation)"
                                    : "mean ± sd over seeds") + "; " + o.split + " split";
    if (o.format == TableFormat::kLatex) {
      out << "% " << title << "\n\\begin{tabular}{l" << std::string(header.size() - 1, 'r') << "}\n\\toprule\n";
      for (size_t i = 0; i < header.size(); ++i) out << (i ? " & " : "") << header[i];
      out << " \\\\\n\\midrule\n";
    } else if (o.format == TableFormat::kCsv) {
      out << "# " << title << "\n";
      for (size_t i = 0; i < header.size(); ++i) out << (i ? "," : "") << header[i];
      out << "\n";
    } else {
      out << "**" << title << "**\n\n|";
      for (const auto& h : header) out << " " << h << " |";
      out << "\n|";
      for (size_t i = 0; i < header.size(); ++i) out << (i ? "---:|" : "---|");
      out << "\n";
    }
    for (const auto& [label, cells] : rows) {
      std::vector<std::string> row = {label};
      for (int64_t L : lengths[t]) {
        auto it = cells.find(L);
        row.push_back(cell_text(it == cells.end() ? Cell{} : it->second, o.format));
      }
      if (o.format == TableFormat::kLatex) {
        for (size_t i = 0; i < row.size(); ++i) out << (i ? " & " : "") << row[i];
        out << " \\\\\n";
      } else if (o.format == TableFormat::kCsv) {
        for (size_t i = 0; i < row.size(); ++i) out << (i ? "," : "") << row[i];
        out << "\n";
      } else {
        out << "|";
        for (const auto& c : row) out << " " << c << " |";
        out << "\n";
      }
    }
    if (o.format == TableFormat::kLatex) out << "\\bottomrule\n\\end{tabular}\n";
    out << (o.format == TableFormat::kMarkdown ? "\n0* = skipped after an earlier length scored 0.\n\n" : "\n");
  }
  return static_cast<int>(tables.size());
}

}  // namespace lb
