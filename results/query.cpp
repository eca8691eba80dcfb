// `lengthbench query`: any read-only SQL over a results database, as a table, CSV or JSON.
#include <iomanip>
#include <ostream>
#include <sstream>

#include <SQLiteCpp/SQLiteCpp.h>
#include <nlohmann/json.hpp>

#include "harness/check.h"
#include "results/db.h"

namespace lb {

namespace {

std::string cell_text(const SQLite::Column& c) {
  if (c.isNull()) return "NULL";
  if (c.isFloat()) {
    std::ostringstream os;
    os << std::setprecision(6) << c.getDouble();
    return os.str();
  }
  return c.getString();
}

std::string csv_escape(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char ch : s) out += ch == '"' ? std::string("\"\"") : std::string(1, ch);
  return out + "\"";
}

}  // namespace

void print_query(ResultsDb& db, const std::string& sql, QueryFormat format, std::ostream& out) {
  std::unique_ptr<SQLite::Statement> q;
  try {
    q = std::make_unique<SQLite::Statement>(db.sql(), sql);
  } catch (const SQLite::Exception& e) {
    throw UsageError(std::string("query: ") + e.what());
  }
  const int n = q->getColumnCount();
  std::vector<std::string> names;
  for (int i = 0; i < n; ++i) names.push_back(q->getColumnName(i));
  std::vector<std::vector<std::string>> rows;
  try {
    while (q->executeStep()) {
      if (format == QueryFormat::kJson) {
        nlohmann::json row = nlohmann::json::object();
        for (int i = 0; i < n; ++i) {
          const SQLite::Column c = q->getColumn(i);
          if (c.isNull()) row[names[i]] = nullptr;
          else if (c.isInteger()) row[names[i]] = c.getInt64();
          else if (c.isFloat()) row[names[i]] = c.getDouble();
          else row[names[i]] = c.getString();
        }
        out << row.dump() << "\n";
        continue;
      }
      std::vector<std::string> row;
      for (int i = 0; i < n; ++i) row.push_back(cell_text(q->getColumn(i)));
      if (format == QueryFormat::kCsv) {
        if (rows.empty() && names.size()) {
          for (int i = 0; i < n; ++i) out << (i ? "," : "") << csv_escape(names[i]);
          out << "\n";
        }
        for (int i = 0; i < n; ++i) out << (i ? "," : "") << csv_escape(row[i]);
        out << "\n";
      }
      rows.push_back(std::move(row));
    }
  } catch (const SQLite::Exception& e) {
    throw UsageError(std::string("query: ") + e.what());
  }
  if (format != QueryFormat::kTable) return;
  std::vector<size_t> width(n);
  for (int i = 0; i < n; ++i) width[i] = names[i].size();
  for (const auto& r : rows) {
    for (int i = 0; i < n; ++i) width[i] = std::max(width[i], r[i].size());
  }
  auto line = [&](const std::vector<std::string>& r) {
    for (int i = 0; i < n; ++i) out << (i ? "  " : "") << std::left << std::setw(width[i]) << r[i];
    out << "\n";
  };
  line(names);
  std::vector<std::string> rule;
  for (int i = 0; i < n; ++i) rule.emplace_back(width[i], '-');
  line(rule);
  for (const auto& r : rows) line(r);
  out << "(" << rows.size() << " row" << (rows.size() == 1 ? "" : "s") << ")\n";
}

}  // namespace lb
