#include "tools/table.h"

#include <doctest/doctest.h>
#include <unistd.h>

#include <filesystem>
#include <sstream>

#include "results/testing.h"

using namespace lb;

namespace {

// A finished run with test exact match em64 at 64 and em512 at 512 (skipped when skip512).
void add_run(ResultsDb& db, const std::string& key, const std::string& norm, int64_t seed,
             double val, double em64, double em512, bool skip512) {
  testing::add_finished_run(db, key, norm, seed, 1e-3, val,
                            {{64, em64, 0, false}, {512, em512, 0, skip512}});
}

}  // namespace

TEST_CASE("table: mean ± sd over seeds and best-of, in Markdown, LaTeX and CSV") {
  const std::string path = (std::filesystem::temp_directory_path() /
                            ("lb_table_" + std::to_string(getpid()) + ".sqlite"))
                               .string();
  std::filesystem::remove(path);
  ResultsDb db(path, ResultsDb::Mode::kReadWrite);
  add_run(db, "a0", "softmax", 0, 0.1, 1.0, 0.0, true);
  add_run(db, "a1", "softmax", 1, 0.2, 0.5, 0.0, true);
  add_run(db, "b0", "asentmax", 0, 0.9, 1.0, 0.75, false);
  add_run(db, "b1", "asentmax", 1, 0.8, 0.8, 0.25, false);
  std::ostringstream md, tex, csv, best;
  TableOptions o;
  CHECK(print_tables(db, o, md) == 1);
  CHECK(md.str().find("| asentmax / nape / lr 0.001 | 90.0 ± 14.1 | 50.0 ± 35.4 |") !=
        std::string::npos);
  CHECK(md.str().find("| softmax / nape / lr 0.001 | 75.0 ± 35.4 | 0* |") != std::string::npos);
  CHECK(md.str().find("512 (8×)") != std::string::npos);
  o.format = TableFormat::kLatex;
  print_tables(db, o, tex);
  CHECK(tex.str().find("90.0 $\\pm$ 14.1") != std::string::npos);
  CHECK(tex.str().find("\\end{tabular}") != std::string::npos);
  o.format = TableFormat::kCsv;
  print_tables(db, o, csv);
  CHECK(csv.str().find("asentmax / nape / lr 0.001,90.0 +- 14.1,50.0 +- 35.4") !=
        std::string::npos);
  o.format = TableFormat::kMarkdown;
  o.protocol = TableProtocol::kBestOf;
  print_tables(db, o, best);
  CHECK(best.str().find("| asentmax / nape | 100.0 | 75.0 |") != std::string::npos);  // seed 0 wins
  CHECK(best.str().find("| softmax / nape | 50.0 | 0* |") != std::string::npos);      // seed 1 wins
  o.task = "sort";
  std::ostringstream none;
  CHECK(print_tables(db, o, none) == 0);
  std::filesystem::remove(path);
}
