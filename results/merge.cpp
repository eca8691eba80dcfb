// `lengthbench merge`: shard databases into one, idempotently, with conflicts reported.
#include <SQLiteCpp/SQLiteCpp.h>
#include <sys/stat.h>

#include <string>

#include "core/check.h"
#include "results/db.h"
#include "results/metrics.h"

namespace lb {

namespace {

// Child tables of a run, in the order they are copied.
const char* const kChildTables[] = {"train_metrics", "checkpoints", "evals", "attn_stats",
                                    "selection_evals"};

void copy_run(SQLite::Database& db, const std::string& key) {
  SQLite::Statement run(db, "INSERT INTO main.runs SELECT * FROM shard.runs WHERE key = ?");
  run.bind(1, key);
  run.exec();
  for (const char* t : kChildTables) {
    SQLite::Statement c(db, std::string("INSERT INTO main.") + t + " SELECT * FROM shard." + t +
                                " WHERE run_key = ?");
    c.bind(1, key);
    c.exec();
  }
}

void delete_run(SQLite::Database& db, const std::string& key) {
  for (const char* t : kChildTables) {
    SQLite::Statement d(db, std::string("DELETE FROM main.") + t + " WHERE run_key = ?");
    d.bind(1, key);
    d.exec();
  }
  SQLite::Statement d(db, "DELETE FROM main.runs WHERE key = ?");
  d.bind(1, key);
  d.exec();
}

// What differs between the two copies of a finished run, or "" when they agree.
std::string difference(SQLite::Database& db, const std::string& key) {
  SQLite::Statement h(db,
                      "SELECT m.config_hash, s.config_hash FROM main.runs m, shard.runs s "
                      "WHERE m.key = ? AND s.key = m.key");
  h.bind(1, key);
  h.executeStep();
  if (h.getColumn(0).getString() != h.getColumn(1).getString()) {
    return "config hash " + h.getColumn(0).getString() + " vs " + h.getColumn(1).getString();
  }
  // Every row that holds results: evaluations, training curves (not their timings, which differ
  // between machines), checkpoint-selection scores and attention statistics. Timing columns and
  // paths are left out. The keys and counts named here, then every metric of the table
  // (results/metrics.h). Every table that differs is named.
  struct Compared {
    const char* table;
    std::string columns;
    const char* what;
  };
  const Compared compared[] = {
      {"evals", "ckpt, split, length, status, samples" + metric_columns(kInEvals), "evaluation"},
      {"train_metrics", "step, loss, lr, grad_norm", "training"},
      {"selection_evals", "step, split, length, samples, exact_match, token_accuracy, loss",
       "selection-evaluation"},
      {"attn_stats", "ckpt, split, length, layer, head, queries" + metric_columns(kInAttn),
       "attention-statistics"}};
  std::string differs;  // every table that differs, "; "-separated
  for (const Compared& c : compared) {
    const std::string t = c.table, cols = c.columns;
    SQLite::Statement e(db, "SELECT count(*) FROM (SELECT " + cols + " FROM main." + t +
                                " WHERE run_key = ?1 EXCEPT SELECT " + cols + " FROM shard." + t +
                                " WHERE run_key = ?1)");
    e.bind(1, key);
    e.executeStep();
    SQLite::Statement n(db, "SELECT (SELECT count(*) FROM main." + t + " WHERE run_key = ?1), " +
                                "(SELECT count(*) FROM shard." + t + " WHERE run_key = ?1)");
    n.bind(1, key);
    n.executeStep();
    if (e.getColumn(0).getInt() > 0 || n.getColumn(0).getInt() != n.getColumn(1).getInt()) {
      differs += (differs.empty() ? "" : "; ") + std::to_string(e.getColumn(0).getInt()) + " " +
                 c.what + " rows differ (" + std::to_string(n.getColumn(0).getInt()) + " vs " +
                 std::to_string(n.getColumn(1).getInt()) + " rows)";
    }
  }
  return differs;
}

}  // namespace

MergeReport merge_databases(const std::string& out, const std::vector<std::string>& shards) {
  LB_REQUIRE(!shards.empty(), "merge: name at least one shard database");
  // The same file under another name (./a.sqlite, an absolute path, a symlink, a hard link):
  // compared by device and inode, not by spelling.
  struct stat out_st {};
  if (stat(out.c_str(), &out_st) == 0) {
    for (const auto& s : shards) {
      struct stat st {};
      LB_REQUIRE(
          stat(s.c_str(), &st) != 0 || st.st_dev != out_st.st_dev || st.st_ino != out_st.st_ino,
          "merge: shard '" << s << "' is the output database '" << out << "' itself");
    }
  }
  for (const auto& s : shards) {
    ResultsDb check(s, ResultsDb::Mode::kReadOnly);  // refuses foreign or newer databases
    const int v = check.sql().execAndGet("PRAGMA user_version").getInt();
    LB_REQUIRE(v == kSchemaVersion, "merge: shard '" << s << "' has schema version " << v
                                                      << ", expected " << kSchemaVersion);
  }
  ResultsDb db(out, ResultsDb::Mode::kReadWrite);
  MergeReport report;
  for (const auto& s : shards) {
    SQLite::Database& sql = db.sql();
    SQLite::Statement attach(sql, "ATTACH DATABASE ? AS shard");
    attach.bind(1, s);
    attach.exec();
    try {
      SQLite::Transaction t(sql, SQLite::TransactionBehavior::IMMEDIATE);
      SQLite::Statement runs(sql,
                             "SELECT s.key, s.status, m.status FROM shard.runs s "
                             "LEFT JOIN main.runs m ON m.key = s.key ORDER BY s.key");
      std::vector<std::tuple<std::string, std::string, std::string>> rows;
      while (runs.executeStep()) {
        rows.emplace_back(runs.getColumn(0).getString(), runs.getColumn(1).getString(),
                          runs.getColumn(2).isNull() ? "" : runs.getColumn(2).getString());
      }
      for (const auto& [key, shard_status, main_status] : rows) {
        if (main_status.empty()) {
          copy_run(sql, key);
          ++report.runs_added;
        } else if (shard_status == "done" && main_status != "done") {
          delete_run(sql, key);
          copy_run(sql, key);
          ++report.runs_replaced;
        } else if (shard_status == "done" && main_status == "done") {
          const std::string diff = difference(sql, key);
          if (diff.empty()) {
            ++report.runs_same;
          } else {
            report.conflicts.push_back(key + ": " + diff + " (" + s + ")");
          }
        } else {
          ++report.runs_same;  // the shard's copy is unfinished; keep ours
        }
      }
      t.commit();
    } catch (...) {
      sql.exec("DETACH DATABASE shard");
      throw;
    }
    sql.exec("DETACH DATABASE shard");
  }
  return report;
}

}  // namespace lb
