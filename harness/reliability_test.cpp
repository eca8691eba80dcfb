// Issue 17 through the binary: no stale results (checkpoints tied to their run's config hash and
// sha256), no injection (slurm scripts quote everything, names are a safe set), no escape (paths
// stay under the checkpoint root), `query` is read-only, and bad input is one line, exit 2.
#include <SQLiteCpp/SQLiteCpp.h>
#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/check.h"
#include "models/kernels/normalizer.h"
#include "models/sha256.h"

using nlohmann::json;
namespace fs = std::filesystem;

namespace {

struct Result {
  int code = -1;  // exit status; 128 + signal when killed by one
  std::string out, err;
};

fs::path temp_dir(const std::string& tag) {
  const fs::path d = fs::temp_directory_path() / ("lb_rel_" + tag + "_" + std::to_string(getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write(const fs::path& p, const std::string& text) {
  std::ofstream out(p, std::ios::binary);
  out << text;
}

// Runs `program args...` in `cwd` (default: here) with stdout and stderr captured.
Result run_program(const std::vector<std::string>& args, const fs::path& cwd = {},
                   const std::vector<std::string>& env = {}) {
  const fs::path dir = temp_dir("io");
  const fs::path out = dir / "out", err = dir / "err";
  const pid_t pid = fork();
  if (pid == 0) {
    if (!cwd.empty() && chdir(cwd.c_str()) != 0) _exit(126);
    for (const auto& e : env) putenv(const_cast<char*>(e.c_str()));
    dup2(open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644), 1);
    dup2(open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644), 2);
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  Result r;
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = slurp(out);
  r.err = slurp(err);
  fs::remove_all(dir);
  return r;
}

Result cli(std::vector<std::string> args, const fs::path& cwd = {}) {
  args.insert(args.begin(), LB_BINARY);
  return run_program(args, cwd);
}

// A usage error: exit 2 and exactly one bounded line on stderr naming the problem.
void require_usage_error(const Result& r, const std::string& mention) {
  INFO("stderr: " << r.err);
  CHECK(r.code == 2);
  CHECK(r.err.find(mention) != std::string::npos);
  CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
  CHECK(r.err.size() < lb::kMaxMessageChars + 64);
}

// One tiny copy run: trains in well under a second.
json tiny_suite(int steps = 16) {
  json j = json::parse(R"({
    "name": "rel",
    "model": {"preset": "tiny"},
    "train": {"batch": 4, "warmup": 2, "log_every": 4, "checkpoint_every": 8,
              "task_params": {"seq_len": 6, "vary_len": 2}},
    "tasks": ["copy"],
    "lr": [3e-3],
    "eval": {"lengths": [6, 12], "samples": 4},
    "select": {"length": 12, "samples": 4, "every": 8}
  })");
  j["train"]["steps"] = steps;
  return j;
}

fs::path write_suite(const fs::path& dir, const json& suite,
                     const std::string& name = "suite.json") {
  write(dir / name, suite.dump());
  return dir / name;
}

std::string query1(const fs::path& db, const std::string& sql) {
  SQLite::Database d(db.string(), SQLite::OPEN_READONLY);
  SQLite::Statement q(d, sql);
  REQUIRE(q.executeStep());
  return q.getColumn(0).isNull() ? "NULL" : q.getColumn(0).getString();
}

void flip_a_bit(const fs::path& file) {
  std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(-5, std::ios::end);
  char c = 0;
  f.get(c);
  f.seekp(-5, std::ios::end);
  f.put(static_cast<char>(c ^ 0x10));
}

}  // namespace

TEST_CASE("reliability 7: slurm scripts cannot run code from names, options or paths") {
  const fs::path dir = temp_dir("slurm");
  // Unsafe suite names are refused at load, by every command.
  for (const std::string name : {"$(touch x)", "a b", "line\nbreak", "nul\u0001", "..", "-x"}) {
    json s = tiny_suite();
    s["name"] = name;
    const fs::path suite = write_suite(dir, s);
    require_usage_error(cli({"slurm", suite.string(), "--shards", "2"}, dir), "suite /name");
    require_usage_error(cli({"run", suite.string(), "--dry-run"}, dir), "suite /name");
  }
  json nul = tiny_suite();
  nul["name"] = std::string("a\0b", 3);
  require_usage_error(cli({"run", write_suite(dir, nul).string(), "--dry-run"}), "suite /name");
  CHECK(!fs::exists(dir / "x"));

  const fs::path suite = write_suite(dir, tiny_suite());
  require_usage_error(cli({"slurm", suite.string(), "--shards", "2", "--time", "1:00$(touch x)"}),
                      "--time");
  require_usage_error(cli({"slurm", suite.string(), "--shards", "2", "--partition", "a;b"}),
                      "--partition");
  // A path with a command substitution and a space: the script uses it literally.
  const fs::path fake = dir / "fake-lb";
  write(fake, "#!/bin/sh\nexit 0\n");
  fs::permissions(fake, fs::perms::owner_all);
  const std::string out_dir = (dir / "out $(touch PWNED) x").string();
  const Result gen =
      cli({"slurm", suite.string(), "--shards", "2", "--out", out_dir, "--binary", fake.string()});
  REQUIRE(gen.code == 0);
  write(dir / "job.sh", gen.out);
  const fs::path work = temp_dir("slurm_cwd");
  run_program({"/bin/bash", (dir / "job.sh").string()}, work,
              {"SLURM_ARRAY_TASK_ID=0", "TMPDIR=" + work.string()});
  CHECK(!fs::exists(work / "PWNED"));
  CHECK(!fs::exists(dir / "PWNED"));
  CHECK(fs::is_directory(out_dir));
  fs::remove_all(dir);
  fs::remove_all(work);
}

TEST_CASE("reliability 8: nothing resolves outside the checkpoint root") {
  const fs::path dir = temp_dir("escape");
  const fs::path root = dir / "a" / "b" / "c";
  fs::create_directories(root);
  json s = tiny_suite();
  s["variants"] = json::array({{{"name", "../../../../ESCAPED"}}});
  const fs::path suite = write_suite(dir, s);
  require_usage_error(cli({"run", suite.string(), "--db", (root / "r.sqlite").string(), "--force", "--all"}),
                      "/variants/0/name");
  s["variants"] = json::array({{{"name", ".."}}});
  require_usage_error(cli({"run", write_suite(dir, s).string(), "--dry-run"}), "/variants/0/name");
  s.erase("variants");
  s["name"] = "..";
  require_usage_error(cli({"run", write_suite(dir, s).string(), "--dry-run"}), "suite /name");
  CHECK(!fs::exists(dir / "ESCAPED"));
  CHECK(!fs::exists(dir / "a" / "ESCAPED"));
  CHECK(lb::path_is_inside((root / "x" / "y").string(), root.string()));
  CHECK(!lb::path_is_inside((root / "x" / ".." / ".." / "y").string(), root.string()));
  CHECK(!lb::path_is_inside(root.string(), root.string()));
  fs::remove_all(dir);
}

TEST_CASE("reliability 9: query reads, never writes, one statement at a time") {
  const fs::path dir = temp_dir("query");
  const fs::path db = dir / "r.sqlite";
  REQUIRE(
      cli({"run", write_suite(dir, tiny_suite(8)).string(), "--db", db.string(), "--threads", "1"})
          .code == 0);
  const std::string before = lb::sha256_file_hex(db.string());
  const fs::path copy = dir / "copy.sqlite";
  for (const std::string& sql :
       std::vector<std::string>{"VACUUM INTO '" + copy.string() + "'", "SELECT 1; DROP TABLE evals",
                                "DELETE FROM evals", "INSERT INTO meta VALUES ('a', 'b')",
                                "PRAGMA user_version = 7", "ATTACH '" + copy.string() + "' AS x",
                                "CREATE TABLE t(x)", "BEGIN", "PRAGMA journal_mode=DELETE",
                                "DROP VIEW v_evals", "UPDATE runs SET status = 'failed'"}) {
    INFO(sql);
    const Result r = cli({"query", db.string(), sql});
    CHECK(r.code == 2);
    CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
  }
  CHECK(!fs::exists(copy));
  CHECK(lb::sha256_file_hex(db.string()) == before);
  CHECK(query1(db, "SELECT count(*) FROM evals") != "0");
  // Reading is fine: selects, reporting pragmas, a trailing comment; blobs print as x'..'.
  CHECK(cli({"query", db.string(), "SELECT count(*) FROM evals -- all"}).code == 0);
  CHECK(cli({"query", db.string(), "PRAGMA table_info(runs)"}).code == 0);
  const Result blob = cli({"query", db.string(), "SELECT x'00ff' AS b, 1 AS n", "--json"});
  CHECK(blob.code == 0);
  CHECK(blob.out == "{\"b\":\"x'00ff'\",\"n\":1}\n");

  // 6: merge compares training rows and attention statistics too, and knows a file by inode.
  for (const std::string& table : {std::string("train_metrics"), std::string("attn_stats")}) {
    const fs::path main = dir / ("main_" + table + ".sqlite"), shard = dir / "shard.sqlite";
    fs::copy_file(db, main, fs::copy_options::overwrite_existing);
    fs::copy_file(db, shard, fs::copy_options::overwrite_existing);
    {
      SQLite::Database d(shard.string(), SQLite::OPEN_READWRITE);
      const std::string col = table == "train_metrics" ? "loss" : "entropy";
      REQUIRE(d.exec("UPDATE " + table + " SET " + col + " = " + col +
                     " + 1 WHERE rowid = "
                     "(SELECT min(rowid) FROM " +
                     table + ")") == 1);
    }
    const Result m = cli({"merge", main.string(), shard.string()});
    INFO(table << ": " << m.out << m.err);
    CHECK(m.code == 1);
    CHECK(m.out.find("conflict") != std::string::npos);
    CHECK(m.out.find("0 already present") != std::string::npos);
  }
  fs::create_symlink(db, dir / "link.sqlite");
  fs::create_hard_link(db, dir / "hard.sqlite");
  for (const std::string same : {(dir / "link.sqlite").string(), (dir / "hard.sqlite").string(),
                                 (dir / "." / "r.sqlite").string()}) {
    require_usage_error(cli({"merge", db.string(), same}), "itself");
  }
  // table and plot agree: nothing matching is a usage error (exit 2) for both.
  require_usage_error(cli({"table", db.string(), "--task", "sort"}), "match");
  require_usage_error(
      cli({"plot", db.string(), "--task", "sort", "--out", (dir / "plots").string()}),
      "nothing to plot");
  CHECK(lb::sha256_file_hex(db.string()) == before);
  fs::remove_all(dir);
}

TEST_CASE("reliability 1+3: checkpoints carry their config hash and sha256, and are checked") {
  const fs::path dir = temp_dir("stale");
  const fs::path db = dir / "r.sqlite", ckpts = dir / "r.sqlite.checkpoints";
  REQUIRE(
      cli({"run", write_suite(dir, tiny_suite(16)).string(), "--db", db.string(), "--threads", "1"})
          .code == 0);
  // 3: every checkpoint row has its sha256, equal to the file's.
  CHECK(query1(db, "SELECT count(*) FROM checkpoints WHERE sha256 IS NULL") == "0");
  const std::string key = query1(db, "SELECT key FROM runs");
  CHECK(query1(db, "SELECT sha256 FROM checkpoints WHERE ckpt = 'last'") ==
        lb::sha256_file_hex((ckpts / key / "last" / "model.safetensors").string()));

  // 1: database deleted, suite edited (steps 16 -> 8, batch 4 -> 2): the old checkpoint is
  // discarded, not resumed and evaluated under the new config hash.
  fs::remove(db);
  json edited = tiny_suite(8);
  edited["train"]["batch"] = 2;
  const Result r =
      cli({"run", write_suite(dir, edited).string(), "--db", db.string(), "--threads", "1"});
  INFO(r.err);
  CHECK(r.code == 0);
  CHECK(r.err.find("resuming at step") == std::string::npos);
  CHECK(r.err.find("discarded") != std::string::npos);
  CHECK(query1(db, "SELECT max(step) FROM train_metrics") == "8");
  CHECK(query1(db, "SELECT max(step) FROM checkpoints") == "8");

  // 3: a flipped bit in the last checkpoint stops the resume (the run fails, exit 1).
  {
    SQLite::Database d(db.string(), SQLite::OPEN_READWRITE);
    d.exec("UPDATE runs SET status = 'running'");
  }
  flip_a_bit(ckpts / key / "last" / "model.safetensors");
  const Result bad =
      cli({"run", write_suite(dir, edited).string(), "--db", db.string(), "--threads", "1"});
  CHECK(bad.code == 1);
  CHECK(bad.err.find("sha256") != std::string::npos);
  CHECK(query1(db, "SELECT status FROM runs") == "failed");
  // ... and one in the best checkpoint stops its evaluation.
  flip_a_bit(ckpts / key / "best" / "model.safetensors");
  const Result ev = cli({"eval", "--checkpoint", (ckpts / key / "best").string(), "--lengths", "6",
                         "--samples", "2", "--threads", "1"});
  CHECK(ev.code == 1);
  CHECK(ev.err.find("sha256") != std::string::npos);
  fs::remove_all(dir);
}

TEST_CASE("reliability 2+3: train --out is atomic and a mixed checkpoint is refused") {
  const fs::path dir = temp_dir("train");
  const std::vector<std::string> base = {"train", "--preset",    "tiny", "--task",
                                         "copy",  "--threads",   "1",    "--batch",
                                         "4",     "--log-every", "2"};
  auto train = [&](std::vector<std::string> extra) {
    std::vector<std::string> a = base;
    a.insert(a.end(), extra.begin(), extra.end());
    return cli(a);
  };
  REQUIRE(train({"--steps", "2", "--out", (dir / "a").string()}).code == 0);
  REQUIRE(train({"--steps", "4", "--out", (dir / "b").string()}).code == 0);
  CHECK(fs::exists(dir / "a" / "manifest.json"));
  CHECK(!fs::exists(dir / "a.tmp"));
  CHECK(!fs::exists(dir / "a.old"));
  // Resuming writes the same folder through a temporary one.
  CHECK(cli({"train", "--resume", (dir / "a").string(), "--steps", "3", "--out",
             (dir / "a").string(), "--threads", "1"})
            .code == 0);
  // New optimizer state beside old weights (what a kill between two renames used to leave).
  fs::copy_file(dir / "b" / "optimizer.safetensors", dir / "a" / "optimizer.safetensors",
                fs::copy_options::overwrite_existing);
  const Result mixed =
      cli({"train", "--resume", (dir / "a").string(), "--steps", "6", "--threads", "1"});
  CHECK(mixed.code == 1);
  CHECK(mixed.err.find("optimizer.safetensors has sha256") != std::string::npos);
  // A kill between the renames leaves only a.old: it resumes from there.
  fs::rename(dir / "b", dir / "c.old");
  const Result old =
      cli({"train", "--resume", (dir / "c").string(), "--steps", "5", "--threads", "1"});
  INFO(old.err);
  CHECK(old.code == 0);
  fs::remove_all(dir);
}

TEST_CASE("reliability 10+11: crashes and silent acceptance are one-line usage errors") {
  const fs::path dir = temp_dir("bad");
  const std::vector<std::string> base = {"train",     "--preset", "tiny",    "--task", "copy",
                                         "--threads", "1",        "--steps", "2"};
  auto train = [&](std::vector<std::string> extra) {
    std::vector<std::string> a = base;
    a.insert(a.end(), extra.begin(), extra.end());
    return cli(a);
  };
  require_usage_error(train({"--log-every", "0"}), "--log-every");
  require_usage_error(train({"--log-every", "-1"}), "--log-every");
  require_usage_error(train({"--warmup", "-1"}), "--warmup");
  require_usage_error(train({"--lr", "inf"}), "--lr");
  require_usage_error(train({"--lr", "1e30"}), "--lr");
  require_usage_error(train({"--batch", "1000000000"}), "--batch");

  // JSON nested 100k deep, as a suite and as a checkpoint's config.json: one short line.
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  write(dir / "deep.json", "{\"name\": \"d\", \"tasks\": " + deep + "}");
  require_usage_error(cli({"run", (dir / "deep.json").string(), "--dry-run"}), "deeper than");
  write(dir / "deep10k.json", "{\"name\": \"d\", \"tasks\": [\"copy\"], \"seeds\": " +
                                  std::string(10000, '[') + std::string(10000, ']') + "}");
  require_usage_error(cli({"run", (dir / "deep10k.json").string(), "--dry-run"}), "deeper than");
  fs::create_directories(dir / "ck");
  write(dir / "ck" / "config.json", "{\"model\": " + deep + "}");
  require_usage_error(cli({"eval", "--checkpoint", (dir / "ck").string()}), "deeper than");
  // A million evaluation lengths is refused at once, not expanded.
  json many = tiny_suite();
  many["eval"]["lengths"] = json::array();
  for (int i = 1; i <= 1000000; ++i) many["eval"]["lengths"].push_back(i);
  require_usage_error(cli({"run", write_suite(dir, many).string(), "--dry-run"}), "at most");
  // Duplicate keys are ambiguous; a directory is not a suite or a config.
  write(dir / "dup.json", R"({"name": "a", "name": "b", "tasks": ["copy"]})");
  require_usage_error(cli({"run", (dir / "dup.json").string(), "--dry-run"}), "twice");
  require_usage_error(cli({"run", dir.string(), "--dry-run"}), "is a directory");
  require_usage_error(train({"--config", dir.string()}), "is a directory");

  // Seeds do not wrap; scores overflowing a float are refused; results are finite or an error.
  require_usage_error(cli({"gen", "copy", "--length", "4", "--seed", "-1"}), "seed");
  require_usage_error(cli({"normalize", "softmax", "1e39", "1"}), "1e39");
  for (const std::string& name : lb::all_normalizer_names()) {
    const Result r = cli({"normalize", name, "3e38", "-3e38", "1", "--json"});
    INFO(name << ": " << r.out << r.err);
    CHECK((r.code == 0 || r.code == 2));
    CHECK(r.out.find("nan") == std::string::npos);
    CHECK(r.out.find("inf") == std::string::npos);
  }
  // export never leaves an earlier export's splits beside a manifest that does not list them.
  const std::vector<std::string> exp = {
      "export",       "copy", "--out",      (dir / "data").string(),
      "--train-size", "2",    "--dev-size", "1",
      "--test-size",  "1",    "--lengths",  "4"};
  REQUIRE(cli(exp).code == 0);
  require_usage_error(cli(exp), "not an empty folder");

  // A config that does not match the weights (layers 1 vs the checkpoint's 2) is refused.
  REQUIRE(train({"--out", (dir / "two").string()}).code == 0);
  require_usage_error(
      cli({"eval", "--checkpoint", (dir / "two").string(), "--samples", "99999999999999"}),
      "--samples");
  json cfg = json::parse(slurp(dir / "two" / "config.json"));
  cfg["model"]["layers"] = 1;
  write(dir / "two" / "config.json", cfg.dump());
  fs::remove(dir / "two" / "manifest.json");  // else the sha256 check refuses it first
  const Result mismatch = cli({"eval", "--checkpoint", (dir / "two").string(), "--lengths", "6",
                               "--samples", "2", "--threads", "1"});
  require_usage_error(mismatch, "tensors");
  fs::remove_all(dir);
}

// ---- items 4, 5 and 12: concurrent writers, single-transaction transitions, interrupts --------

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
