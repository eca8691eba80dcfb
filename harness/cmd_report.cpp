// `lengthbench report`: one self-contained HTML page of a results database (tools/report.h).
#include <iostream>

#include "core/check.h"
#include "harness/command.h"
#include "results/db.h"
#include "tools/report.h"

namespace po = boost::program_options;

namespace lb {

int cmd_report(int argc, char** argv) {
  std::string db_path, out_dir;
  ReportOptions o;
  po::options_description opts("options");
  opts.add_options()("db", po::value(&db_path), "results database")(
      "out", po::value(&out_dir), "folder for index.html (created)")("suite", po::value(&o.suite),
                                                                     "only this suite")(
      "task", po::value(&o.task), "only this task")("split", po::value(&o.split),
                                                    "evaluation split (default test)");
  po::positional_options_description pos;
  pos.add("db", 1);
  po::variables_map vm;
  if (!parse_command_line(argc, argv, "report RESULTS.sqlite --out DIR [--suite S] [--task T]",
                          opts, pos, vm)) {
    return 0;
  }
  LB_REQUIRE(!db_path.empty(), "report: give RESULTS.sqlite");
  LB_REQUIRE(!out_dir.empty(), "report: give --out DIR");
  ResultsDb db(db_path, ResultsDb::Mode::kReadOnly);
  std::cout << "wrote " << write_report(db, o, out_dir) << "\n";
  return 0;
}

}  // namespace lb
