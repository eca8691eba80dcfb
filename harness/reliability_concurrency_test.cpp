// Issue 17 through the binary, items 4, 5 and 12: concurrent writers on one database,
// single-transaction transitions, and interrupts (kill -9, Ctrl-C) followed by resumes that give
// the database an uninterrupted run gives.
#include "harness/reliability_testing.h"

using namespace lb::reliability_testing;

namespace {

// Everything a run leaves in the database that must not depend on how often it was interrupted:
// runs, training rows, selection evaluations, checkpoints (with sha256), evaluations and attention
// statistics (wall-clock columns and paths, which name the database, left out).
std::string dump_db(const fs::path& db) {
  SQLite::Database d(db.string(), SQLite::OPEN_READONLY);
  std::string out;
  for (const char* sql :
       {"SELECT key, status, coalesce(error, '') FROM runs ORDER BY 1",
        "SELECT run_key, step, quote(loss), quote(grad_norm), quote(lr) FROM train_metrics "
        "ORDER BY 1, 2",
        "SELECT run_key, step, quote(exact_match), quote(token_accuracy), quote(loss) "
        "FROM selection_evals ORDER BY 1, 2",
        "SELECT run_key, ckpt, step, sha256, coalesce(selected_by, ''), quote(metric) "
        "FROM checkpoints ORDER BY 1, 2",
        "SELECT run_key, ckpt, step, split, length, status, samples, quote(exact_match), "
        "quote(token_accuracy), quote(edit_distance) FROM evals ORDER BY 1, 2, 3, 4, 5",
        "SELECT run_key, ckpt, split, length, layer, head, queries, quote(entropy), "
        "quote(support), quote(max_weight), quote(relevant_mass), quote(scale_p50), head_kind "
        "FROM attn_stats "
        "ORDER BY 1, 2, 3, 4, 5, 6"}) {
    SQLite::Statement q(d, sql);
    while (q.executeStep()) {
      for (int i = 0; i < q.getColumnCount(); ++i) out += q.getColumn(i).getString() + "|";
      out += "\n";
    }
  }
  return out;
}

// `run` of suite `suite` into `db` (checkpoints beside it), with `env` (e.g. a test signal point).
Result run_suite_cli(const fs::path& suite, const fs::path& db,
                     const std::vector<std::string>& env = {}) {
  return run_program({LB_BINARY, "run", suite.string(), "--db", db.string(), "--threads", "1"}, {},
                     env);
}

void set_claim(const fs::path& db, const std::string& key, const std::string& owner,
               const std::string& heartbeat_sql) {
  SQLite::Database d(db.string(), SQLite::OPEN_READWRITE, 5000);
  d.exec("UPDATE runs SET status = 'running', heartbeat_at = " + heartbeat_sql);
  SQLite::Statement q(d, "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)");
  q.bind(1, "run_owner/" + key);
  q.bind(2, owner);
  q.exec();
}

std::string hostname() {
  char host[256] = {0};
  gethostname(host, sizeof host - 1);
  return host;
}

}  // namespace

TEST_CASE("reliability 4: processes creating one new database at once all succeed") {
  // The test holds the write lock of the new (empty) file while four `run`s start: each reads
  // "no schema yet", then all go on at once when the lock is given back. Before: they deadlocked
  // switching to WAL (each waiting 30 s for the others), or raced on CREATE TABLE.
  const fs::path dir = temp_dir("create");
  const fs::path suite = write_suite(dir, tiny_suite(8)), db = dir / "new.sqlite";
  std::vector<pid_t> children;
  {
    SQLite::Database hold(db.string(), SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
    hold.exec("BEGIN IMMEDIATE");
    for (int i = 0; i < 4; ++i) {
      const pid_t pid = fork();
      if (pid == 0) {
        const int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        dup2(null, 2);
        execl(LB_BINARY, LB_BINARY, "run", suite.c_str(), "--db", db.c_str(), "--filter",
              "matches-nothing", static_cast<char*>(nullptr));
        _exit(127);
      }
      children.push_back(pid);
    }
    usleep(1000 * 1000);
    hold.exec("ROLLBACK");
  }
  for (pid_t pid : children) {
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
  }
  CHECK(query1(db, "PRAGMA journal_mode") == "wal");
  CHECK(query1(db, "SELECT count(*) FROM meta WHERE key = 'schema_version'") == "1");
  fs::remove_all(dir);
}

TEST_CASE("reliability 4: two run processes on one database share the runs, each trained once") {
  const fs::path dir = temp_dir("two");
  json two = tiny_suite(160);
  two["lr"] = {3e-3, 2e-3};
  two["train"]["checkpoint_every"] = 40;
  two["select"]["every"] = 40;
  const fs::path suite = write_suite(dir, two);
  REQUIRE(run_suite_cli(suite, dir / "serial.sqlite").code == 0);
  // A starts; B starts while A trains the first run.
  const fs::path db = dir / "shared.sqlite";
  const pid_t a = fork();
  if (a == 0) {
    const int null = open("/dev/null", O_WRONLY);
    dup2(null, 1);
    dup2(null, 2);
    execl(LB_BINARY, LB_BINARY, "run", suite.c_str(), "--db", db.c_str(), "--threads", "1",
          static_cast<char*>(nullptr));
    _exit(127);
  }
  bool training = false;
  for (int i = 0; i < 5000 && !training; ++i) {
    usleep(2000);
    try {
      SQLite::Database d(db.string(), SQLite::OPEN_READONLY, 1000);
      training = d.execAndGet("SELECT count(*) FROM train_metrics").getInt() >= 1;
    } catch (const SQLite::Exception&) {
    }
  }
  REQUIRE(training);
  const Result b = run_suite_cli(suite, db);
  int status = 0;
  waitpid(a, &status, 0);
  INFO("B: " << b.err);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  CHECK(b.code == 0);
  CHECK(b.err.find("being run by " + hostname() + ":" + std::to_string(a)) != std::string::npos);
  // Each run trained by one process, once; the database equals a serial run's.
  CHECK(query1(db, "SELECT count(*) FROM runs WHERE status = 'done' AND attempts = 1") == "2");
  CHECK(query1(db, "SELECT count(*) FROM meta WHERE key LIKE 'run_owner/%'") == "0");
  CHECK(dump_db(db) == dump_db(dir / "serial.sqlite"));
  fs::remove_all(dir);
}

TEST_CASE("reliability 4: a live claim is skipped; a dead owner's or a silent one is taken over") {
  const fs::path dir = temp_dir("claim");
  const fs::path suite = write_suite(dir, tiny_suite(16)), db = dir / "r.sqlite";
  // Killed at its first checkpoint: the run is left 'running', claimed by a dead process.
  REQUIRE(run_suite_cli(suite, db, {"LB_TEST_SIGNAL_AT=checkpoint-saved@1:KILL"}).code ==
          128 + SIGKILL);
  const std::string key = query1(db, "SELECT key FROM runs");
  CHECK(query1(db, "SELECT status FROM runs") == "running");
  CHECK(query1(db, "SELECT count(*) FROM meta WHERE key = 'run_owner/" + key + "'") == "1");
  // A live process on this host (this test) with a fresh heartbeat: skipped, nothing touched.
  const std::string me = hostname() + ":" + std::to_string(getpid());
  set_claim(db, key, me, "strftime('%Y-%m-%dT%H:%M:%SZ', 'now')");
  Result r = run_suite_cli(suite, db);
  CHECK(r.code == 0);
  CHECK(r.err.find("being run by " + me) != std::string::npos);
  CHECK(r.out.find("1 being run by another process") != std::string::npos);
  CHECK(query1(db, "SELECT status || ' ' || attempts FROM runs") == "running 1");
  // Another host, fresh heartbeat: skipped too.
  set_claim(db, key, "elsewhere.example:1", "strftime('%Y-%m-%dT%H:%M:%SZ', 'now')");
  CHECK(run_suite_cli(suite, db).err.find("being run by elsewhere.example:1") != std::string::npos);
  CHECK(query1(db, "SELECT status FROM runs") == "running");
  // The same live owner with a heartbeat an hour old: taken over and finished.
  set_claim(db, key, me, "strftime('%Y-%m-%dT%H:%M:%SZ', 'now', '-1 hour')");
  r = run_suite_cli(suite, db);
  INFO(r.err);
  CHECK(r.code == 0);
  CHECK(r.err.find("resuming at step 8") != std::string::npos);
  CHECK(query1(db, "SELECT status || ' ' || attempts FROM runs") == "done 2");
  CHECK(query1(db, "SELECT count(*) FROM meta WHERE key LIKE 'run_owner/%'") == "0");
  fs::remove_all(dir);
}

TEST_CASE("reliability 5: a kill between the final checkpoint's rename and its row") {
  const fs::path dir = temp_dir("lastrow");
  const fs::path suite = write_suite(dir, tiny_suite(16));
  REQUIRE(run_suite_cli(suite, dir / "a.sqlite").code == 0);
  // Checkpoints at steps 8 and 16: killed after the second is renamed into place.
  const fs::path db = dir / "b.sqlite";
  REQUIRE(run_suite_cli(suite, db, {"LB_TEST_SIGNAL_AT=checkpoint-saved@2:KILL"}).code ==
          128 + SIGKILL);
  CHECK(query1(db, "SELECT step FROM checkpoints WHERE ckpt = 'last'") == "8");  // behind
  const Result r = run_suite_cli(suite, db);
  INFO(r.err);
  CHECK(r.code == 0);
  const std::string key = query1(db, "SELECT key FROM runs");
  CHECK(query1(db, "SELECT step FROM checkpoints WHERE ckpt = 'last'") == "16");
  CHECK(query1(db, "SELECT sha256 FROM checkpoints WHERE ckpt = 'last'") ==
        lb::sha256_file_hex(
            (dir / "b.sqlite.checkpoints" / key / "last" / "model.safetensors").string()));
  CHECK(dump_db(db) == dump_db(dir / "a.sqlite"));
  fs::remove_all(dir);
}

TEST_CASE("reliability 5: evaluation resumes per length; Ctrl-C after the last length is done") {
  const fs::path dir = temp_dir("perlen");
  const fs::path suite = write_suite(dir, tiny_suite(16));
  REQUIRE(run_suite_cli(suite, dir / "a.sqlite").code == 0);
  // Killed once the first ladder length (6) is stored: the rerun keeps it, computes only 12.
  const fs::path db = dir / "b.sqlite";
  REQUIRE(run_suite_cli(suite, db, {"LB_TEST_SIGNAL_AT=eval-stored@1:KILL"}).code == 128 + SIGKILL);
  const std::string seconds_6 =
      query1(db, "SELECT quote(seconds) FROM evals WHERE split = 'test' AND length = 6");
  const Result r = run_suite_cli(suite, db);
  INFO(r.err);
  CHECK(r.code == 0);
  CHECK(r.err.find("test L=6 already stored") != std::string::npos);
  CHECK(r.err.find("test L=6 exact match") == std::string::npos);
  CHECK(r.err.find("test L=12 exact match") != std::string::npos);
  CHECK(query1(db, "SELECT quote(seconds) FROM evals WHERE split = 'test' AND length = 6") ==
        seconds_6);
  CHECK(dump_db(db) == dump_db(dir / "a.sqlite"));
  // SIGINT right after the last length is stored: the run is done (one transaction), not left
  // 'running'.
  const fs::path c = dir / "c.sqlite";
  const Result ctrl_c = run_suite_cli(suite, c, {"LB_TEST_SIGNAL_AT=eval-stored@2:INT"});
  INFO(ctrl_c.err);
  CHECK(query1(c, "SELECT status FROM runs") == "done");
  CHECK(dump_db(c) == dump_db(dir / "a.sqlite"));
  fs::remove_all(dir);
}

TEST_CASE("reliability 12: Ctrl-C stops an evaluation between samples; the length reruns") {
  const fs::path dir = temp_dir("ctrlc");
  json many = tiny_suite(16);
  many["eval"]["samples"] = 64;
  const fs::path suite = write_suite(dir, many);
  REQUIRE(run_suite_cli(suite, dir / "a.sqlite").code == 0);
  // SIGINT after the third of 64 samples of the first ladder length: no fourth sample starts,
  // nothing of that length is stored, the run stays 'running' (exit 130).
  const fs::path db = dir / "b.sqlite";
  const Result r = run_suite_cli(suite, db, {"LB_TEST_SIGNAL_AT=eval-sample@3:INT"});
  INFO(r.err);
  CHECK(r.code == 130);
  CHECK(r.err.find("interrupted during evaluation") != std::string::npos);
  CHECK(query1(db, "SELECT count(*) FROM evals WHERE split = 'test'") == "0");
  CHECK(query1(db, "SELECT status FROM runs") == "running");
  CHECK(query1(db, "SELECT count(*) FROM meta WHERE key LIKE 'run_owner/%'") == "0");
  // The rerun evaluates the whole ladder: the same database as without the interrupt.
  const Result again = run_suite_cli(suite, db);
  CHECK(again.code == 0);
  CHECK(dump_db(db) == dump_db(dir / "a.sqlite"));
  fs::remove_all(dir);
}

TEST_SUITE("slow") {
  // Malformed suites, configs, checkpoints, task files and databases at every command that reads
  // them: exit 1 or 2 with one line on stderr, and a results database given alongside unchanged.
  TEST_CASE("reliability fuzz: malformed files at every command") {
    const fs::path dir = temp_dir("fuzz");
    const fs::path db = dir / "r.sqlite";
    REQUIRE(cli({"run", write_suite(dir, tiny_suite(8)).string(), "--db", db.string(), "--threads",
                 "1"})
                .code == 0);
    const std::string before = lb::sha256_file_hex(db.string());
    std::vector<std::string> corpus = {
        "",
        "{",
        "[]",
        "null",
        "1e999",
        "\"x\"",
        std::string("\0\1\2\xff\xfe", 5),
        std::string(5000, '['),
        std::string(100000, '{'),
        R"({"name": "a", "name": "b"})",
        R"({"model": {"layers": -1}})",
        R"({"model": {"layers": 1e300}, "train": {"lr": "x"}})",
        R"({"train": {"batch": 0}})",
        R"J({"name": "$(reboot)", "tasks": ["copy"]})J",
        R"({"name": "ok", "tasks": ["nope"]})",
        R"({"name": "ok", "tasks": ["copy"], "eval": {"lengths": [-1]}})",
        R"({"name": "ok", "tasks": [{"task": "copy", "train": {"steps": -5}}]})",
        R"({"name": "ok", "tasks": ["copy"], "variants": [{"name": "../x"}]})",
        R"({"model": {}, "train": {"task": "copy", "log_every": 0}})"};
    // Truncations of a real file: a database, a safetensors file.
    const std::string db_bytes = slurp(db);
    for (size_t n : {size_t{0}, size_t{100}, size_t{4096}, db_bytes.size() / 2}) {
      corpus.push_back(db_bytes.substr(0, std::min(n, db_bytes.size())));
    }
    int cases = 0;
    auto expect_failure = [&](const std::vector<std::string>& args) {
      const Result r = cli(args);
      INFO(args[0] << " " << (args.size() > 1 ? args[1] : "") << " -> " << r.code << ": " << r.err);
      CHECK((r.code == 1 || r.code == 2));
      CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
      CHECK(r.err.size() < lb::kMaxMessageChars + 64);
      ++cases;
    };
    const std::string key = query1(db, "SELECT key FROM runs");
    const fs::path ckpt = dir / "r.sqlite.checkpoints" / key / "best";
    for (size_t i = 0; i < corpus.size(); ++i) {
      const fs::path f = dir / ("f" + std::to_string(i));
      write(f, corpus[i]);
      expect_failure({"run", f.string(), "--dry-run"});
      expect_failure({"run", f.string(), "--db", db.string()});
      expect_failure({"slurm", f.string(), "--shards", "2"});
      expect_failure({"train", "--config", f.string(), "--steps", "1"});
      expect_failure({"status", db.string(), f.string()});
      // Databases: every reader, and merge into the real database.
      for (const std::string& cmd : {"query", "status", "table"}) {
        std::vector<std::string> a = {cmd, f.string()};
        if (cmd == "query") a.push_back("SELECT * FROM runs");
        expect_failure(a);
      }
      expect_failure({"plot", f.string(), "--out", (dir / "plots").string()});
      expect_failure({"merge", db.string(), f.string()});
      // Checkpoints: each file of a real one replaced; and a task dataset's manifest.
      for (const std::string& file : {"config.json", "model.safetensors", "manifest.json"}) {
        const fs::path c = dir / "ck";
        fs::remove_all(c);
        fs::copy(ckpt, c);
        write(c / file, corpus[i]);
        expect_failure({"eval", "--checkpoint", c.string(), "--lengths", "6", "--samples", "2",
                        "--threads", "1"});
        expect_failure({"train", "--resume", c.string(), "--steps", "20", "--threads", "1"});
      }
      fs::create_directories(dir / "data");
      write(dir / "data" / "lengthbench.json", corpus[i]);
      expect_failure({"gen", "--from", (dir / "data").string()});
      CHECK(lb::sha256_file_hex(db.string()) == before);
    }
    MESSAGE(cases << " malformed inputs");
    fs::remove_all(dir);
  }
}
