// The metric list (results/metrics.h) against the schema, the writer and the selection rule.
#include "results/metrics.h"

#include <SQLiteCpp/SQLiteCpp.h>
#include <doctest/doctest.h>
#include <unistd.h>

#include <filesystem>
#include <set>

#include "results/db.h"
#include "results/testing.h"

using namespace lb;
namespace fs = std::filesystem;

namespace {

std::string temp_db(const std::string& tag) {
  const fs::path p = fs::temp_directory_path() /
                     ("lb_metrics_" + tag + "_" + std::to_string(getpid()) + ".sqlite");
  for (const char* ext : {"", "-wal", "-shm"}) fs::remove(p.string() + ext);
  return p.string();
}

void remove_db(const std::string& p) {
  for (const char* ext : {"", "-wal", "-shm"}) fs::remove(p + ext);
}

const std::pair<unsigned, const char*> kTables[] = {
    {kInEvals, "evals"}, {kInSelection, "selection_evals"}, {kInAttn, "attn_stats"}};

// name -> declared type of every column of `table`.
std::map<std::string, std::string> column_types(SQLite::Database& db, const std::string& table) {
  std::map<std::string, std::string> out;
  SQLite::Statement q(db, "SELECT name, type FROM pragma_table_info('" + table + "')");
  while (q.executeStep()) out[q.getColumn(0).getString()] = q.getColumn(1).getString();
  return out;
}

}  // namespace

TEST_CASE("metrics: every entry is complete, and names are unique") {
  std::set<std::string> names;
  for (const MetricDef& m : metrics()) {
    CAPTURE(m.name);
    CHECK(names.insert(m.name).second);
    CHECK(find_metric(m.name) == &m);
    CHECK(m.tables != 0);
    CHECK(std::string(m.description).size() > 0);
    CHECK(std::string(m.title).size() > 0);
    // Exactly the row fields of its tables are set.
    CHECK((m.eval != nullptr) == ((m.tables & kInEvals) != 0));
    CHECK((m.selection != nullptr) == ((m.tables & kInSelection) != 0));
    CHECK(((m.attn != nullptr) || (m.attn_optional != nullptr)) == ((m.tables & kInAttn) != 0));
    CHECK(!(m.attn && m.attn_optional));
    CHECK(((m.tables & kInAttn) == 0 || m.tables == kInAttn));  // per head, or per evaluation
    if (m.selection_rank > 0) CHECK((m.tables & kInSelection));
    if (m.reported) CHECK((m.plotted && m.tables == kInAttn));
    if (m.percent) CHECK(std::string(m.unit) == "fraction");
  }
  CHECK(find_metric("accuracy") == nullptr);
  // The plotted ones come first (help and error messages list them in this order).
  bool past = false;
  for (const MetricDef& m : metrics()) {
    if (!m.plotted) past = true;
    CHECK(!(past && m.plotted));
  }
}

TEST_CASE("metrics: the list and schema.sql name the same metric columns") {
  const std::string path = temp_db("schema");
  { ResultsDb db(path, ResultsDb::Mode::kReadWrite); }
  SQLite::Database db(path, SQLite::OPEN_READONLY);
  // Columns of these tables that are keys, counts or timings, not metrics.
  const std::set<std::string> not_metrics = {"run_key", "ckpt",   "step",    "split",
                                             "length",  "status", "samples", "seconds",
                                             "layer",   "head",   "queries", "head_kind"};
  for (const auto& [bit, table] : kTables) {
    CAPTURE(table);
    const auto types = column_types(db, table);
    for (const MetricDef* m : metrics_in(bit)) {
      CAPTURE(m->name);
      REQUIRE(types.count(m->name));
      CHECK(types.at(m->name) == "REAL");
    }
    for (const auto& [name, type] : types) {
      CAPTURE(name);
      if (!not_metrics.count(name)) {
        const MetricDef* m = find_metric(name);
        REQUIRE(m != nullptr);
        CHECK((m->tables & bit));
      }
    }
  }
  remove_db(path);
}

TEST_CASE("metrics: the writer stores every metric in its column, and reads selection back") {
  const std::string path = temp_db("write");
  {
    ResultsDb db(path, ResultsDb::Mode::kReadWrite);
    db.begin_run(testing::make_run("r", "softmax", 0, 1e-3), Provenance::current(1));
    EvalRow e;
    e.length = 64;
    e.samples = 10;
    AttnRow a;
    a.layer = 1;
    a.head = 2;
    a.head_kind = "nope";
    SelectionRow s;
    s.step = 7;
    s.length = 64;
    s.samples = 10;
    double v = 0.25;
    std::map<std::string, double> want;  // "table.metric" -> value
    for (const MetricDef& m : metrics()) {
      v += 0.125;
      if (m.eval) e.*m.eval = v, want[std::string("evals.") + m.name] = v;
      if (m.selection)
        s.*m.selection = v + 1, want[std::string("selection_evals.") + m.name] = v + 1;
      if (m.attn) a.*m.attn = v + 2;
      if (m.attn_optional) a.*m.attn_optional = v + 2;
      if (m.tables & kInAttn) want[std::string("attn_stats.") + m.name] = v + 2;
    }
    db.add_eval("r", e, {a});
    db.add_selection_eval("r", s);
    for (const auto& [bit, table] : kTables) {
      for (const MetricDef* m : metrics_in(bit)) {
        CAPTURE(m->name);
        const std::string key = std::string(table) + "." + m->name;
        CHECK(
            db.sql().execAndGet("SELECT " + std::string(m->name) + " FROM " + table).getDouble() ==
            want.at(key));
      }
    }
    const auto back = db.selection_evals("r");
    REQUIRE(back.size() == 1);
    for (const MetricDef* m : metrics_in(kInSelection))
      CHECK(back[0].*m->selection == s.*m->selection);
    // A skipped evaluation stores no metric; an absent optional statistic is NULL.
    e.length = 128;
    e.skipped = true;
    a.scale_p05.reset();
    db.add_eval("r", e, {a});
    for (const MetricDef* m : metrics_in(kInEvals)) {
      CAPTURE(m->name);
      CHECK(db.sql()
                .execAndGet("SELECT " + std::string(m->name) +
                            " IS NULL FROM evals WHERE length = 128")
                .getInt() == 1);
    }
    CHECK(db.sql()
              .execAndGet("SELECT scale_p05 IS NULL FROM attn_stats WHERE length = 128")
              .getInt() == 1);
  }
  remove_db(path);
}

TEST_CASE("metrics: selection compares exact match, then token accuracy, then lower loss") {
  CHECK(selection_rule() == "exact_match>token_accuracy>-loss>step");
  SelectionRow a, b;
  a.exact_match = b.exact_match = 0.5;
  a.token_accuracy = b.token_accuracy = 0.9;
  a.loss = 1.0, b.loss = 2.0;
  a.step = 1, b.step = 2;
  CHECK(selection_better_by_metrics(a, b));  // lower loss
  b.loss = 1.0;
  CHECK(selection_better_by_metrics(b, a));  // then the later step
  b.token_accuracy = 0.8;
  CHECK(selection_better_by_metrics(a, b));
  b.exact_match = 0.6;
  CHECK(selection_better_by_metrics(b, a));
}

TEST_CASE("metrics: an older table gets the metric columns it lacks, last, NULL in its rows") {
  const std::string path = temp_db("add");
  {
    SQLite::Database db(path, SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
    db.exec("CREATE TABLE evals(run_key TEXT, exact_match REAL)");
    db.exec("CREATE TABLE selection_evals(run_key TEXT)");
    db.exec("CREATE TABLE attn_stats(run_key TEXT, entropy REAL)");
    db.exec("INSERT INTO evals VALUES ('r', 0.5)");
    add_missing_metric_columns(db);
    add_missing_metric_columns(db);  // idempotent
    for (const auto& [bit, table] : kTables) {
      CAPTURE(table);
      std::string want = "run_key";
      for (const char* first : {"exact_match", "entropy"}) {
        if (find_metric(first)->tables & bit) want += std::string(",") + first;
      }
      for (const MetricDef* m : metrics_in(bit)) {
        if (std::string(m->name) != "exact_match" && std::string(m->name) != "entropy") {
          want += std::string(",") + m->name;
        }
      }
      CHECK(db.execAndGet(std::string("SELECT group_concat(name, ',') FROM pragma_table_info('") +
                          table + "')")
                .getString() == want);
    }
    CHECK(db.execAndGet("SELECT exact_match FROM evals").getDouble() == 0.5);
    CHECK(db.execAndGet("SELECT token_accuracy IS NULL FROM evals").getInt() == 1);
  }
  remove_db(path);
}
