// The results database: schema, run lifecycle, views, locking, merge.
#include "results/db.h"

#include <SQLiteCpp/SQLiteCpp.h>
#include <doctest/doctest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "core/check.h"
#include "results/testing.h"

using namespace lb;
namespace fs = std::filesystem;
using testing::make_run;

namespace {

std::string temp_db(const std::string& tag) {
  const fs::path p =
      fs::temp_directory_path() / ("lb_db_" + tag + "_" + std::to_string(getpid()) + ".sqlite");
  for (const char* ext : {"", "-wal", "-shm"}) fs::remove(p.string() + ext);
  return p.string();
}

// A finished run with a validation score (for selection) and test scores at two lengths.
void finished_run(ResultsDb& db, const RunRecord& r, double val, double test64, double test512) {
  db.begin_run(r, Provenance::current(1));
  db.add_train_metrics(r.key, {{1, 2.0, 1e-3, 1.0, 100, 0.1}, {2, 1.5, 1e-3, 0.9, 100, 0.2}});
  EvalRow e;
  e.split = "validation";
  e.length = 512;
  e.samples = 10;
  e.exact_match = val;
  db.add_eval(r.key, e, {});
  e.split = "test";
  e.length = 64;
  e.exact_match = test64;
  AttnRow a;
  a.layer = 0;
  a.head = 1;
  a.queries = 5;
  a.entropy = 0.5;
  a.scale_p50 = 1.7;
  db.add_eval(r.key, e, {a});
  e.length = 512;
  e.exact_match = test512;
  db.add_eval(r.key, e, {});
  db.finish_run(r.key, RunStatus::kDone);
}

int64_t count(ResultsDb& db, const std::string& sql) { return db.sql().execAndGet(sql).getInt64(); }

}  // namespace

TEST_CASE("results: a run's lifecycle, with provenance and no duplicate metrics on resume") {
  const std::string path = temp_db("life");
  {
    ResultsDb db(path, ResultsDb::Mode::kReadWrite);
    CHECK(count(db, "PRAGMA user_version") == kSchemaVersion);
    CHECK(db.sql().execAndGet("PRAGMA journal_mode").getString() == "wal");
    const RunRecord r = make_run("a", "softmax", 0, 1e-3);
    CHECK(db.run_status("a") == RunStatus::kNone);
    db.begin_run(r, Provenance::current(2));
    CHECK(db.run_status("a") == RunStatus::kRunning);
    db.add_train_metrics("a", {{1, 2.0, 1e-3, 1.0, 10, 0.1}, {2, 1.9, 1e-3, 1.0, 10, 0.2}});
    // Interrupted, resumed from step 1: step 2 is logged again and replaces the first copy.
    db.begin_run(r, Provenance::current(2));
    db.add_train_metrics("a", {{2, 1.8, 1e-3, 1.0, 10, 0.2}, {3, 1.7, 1e-3, 1.0, 10, 0.3}});
    CHECK(count(db, "SELECT count(*) FROM train_metrics") == 3);
    CHECK(db.sql().execAndGet("SELECT loss FROM train_metrics WHERE step = 2").getDouble() == 1.8);
    CHECK(count(db, "SELECT attempts FROM runs") == 2);
    db.finish_run("a", RunStatus::kDone);
    CHECK(db.run_status("a") == RunStatus::kDone);
    CHECK_THROWS(db.begin_run(r, Provenance::current(2)));  // done is done
    RunRecord changed = make_run("b", "softmax", 0, 1e-3);
    db.begin_run(changed, Provenance::current(1));
    db.finish_run("b", RunStatus::kFailed, "loss is NaN at step 7");
    changed.config_hash = "other";
    CHECK_THROWS_AS(db.begin_run(changed, Provenance::current(1)), UsageError);
    SQLite::Statement p(
        db.sql(),
        "SELECT git_commit, onednn_version, onednn_isa, compiler, threads FROM runs WHERE key='a'");
    REQUIRE(p.executeStep());
    CHECK(p.getColumn(0).getString().size() >= 7);
    CHECK(p.getColumn(1).getString().rfind("2.", 0) == 0);
    CHECK(!p.getColumn(2).getString().empty());
    CHECK(p.getColumn(3).getString().find("12") != std::string::npos);
    CHECK(p.getColumn(4).getInt() == 2);
  }
  ResultsDb again(path, ResultsDb::Mode::kReadOnly);
  CHECK(again.runs().size() == 2);
  CHECK(again.runs()[1].error == "loss is NaN at step 7");
}

TEST_CASE("results: transaction groups writes (all or none); claims and evals_of") {
  const std::string path = temp_db("txn");
  ResultsDb db(path, ResultsDb::Mode::kReadWrite);
  const RunRecord r = make_run("a", "softmax", 0, 1e-3);
  CHECK(db.claim_run(r, Provenance::current(1)).outcome == ResultsDb::Claim::kClaimed);
  CHECK(count(db, "SELECT count(*) FROM meta WHERE value = '" + this_process_owner() + "'") == 1);
  EvalRow e;
  e.length = 64;
  e.samples = 10;
  e.exact_match = 0.5;
  // A failure inside rolls back every write of the group, add_eval's own transaction included.
  CHECK_THROWS(db.transaction([&] {
    db.add_eval("a", e, {});
    db.finish_run("a", RunStatus::kDone);
    throw std::runtime_error("killed here");
  }));
  CHECK(count(db, "SELECT count(*) FROM evals") == 0);
  CHECK(db.run_status("a") == RunStatus::kRunning);
  db.transaction([&] {
    db.add_eval("a", e, {});
    db.finish_run("a", RunStatus::kDone);
  });
  CHECK(db.run_status("a") == RunStatus::kDone);
  CHECK(count(db, "SELECT count(*) FROM meta WHERE key LIKE 'run_owner/%'") == 0);
  const auto rows = db.evals_of("a", "best", 0, "test");
  REQUIRE(rows.size() == 1);
  CHECK(rows[0].length == 64);
  CHECK(rows[0].exact_match == 0.5);
  CHECK(db.evals_of("a", "best", 1, "test").empty());  // another step: another checkpoint
  CHECK(db.claim_run(r, Provenance::current(1)).outcome == ResultsDb::Claim::kDone);
}

TEST_CASE("results: a resumed run's provenance is its latest attempt's, every field of it") {
  const std::string path = temp_db("prov");
  ResultsDb db(path, ResultsDb::Mode::kReadWrite);
  const RunRecord r = make_run("a", "softmax", 0, 1e-3);
  Provenance first = Provenance::current(1);
  first.git_commit = "aaaa", first.lengthbench_version = "0.0", first.compiler = "cc 1";
  first.onednn_version = "1.0", first.onednn_isa = "avx512_core_amx", first.host = "big (Xeon)";
  REQUIRE(db.claim_run(r, first).outcome == ResultsDb::Claim::kClaimed);
  db.release_run("a");  // interrupted: stays 'running', resumed elsewhere
  Provenance second = Provenance::current(2);
  second.git_commit = "bbbb", second.lengthbench_version = "0.1", second.compiler = "cc 2";
  second.onednn_version = "2.0", second.onednn_isa = "avx512_core_bf16", second.host = "small";
  REQUIRE(db.claim_run(r, second).outcome == ResultsDb::Claim::kClaimed);
  CHECK(count(db, "SELECT count(*) FROM runs WHERE key = 'a' AND attempts = 2 AND "
                  "git_commit = 'bbbb' AND lengthbench_version = '0.1' AND compiler = 'cc 2' AND "
                  "onednn_version = '2.0' AND onednn_isa = 'avx512_core_bf16' AND "
                  "host = 'small' AND threads = 2") == 1);
}

TEST_CASE("results: views give mean and sd over seeds, and best-of by validation") {
  const std::string path = temp_db("views");
  ResultsDb db(path, ResultsDb::Mode::kReadWrite);
  finished_run(db, make_run("e-s0", "entmax", 0, 1e-3), 0.9, 1.0, 0.6);
  finished_run(db, make_run("e-s1", "entmax", 1, 1e-3), 0.5, 0.8, 0.8);
  finished_run(db, make_run("e-s2-lr", "entmax", 2, 4e-4), 0.95, 0.7, 0.2);
  SQLite::Statement q(db.sql(),
                      "SELECT seeds, exact_match_mean, exact_match_sd FROM v_seed_summary "
                      "WHERE lr = 1e-3 AND split = 'test' AND length = 512");
  REQUIRE(q.executeStep());
  CHECK(q.getColumn(0).getInt() == 2);
  CHECK(q.getColumn(1).getDouble() == doctest::Approx(0.7));
  CHECK(q.getColumn(2).getDouble() == doctest::Approx(0.141421356).epsilon(1e-6));
  SQLite::Statement b(db.sql(), "SELECT DISTINCT run_key FROM v_best_of");
  REQUIRE(b.executeStep());
  CHECK(b.getColumn(0).getString() == "e-s2-lr");  // the best validation score wins
  CHECK(!b.executeStep());
  CHECK(count(db, "SELECT length_mult FROM v_evals WHERE length = 512 LIMIT 1") == 8);
  std::ostringstream table, csv, json;
  print_query(db, "SELECT key, lr FROM runs ORDER BY key", QueryFormat::kTable, table);
  CHECK(table.str().find("e-s0     0.001") != std::string::npos);
  CHECK(table.str().find("(3 rows)") != std::string::npos);
  print_query(db, "SELECT key, error FROM runs ORDER BY key LIMIT 1", QueryFormat::kCsv, csv);
  CHECK(csv.str() == "key,error\ne-s0,NULL\n");
  print_query(db, "SELECT key, seed FROM runs ORDER BY key LIMIT 1", QueryFormat::kJson, json);
  CHECK(json.str() == "{\"key\":\"e-s0\",\"seed\":0}\n");
  CHECK_THROWS_AS(print_query(db, "SELEC 1", QueryFormat::kTable, table), UsageError);
}

TEST_CASE("results: foreign, newer and missing databases are refused") {
  const std::string path = temp_db("foreign");
  CHECK_THROWS_AS(ResultsDb(path, ResultsDb::Mode::kReadOnly), UsageError);
  std::ofstream(path) << "this is not a database, just a text file of some length............";
  CHECK_THROWS_AS(ResultsDb(path, ResultsDb::Mode::kReadWrite), UsageError);
  fs::remove(path);
  {
    SQLite::Database raw(path, SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
    raw.exec("CREATE TABLE other(x)");
  }
  CHECK_THROWS_AS(ResultsDb(path, ResultsDb::Mode::kReadWrite), UsageError);
  fs::remove(path);
  {
    ResultsDb db(path, ResultsDb::Mode::kReadWrite);
    db.sql().exec("PRAGMA user_version = 99");
  }
  try {
    ResultsDb db(path, ResultsDb::Mode::kReadWrite);
    FAIL("a newer schema was accepted");
  } catch (const UsageError& e) {
    CHECK(std::string(e.what()).find("schema version 99, newer") != std::string::npos);
  }
}

TEST_CASE("results: a locked database is waited on, then a clear error; readers are not blocked") {
  const std::string path = temp_db("lock");
  ResultsDb writer(path, ResultsDb::Mode::kReadWrite);
  writer.begin_run(make_run("a", "softmax", 0, 1e-3), Provenance::current(1));
  ResultsDb other(path, ResultsDb::Mode::kReadWrite, 200);
  ResultsDb reader(path, ResultsDb::Mode::kReadOnly, 200);
  {
    SQLite::Transaction hold(writer.sql(), SQLite::TransactionBehavior::IMMEDIATE);
    writer.sql().exec("UPDATE runs SET error = 'uncommitted'");
    try {
      other.begin_run(make_run("b", "softmax", 0, 1e-3), Provenance::current(1));
      FAIL("a second writer got in");
    } catch (const std::runtime_error& e) {
      CHECK(std::string(e.what()).find("is locked by another process") != std::string::npos);
    }
    // WAL: the reader sees the last committed state while the write is open.
    CHECK(reader.run_status("a") == RunStatus::kRunning);
    CHECK(count(reader, "SELECT count(*) FROM runs WHERE error IS NULL") == 1);
  }
  CHECK(other.run_status("b") == RunStatus::kNone);
}

TEST_CASE("results: merging shards equals one database, is idempotent, and reports conflicts") {
  const std::string one = temp_db("one"), s1 = temp_db("s1"), s2 = temp_db("s2"),
                    out = temp_db("out");
  {
    ResultsDb all(one, ResultsDb::Mode::kReadWrite), a(s1, ResultsDb::Mode::kReadWrite),
        b(s2, ResultsDb::Mode::kReadWrite);
    finished_run(all, make_run("r0", "softmax", 0, 1e-3), 0.5, 0.9, 0.1);
    finished_run(all, make_run("r1", "entmax", 0, 1e-3), 0.6, 1.0, 0.5);
    finished_run(a, make_run("r0", "softmax", 0, 1e-3), 0.5, 0.9, 0.1);
    finished_run(b, make_run("r1", "entmax", 0, 1e-3), 0.6, 1.0, 0.5);
    b.begin_run(make_run("r2", "sparsemax", 0, 1e-3), Provenance::current(1));  // unfinished
  }
  MergeReport rep = merge_databases(out, {s1, s2});
  CHECK(rep.runs_added == 3);
  CHECK(rep.conflicts.empty());
  rep = merge_databases(out, {s1, s2});  // again: nothing changes
  CHECK(rep.runs_added == 0);
  CHECK(rep.runs_same == 3);
  const char* compare =
      "SELECT run_key, ckpt, split, length, exact_match FROM evals ORDER BY 1, 2, 3, 4";
  {
    ResultsDb merged(out, ResultsDb::Mode::kReadOnly), single(one, ResultsDb::Mode::kReadOnly);
    std::ostringstream m, s;
    print_query(merged, compare, QueryFormat::kCsv, m);
    print_query(single, compare, QueryFormat::kCsv, s);
    CHECK(m.str() == s.str());
    CHECK(count(merged, "SELECT count(*) FROM attn_stats") == 2);
    CHECK(count(merged, "SELECT count(*) FROM train_metrics") == 4);
  }
  // The unfinished run finishes in a later shard: it replaces the unfinished copy.
  const std::string s3 = temp_db("s3");
  {
    ResultsDb c(s3, ResultsDb::Mode::kReadWrite);
    finished_run(c, make_run("r2", "sparsemax", 0, 1e-3), 0.1, 0.2, 0.3);
    finished_run(c, make_run("r0", "softmax", 0, 1e-3), 0.5, 0.9, 0.15);  // differs from s1
  }
  rep = merge_databases(out, {s3});
  CHECK(rep.runs_replaced == 1);
  REQUIRE(rep.conflicts.size() == 1);
  CHECK(rep.conflicts[0].find("r0: 1 evaluation rows differ") == 0);
  ResultsDb merged(out, ResultsDb::Mode::kReadOnly);
  CHECK(merged.run_status("r2") == RunStatus::kDone);
  CHECK(merged.sql()
            .execAndGet(
                "SELECT exact_match FROM evals WHERE run_key='r0' AND length=512 AND split='test'")
            .getDouble() == 0.1);
}

TEST_CASE("results: merge reports a finished run whose checkpoint-selection scores differ") {
  const std::string out = temp_db("sel_out"), a = temp_db("sel_a"), b = temp_db("sel_b");
  const std::vector<testing::TestEval> evals = {{64, 1.0, 1.0, false}};
  {
    ResultsDb da(a, ResultsDb::Mode::kReadWrite), db(b, ResultsDb::Mode::kReadWrite);
    testing::add_finished_run(da, "r", "softmax", 0, 1e-3, 0.5, evals, 0.5, {"", {{100, 0.25}}, -1});
    testing::add_finished_run(db, "r", "softmax", 0, 1e-3, 0.5, evals, 0.5, {"", {{100, 0.26}}, -1});
  }
  CHECK(merge_databases(out, {a}).runs_added == 1);
  CHECK(merge_databases(out, {a}).conflicts.empty());  // the same copy again: no conflict
  const MergeReport rep = merge_databases(out, {b});   // only the selection loss differs
  REQUIRE(rep.conflicts.size() == 1);
  CHECK(rep.conflicts[0].find("r: 1 selection-evaluation rows differ (1 vs 1 rows)") == 0);
  CHECK(rep.conflicts[0].find("; ") == std::string::npos);  // no other table differs
}

// results/testdata/*_v1.sqlite: the small16 and copy16 databases as committed at schema version 1
// (before results/{small16,copy16} were upgraded and rerun), kept as upgrade fixtures.
TEST_CASE("results: committed version-1 databases are upgraded in place, every row kept") {
  for (const char* name : {"testdata/small16_v1.sqlite", "testdata/copy16_v1.sqlite"}) {
    CAPTURE(name);
    const std::string path = temp_db("upgrade");
    fs::copy_file(std::string(LB_SOURCE_DIR) + "/results/" + name, path);
    const char* const tables[] = {"runs", "train_metrics", "checkpoints", "evals", "attn_stats"};
    std::vector<int64_t> before;
    {
      SQLite::Database raw(path, SQLite::OPEN_READONLY);
      REQUIRE(raw.execAndGet("PRAGMA user_version").getInt() == 1);
      for (const char* t : tables) {
        before.push_back(raw.execAndGet(std::string("SELECT count(*) FROM ") + t).getInt64());
      }
    }
    // Read-only: refused with the command that upgrades.
    try {
      ResultsDb ro(path, ResultsDb::Mode::kReadOnly);
      FAIL("an old schema was opened read-only");
    } catch (const UsageError& e) {
      CHECK(std::string(e.what()).find("lengthbench upgrade") != std::string::npos);
    }
    {
      ResultsDb db(path, ResultsDb::Mode::kReadWrite);
      CHECK(count(db, "PRAGMA user_version") == kSchemaVersion);
      for (size_t i = 0; i < std::size(tables); ++i) {
        CHECK(count(db, std::string("SELECT count(*) FROM ") + tables[i]) == before[i]);
      }
      CHECK(count(db, "SELECT count(*) FROM runs WHERE variant != ''") == 0);
      CHECK(count(db, "SELECT count(*) FROM selection_evals") == 0);
      // Head kinds from the configs: NAPE with 4 heads, heads 0-1 ALiBi, 2-3 NoPE (scaled under
      // SSMax/ASEntmax).
      CHECK(count(db, "SELECT count(*) FROM attn_stats WHERE head_kind = ''") == 0);
      CHECK(count(db, "SELECT count(*) FROM attn_stats WHERE head < 2 AND head_kind != 'alibi'") ==
            0);
      CHECK(count(db,
                  "SELECT count(*) FROM v_attn WHERE head >= 2 AND normalizer = 'softmax' "
                  "AND head_kind != 'nope'") == 0);
      CHECK(count(db,
                  "SELECT count(*) FROM v_attn WHERE head >= 2 AND normalizer LIKE 'asentmax%' "
                  "AND head_kind != 'nope+scaled'") == 0);
      CHECK(count(db, "SELECT count(*) FROM v_seed_summary") > 0);
      CHECK(count(db, "SELECT count(*) FROM v_best_of") > 0);
    }
    {
      ResultsDb again(path, ResultsDb::Mode::kReadOnly);  // now current: readable
      CHECK(count(again, "SELECT count(*) FROM runs") == before[0]);
    }
    for (const char* ext : {"", "-wal", "-shm"}) fs::remove(path + ext);
  }
}

TEST_CASE("results: a fresh and an upgraded database have the same columns in the same order") {
  const std::string fresh = temp_db("fresh"), old = temp_db("old");
  { ResultsDb db(fresh, ResultsDb::Mode::kReadWrite); }
  fs::copy_file(std::string(LB_SOURCE_DIR) + "/results/testdata/copy16_v1.sqlite", old);
  { ResultsDb db(old, ResultsDb::Mode::kReadWrite); }
  SQLite::Database a(fresh, SQLite::OPEN_READONLY), b(old, SQLite::OPEN_READONLY);
  for (const char* t :
       {"runs", "train_metrics", "checkpoints", "evals", "attn_stats", "selection_evals"}) {
    CAPTURE(t);
    const std::string q =
        std::string("SELECT group_concat(name, ',') FROM pragma_table_info('") + t + "')";
    CHECK(a.execAndGet(q).getString() == b.execAndGet(q).getString());
  }
  for (const auto& p : {fresh, old}) {
    for (const char* ext : {"", "-wal", "-shm"}) fs::remove(p + ext);
  }
}

TEST_CASE("db: a run's host names the machine: host name, processor and CPU count") {
  char name[256] = {0};
  gethostname(name, sizeof name - 1);
  const std::string host = lb::Provenance::current(1).host;
  CHECK(host.rfind(std::string(name) + " (", 0) == 0);
  CHECK(host.find(std::to_string(std::thread::hardware_concurrency()) + " CPUs)") !=
        std::string::npos);
#if defined(__x86_64__)
  CHECK(host.find(", family ") != std::string::npos);  // the CPU generation, for alike names
  CHECK(host.find(" model ") != std::string::npos);
#endif
}
