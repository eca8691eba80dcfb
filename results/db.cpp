#include "results/db.h"

#include <SQLiteCpp/SQLiteCpp.h>
#include <sqlite3.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <iomanip>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "core/check.h"
#include "core/version.h"
#include "results/db_internal.h"
#include "results/metrics.h"

namespace lb {

using results_internal::guarded;
using results_internal::WriteTxn;

namespace {

const char* kSchemaSql =
#include "lb_schema_sql.inc"  // results/schema.sql as a raw string literal (generated)
    ;

// Everything after this line of schema.sql: the views, recreated by every upgrade.
constexpr const char* kViewsMarker = "-- @views";

// Upgrade steps: kUpgrades[v - 1] brings version v to v + 1 (tables only; views are recreated
// after the last step). Columns added here are last in schema.sql's CREATE TABLE too, so a fresh
// and an upgraded database have the same column order (merge copies rows with SELECT *). After
// the steps, every metric column of results/metrics.h that a table lacks is added (last), so a
// version that only adds metrics needs no step here.
const char* const kUpgrades[] = {
    // 1 -> 2: variants, head kinds, every selection evaluation.
    "ALTER TABLE runs ADD COLUMN variant TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE attn_stats ADD COLUMN head_kind TEXT NOT NULL DEFAULT '';"
    // head_kind from the run's config, the rule of harness/eval.h head_kind: NAPE's first H/2
    // heads ALiBi, the rest NoPE; length scaling (attention.scale != 'none') on the NoPE heads
    // under NAPE, on every head otherwise.
    "UPDATE attn_stats SET head_kind = (SELECT"
    "  CASE WHEN r.pos_encoding = 'nape' THEN"
    "    CASE WHEN attn_stats.head < json_extract(r.config_json, '$.model.heads') / 2"
    "         THEN 'alibi' ELSE 'nope' END"
    "  ELSE r.pos_encoding END"
    "  || CASE WHEN coalesce(json_extract(r.config_json, '$.model.attention.scale'), 'none')"
    "               != 'none'"
    "          AND (r.pos_encoding != 'nape'"
    "               OR attn_stats.head >= json_extract(r.config_json, '$.model.heads') / 2)"
    "     THEN '+scaled' ELSE '' END"
    "  FROM runs r WHERE r.key = attn_stats.run_key);"
    "CREATE TABLE selection_evals("
    "  run_key TEXT NOT NULL REFERENCES runs(key) ON DELETE CASCADE,"
    "  step INTEGER NOT NULL, split TEXT NOT NULL, length INTEGER NOT NULL,"
    "  samples INTEGER NOT NULL, exact_match REAL NOT NULL, token_accuracy REAL NOT NULL,"
    "  loss REAL NOT NULL, PRIMARY KEY(run_key, step)) STRICT;",
};
static_assert(sizeof(kUpgrades) / sizeof(kUpgrades[0]) <= kSchemaVersion - 1,
              "at most one upgrade step per schema version");

// Brings a database of schema `from` to kSchemaVersion (inside the caller's transaction).
void upgrade_schema(SQLite::Database& db, int from) {
  for (int v = from; v < kSchemaVersion; ++v) {
    if (v - 1 < static_cast<int>(std::size(kUpgrades))) db.exec(kUpgrades[v - 1]);
  }
  add_missing_metric_columns(db);  // a version past the last step only adds metrics (metrics.h)
  std::vector<std::string> views;
  SQLite::Statement q(db, "SELECT name FROM sqlite_master WHERE type = 'view'");
  while (q.executeStep()) views.push_back(q.getColumn(0).getString());
  for (const auto& v : views) db.exec("DROP VIEW \"" + v + "\"");
  const std::string schema = kSchemaSql;
  const size_t at = schema.find(kViewsMarker);
  LB_CHECK(at != std::string::npos, "schema.sql has no " << kViewsMarker << " line");
  db.exec(schema.substr(at));
  db.exec("INSERT OR REPLACE INTO meta(key, value) VALUES ('schema_version', '" +
          std::to_string(kSchemaVersion) + "')");
  db.exec("INSERT OR REPLACE INTO meta(key, value) VALUES ('upgraded_from_" +
          std::to_string(from) + "', '" + utc_now_iso() + "')");
  db.exec("PRAGMA user_version = " + std::to_string(kSchemaVersion));
}

// Creates (version 0) or upgrades the schema in one IMMEDIATE transaction. The version is read
// again under the write lock: another process may have created or upgraded the file since this
// one looked (two `run`s starting on a new database), and then there is nothing left to do.
void install_schema(SQLite::Database& db, const std::string& path, const char* schema_sql) {
  SQLite::Transaction t(db, SQLite::TransactionBehavior::IMMEDIATE);
  const int version = db.execAndGet("PRAGMA user_version").getInt();
  if (version == 0) {
    LB_REQUIRE(db.execAndGet("SELECT count(*) FROM sqlite_master").getInt() == 0,
               "'" << path << "' is an SQLite database but not a lengthbench results database");
    db.exec(schema_sql);
    SQLite::Statement meta(db, "INSERT INTO meta(key, value) VALUES (?, ?)");
    for (const auto& [k, v] : std::vector<std::pair<std::string, std::string>>{
             {"schema_version", std::to_string(kSchemaVersion)},
             {"created_by", "lengthbench " + lengthbench_version() + " " + git_commit()},
             {"created_at", utc_now_iso()},
             {"config_hash", "fnv1a64 of the config JSON dumped with sorted keys"}}) {
      meta.bind(1, k);
      meta.bind(2, v);
      meta.exec();
      meta.reset();
    }
    db.exec("PRAGMA user_version = " + std::to_string(kSchemaVersion));
  } else if (version < kSchemaVersion) {
    upgrade_schema(db, version);
  }
  t.commit();
}

// Switches the file to WAL (a no-op when it is already). Switching needs the exclusive lock, and
// two processes opening a new file at once would each hold their shared lock while waiting for it
// (a deadlock until the busy timeout); so the switch does not wait: it is retried after a short,
// varied pause, holding no lock in between, until timeout_ms.
void enable_wal(SQLite::Database& db, int timeout_ms) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  db.setBusyTimeout(0);
  for (int attempt = 0;; ++attempt) {
    try {
      // A mode other than "wal" without an error (no shared memory) is kept, as it always was.
      db.execAndGet("PRAGMA journal_mode=WAL");
      break;
    } catch (const SQLite::Exception& e) {
      const int code = e.getErrorCode() & 0xff;
      if ((code != SQLITE_BUSY && code != SQLITE_LOCKED) ||
          std::chrono::steady_clock::now() > deadline) {
        db.setBusyTimeout(timeout_ms);
        throw;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2 + (getpid() + attempt * 7) % 19));
  }
  db.setBusyTimeout(timeout_ms);
}

// ",?,?": n more placeholders of an INSERT.
std::string placeholders(size_t n) {
  std::string out;
  for (size_t i = 0; i < n; ++i) out += ",?";
  return out;
}

}  // namespace

std::string utc_now_iso() {
  const auto now = std::chrono::system_clock::now();
  const std::time_t t = std::chrono::system_clock::to_time_t(now);
  std::tm tm{};
  gmtime_r(&t, &tm);
  std::ostringstream os;
  os << std::put_time(&tm, "%Y-%m-%dT%H:%M:%SZ");
  return os.str();
}

const char* run_status_name(RunStatus s) {
  switch (s) {
    case RunStatus::kNone: return "none";
    case RunStatus::kRunning: return "running";
    case RunStatus::kDone: return "done";
    case RunStatus::kFailed: return "failed";
  }
  return "?";
}

static RunStatus parse_status(const std::string& s) {
  if (s == "running") return RunStatus::kRunning;
  if (s == "done") return RunStatus::kDone;
  if (s == "failed") return RunStatus::kFailed;
  return RunStatus::kNone;
}

ResultsDb::ResultsDb(const std::string& path, Mode mode, int busy_timeout_ms) : path_(path) {
  const bool exists = std::filesystem::exists(path);
  LB_REQUIRE(exists || mode == Mode::kReadWrite, "results database '" << path << "' does not exist");
  guarded(path_, busy_timeout_ms, [&] {
    const int flags = mode == Mode::kReadOnly ? SQLite::OPEN_READONLY
                                              : SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE;
    db_ = std::make_unique<SQLite::Database>(path, flags, busy_timeout_ms);
    int version = 0, tables = 0;
    try {
      // One statement: one snapshot of both (another process may be creating the file).
      SQLite::Statement q(*db_,
                          "SELECT (SELECT user_version FROM pragma_user_version), count(*) "
                          "FROM sqlite_master");
      q.executeStep();
      version = q.getColumn(0).getInt();
      tables = q.getColumn(1).getInt();
    } catch (const SQLite::Exception& e) {
      throw UsageError("'" + path + "' is not an SQLite database (" + e.what() + ")");
    }
    LB_REQUIRE(version <= kSchemaVersion,
               "results database '" << path << "' has schema version " << version
                                    << ", newer than this lengthbench's " << kSchemaVersion
                                    << "; use a newer lengthbench");
    LB_REQUIRE(version > 0 || tables == 0,
               "'" << path << "' is an SQLite database but not a lengthbench results database");
    if (mode == Mode::kReadWrite) {
      enable_wal(*db_, busy_timeout_ms);
      db_->exec("PRAGMA synchronous=NORMAL");
    }
    db_->exec("PRAGMA foreign_keys=ON");
    if (version > 0 && version < kSchemaVersion) {
      LB_REQUIRE(mode == Mode::kReadWrite,
                 "results database '" << path << "' has schema version " << version
                                      << ", older than this lengthbench's " << kSchemaVersion
                                      << "; upgrade it in place (every row kept) with "
                                         "`lengthbench upgrade "
                                      << path << "`");
    }
    if (version == 0) {
      LB_REQUIRE(mode == Mode::kReadWrite, "'" << path << "' is empty, not a results database");
    }
    if (version < kSchemaVersion) install_schema(*db_, path, kSchemaSql);
  });
}

ResultsDb::~ResultsDb() = default;

RunStatus ResultsDb::run_status(const std::string& key) const {
  return guarded(path_, 0, [&] {
    SQLite::Statement q(*db_, "SELECT status FROM runs WHERE key = ?");
    q.bind(1, key);
    return q.executeStep() ? parse_status(q.getColumn(0).getString()) : RunStatus::kNone;
  });
}

std::optional<std::string> ResultsDb::run_config_hash(const std::string& key) const {
  return guarded(path_, 0, [&]() -> std::optional<std::string> {
    SQLite::Statement q(*db_, "SELECT config_hash FROM runs WHERE key = ?");
    q.bind(1, key);
    if (!q.executeStep()) return std::nullopt;
    return q.getColumn(0).getString();
  });
}

void ResultsDb::transaction(const std::function<void()>& fn) {
  guarded(path_, 0, [&] {
    WriteTxn t(*db_);
    fn();
    t.commit();
  });
}

void ResultsDb::add_train_metrics(const std::string& key, const std::vector<TrainRow>& rows) {
  guarded(path_, 0, [&] {
    WriteTxn t(*db_);
    SQLite::Statement ins(*db_,
                          "INSERT OR REPLACE INTO train_metrics(run_key, step, loss, lr, grad_norm, "
                          "tokens_per_s, wall_s) VALUES (?,?,?,?,?,?,?)");
    for (const auto& r : rows) {
      ins.bind(1, key);
      ins.bind(2, static_cast<int64_t>(r.step));
      ins.bind(3, r.loss);
      ins.bind(4, r.lr);
      ins.bind(5, r.grad_norm);
      ins.bind(6, r.tokens_per_s);
      ins.bind(7, r.wall_s);
      ins.exec();
      ins.reset();
    }
    t.commit();
  });
}

void ResultsDb::add_checkpoint(const std::string& key, const CheckpointRow& r) {
  guarded(path_, 0, [&] {
    SQLite::Statement ins(*db_,
                          "INSERT OR REPLACE INTO checkpoints(run_key, ckpt, step, path, sha256, "
                          "selected_by, metric) VALUES (?,?,?,?,?,?,?)");
    ins.bind(1, key);
    ins.bind(2, r.ckpt);
    ins.bind(3, static_cast<int64_t>(r.step));
    ins.bind(4, r.path);
    r.sha256.empty() ? ins.bind(5) : ins.bind(5, r.sha256);
    r.selected_by.empty() ? ins.bind(6) : ins.bind(6, r.selected_by);
    r.metric ? ins.bind(7, *r.metric) : ins.bind(7);
    ins.exec();
  });
}

std::optional<double> ResultsDb::checkpoint_metric(const std::string& key,
                                                   const std::string& ckpt) const {
  return guarded(path_, 0, [&]() -> std::optional<double> {
    SQLite::Statement q(*db_, "SELECT metric FROM checkpoints WHERE run_key = ? AND ckpt = ?");
    q.bind(1, key);
    q.bind(2, ckpt);
    if (q.executeStep() && !q.getColumn(0).isNull()) return q.getColumn(0).getDouble();
    return std::nullopt;
  });
}

void ResultsDb::add_selection_eval(const std::string& key, const SelectionRow& r) {
  guarded(path_, 0, [&] {
    const auto ms = metrics_in(kInSelection);
    SQLite::Statement ins(*db_,
                          "INSERT OR REPLACE INTO selection_evals(run_key, step, split, "
                          "length, samples" +
                              metric_columns(kInSelection) + ") VALUES (?,?,?,?,?" +
                              placeholders(ms.size()) + ")");
    int i = 0;
    ins.bind(++i, key);
    ins.bind(++i, static_cast<int64_t>(r.step));
    ins.bind(++i, r.split);
    ins.bind(++i, static_cast<int64_t>(r.length));
    ins.bind(++i, static_cast<int64_t>(r.samples));
    for (const MetricDef* m : ms) ins.bind(++i, r.*(m->selection));
    ins.exec();
  });
}

std::vector<SelectionRow> ResultsDb::selection_evals(const std::string& key) const {
  return guarded(path_, 0, [&] {
    std::vector<SelectionRow> out;
    const auto ms = metrics_in(kInSelection);
    SQLite::Statement q(*db_, "SELECT step, split, length, samples" + metric_columns(kInSelection) +
                                  " FROM selection_evals WHERE run_key = ? ORDER BY step");
    q.bind(1, key);
    while (q.executeStep()) {
      SelectionRow r;
      r.step = q.getColumn(0).getInt64();
      r.split = q.getColumn(1).getString();
      r.length = q.getColumn(2).getInt64();
      r.samples = q.getColumn(3).getInt64();
      int i = 4;
      for (const MetricDef* m : ms) r.*(m->selection) = q.getColumn(i++).getDouble();
      out.push_back(r);
    }
    return out;
  });
}

std::optional<int64_t> ResultsDb::checkpoint_step(const std::string& key,
                                                  const std::string& ckpt) const {
  return guarded(path_, 0, [&]() -> std::optional<int64_t> {
    SQLite::Statement q(*db_, "SELECT step FROM checkpoints WHERE run_key = ? AND ckpt = ?");
    q.bind(1, key);
    q.bind(2, ckpt);
    if (q.executeStep()) return q.getColumn(0).getInt64();
    return std::nullopt;
  });
}

std::optional<std::string> ResultsDb::run_config_json(const std::string& key) const {
  return guarded(path_, 0, [&]() -> std::optional<std::string> {
    SQLite::Statement q(*db_, "SELECT config_json FROM runs WHERE key = ?");
    q.bind(1, key);
    if (!q.executeStep()) return std::nullopt;
    return q.getColumn(0).getString();
  });
}

void ResultsDb::add_eval(const std::string& key, const EvalRow& e, const std::vector<AttnRow>& attn) {
  guarded(path_, 0, [&] {
    WriteTxn t(*db_);
    const auto em = metrics_in(kInEvals), am = metrics_in(kInAttn);
    SQLite::Statement ins(*db_,
                          "INSERT OR REPLACE INTO evals(run_key, ckpt, step, split, length, "
                          "status, samples, seconds" +
                              metric_columns(kInEvals) + ") VALUES (?,?,?,?,?,?,?,?" +
                              placeholders(em.size()) + ")");
    int n = 0;
    ins.bind(++n, key);
    ins.bind(++n, e.ckpt);
    ins.bind(++n, static_cast<int64_t>(e.step));
    ins.bind(++n, e.split);
    ins.bind(++n, static_cast<int64_t>(e.length));
    ins.bind(++n, e.skipped ? "skipped" : "ok");
    ins.bind(++n, static_cast<int64_t>(e.samples));
    ins.bind(++n, e.seconds);
    for (const MetricDef* m : em) e.skipped ? ins.bind(++n) : ins.bind(++n, e.*(m->eval));
    ins.exec();
    SQLite::Statement a(*db_,
                        "INSERT OR REPLACE INTO attn_stats(run_key, ckpt, split, length, "
                        "layer, head, queries, head_kind" +
                            metric_columns(kInAttn) + ") VALUES (?,?,?,?,?,?,?,?" +
                            placeholders(am.size()) + ")");
    for (const auto& r : attn) {
      int i = 0;
      a.bind(++i, key);
      a.bind(++i, e.ckpt);
      a.bind(++i, e.split);
      a.bind(++i, static_cast<int64_t>(e.length));
      a.bind(++i, r.layer);
      a.bind(++i, r.head);
      a.bind(++i, static_cast<int64_t>(r.queries));
      a.bind(++i, r.head_kind);
      for (const MetricDef* m : am) {
        const std::optional<double> v = attn_value(*m, r);
        v ? a.bind(++i, *v) : a.bind(++i);
      }
      a.exec();
      a.reset();
    }
    t.commit();
  });
}

void ResultsDb::finish_run(const std::string& key, RunStatus status, const std::string& error) {
  guarded(path_, 0, [&] {
    WriteTxn t(*db_);
    SQLite::Statement u(*db_, "UPDATE runs SET status = ?, error = ?, ended_at = ? WHERE key = ?");
    u.bind(1, run_status_name(status));
    error.empty() ? u.bind(2) : u.bind(2, error);
    u.bind(3, utc_now_iso());
    u.bind(4, key);
    LB_CHECK(u.exec() == 1, "finish_run: no run " << key);
    SQLite::Statement d(*db_, "DELETE FROM meta WHERE key = ?");
    d.bind(1, "run_owner/" + key);
    d.exec();
    t.commit();
  });
}

std::vector<EvalRow> ResultsDb::evals_of(const std::string& key, const std::string& ckpt,
                                         int64_t step, const std::string& split) const {
  return guarded(path_, 0, [&] {
    std::vector<EvalRow> out;
    const auto em = metrics_in(kInEvals);
    std::string values;  // every metric, 0 where NULL (skipped)
    for (const MetricDef* m : em) values += std::string(", coalesce(") + m->name + ", 0)";
    SQLite::Statement q(*db_, "SELECT length, status, samples, coalesce(seconds, 0)" + values +
                                  " FROM evals WHERE run_key = ? AND ckpt = ? AND step = ? AND "
                                  "split = ? ORDER BY length");
    q.bind(1, key);
    q.bind(2, ckpt);
    q.bind(3, static_cast<int64_t>(step));
    q.bind(4, split);
    while (q.executeStep()) {
      EvalRow e;
      e.ckpt = ckpt, e.step = step, e.split = split;
      e.length = q.getColumn(0).getInt64();
      e.skipped = q.getColumn(1).getString() == "skipped";
      e.samples = q.getColumn(2).getInt64();
      e.seconds = q.getColumn(3).getDouble();
      int i = 4;
      for (const MetricDef* m : em) e.*(m->eval) = q.getColumn(i++).getDouble();
      out.push_back(e);
    }
    return out;
  });
}

bool ResultsDb::delete_run(const std::string& key) {
  return guarded(path_, 0, [&] {
    WriteTxn t(*db_);
    // Explicit deletes, child tables first (the ON DELETE CASCADE clauses would do it too, but
    // only with foreign keys on, which a database opened elsewhere may not have).
    for (const char* table :
         {"attn_stats", "evals", "selection_evals", "checkpoints", "train_metrics"}) {
      SQLite::Statement d(*db_, std::string("DELETE FROM ") + table + " WHERE run_key = ?");
      d.bind(1, key);
      d.exec();
    }
    SQLite::Statement d(*db_, "DELETE FROM runs WHERE key = ?");
    d.bind(1, key);
    const bool existed = d.exec() == 1;
    SQLite::Statement o(*db_, "DELETE FROM meta WHERE key = ?");
    o.bind(1, "run_owner/" + key);
    o.exec();
    t.commit();
    return existed;
  });
}

std::vector<ResultsDb::RunSummary> ResultsDb::runs() const {
  return guarded(path_, 0, [&] {
    std::vector<RunSummary> out;
    SQLite::Statement q(*db_,
                        "SELECT key, status, coalesce(error, ''), started_at, coalesce(ended_at, '') "
                        "FROM runs ORDER BY key");
    while (q.executeStep()) {
      out.push_back({q.getColumn(0).getString(), q.getColumn(1).getString(),
                     q.getColumn(2).getString(), q.getColumn(3).getString(),
                     q.getColumn(4).getString()});
    }
    return out;
  });
}

}  // namespace lb
