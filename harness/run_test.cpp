// The suite runner end to end on tiny models: completion, skipping, failures recorded, resume
// after SIGKILL with the same numbers, and shards run as SLURM would, merged.
#include "harness/run.h"

#include <SQLiteCpp/SQLiteCpp.h>
#include <doctest/doctest.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "core/check.h"
#include "models/dnnl_util.h"

using namespace lb;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

fs::path temp_dir(const std::string& tag) {
  const fs::path d = fs::temp_directory_path() / ("lb_run_" + tag + "_" + std::to_string(getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

// Two tiny copy runs (softmax, entmax); the second run of `bad` cannot be built.
json tiny_suite(bool bad = false) {
  json j = json::parse(R"({
    "name": "t",
    "model": {"preset": "tiny"},
    "train": {"steps": 24, "batch": 8, "warmup": 4, "log_every": 4, "checkpoint_every": 8,
              "task_params": {"seq_len": 8, "vary_len": 2}},
    "tasks": ["copy"],
    "attention": ["softmax", "entmax"],
    "lr": [3e-3],
    "seeds": [0],
    "eval": {"lengths": [8, 16], "samples": 8},
    "select": {"length": 16, "samples": 8, "every": 8}
  })");
  if (bad) j["tasks"] = {"copy", {{"task", "sort"}, {"model", {{"vocab_size", 3}}}}};
  return j;
}

std::string dump_results(const std::string& db_path) {
  ResultsDb db(db_path, ResultsDb::Mode::kReadOnly);
  std::ostringstream out;
  print_query(db, "SELECT run_key, split, length, exact_match, token_accuracy, edit_distance FROM evals ORDER BY 1, 2, 3", QueryFormat::kCsv, out);
  print_query(db, "SELECT run_key, step, loss, grad_norm FROM train_metrics ORDER BY 1, 2", QueryFormat::kCsv, out);
  print_query(db, "SELECT run_key, layer, head, entropy, support, relevant_mass FROM attn_stats ORDER BY 1, 2, 3, 4", QueryFormat::kCsv, out);
  print_query(db, "SELECT run_key, step, exact_match, token_accuracy, loss FROM selection_evals ORDER BY 1, 2", QueryFormat::kCsv, out);
  print_query(db, "SELECT run_key, ckpt, step FROM checkpoints ORDER BY 1, 2", QueryFormat::kCsv, out);
  return out.str();
}

int run_binary(const std::vector<std::string>& args, pid_t* child = nullptr) {
  const pid_t pid = fork();
  if (pid == 0) {
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    const int null = open("/dev/null", O_WRONLY);
    dup2(null, 2);
    execv(argv[0], argv.data());
    _exit(127);
  }
  if (child) {
    *child = pid;
    return 0;
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace

TEST_CASE("run: the smoke suite completes into the database, and a second pass skips it") {
  set_num_threads(1);
  const fs::path dir = temp_dir("complete");
  const Suite suite = load_suite(std::string(LB_SOURCE_DIR) + "/harness/suites/smoke.json");
  RunnerOptions opts;
  opts.checkpoint_root = (dir / "ckpt").string();
  std::ostringstream log;
  {
    ResultsDb db((dir / "r.sqlite").string(), ResultsDb::Mode::kReadWrite);
    SuiteTotals t = run_suite(suite.runs, db, opts, log);
    CHECK(t.done == 4);
    CHECK(t.failed == 0);
    auto count = [&](const std::string& sql) { return db.sql().execAndGet(sql).getInt64(); };
    CHECK(count("SELECT count(*) FROM runs WHERE status = 'done'") == 4);
    CHECK(count("SELECT count(*) FROM train_metrics") == 4 * 4);  // 40 steps, a row per 10
    CHECK(count("SELECT count(*) FROM evals WHERE split = 'test'") == 4 * 3);
    CHECK(count("SELECT count(*) FROM evals WHERE split = 'validation'") == 4);
    // runs x lengths x layers x heads
    CHECK(count("SELECT count(*) FROM attn_stats WHERE split = 'test'") == 4 * 3 * 2 * 4);
    CHECK(count("SELECT count(*) FROM attn_stats WHERE split = 'test' AND run_key LIKE '%asentmax%' AND head >= 2 "
                "AND scale_p50 IS NOT NULL") == 2 * 3 * 2 * 2);  // NAPE: the NoPE heads scale
    CHECK(count("SELECT count(*) FROM checkpoints WHERE ckpt IN ('last', 'best')") == 8);
    CHECK(count("SELECT count(DISTINCT git_commit) FROM runs") == 1);
    t = run_suite(suite.runs, db, opts, log);
    CHECK(t.skipped == 4);
    CHECK(t.done == 0);
  }
  CHECK(fs::exists(dir / "ckpt" / suite.runs[0].key / "best" / "model.safetensors"));
  fs::remove_all(dir);
}

TEST_CASE("run: --force reruns the selected runs from scratch; a changed config needs it") {
  set_num_threads(1);
  const fs::path dir = temp_dir("force");
  const fs::path suite_file = dir / "t.json";
  std::ofstream(suite_file) << tiny_suite().dump();
  Suite suite = load_suite(suite_file.string());
  RunnerOptions opts;
  opts.checkpoint_root = (dir / "ckpt").string();
  std::ostringstream log;
  const std::string db_path = (dir / "r.sqlite").string();
  ResultsDb db(db_path, ResultsDb::Mode::kReadWrite);
  REQUIRE(run_suite(suite.runs, db, opts, log).done == 2);
  const std::string before = dump_results(db_path);
  auto started = [&](const std::string& key) {
    SQLite::Statement q(db.sql(), "SELECT started_at || '/' || attempts FROM runs WHERE key = ?");
    q.bind(1, key);
    REQUIRE(q.executeStep());
    return q.getColumn(0).getString();
  };
  const std::string other_started = started(suite.runs[1].key);
  // A marker row that only the forced run would lose.
  db.sql().exec("UPDATE runs SET error = 'marker' WHERE key = '" + suite.runs[0].key + "'");

  opts.force = true;
  const std::vector<RunSpec> first = {suite.runs[0]};
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));  // started_at has 1 s resolution
  SuiteTotals t = run_suite(first, db, opts, log);
  CHECK(t.done == 1);
  CHECK(t.skipped == 0);
  CHECK(dump_results(db_path) == before);  // same seed, same threads: the same numbers again
  CHECK(started(suite.runs[1].key) == other_started);  // untouched
  CHECK(db.sql().execAndGet("SELECT count(*) FROM runs WHERE error = 'marker'").getInt64() == 0);
  CHECK(db.sql().execAndGet("SELECT count(*) FROM runs WHERE status = 'done'").getInt64() == 2);

  // A changed config: refused without --force, rerun with it (the new hash stored).
  json changed = tiny_suite();
  changed["train"]["steps"] = 16;
  std::ofstream(suite_file) << changed.dump();
  suite = load_suite(suite_file.string());
  opts.force = false;
  CHECK_THROWS_WITH_AS(run_suite({suite.runs[0]}, db, opts, log),
                       doctest::Contains("--force to rerun it"), UsageError);
  CHECK_THROWS_WITH_AS(run_suite({suite.runs[0]}, db, opts, log),
                       doctest::Contains("train.steps: 24 -> 16"), UsageError);
  CHECK(run_state(suite.runs[0], db) == "changed");
  opts.force = true;
  CHECK(run_suite({suite.runs[0]}, db, opts, log).done == 1);
  CHECK(db.run_config_hash(suite.runs[0].key) == suite.runs[0].config_hash);
  CHECK(db.sql().execAndGet("SELECT max(step) FROM train_metrics WHERE run_key = '" +
                            suite.runs[0].key + "'").getInt64() == 16);
  fs::remove_all(dir);
}

TEST_CASE("run: selection stores every evaluation and chooses by exact match, token accuracy, "
          "lower loss, then the later step") {
  set_num_threads(1);
  const fs::path dir = temp_dir("select");
  json j = tiny_suite();
  j["attention"] = {"softmax"};
  j["tasks"] = {"n_back"};
  j["select"]["length"] = 24;  // beyond training: exact match is 0 at every checkpoint
  const Suite suite = expand_suite(j);
  RunnerOptions opts;
  opts.checkpoint_root = (dir / "ckpt").string();
  std::ostringstream log;
  ResultsDb db((dir / "r.sqlite").string(), ResultsDb::Mode::kReadWrite);
  REQUIRE(run_suite(suite.runs, db, opts, log).done == 1);
  CHECK(db.sql().execAndGet("SELECT exact_match FROM evals WHERE split = 'validation'").getDouble() == 0.0);
  // Every 8 steps of 24: three rows, each with a finite positive loss.
  const auto rows = db.selection_evals(suite.runs[0].key);
  REQUIRE(rows.size() == 3);
  for (const auto& r : rows) CHECK((r.loss > 0 && std::isfinite(r.loss)));
  SelectionRow best = rows[0];
  for (const auto& r : rows) {
    if (selection_better(r, best)) best = r;
  }
  // The chosen checkpoint is the rule's, printed in the log, and the one evaluated.
  CHECK(db.checkpoint_step(suite.runs[0].key, "best") == best.step);
  CHECK(log.str().find("selected step " + std::to_string(best.step) + " of 24") != std::string::npos);
  CHECK(db.sql().execAndGet("SELECT step FROM evals WHERE split = 'validation'").getInt64() == best.step);
  CHECK(db.sql().execAndGet("SELECT token_accuracy FROM evals WHERE split = 'validation'").getDouble() ==
        doctest::Approx(best.token_accuracy));
  CHECK(db.sql().execAndGet("SELECT count(*) FROM v_selection WHERE chosen").getInt() == 1);
  fs::remove_all(dir);
}

TEST_CASE("install_stop_handlers: INT and TERM are blocked here and reach stop_requested() "
          "through the signal thread") {
  stop_requested() = false;
  install_stop_handlers();
  install_stop_handlers();  // idempotent
  sigset_t mask;
  REQUIRE(pthread_sigmask(SIG_BLOCK, nullptr, &mask) == 0);
  CHECK(sigismember(&mask, SIGINT) == 1);
  CHECK(sigismember(&mask, SIGTERM) == 1);
  // A thread started now inherits the mask: no handler runs on a compute thread.
  int inherited = 0;
  std::thread([&] {
    sigset_t m;
    pthread_sigmask(SIG_BLOCK, nullptr, &m);
    inherited = sigismember(&m, SIGTERM);
  }).join();
  CHECK(inherited == 1);
  kill(getpid(), SIGTERM);  // the process survives; the flag is set by the signal thread
  const auto t0 = std::chrono::steady_clock::now();
  while (!stop_requested() && std::chrono::steady_clock::now() - t0 < std::chrono::seconds(10)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  CHECK(stop_requested());
  stop_requested() = false;
  // Children this test binary starts later inherit the mask across exec: unblock for them.
  sigset_t stops;
  sigemptyset(&stops);
  sigaddset(&stops, SIGINT);
  sigaddset(&stops, SIGTERM);
  pthread_sigmask(SIG_UNBLOCK, &stops, nullptr);
}

TEST_CASE("selection_better: a tie at 100% is broken by the lower loss, then the later step") {
  SelectionRow early{250, "validation", 48, 200, 1.0, 1.0, 0.010};
  SelectionRow late{1500, "validation", 48, 200, 1.0, 1.0, 0.002};
  CHECK(selection_better(late, early));   // lower loss wins although later
  CHECK(!selection_better(early, late));
  early.loss = 0.001;                     // lower loss wins although earlier
  CHECK(selection_better(early, late));
  late.loss = early.loss;                 // a full tie: the later step
  CHECK(selection_better(late, early));
  CHECK(!selection_better(early, late));
  late.token_accuracy = 0.99;             // token accuracy before loss
  CHECK(selection_better(early, late));
  early.exact_match = 0.5;                // exact match first
  CHECK(selection_better(late, early));
}

TEST_CASE("config_changes names each changed key with old and new values") {
  const auto c = config_changes(R"({"model": {"hidden": 64, "heads": 4}, "train": {"lr": 0.001}})",
                                R"({"model": {"hidden": 128, "heads": 4}, "train": {"lr": 0.001, "warmup": 5}})");
  REQUIRE(c.size() == 2);
  CHECK(c[0] == "model.hidden: 64 -> 128");
  CHECK(c[1] == "train.warmup: (absent) -> 5");
  CHECK(config_changes("{\"a\": 1}", "{\"a\": 1}").empty());
}

TEST_CASE("run: a failing run is recorded with its error and the suite goes on") {
  set_num_threads(1);
  const fs::path dir = temp_dir("fail");
  const Suite suite = expand_suite(tiny_suite(true));
  RunnerOptions opts;
  opts.checkpoint_root = (dir / "ckpt").string();
  std::ostringstream log;
  ResultsDb db((dir / "r.sqlite").string(), ResultsDb::Mode::kReadWrite);
  const SuiteTotals t = run_suite(suite.runs, db, opts, log);
  CHECK(t.failed == 2);  // both sort runs: vocab_size 3 is too small for the task
  CHECK(t.done == 2);
  SQLite::Statement q(db.sql(), "SELECT error FROM runs WHERE status = 'failed'");
  REQUIRE(q.executeStep());
  CHECK(q.getColumn(0).getString().find("vocab_size 3") != std::string::npos);
  fs::remove_all(dir);
}

TEST_CASE("run: killed with SIGKILL mid-training, a run resumes to the same numbers") {
  const fs::path dir = temp_dir("kill");
  std::ofstream(dir / "suite.json") << tiny_suite().dump(2);
  const std::string suite = (dir / "suite.json").string();
  // Uninterrupted.
  REQUIRE(run_binary({LB_BINARY, "run", suite, "--db", (dir / "a.sqlite").string(), "--threads", "1"}) == 0);
  // Killed once the first run has a checkpoint and some logged steps past it, then resumed.
  const std::string b = (dir / "b.sqlite").string();
  pid_t pid = 0;
  run_binary({LB_BINARY, "run", suite, "--db", b, "--threads", "1"}, &pid);
  bool killed = false;
  for (int i = 0; i < 20000 && !killed; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    try {
      SQLite::Database db(b, SQLite::OPEN_READONLY, 1000);
      if (db.execAndGet("SELECT count(*) FROM train_metrics").getInt() >= 3) {
        kill(pid, SIGKILL);
        killed = true;
      }
    } catch (const SQLite::Exception&) {
    }
  }
  int status = 0;
  waitpid(pid, &status, 0);
  REQUIRE(killed);
  {
    ResultsDb db(b, ResultsDb::Mode::kReadOnly);
    CHECK(db.sql().execAndGet("SELECT count(*) FROM runs WHERE status = 'running'").getInt() == 1);
  }
  REQUIRE(run_binary({LB_BINARY, "run", suite, "--db", b, "--threads", "1"}) == 0);
  CHECK(dump_results(b) == dump_results((dir / "a.sqlite").string()));
  ResultsDb db(b, ResultsDb::Mode::kReadOnly);
  CHECK(db.sql().execAndGet("SELECT max(attempts) FROM runs").getInt() == 2);
  fs::remove_all(dir);
}

TEST_CASE("run: shards run as a SLURM array would, merged, equal one process") {
  const fs::path dir = temp_dir("slurm");
  std::ofstream(dir / "suite.json") << tiny_suite().dump(2);
  const std::string suite = (dir / "suite.json").string();
  REQUIRE(run_binary({LB_BINARY, "run", suite, "--db", (dir / "one.sqlite").string(), "--threads", "1"}) == 0);
  const std::string script = (dir / "array.sh").string();
  REQUIRE(std::system(("'" + std::string(LB_BINARY) + "' slurm '" + suite + "' --shards 3 --cpus 1 --out '" +
                       (dir / "out").string() + "' > '" + script + "'").c_str()) == 0);
  std::ifstream in(script);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  CHECK(text.find("#SBATCH --array=0-2") != std::string::npos);
  CHECK(text.find("--shard \"$i/3\"") != std::string::npos);
  for (int i = 0; i < 3; ++i) {
    const std::string cmd = "SLURM_ARRAY_TASK_ID=" + std::to_string(i) + " SLURM_CPUS_PER_TASK=1 TMPDIR='" +
                            dir.string() + "' bash '" + script + "' > /dev/null 2>&1";
    REQUIRE(std::system(cmd.c_str()) == 0);
  }
  std::vector<std::string> merge = {LB_BINARY, "merge", (dir / "merged.sqlite").string()};
  for (int i = 0; i < 3; ++i) merge.push_back((dir / "out" / ("shard-" + std::to_string(i) + ".sqlite")).string());
  REQUIRE(run_binary(merge) == 0);
  CHECK(dump_results((dir / "merged.sqlite").string()) == dump_results((dir / "one.sqlite").string()));
  fs::remove_all(dir);
}

TEST_CASE("run: --force needs --filter or --all; --dry-run shows each run's state and changes") {
  const fs::path dir = temp_dir("dry");
  const std::string suite = (dir / "suite.json").string(), db = (dir / "r.sqlite").string();
  std::ofstream(suite) << tiny_suite().dump(2);
  const auto lengthbench = [](const std::string& args, std::string* out) {
    FILE* f = popen((std::string(LB_BINARY) + " " + args + " 2>&1").c_str(), "r");
    REQUIRE(f != nullptr);
    char buf[4096];
    out->clear();
    while (std::fgets(buf, sizeof buf, f)) *out += buf;
    const int status = pclose(f);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  };
  std::string out;
  CHECK(lengthbench("run " + suite + " --db " + db + " --force", &out) == 2);
  CHECK(out.find("--force without --filter") != std::string::npos);
  CHECK(!fs::exists(db));
  CHECK(lengthbench("run " + suite + " --db " + db + " --all", &out) == 2);
  REQUIRE(lengthbench("run " + suite + " --db " + db + " --filter softmax --threads 1", &out) == 0);
  CHECK(out.find("selected step") != std::string::npos);
  REQUIRE(lengthbench("run " + suite + " --db " + db + " --dry-run", &out) == 0);
  CHECK(out.find("done     t/copy.v1/softmax") != std::string::npos);
  CHECK(out.find("pending  t/copy.v1/entmax") != std::string::npos);
  json changed = tiny_suite();
  changed["train"]["steps"] = 16;
  std::ofstream(suite) << changed.dump(2);
  REQUIRE(lengthbench("run " + suite + " --db " + db + " --dry-run", &out) == 0);
  CHECK(out.find("changed  t/copy.v1/softmax") != std::string::npos);
  CHECK(out.find("changed train.steps: 24 -> 16") != std::string::npos);
  CHECK(out.find("states: 1 changed 1 pending") != std::string::npos);
  fs::remove_all(dir);
}
