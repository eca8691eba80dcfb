// `run --jobs N` through the binary, on tiny models: runs merged into the database as they end,
// SIGTERM stopping every child and a rerun resuming them, kill -9 of the parent and of one child
// followed by a rerun giving the serial run's database, a failing run among good ones.
#include "harness/jobs.h"

#include <SQLiteCpp/SQLiteCpp.h>
#include <doctest/doctest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "results/db.h"

using namespace lb;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

fs::path temp_dir(const std::string& tag) {
  const fs::path d =
      fs::temp_directory_path() / ("lb_jobs_" + tag + "_" + std::to_string(getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

// Tiny copy runs: two normalizers x `seeds` seeds, `steps` steps each.
json tiny_suite(int steps, int seeds) {
  json j = json::parse(R"({
    "name": "j",
    "model": {"preset": "tiny"},
    "train": {"batch": 8, "warmup": 4, "log_every": 4, "checkpoint_every": 8,
              "task_params": {"seq_len": 8, "vary_len": 2}},
    "tasks": ["copy"],
    "attention": ["softmax", "entmax"],
    "lr": [3e-3],
    "eval": {"lengths": [8, 16], "samples": 8},
    "select": {"length": 16, "samples": 8, "every": 8}
  })");
  j["train"]["steps"] = steps;
  j["seeds"] = json::array();
  for (int s = 0; s < seeds; ++s) j["seeds"].push_back(s);
  return j;
}

std::string write_suite(const fs::path& dir, const json& j) {
  const fs::path p = dir / "suite.json";
  std::ofstream(p) << j.dump(2);
  return p.string();
}

// What must not depend on how the suite was run: evaluations, curves, attention statistics.
std::string dump_results(const std::string& db_path) {
  ResultsDb db(db_path, ResultsDb::Mode::kReadOnly);
  std::ostringstream out;
  print_query(db, "SELECT key, status FROM runs ORDER BY 1", QueryFormat::kCsv, out);
  print_query(db,
              "SELECT run_key, split, length, exact_match, token_accuracy, edit_distance FROM "
              "evals ORDER BY 1, 2, 3",
              QueryFormat::kCsv, out);
  print_query(db, "SELECT run_key, step, loss, grad_norm FROM train_metrics ORDER BY 1, 2",
              QueryFormat::kCsv, out);
  print_query(db,
              "SELECT run_key, layer, head, entropy, support, relevant_mass FROM attn_stats ORDER "
              "BY 1, 2, 3, 4",
              QueryFormat::kCsv, out);
  return out.str();
}

int64_t count(const std::string& db_path, const std::string& sql) {
  try {
    SQLite::Database db(db_path, SQLite::OPEN_READONLY, 1000);
    return db.execAndGet(sql).getInt64();
  } catch (const SQLite::Exception&) {
    return -1;  // not created yet, or no schema yet
  }
}

// Starts the binary (stderr to `log`); waits for it unless `child` is given. With `own_group`
// it leads a process group of its own (its children join it), as a shell job does.
int run_binary(const std::vector<std::string>& args, const std::string& log,
               pid_t* child = nullptr, bool own_group = false) {
  const pid_t pid = fork();
  if (pid == 0) {
    if (own_group) setpgid(0, 0);
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    const int out = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    dup2(out, 1);
    dup2(out, 2);
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

int wait_exit(pid_t pid) {
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
}

// The live children of `parent` (from /proc).
std::vector<pid_t> children_of(pid_t parent) {
  std::vector<pid_t> out;
  for (const auto& e : fs::directory_iterator("/proc")) {
    const std::string name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream in(e.path() / "stat");
    std::string stat;
    std::getline(in, stat);
    const size_t close = stat.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream rest(stat.substr(close + 2));
    char state = 0;
    pid_t ppid = 0;
    rest >> state >> ppid;
    if (ppid == parent && state != 'Z') out.push_back(std::stoi(name));
  }
  return out;
}

// The --db argument of a running process (a child's shard).
std::string db_arg(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/cmdline", std::ios::binary);
  std::vector<std::string> args;
  for (std::string a; std::getline(in, a, '\0');) args.push_back(a);
  for (size_t i = 0; i + 1 < args.size(); ++i) {
    if (args[i] == "--db") return args[i + 1];
  }
  return "";
}

bool alive(pid_t pid) { return kill(pid, 0) == 0; }

// Polls `cond` every 5 ms for at most `seconds`.
template <class F>
bool wait_for(F cond, double seconds = 120) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < end) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return false;
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

}  // namespace

TEST_CASE("jobs: a child's filter selects exactly its run; shards are per run") {
  const Suite suite = expand_suite(tiny_suite(8, 2));
  std::set<std::string> shards;
  for (const auto& r : suite.runs) {
    const auto one = filter_runs(suite.runs, exact_key_regex(r.key));
    REQUIRE(one.size() == 1);
    CHECK(one[0].key == r.key);
    shards.insert(shard_path("/x/r.sqlite", r.key));
  }
  CHECK(shards.size() == suite.runs.size());
  CHECK(shard_path("/x/r.sqlite", "k").rfind("/x/r.sqlite.shards/", 0) == 0);
  CHECK(exact_key_regex("a.b/c+d") == "^a\\.b/c\\+d$");
  CHECK(default_threads_per_run(1) >= 1);
  CHECK(default_threads_per_run(100000) == 1);
}

TEST_CASE(
    "jobs: a short run is merged while a long one trains; SIGTERM stops every child; "
    "a rerun resumes to the serial database") {
  const fs::path dir = temp_dir("asyougo");
  json j = tiny_suite(24, 1);
  j["attention"] = {"softmax"};
  j["tasks"] = {"copy", {{"task", "n_back"}, {"train", {{"steps", 400}}}}};
  const std::string suite = write_suite(dir, j);
  const std::string r = (dir / "r.sqlite").string(), log = (dir / "log").string();
  pid_t parent = 0;
  run_binary({LB_BINARY, "run", suite, "--db", r, "--jobs", "2", "--threads-per-run", "1"}, log,
             &parent);
  std::set<pid_t> seen;
  // The copy run is done in R while the n_back run still trains in its child.
  const bool merged = wait_for([&] {
    for (pid_t c : children_of(parent)) seen.insert(c);
    return count(r, "SELECT count(*) FROM runs WHERE status = 'done' AND task = 'copy'") == 1;
  });
  CHECK(merged);
  for (pid_t c : children_of(parent)) seen.insert(c);
  CHECK(seen.size() == 2);
  CHECK(count(r, "SELECT count(*) FROM runs WHERE task = 'n_back'") == 0);
  CHECK(children_of(parent).size() == 1);  // the n_back child, still training
  kill(parent, SIGTERM);
  CHECK(wait_exit(parent) == 130);
  for (pid_t c : seen) CHECK_FALSE(alive(c));  // every child stopped (and was reaped)
  // The stopped run is in R as 'running', its shard kept for the resume.
  CHECK(count(r, "SELECT count(*) FROM runs WHERE task = 'n_back' AND status = 'running'") == 1);
  CHECK(read_file(log).find("interrupted (run again to resume)") != std::string::npos);

  REQUIRE(run_binary({LB_BINARY, "run", suite, "--db", r, "--jobs", "2", "--threads-per-run", "1"},
                     log) == 0);
  REQUIRE(run_binary(
              {LB_BINARY, "run", suite, "--db", (dir / "serial.sqlite").string(), "--threads", "1"},
              log) == 0);
  CHECK(dump_results(r) == dump_results((dir / "serial.sqlite").string()));
  CHECK(count(r, "SELECT max(attempts) FROM runs WHERE task = 'n_back'") == 2);
  // Done runs leave no shard database behind.
  for (const auto& e : fs::directory_iterator(r + ".shards"))
    CHECK(e.path().extension() != ".sqlite");
  fs::remove_all(dir);
}

TEST_CASE(
    "jobs: SIGTERM to the whole process group (as timeout and Ctrl-C send it) stops every run "
    "cleanly: the parent counts one request, no child is killed or failed") {
  const fs::path dir = temp_dir("group");
  json j = tiny_suite(4000, 1);  // two runs that train until stopped
  const std::string suite = write_suite(dir, j);
  const std::string r = (dir / "r.sqlite").string(), log = (dir / "log").string();
  pid_t parent = 0;
  run_binary({LB_BINARY, "run", suite, "--db", r, "--jobs", "2", "--threads-per-run", "1"}, log,
             &parent, true);
  // Both children train (each has written a training row to its shard).
  REQUIRE(wait_for([&] {
    int with_rows = 0;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(r + ".shards", ec)) {
      try {
        if (e.path().extension() == ".sqlite" &&
            count(e.path().string(), "SELECT count(*) FROM train_metrics") > 0) {
          ++with_rows;
        }
      } catch (const std::exception&) {  // a shard still being created
      }
    }
    return with_rows == 2;
  }));
  // timeout(1) signals its child, then the child's group: the parent twice, each child twice
  // (and once more from the parent).
  kill(parent, SIGTERM);
  kill(-parent, SIGTERM);
  CHECK(wait_exit(parent) == 130);
  const std::string out = read_file(log);
  CHECK(out.find("FAILED") == std::string::npos);
  CHECK(out.find("killed") == std::string::npos);
  CHECK(out.find("0 done, 0 already done, 0 failed, interrupted") != std::string::npos);
  CHECK(count(r, "SELECT count(*) FROM runs WHERE status = 'running'") == 2);
  fs::remove_all(dir);
}

TEST_CASE("default_jobs: one job per CPU, no more than the runs left, nor than CPUs / threads") {
  const int cpus = usable_cpus();
  REQUIRE(cpus >= 1);
  CHECK(default_jobs(0, 0) == 1);  // nothing to do: the serial runner
  CHECK(default_jobs(1, 0) == 1);
  CHECK(default_jobs(1000, 0) == cpus);
  CHECK(default_jobs(1000, cpus) == 1);
  CHECK(default_jobs(1000, 2 * cpus) == 1);
  CHECK(default_jobs(2, 0) == std::min(2, cpus));
  CHECK(default_threads_per_run(default_jobs(1000, 0)) == 1);
  CHECK(default_threads_per_run(1) == cpus);
}

TEST_CASE("jobs: run without --jobs or --threads runs one job per CPU, capped at the runs left") {
  const fs::path dir = temp_dir("default");
  const std::string suite = write_suite(dir, tiny_suite(8, 1));  // 2 runs
  const std::string r = (dir / "r.sqlite").string(), log = (dir / "log").string();
  REQUIRE(run_binary({LB_BINARY, "run", suite, "--db", r}, log) == 0);
  const int jobs = std::min(2, usable_cpus());
  if (jobs > 1) {
    CHECK(read_file(log).find("(2 jobs x " + std::to_string(default_threads_per_run(2)) +
                              " threads)") != std::string::npos);
  }
  CHECK(count(r, "SELECT count(*) FROM runs WHERE status = 'done'") == 2);
  // Nothing left: the serial runner in this process says so, and trains nothing.
  REQUIRE(run_binary({LB_BINARY, "run", suite, "--db", r}, log) == 0);
  CHECK(read_file(log).find("0 done, 2 already done") != std::string::npos);
  fs::remove_all(dir);
}

TEST_CASE("jobs: --set reaches every child (the runs train with the overridden config)") {
  const fs::path dir = temp_dir("set");
  const std::string suite = write_suite(dir, tiny_suite(24, 1));
  const std::string r = (dir / "r.sqlite").string(), log = (dir / "log").string();
  REQUIRE(run_binary({LB_BINARY, "run", suite, "--db", r, "--jobs", "2", "--threads-per-run", "1",
                      "--set", "train.steps=8"},
                     log) == 0);
  CHECK(count(r, "SELECT count(*) FROM runs WHERE status = 'done'") == 2);
  CHECK(count(r, "SELECT max(step) FROM train_metrics") == 8);
  CHECK(count(r, "SELECT count(*) FROM runs WHERE json_extract(config_json, '$.train.steps') = 8") ==
        2);
  fs::remove_all(dir);
}

TEST_CASE("jobs: kill -9 of the parent, then of one child; reruns give the serial database") {
  const fs::path dir = temp_dir("kill");
  const std::string suite = write_suite(dir, tiny_suite(64, 2));
  const std::string r = (dir / "r.sqlite").string(), log = (dir / "log").string();
  const std::vector<std::string> cmd = {LB_BINARY,           "run", suite, "--db", r, "--jobs", "3",
                                        "--threads-per-run", "1"};
  auto shard_rows = [&] {
    int64_t most = 0;
    if (!fs::exists(r + ".shards")) return most;
    for (const auto& e : fs::directory_iterator(r + ".shards")) {
      if (e.path().extension() == ".sqlite") {
        most = std::max(most, count(e.path().string(), "SELECT count(*) FROM train_metrics"));
      }
    }
    return most;
  };

  // 1. The parent is killed with SIGKILL mid-training: its children stop (SIGTERM from the
  // kernel), leaving their shards.
  pid_t parent = 0;
  run_binary(cmd, log, &parent);
  std::set<pid_t> kids;
  REQUIRE(wait_for([&] {
    for (pid_t c : children_of(parent)) kids.insert(c);
    return shard_rows() >= 3;
  }));
  kill(parent, SIGKILL);
  CHECK(wait_exit(parent) == -SIGKILL);
  CHECK(kids.size() == 3);
  CHECK(wait_for(
      [&] {
        for (pid_t c : kids) {
          if (alive(c)) return false;
        }
        return true;
      },
      30));

  // 2. A rerun resumes them; one child is killed with SIGKILL: its run is recorded failed, the
  // others go on, the exit code is 1.
  run_binary(cmd, log, &parent);
  // The victim: a child whose shard holds its run, still running, with some steps logged.
  REQUIRE(wait_for([&] {
    for (pid_t c : children_of(parent)) {
      const std::string db = db_arg(c);
      if (!db.empty() && count(db, "SELECT count(*) FROM runs WHERE status = 'running'") == 1 &&
          count(db, "SELECT count(*) FROM train_metrics") >= 1) {
        kill(c, SIGKILL);
        return true;
      }
    }
    return false;
  }));
  CHECK(wait_exit(parent) == 1);
  CHECK(count(r,
              "SELECT count(*) FROM runs WHERE status = 'failed' AND error LIKE '%killed by signal "
              "9%'") == 1);
  CHECK(count(r, "SELECT count(*) FROM runs WHERE status = 'done'") == 3);

  // 3. A rerun retries the failed run from its checkpoint; the database equals a serial run's.
  REQUIRE(run_binary(cmd, log) == 0);
  REQUIRE(run_binary(
              {LB_BINARY, "run", suite, "--db", (dir / "serial.sqlite").string(), "--threads", "1"},
              log) == 0);
  CHECK(dump_results(r) == dump_results((dir / "serial.sqlite").string()));
  fs::remove_all(dir);
}

TEST_CASE("jobs: a serial run killed with SIGKILL is resumed by --jobs to the same database") {
  const fs::path dir = temp_dir("serial");
  const std::string suite = write_suite(dir, tiny_suite(48, 1));
  const std::string r = (dir / "r.sqlite").string(), log = (dir / "log").string();
  pid_t pid = 0;
  run_binary({LB_BINARY, "run", suite, "--db", r, "--threads", "1"}, log, &pid);
  REQUIRE(wait_for([&] { return count(r, "SELECT count(*) FROM train_metrics") >= 3; }));
  kill(pid, SIGKILL);
  wait_exit(pid);
  REQUIRE(count(r, "SELECT count(*) FROM runs WHERE status = 'running'") == 1);
  // The run's shard starts as R's copy, so the curve logged before the kill survives the merge.
  REQUIRE(run_binary({LB_BINARY, "run", suite, "--db", r, "--jobs", "2", "--threads-per-run", "1"},
                     log) == 0);
  REQUIRE(run_binary(
              {LB_BINARY, "run", suite, "--db", (dir / "serial.sqlite").string(), "--threads", "1"},
              log) == 0);
  CHECK(dump_results(r) == dump_results((dir / "serial.sqlite").string()));
  fs::remove_all(dir);
}

TEST_CASE("jobs: a failing run among good ones is recorded; the others finish; exit code 1") {
  const fs::path dir = temp_dir("fail");
  json j = tiny_suite(16, 1);
  // The sort runs cannot be built: vocab_size 3 is too small for the task (the Adam update and
  // clipping keep even a huge learning rate from diverging on these models).
  j["tasks"] = {"copy", {{"task", "sort"}, {"model", {{"vocab_size", 3}}}}};
  const std::string suite = write_suite(dir, j);
  const std::string r = (dir / "r.sqlite").string(), log = (dir / "log").string();
  const std::vector<std::string> cmd = {LB_BINARY,           "run", suite, "--db", r, "--jobs", "4",
                                        "--threads-per-run", "1"};
  CHECK(run_binary(cmd, log) == 1);
  CHECK(count(r, "SELECT count(*) FROM runs WHERE status = 'done' AND task = 'copy'") == 2);
  CHECK(count(r,
              "SELECT count(*) FROM runs WHERE status = 'failed' AND task = 'sort' AND error LIKE "
              "'%vocab_size 3%'") == 2);
  const std::string out = read_file(log);
  CHECK(out.find("FAILED j/sort") != std::string::npos);
  CHECK(out.find("2 done, 0 already done, 2 failed") != std::string::npos);
  // A rerun retries only the failed runs (and they fail again).
  CHECK(run_binary(cmd, log) == 1);
  CHECK(count(r, "SELECT count(*) FROM runs WHERE attempts = 2 AND task = 'sort'") == 2);
  CHECK(count(r, "SELECT count(*) FROM runs WHERE attempts = 1 AND status = 'done'") == 2);
  fs::remove_all(dir);
}

TEST_CASE("jobs: slurm --jobs runs each node's shard with run --jobs; merged, equal one process") {
  const fs::path dir = temp_dir("slurm");
  const std::string suite = write_suite(dir, tiny_suite(16, 2));
  const std::string log = (dir / "log").string();
  REQUIRE(
      run_binary({LB_BINARY, "run", suite, "--db", (dir / "one.sqlite").string(), "--threads", "1"},
                 log) == 0);
  const std::string script = (dir / "array.sh").string();
  REQUIRE(std::system(("'" + std::string(LB_BINARY) + "' slurm '" + suite +
                       "' --shards 2 --cpus 2 --jobs 2 --out '" + (dir / "out").string() + "' > '" +
                       script + "'")
                          .c_str()) == 0);
  CHECK(read_file(script).find("--jobs 2 --threads-per-run 1") != std::string::npos);
  std::vector<std::string> merge = {LB_BINARY, "merge", (dir / "merged.sqlite").string()};
  for (int i = 0; i < 2; ++i) {
    const std::string cmd = "SLURM_ARRAY_TASK_ID=" + std::to_string(i) + " TMPDIR='" +
                            dir.string() + "' bash '" + script + "' >> '" + log + "' 2>&1";
    REQUIRE(std::system(cmd.c_str()) == 0);
    merge.push_back((dir / "out" / ("shard-" + std::to_string(i) + ".sqlite")).string());
  }
  REQUIRE(run_binary(merge, log) == 0);
  CHECK(dump_results((dir / "merged.sqlite").string()) ==
        dump_results((dir / "one.sqlite").string()));
  fs::remove_all(dir);
}
