// The results database: runs, their training curves, checkpoints, evaluations and attention
// statistics, in one SQLite file (schema: results/schema.sql, documented in results/README.md).
//
// Contract: WAL journal, every write in one transaction (a crash leaves the last committed state;
// `transaction` groups several writes into one). Several processes may write one file: each run
// is claimed by one process at a time (claim_run), and creating or upgrading the schema is one
// IMMEDIATE transaction that re-reads the version under the lock, so concurrent openers of a
// new file agree. Shards still write their own files (`merge` combines them). A database with a
// newer schema than this binary knows is refused; a locked one is waited on, then a clear error.
// An older one is upgraded in place, every row kept, in one transaction, when opened for writing
// (`lengthbench upgrade`, `run`, `merge`); opened read-only it is refused with that advice.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace SQLite {
class Database;
}

namespace lb {

constexpr int kSchemaVersion = 2;

// Where and with what a run was produced.
struct Provenance {
  std::string git_commit, lengthbench_version, compiler, onednn_version, onednn_isa, host;
  bool git_dirty = false;
  int threads = 1;
  static Provenance current(int threads);  // this binary, this machine
};

struct RunRecord {
  std::string key, suite, task;
  std::string variant;  // the suite's variants axis; "" without one
  int task_version = 1;
  std::string normalizer, pos_encoding;
  int64_t seed = 0;
  double lr = 0;
  int64_t train_max_length = 0;
  std::string select_split = "validation";
  int64_t select_length = 0;
  std::string config_json, config_hash;
};

enum class RunStatus { kNone, kRunning, kDone, kFailed };
const char* run_status_name(RunStatus s);

struct TrainRow {
  int64_t step;
  double loss, lr, grad_norm, tokens_per_s, wall_s;
};

struct EvalRow {
  std::string ckpt = "best";
  int64_t step = 0;
  std::string split = "test";
  int64_t length = 0;
  bool skipped = false;
  int64_t samples = 0;
  double exact_match = 0, token_accuracy = 0, edit_distance = 0, seconds = 0;
};

struct AttnRow {
  int layer = 0, head = 0;
  int64_t queries = 0;
  double entropy = 0, entropy_norm = 0, support = 0, max_weight = 0, relevant_mass = 0;
  std::optional<double> scale_p05, scale_p50, scale_p95;
  std::string head_kind;  // "alibi", "nope", "rope", plus "+scaled" (harness/eval.h head_kind)
};

// One checkpoint-selection evaluation: the model at `step` on the selection split and length.
struct SelectionRow {
  int64_t step = 0;
  std::string split = "validation";
  int64_t length = 0, samples = 0;
  double exact_match = 0, token_accuracy = 0;
  double loss = 0;  // mean target-token cross-entropy under teacher forcing (nats)
};

struct CheckpointRow {
  std::string ckpt;
  int64_t step = 0;
  std::string path, sha256, selected_by;
  std::optional<double> metric;
};

class ResultsDb {
 public:
  enum class Mode { kReadOnly, kReadWrite };
  // Opens (creating in kReadWrite mode) and checks or installs the schema.
  // busy_timeout_ms: how long to wait for another writer before failing.
  ResultsDb(const std::string& path, Mode mode, int busy_timeout_ms = 30000);
  ~ResultsDb();

  RunStatus run_status(const std::string& key) const;
  std::optional<std::string> run_config_hash(const std::string& key) const;

  // Claims a run for this process (status 'running', owner this_process_owner(), heartbeat now,
  // attempts counted) in one IMMEDIATE transaction, unless it is done (kDone) or held by another
  // live owner (kBusy, with that owner and its heartbeat). A claim is live while its heartbeat is
  // younger than stale_after_s and, on this host, its process exists: a killed owner's run is
  // taken over at once, another host's after stale_after_s. A run stored with another config
  // hash is a UsageError. The owner is meta 'run_owner/<key>' (no schema change).
  enum class Claim { kClaimed, kBusy, kDone };
  struct ClaimResult {
    Claim outcome = Claim::kClaimed;
    std::string owner, heartbeat_at;  // kBusy: who holds it, and since when it last beat
  };
  static constexpr double kClaimStaleSeconds = 600;
  ClaimResult claim_run(const RunRecord& run, const Provenance& prov,
                        double stale_after_s = kClaimStaleSeconds);
  // The owner of a live claim on `key` held by another process ("host:pid"), if any.
  std::optional<std::string> live_owner(const std::string& key,
                                        double stale_after_s = kClaimStaleSeconds) const;
  // claim_run that throws for a done run (a logic error) or one held by another process.
  void begin_run(const RunRecord& run, const Provenance& prov);
  // Refreshes the heartbeat of a run this process holds.
  void heartbeat(const std::string& key);
  // Gives up this process's claim on a run left 'running' (interrupted; resumes later).
  void release_run(const std::string& key);
  // Runs fn's writes as one transaction (all or none); writes inside join it.
  void transaction(const std::function<void()>& fn);
  // Rows replace rows of the same step, so a resumed run has no duplicates.
  void add_train_metrics(const std::string& key, const std::vector<TrainRow>& rows);
  void add_checkpoint(const std::string& key, const CheckpointRow& row);
  // The metric recorded with a run's checkpoint (e.g. the best one's selection score), if any.
  std::optional<double> checkpoint_metric(const std::string& key, const std::string& ckpt) const;
  // Every selection evaluation is kept (a repeated step after a resume replaces its row).
  void add_selection_eval(const std::string& key, const SelectionRow& row);
  std::vector<SelectionRow> selection_evals(const std::string& key) const;  // by step
  // The step of a run's checkpoint `ckpt`, if recorded.
  std::optional<int64_t> checkpoint_step(const std::string& key, const std::string& ckpt) const;
  // The stored config JSON of a run, if it exists.
  std::optional<std::string> run_config_json(const std::string& key) const;
  // One evaluation length and its attention statistics, in one transaction.
  void add_eval(const std::string& key, const EvalRow& eval, const std::vector<AttnRow>& attn);
  // Ends a run (and this process's claim on it).
  void finish_run(const std::string& key, RunStatus status, const std::string& error = "");
  // The rows stored for `key`'s evaluations of checkpoint `ckpt` at `step` on `split`, by length
  // (a run resumes its ladder after these).
  std::vector<EvalRow> evals_of(const std::string& key, const std::string& ckpt, int64_t step,
                                const std::string& split) const;
  // Removes a run and every row that refers to it (metrics, checkpoints, evaluations, attention
  // statistics) in one transaction; returns whether it existed. For `run --force`.
  bool delete_run(const std::string& key);

  // Counts of runs by status, and the runs themselves (key, status, error).
  struct RunSummary {
    std::string key, status, error, started_at, ended_at;
  };
  std::vector<RunSummary> runs() const;

  SQLite::Database& sql() { return *db_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::unique_ptr<SQLite::Database> db_;
};

// Prints the rows of a read-only query as an aligned table, CSV or JSON lines.
enum class QueryFormat { kTable, kCsv, kJson };
void print_query(ResultsDb& db, const std::string& sql, QueryFormat format, std::ostream& out);

// Merges shard databases into `out` (created if missing). Idempotent: merging the same shard twice
// changes nothing. A run done in one and not the other is taken from where it is done; a run done
// in both with different config hashes or evaluation numbers is a conflict: reported, not merged.
struct MergeReport {
  int64_t runs_added = 0, runs_replaced = 0, runs_same = 0;
  std::vector<std::string> conflicts;  // "key: what differs (shard path)"
};
MergeReport merge_databases(const std::string& out, const std::vector<std::string>& shards);

std::string utc_now_iso();

// This machine's host name (gethostname).
std::string host_name();

// "host:pid" of this process: the owner recorded by ResultsDb::claim_run.
std::string this_process_owner();

}  // namespace lb
