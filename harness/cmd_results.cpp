// `lengthbench query`, `merge` and `status`: the results database from the command line.
#include <iostream>
#include <map>

#include "harness/check.h"
#include "harness/command.h"
#include "results/db.h"

namespace po = boost::program_options;

namespace lb {

int cmd_query(int argc, char** argv) {
  std::string db_path, sql;
  po::options_description opts("options");
  opts.add_options()
      ("db", po::value(&db_path), "results database")
      ("sql", po::value(&sql), "one SQL statement (read-only)")
      ("csv", "print CSV")
      ("json", "print one JSON object per row");
  po::positional_options_description pos;
  pos.add("db", 1).add("sql", 1);
  po::variables_map vm;
  if (!parse_command_line(argc, argv, "query RESULTS.sqlite \"SELECT ...\" [--csv|--json]", opts,
                          pos, vm)) {
    return 0;
  }
  LB_REQUIRE(!db_path.empty() && !sql.empty(), "query: give RESULTS.sqlite and an SQL statement");
  LB_REQUIRE(!(vm.count("csv") && vm.count("json")), "query: choose one of --csv and --json");
  ResultsDb db(db_path, ResultsDb::Mode::kReadOnly);
  print_query(db, sql,
              vm.count("csv") ? QueryFormat::kCsv : vm.count("json") ? QueryFormat::kJson
                                                                     : QueryFormat::kTable,
              std::cout);
  return 0;
}

int cmd_merge(int argc, char** argv) {
  std::vector<std::string> paths;
  po::options_description opts("options");
  opts.add_options()("dbs", po::value(&paths)->multitoken(), "OUT.sqlite then the shards");
  po::positional_options_description pos;
  pos.add("dbs", -1);
  po::variables_map vm;
  if (!parse_command_line(argc, argv, "merge OUT.sqlite SHARD.sqlite...", opts, pos, vm)) return 0;
  LB_REQUIRE(paths.size() >= 2, "merge: give OUT.sqlite and at least one SHARD.sqlite");
  const std::vector<std::string> shards(paths.begin() + 1, paths.end());
  for (const auto& s : shards) LB_REQUIRE(s != paths[0], "merge: " << s << " is both output and shard");
  const MergeReport r = merge_databases(paths[0], shards);
  std::cout << "merged " << shards.size() << " shard(s) into " << paths[0] << ": " << r.runs_added
            << " runs added, " << r.runs_replaced << " replaced by finished copies, " << r.runs_same
            << " already present, " << r.conflicts.size() << " conflicts\n";
  for (const auto& c : r.conflicts) std::cout << "conflict: " << c << "\n";
  return r.conflicts.empty() ? 0 : 1;
}

int cmd_status(int argc, char** argv) {
  std::string db_path;
  po::options_description opts("options");
  opts.add_options()("db", po::value(&db_path), "results database")("all", "list every run");
  po::positional_options_description pos;
  pos.add("db", 1);
  po::variables_map vm;
  if (!parse_command_line(argc, argv, "status RESULTS.sqlite [--all]", opts, pos, vm)) return 0;
  LB_REQUIRE(!db_path.empty(), "status: give RESULTS.sqlite");
  ResultsDb db(db_path, ResultsDb::Mode::kReadOnly);
  std::map<std::string, int> counts;
  for (const auto& r : db.runs()) {
    ++counts[r.status];
    if (vm.count("all") || r.status != "done") {
      std::cout << r.status << "  " << r.key << (r.error.empty() ? "" : "  error: " + r.error) << "\n";
    }
  }
  std::cout << counts["done"] << " done, " << counts["running"] << " running or interrupted, "
            << counts["failed"] << " failed\n";
  return 0;
}

}  // namespace lb
