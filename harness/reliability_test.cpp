// Issue 17 through the binary: no stale results (checkpoints tied to their run's config hash and
// sha256), no injection (slurm scripts quote everything, names are a safe set), no escape (paths
// stay under the checkpoint root), `query` is read-only, and bad input is one line, exit 2
// (items 1–3 and 7–11; items 4, 5 and 12 in reliability_concurrency_test.cpp).
#include "harness/reliability_testing.h"

using namespace lb::reliability_testing;

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
  require_usage_error(
      cli({"run", suite.string(), "--db", (root / "r.sqlite").string(), "--force", "--all"}),
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
