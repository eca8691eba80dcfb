// Run claims (issue 17): a run is claimed in the database before anything touches its checkpoints
// (owner "host:pid" in meta, a heartbeat in runs), so several processes on one database share a
// suite's runs; a dead or silent owner's claim is taken over. The ResultsDb methods of db.h's
// "claims" part.
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <string>

#include "core/check.h"
#include "results/db.h"
#include "results/db_internal.h"

namespace lb {

using results_internal::guarded;
using results_internal::WriteTxn;

namespace {

// Whether the claim of `owner` ("host:pid") with a heartbeat `age_s` seconds old still holds.
bool claim_is_live(const std::string& owner, double age_s, double stale_after_s) {
  if (owner.empty() || owner == this_process_owner() || age_s > stale_after_s) return false;
  const size_t colon = owner.rfind(':');
  if (colon == std::string::npos) return false;
  if (owner.substr(0, colon) != host_name()) return true;  // another machine: the heartbeat decides
  const long pid = std::strtol(owner.c_str() + colon + 1, nullptr, 10);
  return pid > 0 && (kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM);
}

// The provenance columns of runs in the order kProvenanceColumns names them, bound from
// parameter i + 1 on; returns the last index bound.
constexpr const char* kProvenanceColumns =
    "git_commit, git_dirty, lengthbench_version, compiler, onednn_version, onednn_isa, threads, "
    "host";
int bind_provenance(SQLite::Statement& st, int i, const Provenance& p) {
  st.bind(++i, p.git_commit);
  st.bind(++i, p.git_dirty ? 1 : 0);
  st.bind(++i, p.lengthbench_version);
  st.bind(++i, p.compiler);
  st.bind(++i, p.onednn_version);
  st.bind(++i, p.onednn_isa);
  st.bind(++i, p.threads);
  st.bind(++i, p.host);
  return i;
}

}  // namespace

ResultsDb::ClaimResult ResultsDb::claim_run(const RunRecord& r, const Provenance& p,
                                            double stale_after_s) {
  return guarded(path_, 0, [&] {
    ClaimResult claim;
    WriteTxn t(*db_);
    SQLite::Statement q(*db_,
                        "SELECT status, config_hash, coalesce(heartbeat_at, ''), "
                        "coalesce((julianday('now') - julianday(heartbeat_at)) * 86400.0, 1e300), "
                        "(SELECT value FROM meta WHERE key = 'run_owner/' || runs.key) "
                        "FROM runs WHERE key = ?");
    q.bind(1, r.key);
    if (q.executeStep()) {
      if (q.getColumn(0).getString() == "done") {
        claim.outcome = Claim::kDone;
        return claim;
      }
      const std::string owner = q.getColumn(4).isNull() ? "" : q.getColumn(4).getString();
      if (q.getColumn(0).getString() == "running" &&
          claim_is_live(owner, q.getColumn(3).getDouble(), stale_after_s)) {
        claim.outcome = Claim::kBusy;
        claim.owner = owner;
        claim.heartbeat_at = q.getColumn(2).getString();
        return claim;
      }
      LB_REQUIRE(q.getColumn(1).getString() == r.config_hash,
                 "run " << r.key << " exists with config hash " << q.getColumn(1).getString()
                        << " but the suite now gives " << r.config_hash
                        << "; rename the suite or use a new database");
      // A resumed run's provenance is that of its latest attempt, all of it: binary, libraries,
      // CPU and host together (another machine may finish what one started).
      SQLite::Statement u(
          *db_, std::string("UPDATE runs SET status = 'running', attempts = attempts + 1, "
                            "error = NULL, heartbeat_at = ?, (") +
                    kProvenanceColumns + ") = (?, ?, ?, ?, ?, ?, ?, ?) WHERE key = ?");
      int i = 0;
      u.bind(++i, utc_now_iso());
      i = bind_provenance(u, i, p);
      u.bind(++i, r.key);
      u.exec();
    } else {
      SQLite::Statement ins(
          *db_,
          std::string("INSERT INTO runs(key, suite, task, task_version, normalizer, "
                      "pos_encoding, seed, lr, train_max_length, select_split, select_length, "
                      "config_json, config_hash, ") +
              kProvenanceColumns +
              ", started_at, heartbeat_at, variant, status) "
              "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,'running')");
      int i = 0;
      const std::string now = utc_now_iso();
      ins.bind(++i, r.key);
      ins.bind(++i, r.suite);
      ins.bind(++i, r.task);
      ins.bind(++i, r.task_version);
      ins.bind(++i, r.normalizer);
      ins.bind(++i, r.pos_encoding);
      ins.bind(++i, static_cast<int64_t>(r.seed));
      ins.bind(++i, r.lr);
      ins.bind(++i, static_cast<int64_t>(r.train_max_length));
      ins.bind(++i, r.select_split);
      ins.bind(++i, static_cast<int64_t>(r.select_length));
      ins.bind(++i, r.config_json);
      ins.bind(++i, r.config_hash);
      i = bind_provenance(ins, i, p);
      ins.bind(++i, now);
      ins.bind(++i, now);
      ins.bind(++i, r.variant);
      ins.exec();
    }
    SQLite::Statement own(*db_, "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)");
    own.bind(1, "run_owner/" + r.key);
    own.bind(2, this_process_owner());
    own.exec();
    t.commit();
    return claim;
  });
}

void ResultsDb::begin_run(const RunRecord& r, const Provenance& p) {
  const ClaimResult c = claim_run(r, p);
  LB_CHECK(c.outcome != Claim::kDone, "run " << r.key << " is already done");
  if (c.outcome == Claim::kBusy) {
    throw std::runtime_error("run " + r.key + " in '" + path_ + "' is being run by " + c.owner +
                             " (heartbeat " + c.heartbeat_at + ")");
  }
}

std::optional<std::string> ResultsDb::live_owner(const std::string& key,
                                                 double stale_after_s) const {
  return guarded(path_, 0, [&]() -> std::optional<std::string> {
    SQLite::Statement q(*db_,
                        "SELECT m.value, coalesce((julianday('now') - julianday(r.heartbeat_at)) "
                        "* 86400.0, 1e300) FROM runs r JOIN meta m ON m.key = 'run_owner/' || "
                        "r.key WHERE r.key = ? AND r.status = 'running'");
    q.bind(1, key);
    if (q.executeStep() &&
        claim_is_live(q.getColumn(0).getString(), q.getColumn(1).getDouble(), stale_after_s)) {
      return q.getColumn(0).getString();
    }
    return std::nullopt;
  });
}

void ResultsDb::release_run(const std::string& key) {
  guarded(path_, 0, [&] {
    SQLite::Statement d(*db_, "DELETE FROM meta WHERE key = ? AND value = ?");
    d.bind(1, "run_owner/" + key);
    d.bind(2, this_process_owner());
    d.exec();
  });
}

void ResultsDb::heartbeat(const std::string& key) {
  guarded(path_, 0, [&] {
    SQLite::Statement u(*db_,
                        "UPDATE runs SET heartbeat_at = ? WHERE key = ? AND "
                        "(SELECT value FROM meta WHERE key = 'run_owner/' || runs.key) = ?");
    u.bind(1, utc_now_iso());
    u.bind(2, key);
    u.bind(3, this_process_owner());
    u.exec();
  });
}

}  // namespace lb
