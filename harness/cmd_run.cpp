// `lengthbench run` (a suite into a results database) and `lengthbench slurm` (an sbatch array
// script that runs the shards of a suite, then merges them).
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <map>
#include <memory>
#include <thread>

#include "core/check.h"
#include "harness/command.h"
#include "harness/jobs.h"
#include "harness/overrides.h"
#include "harness/run.h"
#include "harness/suite.h"
#include "models/dnnl_util.h"

namespace po = boost::program_options;
namespace fs = std::filesystem;

namespace lb {

namespace {

// Assumed sustained rate for --dry-run estimates: fp32 oneDNN matmuls on one core reach about
// 50-100 GFLOP/s here; the estimate says which rate it used.
constexpr double kAssumedGflopsPerThread = 40.0;

}  // namespace

int cmd_run(int argc, char** argv) {
  std::string suite_path, db_path, filter, shard, checkpoints;
  std::vector<std::string> sets;
  double progress_every = 30;
  int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  int jobs = 1, threads_per_run = 0;
  po::options_description opts("options");
  opts.add_options()
      ("suite", po::value(&suite_path), "suite JSON file")
      ("db", po::value(&db_path), "results database (created if missing)")
      ("filter", po::value(&filter), "only runs whose key matches this regular expression")
      ("shard", po::value(&shard), "i/n: only shard i of n (each shard writes its own database)")
      ("threads", po::value(&threads), "threads per run; alone (no --jobs), one run at a time "
                                       "in this process")
      ("jobs", po::value(&jobs), "runs at once, one process each, each into its own shard "
                                 "(DB.shards/), merged into DB as it ends; 1: one at a time in this "
                                 "process (default: one per CPU, at most the runs left to do)")
      ("threads-per-run", po::value(&threads_per_run), "threads of each run with --jobs N "
                                                       "(default: --threads, else max(1, CPUs / N))")
      ("checkpoints", po::value(&checkpoints), "checkpoint directory (default: DB path + .checkpoints)")
      ("progress-every", po::value(&progress_every),
       "without a terminal: one progress line at most every this many seconds (default 30)")
      ("dry-run", "list the runs, their state in --db (done, pending, running, failed, changed) "
                  "and estimated cost; train nothing")
      ("force", "rerun the selected runs from step 0 even if done (their previous rows and "
                "checkpoints are deleted first); needs --filter, or --all for every run")
      ("all", "with --force: rerun every run of the suite (or shard)");
  add_set_option(opts, &sets);
  po::positional_options_description pos;
  pos.add("suite", 1);
  po::variables_map vm;
  if (!parse_command_line(argc, argv,
                          "run SUITE.json --db RESULTS.sqlite [--filter REGEX] [--dry-run] "
                          "[--shard i/n] [--threads N] [--force --filter REGEX | --force --all]",
                          opts, pos, vm)) {
    return 0;
  }
  LB_REQUIRE(!suite_path.empty(), "run: give a SUITE.json");
  LB_REQUIRE(threads >= 1 && threads <= 1024, "--threads " << threads << " must be in [1, 1024]");
  LB_REQUIRE(!vm.count("force") || !filter.empty() || vm.count("all"),
             "--force without --filter would delete and rerun every run of the suite; give "
             "--filter REGEX, or --all to mean every run");
  LB_REQUIRE(!vm.count("all") || vm.count("force"), "--all only goes with --force");
  const Suite suite = load_suite(suite_path, sets);
  std::vector<RunSpec> runs = suite.runs;
  if (!filter.empty()) {
    runs = filter_runs(runs, filter);
    if (runs.empty()) {
      std::cerr << "lengthbench: warning: --filter '" << filter << "' matches none of the "
                << suite.runs.size() << " runs of suite '" << suite.name << "' (keys look like "
                << (suite.runs.empty() ? std::string("-") : suite.runs.front().key) << ")\n";
    }
  }
  if (!shard.empty()) {
    const auto [i, n] = parse_shard(shard);
    runs = shard_runs(runs, i, n);
  }
  if (vm.count("dry-run")) {
    // With an existing --db: each run's state, and for a changed config the keys that changed.
    std::unique_ptr<ResultsDb> db;
    if (!db_path.empty() && fs::exists(db_path)) {
      db = std::make_unique<ResultsDb>(db_path, ResultsDb::Mode::kReadOnly);
    }
    std::map<std::string, int64_t> states;
    double total = 0;
    for (const auto& r : runs) {
      const double f = estimate_run_flops(r);
      total += f;
      const std::string state = db ? run_state(r, *db) : "pending";
      ++states[state];
      std::cout << std::left << std::setw(8) << state << " " << r.key << "  " << r.config_hash
                << "  ~" << std::setprecision(3) << f / 1e12 << " TFLOP\n";
      if (state == "changed") {
        for (const auto& c : config_changes(db->run_config_json(r.key).value_or("{}"),
                                            r.config.dump())) {
          std::cout << "           changed " << c << "\n";
        }
      }
    }
    std::cout << "states:";
    for (const auto& [state, n] : states) std::cout << " " << n << " " << state;
    std::cout << (db ? "" : " (no --db: every run counted pending)") << "\n";
    const double rate = kAssumedGflopsPerThread * 1e9 * threads;
    std::cout << runs.size() << " runs of " << suite.runs.size() << " in suite '" << suite.name
              << "', ~" << std::setprecision(3) << total / 1e12 << " TFLOP, about "
              << std::fixed << std::setprecision(1) << total / rate / 60 << " min at "
              << kAssumedGflopsPerThread << " GFLOP/s per thread x " << threads << " threads\n";
    return 0;
  }
  LB_REQUIRE(!db_path.empty(), "run: --db RESULTS.sqlite is required (or use --dry-run)");
  LB_REQUIRE(jobs >= 1 && jobs <= 1024, "--jobs " << jobs << " must be in [1, 1024]");
  LB_REQUIRE(!vm.count("threads-per-run") || (threads_per_run >= 1 && threads_per_run <= 1024),
             "--threads-per-run " << threads_per_run << " must be in [1, 1024]");
  const bool default_jobs_chosen = !vm.count("jobs") && !vm.count("threads");
  if (default_jobs_chosen) {
    // The default: every CPU busy with a run of its own (default_jobs, jobs.h).
    int64_t left = static_cast<int64_t>(runs.size());
    if (left > 1 && !vm.count("force") && fs::exists(db_path)) {
      try {
        const ResultsDb db(db_path, ResultsDb::Mode::kReadOnly);
        left = std::count_if(runs.begin(), runs.end(),
                             [&](const RunSpec& r) { return run_state(r, db) != "done"; });
      } catch (const std::exception&) {
        // Another process is creating it, or it needs `upgrade`: count every run; the runner
        // that opens it for writing says what is wrong.
      }
    }
    jobs = default_jobs(left, threads_per_run);
  }
  // Threads of each run: --threads-per-run, else --threads, else the CPUs shared by the jobs
  // (an explicit --jobs 1 alone keeps every core).
  if (vm.count("threads-per-run")) {
    threads = threads_per_run;
  } else if (default_jobs_chosen || (jobs > 1 && !vm.count("threads"))) {
    threads = default_threads_per_run(jobs);
  }
  if (jobs > 1) {
    JobsOptions jo;
    jo.suite_path = suite_path;
    jo.sets = sets;
    jo.db_path = db_path;
    jo.checkpoint_root = checkpoints.empty() ? db_path + ".checkpoints" : checkpoints;
    jo.jobs = jobs;
    jo.threads_per_run = threads;
    jo.force = vm.count("force") > 0;
    const SuiteTotals t = run_jobs(runs, jo, std::cerr, isatty(STDERR_FILENO));
    std::cout << suite.name << ": " << t.done << " done, " << t.skipped << " already done, "
              << t.failed << " failed" << (t.interrupted ? ", interrupted (run again to resume)" : "")
              << " (" << jobs << " jobs x " << threads << " threads)\n";
    if (t.interrupted) return 130;
    return t.failed > 0 ? 1 : 0;
  }
  install_stop_handlers();  // before any other thread exists
  set_num_threads(threads);
  ResultsDb db(db_path, ResultsDb::Mode::kReadWrite);
  RunnerOptions ro;
  ro.threads = threads;
  ro.checkpoint_root = checkpoints.empty() ? db_path + ".checkpoints" : checkpoints;
  ro.progress_bar = isatty(STDERR_FILENO);
  ro.progress_every_s = progress_every;
  ro.force = vm.count("force") > 0;
  const SuiteTotals t = run_suite(runs, db, ro, std::cerr);
  std::cout << suite.name << ": " << t.done << " done, " << t.skipped << " already done, "
            << t.failed << " failed"
            << (t.busy ? ", " + std::to_string(t.busy) + " being run by another process" : "")
            << (t.interrupted ? ", interrupted (run again to resume)" : "") << "\n";
  std::cout << "results: " << db_path << "\nnext:    lengthbench table " << db_path
            << "\n         lengthbench plot " << db_path << " --out figures\n         lengthbench report "
            << db_path << " --out report   (then open report/index.html)\n";
  if (t.interrupted) return 130;
  return t.failed > 0 ? 1 : 0;
}

int cmd_slurm(int argc, char** argv) {
  std::string suite_path, partition, time_limit = "24:00:00", out_dir, binary;
  int64_t shards = 0;
  int cpus = 4, jobs = 0;  // jobs 0: one per CPU (as `run`'s default)
  po::options_description opts("options");
  opts.add_options()
      ("suite", po::value(&suite_path), "suite JSON file")
      ("shards", po::value(&shards), "number of array tasks (shards)")
      ("partition", po::value(&partition), "SLURM partition (default: the cluster's)")
      ("time", po::value(&time_limit), "time limit per shard (default 24:00:00)")
      ("cpus", po::value(&cpus), "CPUs per shard (default 4)")
      ("jobs", po::value(&jobs), "runs at once per shard, each on max(1, cpus / jobs) threads "
                                 "(`run --jobs`; default: --cpus, one thread each)")
      ("out", po::value(&out_dir), "shared directory for shard databases, checkpoints, logs "
                                   "(default: SUITE's directory/NAME-slurm)")
      ("binary", po::value(&binary), "lengthbench binary to run (default: this one)");
  std::vector<std::string> sets;
  add_set_option(opts, &sets);  // passed on to every shard's `run`
  po::positional_options_description pos;
  pos.add("suite", 1);
  po::variables_map vm;
  if (!parse_command_line(argc, argv,
                          "slurm SUITE.json --shards N [--partition P] [--time T] [--cpus C]",
                          opts, pos, vm)) {
    return 0;
  }
  LB_REQUIRE(!suite_path.empty(), "slurm: give a SUITE.json");
  LB_REQUIRE(vm.count("shards"), "slurm: --shards N is required");
  LB_REQUIRE(shards >= 1 && shards <= 100000, "--shards " << shards << " must be in [1, 100000]");
  LB_REQUIRE(cpus >= 1 && cpus <= 1024, "--cpus " << cpus << " must be in [1, 1024]");
  if (!vm.count("jobs")) jobs = cpus;
  LB_REQUIRE(jobs >= 1 && jobs <= 1024, "--jobs " << jobs << " must be in [1, 1024]");
  const Suite suite = load_suite(suite_path, sets);  // refuse a bad suite before writing a script
  std::string set_args;  // each --set passed on, single-quoted for the shell
  for (const auto& s : sets) set_args += " --set " + shell_quote(s);
  // Every value below lands in a shell script or an #SBATCH line: options are restricted to
  // their syntax, paths go in single quotes and may hold no control character or double quote
  // (the suite name is a safe name since load_suite).
  auto require_token = [](const char* option, const std::string& v) {
    bool ok = !v.empty() && v.size() <= 100;
    for (char ch : v)
      ok = ok && (std::isalnum(static_cast<unsigned char>(ch)) || strchr(":-_,.", ch));
    LB_REQUIRE(ok, option << " '" << v << "' may only hold A-Z a-z 0-9 : - _ , .");
  };
  require_token("--time", time_limit);
  if (!partition.empty()) require_token("--partition", partition);
  const std::string suite_abs = fs::absolute(suite_path).string();
  if (out_dir.empty()) out_dir = (fs::path(suite_abs).parent_path() / (suite.name + "-slurm")).string();
  out_dir = fs::absolute(out_dir).string();
  if (binary.empty()) binary = fs::canonical("/proc/self/exe").string();
  for (const auto& [what, v] : {std::pair<const char*, const std::string&>{"--out", out_dir},
                                {"--binary", binary},
                                {"suite path", suite_abs}}) {
    bool ok = true;
    for (unsigned char ch : v) ok = ok && ch >= 0x20 && ch != 0x7f && ch != '"';
    LB_REQUIRE(ok, what << " '" << v << "' holds a control character or '\"'");
  }
  const std::string q_out = shell_quote(out_dir), q_bin = shell_quote(binary);
  std::cout << "#!/bin/bash\n"
            << "# lengthbench suite '" << suite.name << "': " << suite.runs.size() << " runs in "
            << shards << " shards.\n"
            << "# Submit:  mkdir -p " << q_out << " && job=$(sbatch --parsable THIS_SCRIPT)\n"
            << "# Merge:   sbatch --dependency=afterok:$job --wrap \"" << q_bin << " merge "
            << shell_quote(out_dir + "/results.sqlite") << " " << q_out << "/shard-*.sqlite\"\n"
            << "#SBATCH --job-name=lb-" << suite.name << "\n"
            << "#SBATCH --array=0-" << shards - 1 << "\n"
            << "#SBATCH --cpus-per-task=" << cpus << "\n"
            << "#SBATCH --time=" << time_limit << "\n";
  if (!partition.empty()) std::cout << "#SBATCH --partition=" << partition << "\n";
  std::cout
      << "#SBATCH --output=\"" << out_dir << "/slurm-%A_%a.out\"\n"
      << "#SBATCH --requeue\n"
      << "set -euo pipefail\n"
      << "i=${SLURM_ARRAY_TASK_ID:?run under sbatch, or set SLURM_ARRAY_TASK_ID}\n"
      << "out=" << q_out << "\n"
      << "mkdir -p \"$out\"\n"
      << "# SQLite must not be shared over NFS: the shard database lives on node-local disk\n"
      << "# and is copied back whole; a requeued task starts from the copy and skips done runs.\n"
      << "local=\"${SLURM_TMPDIR:-${TMPDIR:-/tmp}}/lb-${SLURM_ARRAY_JOB_ID:-0}-$i\"\n"
      << "mkdir -p \"$local\"\n"
      << "if [ -f \"$out/shard-$i.sqlite\" ]; then cp \"$out/shard-$i.sqlite\" "
         "\"$local/shard.sqlite\"; fi\n"
      << "export OMP_NUM_THREADS=${SLURM_CPUS_PER_TASK:-" << cpus << "}\n"
      << "rc=0\n"
      << q_bin << " run " << shell_quote(suite_abs) << " --db \"$local/shard.sqlite\" --shard \"$i/"
      << shards << "\" --jobs " << jobs << " --threads-per-run " << std::max(1, cpus / jobs)
      << " --checkpoints \"$out/checkpoints\"" << set_args << " || rc=$?\n"
      << "cp \"$local/shard.sqlite\" \"$out/shard-$i.sqlite.tmp\" && mv "
         "\"$out/shard-$i.sqlite.tmp\" \"$out/shard-$i.sqlite\"\n"
      << "rm -rf \"$local\"\n"
      << "exit $rc\n";
  return 0;
}

}  // namespace lb
