// `lengthbench query`, `merge`, `status`, `table` and `plot`: the results database from the
// command line.
#include <SQLiteCpp/SQLiteCpp.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>

#include "core/check.h"
#include "harness/command.h"
#include "harness/format.h"
#include "harness/suite.h"
#include "results/db.h"
#include "results/metrics.h"
#include "tasks/registry.h"
#include "tools/plot_data.h"
#include "tools/report.h"
#include "tools/svg_plot.h"
#include "tools/table.h"

namespace po = boost::program_options;

namespace lb {

namespace {

// The --metric help of `table` (plot false) and `plot`, from the metric list (results/metrics.h).
std::string metric_help(bool plot) {
  const std::string default_metric =
      plot ? std::string(PlotOptions{}.metric.name) : TableOptions{}.metric;
  std::string eval, attn;
  for (const MetricDef& m : metrics()) {
    if (!m.plotted) continue;
    std::string& list = m.tables & kInAttn ? attn : eval;
    list += (list.empty() ? "" : ", ") + std::string(m.name) +
            (m.name == default_metric ? " (default)" : "");
  }
  return plot ? eval + ", an attention statistic averaged over layers x heads: " + attn +
                    "; or loss (training curves)"
              : eval +
                    ": one row per setup (exact match with its 95% interval, others mean and "
                    "sd over seeds); or an attention statistic (" +
                    attn + "): one row per setup x head kind";
}

}  // namespace

int cmd_query(int argc, char** argv) {
  std::string db_path, sql;
  po::options_description opts("options");
  opts.add_options()
      ("db", po::value(&db_path), "results database")
      ("sql", po::value(&sql), "one SQL statement (read-only)");
  std::string format;
  add_format_options(opts, &format, {"text", "csv", "json"});
  po::positional_options_description pos;
  pos.add("db", 1).add("sql", 1);
  po::variables_map vm;
  if (!parse_command_line(argc, argv, "query RESULTS.sqlite \"SELECT ...\" [--format text|csv|json]", opts,
                          pos, vm)) {
    return 0;
  }
  LB_REQUIRE(!db_path.empty() && !sql.empty(), "query: give RESULTS.sqlite and an SQL statement");
  const std::string f = chosen_format(vm, format, {"text", "csv", "json"});
  ResultsDb db(db_path, ResultsDb::Mode::kReadOnly);
  print_query(db, sql,
              f == "csv" ? QueryFormat::kCsv : f == "json" ? QueryFormat::kJson : QueryFormat::kTable,
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

int cmd_upgrade(int argc, char** argv) {
  std::string db_path;
  po::options_description opts("options");
  opts.add_options()("db", po::value(&db_path), "results database");
  po::positional_options_description pos;
  pos.add("db", 1);
  po::variables_map vm;
  if (!parse_command_line(argc, argv, "upgrade RESULTS.sqlite", opts, pos, vm)) return 0;
  LB_REQUIRE(!db_path.empty(), "upgrade: give RESULTS.sqlite");
  int before = 0;
  {
    ResultsDb probe(db_path, ResultsDb::Mode::kReadWrite);  // upgrades in place when older
    before = probe.sql().execAndGet("SELECT coalesce((SELECT CAST(substr(key, 15) AS INTEGER) "
                                    "FROM meta WHERE key LIKE 'upgraded_from_%' "
                                    "ORDER BY value DESC LIMIT 1), 0)")
                 .getInt();
  }
  std::cout << db_path << ": schema version " << kSchemaVersion
            << (before ? " (upgraded from " + std::to_string(before) + ")" : "") << "\n";
  return 0;
}

int cmd_status(int argc, char** argv) {
  std::string db_path, suite_path;
  po::options_description opts("options");
  opts.add_options()
      ("db", po::value(&db_path), "results database")
      ("suite", po::value(&suite_path), "suite JSON: also list its runs not started yet")
      ("all", "list every run, done ones included");
  std::string format;
  add_format_options(opts, &format, {"text", "json"});
  po::positional_options_description pos;
  pos.add("db", 1).add("suite", 1);
  po::variables_map vm;
  if (!parse_command_line(argc, argv, "status RESULTS.sqlite [SUITE.json] [--all] [--format text|json]", opts, pos, vm)) {
    return 0;
  }
  LB_REQUIRE(!db_path.empty(), "status: give RESULTS.sqlite");
  const bool as_json = chosen_format(vm, format, {"text", "json"}) == "json";
  ResultsDb db(db_path, ResultsDb::Mode::kReadOnly);
  std::map<std::string, int64_t> counts;
  std::map<std::string, std::string> status_of;
  for (const auto& r : db.runs()) status_of[r.key] = r.status;
  std::vector<std::string> keys;
  if (!suite_path.empty()) {
    for (const auto& r : load_suite(suite_path).runs) keys.push_back(r.key);
  } else {
    for (const auto& [k, s] : status_of) keys.push_back(k);
  }
  std::map<std::string, std::string> errors;
  for (const auto& r : db.runs()) errors[r.key] = r.error;
  nlohmann::json runs_json = nlohmann::json::array();
  for (const auto& k : keys) {
    const auto it = status_of.find(k);
    const std::string st = it == status_of.end() ? "pending" : it->second == "running" ? "running/interrupted" : it->second;
    ++counts[st];
    if (as_json) {
      runs_json.push_back({{"key", k}, {"status", st}, {"error", errors[k]}});
    } else if (vm.count("all") || st != "done") {
      std::cout << st << "  " << k << (errors[k].empty() ? "" : "  error: " + errors[k]) << "\n";
    }
  }
  if (as_json) {
    nlohmann::json c = {{"done", counts["done"]},
                        {"running_or_interrupted", counts["running/interrupted"]},
                        {"failed", counts["failed"]}};
    if (!suite_path.empty()) c["pending"] = counts["pending"];
    std::cout << nlohmann::json({{"db", db_path}, {"counts", c}, {"runs", runs_json}}).dump(2)
              << "\n";
    return 0;
  }
  std::cout << counts["done"] << " done, " << counts["running/interrupted"]
            << " running or interrupted, " << counts["failed"] << " failed";
  if (!suite_path.empty()) std::cout << ", " << counts["pending"] << " pending";
  std::cout << "\n";
  return 0;
}

int cmd_table(int argc, char** argv) {
  std::string db_path, format, protocol = "mean";
  TableOptions o;
  po::options_description opts("options");
  opts.add_options()("db", po::value(&db_path), "results database")("suite", po::value(&o.suite),
                                                                    "only this suite")(
      "task", po::value(&o.task), "only this task")("split", po::value(&o.split),
                                                    "evaluation split (default test)")(
      "protocol", po::value(&protocol),
      "mean (over seeds with a 95% interval, per lr) or best (of seeds x lrs)")(
      "details", "show each run's selected checkpoint step")("metric", po::value(&o.metric),
                                                             metric_help(false).c_str())(
      "heads", po::value(&o.heads),
      "with an attention statistic: only these heads (alibi, nope, rope, nope+scaled, ...; "
      "default all kinds, each its own row)")(
      "paper", "add the paper's Table 1 rows (results/paper_table1.json) for the same tasks");
  const std::vector<std::string> formats = {"text", "md", "latex", "csv", "json"};  // text: Markdown
  add_format_options(opts, &format, formats);
  po::positional_options_description pos;
  pos.add("db", 1);
  po::variables_map vm;
  if (!parse_command_line(argc, argv,
                          "table RESULTS.sqlite [--suite S] [--task T] [--protocol mean|best] "
                          "[--format md|latex|csv|json] [--details] [--paper] "
                          "[--metric exact_match|entropy_norm|...] [--heads KIND]",
                          opts, pos, vm)) {
    return 0;
  }
  LB_REQUIRE(!db_path.empty(), "table: give RESULTS.sqlite");
  format = chosen_format(vm, format, formats);
  if (!o.task.empty()) find_task(o.task);  // an unknown name: exit 2 with did-you-mean
  LB_REQUIRE(protocol == "mean" || protocol == "best",
             "--protocol '" << protocol << "' is not one of: mean, best");
  o.format = format == "latex" ? TableFormat::kLatex
             : format == "csv"   ? TableFormat::kCsv
             : format == "json"  ? TableFormat::kJson
                                 : TableFormat::kMarkdown;
  o.details = vm.count("details") > 0;
  check_table_metric(o.metric);  // an unknown name: exit 2 naming the choices
  head_filter_sql(o.heads);      // likewise
  o.paper = vm.count("paper") > 0;
  o.protocol = protocol == "mean" ? TableProtocol::kMeanSd : TableProtocol::kBestOf;
  ResultsDb db(db_path, ResultsDb::Mode::kReadOnly);
  // Nothing matching is bad filter input, as for `plot`: exit 2.
  LB_REQUIRE(print_tables(db, o, std::cout) > 0,
             "table: no finished evaluations match in '"
                 << db_path << "' (suite " << (o.suite.empty() ? "any" : o.suite) << ", task "
                 << (o.task.empty() ? "any" : o.task) << ", split " << o.split << ")");
  return 0;
}

int cmd_plot(int argc, char** argv) {
  std::string db_path, out_dir, protocol = "mean", metric = "exact_match", ylim;
  PlotOptions o;
  po::options_description opts("options");
  opts.add_options()("db", po::value(&db_path), "results database")(
      "out", po::value(&out_dir), "folder for the SVG files and their index.md (created)")(
      "suite", po::value(&o.suite), "only this suite")(
      "task", po::value(&o.task), "only this task")("split", po::value(&o.split),
                                                    "evaluation split (default test)")(
      "protocol", po::value(&protocol), "mean (± sd over seeds, per lr) or best (of seeds x lrs)")(
      "metric", po::value(&metric), metric_help(true).c_str())(
      "ylim", po::value(&ylim),
      "LO:HI fixed y range in display units (e.g. 50:100 for percent); "
      "default automatic, zoomed in when every value sits in a narrow band")(
      "png", "also write PNG (rsvg-convert, Debian librsvg2-bin)")(
      "pdf", "also write PDF (rsvg-convert, Debian librsvg2-bin)")(
      "heads", po::value(&o.heads),
      "attention statistics over which heads: auto (default: the NoPE heads, length-scaled under "
      "SSMax/ASEntmax, else all), all, alibi, nope, rope, nope+scaled, ...");
  po::positional_options_description pos;
  pos.add("db", 1);
  po::variables_map vm;
  std::string metric_choices;
  for (const auto& name : plot_metric_names()) {
    metric_choices += (metric_choices.empty() ? "" : "|") + name;
  }
  const std::string usage =
      "plot RESULTS.sqlite --out DIR [--suite S] [--task T] [--split test] "
      "[--protocol mean|best] [--metric " +
      metric_choices +
      "|loss] [--ylim LO:HI] [--png] [--pdf] "
      "[--heads auto|all|alibi|nope|rope|nope+scaled]";
  if (!parse_command_line(argc, argv, usage.c_str(), opts, pos, vm)) {
    return 0;
  }
  LB_REQUIRE(!db_path.empty(), "plot: give RESULTS.sqlite");
  LB_REQUIRE(!out_dir.empty(), "plot: give --out DIR");
  if (!o.task.empty()) find_task(o.task);  // an unknown name: exit 2 with did-you-mean
  PlotFileOptions fo;
  fo.png = vm.count("png") > 0;
  fo.pdf = vm.count("pdf") > 0;
  if (!ylim.empty()) {
    const auto colon = ylim.find(':');
    LB_REQUIRE(colon != std::string::npos, "--ylim '" << ylim << "' is not of the form LO:HI");
    fo.svg.ymin = parse_double(ylim.substr(0, colon), "--ylim LO");
    fo.svg.ymax = parse_double(ylim.substr(colon + 1), "--ylim HI");
    LB_REQUIRE(fo.svg.ymin < fo.svg.ymax, "--ylim " << ylim << " needs LO < HI");
  }
  ResultsDb db(db_path, ResultsDb::Mode::kReadOnly);
  if (metric == "loss") {
    ReportOptions ro;
    ro.suite = o.suite, ro.task = o.task;
    std::error_code ec;
    std::filesystem::create_directories(out_dir, ec);
    LB_REQUIRE(std::filesystem::is_directory(out_dir), "--out '" << out_dir << "' cannot be created");
    for (const auto& [name, svg] : loss_figures(db, ro)) {
      const std::string path = out_dir + "/" + name;
      std::ofstream(path) << svg;
      std::cout << "wrote " << path << "\n";
      if (fo.png) std::cout << "wrote " << convert_svg(path, "png") << "\n";
      if (fo.pdf) std::cout << "wrote " << convert_svg(path, "pdf") << "\n";
    }
    return 0;
  }
  o.protocol = plot_protocol_from_name(protocol);
  o.metric = plot_metric_from_name(metric);
  o.heads = plot_heads_from_name(o.heads);
  for (const auto& path : write_plot_files(plot_figures(db, o), out_dir, fo)) {
    std::cout << "wrote " << path << "\n";
  }
  return 0;
}

}  // namespace lb
