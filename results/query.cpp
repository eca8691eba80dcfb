// `lengthbench query`: any read-only SQL over a results database, as a table, CSV or JSON.
#include <SQLiteCpp/SQLiteCpp.h>
#include <sqlite3.h>

#include <iomanip>
#include <memory>
#include <nlohmann/json.hpp>
#include <ostream>
#include <set>
#include <sstream>

#include "core/check.h"
#include "results/db.h"

namespace lb {

namespace {

// Blobs print as SQL hex literals (x'00ff'), in every format.
std::string blob_text(const SQLite::Column& c) {
  static const char* hex = "0123456789abcdef";
  const auto* p = static_cast<const unsigned char*>(c.getBlob());
  std::string out = "x'";
  for (int i = 0; i < c.getBytes(); ++i) {
    out += hex[p[i] >> 4];
    out += hex[p[i] & 15];
  }
  return out + "'";
}

// Default deny: a query may read tables and call functions, and run a few pragmas that only
// report (without a value to set); every write, ATTACH, DETACH, transaction, schema change or
// setting pragma is refused by SQLite before it runs.
int read_only_authorizer(void*, int action, const char* arg1, const char* arg2, const char*,
                         const char*) {
  switch (action) {
    case SQLITE_SELECT:
    case SQLITE_READ:
    case SQLITE_FUNCTION:
    case SQLITE_RECURSIVE:
      return SQLITE_OK;
    case SQLITE_PRAGMA: {
      static const std::set<std::string> reporting = {
          "table_info",     "table_xinfo",     "table_list",       "index_list",
          "index_info",     "index_xinfo",     "foreign_key_list", "user_version",
          "schema_version", "compile_options", "page_count",       "page_size",
          "function_list",  "pragma_list",     "collation_list",   "database_list"};
      const std::string name = arg1 ? arg1 : "";
      const bool with_value = arg2 != nullptr;
      const bool takes_table = name.find("_info") != std::string::npos ||
                               name.find("_list") != std::string::npos ||
                               name.find("_xinfo") != std::string::npos;
      return reporting.count(name) && (!with_value || takes_table) ? SQLITE_OK : SQLITE_DENY;
    }
    default:
      return SQLITE_DENY;
  }
}

// The one statement of `sql` prepared under the authorizer; more than one is refused (else
// "SELECT 1; DROP TABLE evals" would silently run only the first), as is any statement SQLite
// does not report read-only (VACUUM INTO has no authorizer action).
std::unique_ptr<SQLite::Statement> prepare_read_only(ResultsDb& db, const std::string& sql) {
  sqlite3* h = db.sql().getHandle();
  sqlite3_set_authorizer(h, read_only_authorizer, nullptr);
  std::unique_ptr<SQLite::Statement> q;
  try {
    q = std::make_unique<SQLite::Statement>(db.sql(), sql);
  } catch (const SQLite::Exception& e) {
    throw UsageError(std::string("query: ") + e.what() +
                     (e.getErrorCode() == SQLITE_AUTH ? " (query is read-only: SELECT only)" : ""));
  }
  // The same first statement, raw, for SQLite's own read-only verdict and the text after it.
  const char* tail = nullptr;
  sqlite3_stmt* first = nullptr;
  sqlite3_prepare_v2(h, sql.c_str(), static_cast<int>(sql.size()), &first, &tail);
  const bool read_only = sqlite3_stmt_readonly(first) != 0;
  sqlite3_finalize(first);
  const std::string rest = tail ? tail : "";
  // What follows the first statement must hold no statement (comments and blanks only).
  sqlite3_stmt* probe = nullptr;
  const int rc =
      sqlite3_prepare_v2(h, rest.c_str(), static_cast<int>(rest.size()), &probe, nullptr);
  sqlite3_finalize(probe);
  LB_REQUIRE(rc == SQLITE_OK && probe == nullptr,
             "query: give one statement; found more after the first: '" << rest << "'");
  LB_REQUIRE(read_only, "query: '" << sql << "' would write; query is read-only (SELECT only)");
  return q;
}

std::string cell_text(const SQLite::Column& c) {
  if (c.isNull()) return "NULL";
  if (c.isBlob()) return blob_text(c);
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
  std::unique_ptr<SQLite::Statement> q = prepare_read_only(db, sql);
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
          else if (c.isBlob())
            row[names[i]] = blob_text(c);
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
