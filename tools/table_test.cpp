// `table`: variants kept apart, n and intervals in every table, skipped lengths counted as 0,
// tidy CSV/JSON (read back by Python's csv module), the best-of choice, --details and --paper.
#include "tools/table.h"

#include <SQLiteCpp/SQLiteCpp.h>
#include <doctest/doctest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/check.h"
#include "results/metrics.h"
#include "results/testing.h"

using namespace lb;
using testing::add_finished_run;
using testing::RunExtras;

namespace {

// A fresh database at a temporary path, removed by the destructor.
struct TempDb {
  std::string path;
  explicit TempDb(const std::string& tag)
      : path((std::filesystem::temp_directory_path() /
              ("lb_table_" + tag + "_" + std::to_string(getpid()) + ".sqlite"))
                 .string()) {
    std::filesystem::remove(path);
  }
  ~TempDb() { std::filesystem::remove(path); }
};

// A finished run with test exact match em64 at 64 and em512 at 512 (skipped when skip512).
void add_run(ResultsDb& db, const std::string& key, const std::string& norm, int64_t seed,
             double val, double em64, double em512, bool skip512, const RunExtras& x = {}) {
  add_finished_run(db, key, norm, seed, 1e-3, val, {{64, em64, 0, false}, {512, em512, 0, skip512}},
                   0.5, x);
}

std::string table(ResultsDb& db, TableOptions o) {
  std::ostringstream out;
  print_tables(db, o, out);
  return out.str();
}

bool has(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

}  // namespace

TEST_CASE("table: a skipped seed counts as 0 in the mean, marked; n and the interval shown") {
  TempDb t("skip");
  ResultsDb db(t.path, ResultsDb::Mode::kReadWrite);
  add_run(db, "a0", "softmax", 0, 0.1, 1.0, 0.0, true);   // skipped at 512
  add_run(db, "a1", "softmax", 1, 0.2, 0.5, 0.5, false);  // measured 50% at 512
  add_run(db, "b0", "asentmax", 0, 0.9, 1.0, 0.75, false);
  add_run(db, "b1", "asentmax", 1, 0.8, 0.8, 0.25, false);
  TableOptions o;
  const std::string md = table(db, o);
  CHECK(
      has(md, "mean over n = 2 seeds [95% interval: Student t over seeds]; 10 samples per length"));
  // Softmax at 512: (0 + 0.5) / 2 = 25%, not the 50% of the measured seed alone.
  CHECK(has(md, "| softmax / nape / lr 0.001 | 75.0 [0.0, 100.0] | 25.0* [0.0, 100.0] |"));
  // asentmax at 64: 0.9 ± 0.1414 → t(1) = 12.706: clipped to [0, 1]; bold best per column.
  CHECK(has(md, "| asentmax / nape / lr 0.001 | **90.0** [0.0, 100.0] | **50.0** [0.0, 100.0] |"));
  SQLite::Statement q(db.sql(),
                      "SELECT seeds, skipped_seeds, exact_match_mean FROM v_seed_summary "
                      "WHERE normalizer = 'softmax' AND split = 'test' AND length = 512");
  REQUIRE(q.executeStep());
  CHECK(q.getColumn(0).getInt() == 2);
  CHECK(q.getColumn(1).getInt() == 1);
  CHECK(q.getColumn(2).getDouble() == doctest::Approx(0.25));
  o.format = TableFormat::kLatex;
  const std::string tex = table(db, o);
  CHECK(has(tex, "\\textbf{90.0} [0.0, 100.0]"));
  CHECK(has(tex, "\\end{tabular}"));
}

TEST_CASE("table: two variants x one seed give two rows with n = 1 and Wilson intervals") {
  TempDb t("variants");
  ResultsDb db(t.path, ResultsDb::Mode::kReadWrite);
  add_run(db, "n0", "softmax", 0, 0.5, 1.0, 0.2, false, {"narrow"});
  add_run(db, "w0", "softmax", 0, 0.5, 0.5, 0.0, false, {"wide"});
  const std::string md = table(db, {});
  CHECK(has(md, "mean over n = 1 seed [95% interval: Wilson over samples]"));
  // Wilson over 10 samples: 100% -> [72.2, 100.0]; 50% -> [23.7, 76.3].
  CHECK(has(md, "| softmax / nape / narrow / lr 0.001 | **100.0** [72.2, 100.0] |"));
  CHECK(has(md, "| softmax / nape / wide / lr 0.001 | 50.0 [23.7, 76.3] |"));
  CHECK(db.sql()
            .execAndGet("SELECT count(*) FROM v_seed_summary WHERE split = 'test' "
                        "AND length = 64 AND seeds = 1")
            .getInt() == 2);
  // Best-of is per variant too.
  TableOptions o;
  o.protocol = TableProtocol::kBestOf;
  const std::string best = table(db, o);
  CHECK(has(best, "| softmax / nape / narrow | **100.0** [72.2, 100.0] |"));
  CHECK(has(best, "| softmax / nape / wide | 50.0 [23.7, 76.3] |"));
}

TEST_CASE("table: best of seeds breaks a 100% validation tie by the selection loss, not the key") {
  TempDb t("tie");
  ResultsDb db(t.path, ResultsDb::Mode::kReadWrite);
  // Both seeds score 100% on validation; seed 1's selected checkpoint has the lower loss.
  add_run(db, "s0", "entmax", 0, 1.0, 1.0, 0.1, false, {"", {{250, 0.05}}, -1});
  add_run(db, "s1", "entmax", 1, 1.0, 1.0, 0.6, false, {"", {{250, 0.09}, {1500, 0.01}}, -1});
  TableOptions o;
  o.protocol = TableProtocol::kBestOf;
  o.details = true;
  const std::string best = table(db, o);
  CHECK(has(best, "| entmax / nape | 100.0 [72.2, 100.0] | 60.0 [31.3, 83.2] | s1:1500/"));
  // --details in the mean protocol lists every seed's selected step.
  o.protocol = TableProtocol::kMeanSd;
  CHECK(has(table(db, o), "s0:250/"));
  CHECK(db.sql()
            .execAndGet("SELECT step FROM v_selection WHERE chosen AND run_key = 's1'")
            .getInt() == 1500);
}

TEST_CASE("table: tidy CSV and JSON, one row per setup x length, numeric columns") {
  TempDb t("csv");
  ResultsDb db(t.path, ResultsDb::Mode::kReadWrite);
  add_run(db, "a0", "softmax", 0, 0.1, 1.0, 0.0, true, {"v,1"});
  add_run(db, "a1", "softmax", 1, 0.2, 0.5, 0.5, false, {"v,1"});
  TableOptions o;
  o.format = TableFormat::kCsv;
  const std::string csv = table(db, o);
  std::istringstream lines(csv);
  std::string header, row;
  std::getline(lines, header);
  CHECK(header ==
        "source,suite,task,split,protocol,metric,normalizer,position,variant,heads,lr,length,"
        "length_mult,mean,sd,ci_low,ci_high,n_seeds,skipped_seeds,samples");
  int rows = 0;
  while (std::getline(lines, row)) ++rows;
  CHECK(rows == 2);
  CHECK(has(csv,
            "ours,s,copy,test,mean,exact_match,softmax,nape,\"v,1\",,0.001,512,8,0.25,0.353553,"));
  o.format = TableFormat::kJson;
  const auto j = nlohmann::json::parse(table(db, o));
  REQUIRE(j.size() == 2);
  CHECK(j[1]["mean"].get<double>() == doctest::Approx(0.25));
  CHECK(j[1]["n_seeds"].get<int>() == 2);
  CHECK(j[1]["skipped_seeds"].get<int>() == 1);
  CHECK(j[1]["variant"] == "v,1");

  // Python's csv module reads it back: every numeric column parses as a float.
  if (std::system("/usr/bin/python3 -c 'import csv' 2>/dev/null") != 0) {
    MESSAGE("python3 not available: the CSV round trip is skipped");
    return;
  }
  const std::string file = t.path + ".csv", script = t.path + ".py";
  std::ofstream(file) << csv;
  std::ofstream(script) << "import csv, sys\n"
                           "rows = list(csv.DictReader(open(sys.argv[1], newline='')))\n"
                           "assert len(rows) == 2, rows\n"
                           "for r in rows:\n"
                           "    for c in ('lr', 'length', 'length_mult', 'mean', 'sd', 'ci_low',\n"
                           "              'ci_high', 'n_seeds', 'skipped_seeds', 'samples'):\n"
                           "        float(r[c])\n"
                           "assert rows[1]['variant'] == 'v,1'\n"
                           "assert abs(float(rows[1]['mean']) - 0.25) < 1e-9\n";
  CHECK(std::system(("/usr/bin/python3 " + script + " " + file).c_str()) == 0);
  std::filesystem::remove(file);
  std::filesystem::remove(script);
}

TEST_CASE("table --metric: dispersion by head kind, never mixing ALiBi and NoPE heads") {
  TempDb t("heads");
  ResultsDb db(t.path, ResultsDb::Mode::kReadWrite);
  add_run(db, "a0", "softmax", 0, 0.1, 1.0, 0.5, false);  // entropy 0.5: alibi 0.4, nope 0.6
  add_finished_run(db, "a1", "softmax", 1, 1e-3, 0.2, {{64, 1, 1, false}, {512, 0.5, 1, false}},
                   0.7);
  TableOptions o;
  o.metric = "entropy_norm";
  const std::string md = table(db, o);
  CHECK(has(md, "| softmax / nape / lr 0.001 / alibi heads | 0.500 ± 0.141 | 0.500 ± 0.141 |"));
  CHECK(has(md, "| softmax / nape / lr 0.001 / nope+scaled heads | 0.700 ± 0.141 |"));
  o.heads = "nope";
  CHECK(!has(table(db, o), "alibi heads"));
  o.format = TableFormat::kJson;
  const auto j = nlohmann::json::parse(table(db, o));
  REQUIRE(j.size() == 2);
  CHECK(j[0]["heads"] == "nope+scaled");
  CHECK(j[0]["mean"].get<double>() == doctest::Approx(0.7));
}

TEST_CASE("table --paper: the paper's Table 1 cells beside ours, matched by multiple") {
  TempDb t("paper");
  ResultsDb db(t.path, ResultsDb::Mode::kReadWrite);
  // Copy, trained to 64: columns 64 (1x), 512 (8x), 2048 (32x).
  add_finished_run(db, "c0", "softmax", 0, 1e-3, 1.0,
                   {{64, 1.0, 1, false}, {512, 0.9, 1, false}, {2048, 0.5, 1, false}});
  add_finished_run(db, "c1", "asentmax", 0, 1e-3, 1.0,
                   {{64, 1.0, 1, false}, {512, 0.95, 1, false}, {2048, 0.7, 1, false}});
  TableOptions o;
  o.paper = true;
  const std::string md = table(db, o);
  CHECK(has(md, "| paper: softmax / nape | 100.0 | 99.9 | 96.1 |"));
  CHECK(has(md, "| paper: asentmax / nape | 100.0 | 99.7 | 96.3 |"));
  CHECK(has(md, "| paper: entmax / nape | 100.0 | 99.7 | 96.3 |"));
  CHECK(!has(md, "paper: topk"));  // no number for copy: left out
  CHECK(has(md, "arXiv 2506.16640"));
  CHECK(has(md, "best of 3 seeds"));
  o.paper = false;
  CHECK(!has(table(db, o), "paper:"));
  o.task = "sort";
  std::ostringstream none;
  CHECK(print_tables(db, o, none) == 0);
}

TEST_CASE("table --metric: every plotted metric; an evaluation metric is mean ± sd per setup") {
  TempDb t("metrics");
  ResultsDb db(t.path, ResultsDb::Mode::kReadWrite);
  add_finished_run(db, "a0", "softmax", 0, 1e-3, 0.1,
                   {{64, 1.0, 0.9, false}, {256, 0.5, 0.6, false}, {512, 0, 0, true}});
  add_finished_run(db, "a1", "softmax", 1, 1e-3, 0.2,
                   {{64, 0.5, 0.7, false}, {256, 0.4, 0.4, false}, {512, 0.1, 0.3, false}});
  TableOptions o;
  o.metric = "token_accuracy";
  const std::string md = table(db, o);
  // 64: (90% + 70%) / 2 ± sd 14.1; 512: one seed (the other was skipped, no value).
  CHECK(has(md, "| softmax / nape / lr 0.001 | 80.0 ± 14.1 | 50.0 ± 14.1 | 30.0 (n=1) |"));
  CHECK(has(md, "**token accuracy (%), on copy"));
  CHECK(!has(md, "head kind"));
  o.format = TableFormat::kCsv;
  CHECK(has(table(db, o), ",token_accuracy,softmax,nape,,,0.001,64,1,0.8,"));
  for (const std::string& name : table_metric_names()) {
    CAPTURE(name);
    CHECK(find_metric(name) != nullptr);
    o.metric = name;
    for (TableFormat f : {TableFormat::kMarkdown, TableFormat::kLatex, TableFormat::kJson}) {
      o.format = f;
      std::ostringstream out;
      CHECK(print_tables(db, o, out) == 1);
    }
  }
  CHECK_THROWS_AS(check_table_metric("edit"), UsageError);
  o.metric = "bogus";
  std::ostringstream out;
  CHECK_THROWS_AS(print_tables(db, o, out), UsageError);
}
