// Running suites: each run trains with periodic checkpoints and checkpoint selection, evaluates
// its best checkpoint over the ladder, and writes everything to the results database.
//
// Restartability: a run already done in the database is skipped; a run found 'running' (killed,
// Ctrl-C, power loss) resumes from its last checkpoint and re-logs the steps after it (rows are
// replaced, never duplicated), giving the same numbers as an uninterrupted run at the same thread
// count; its checkpoint rows are first set from the checkpoint folders' manifests (a kill between
// a checkpoint's rename and its row leaves the row behind), and its evaluation resumes per
// length: lengths already stored for the selected checkpoint are not recomputed. The last length
// and the run's 'done' are one transaction. A run that throws (NaN loss, bad config) is recorded
// 'failed' with its error and the suite goes on.
//
// Concurrency: each run is claimed in the database before anything touches its checkpoints
// (ResultsDb::claim_run: owner host:pid, heartbeat every 30 s from a thread), so several `run`
// processes on one database share a suite's runs; a run another live process holds is skipped
// (kBusy), a dead or silent owner's run is taken over.
//
// Interrupts: SIGINT/SIGTERM stop training at the next step and evaluation at the next sample; an
// interrupted evaluation length is not stored (it is recomputed on resume).
//
// Test hook: LB_TEST_SIGNAL_AT=POINT@N:SIG (SIG: INT, TERM or KILL) makes the process send itself
// SIG the N-th time it reaches POINT: "checkpoint-saved" (a 'last' checkpoint renamed into place,
// its row not yet written), "eval-stored" (a ladder length's row committed), "eval-sample" (a
// sample of an evaluation finished). For the kill and interrupt tests; unset, nothing happens.
#pragma once
#include <atomic>
#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "harness/suite.h"
#include "results/db.h"

namespace lb {

struct RunnerOptions {
  std::string checkpoint_root;  // checkpoints of run K live in checkpoint_root/K/{last,best}
  int threads = 1;
  bool progress_bar = false;    // redraw a bar on stderr (a terminal); else plain log lines
  double progress_every_s = 30; // without a bar: one plain progress line at most this often
  // Restart every run from step 0, whatever its state: its rows and checkpoints are deleted
  // first (`run --force`). Off: done runs are skipped, others resume.
  bool force = false;
  // A claim on a run whose heartbeat is older than this is taken over (another host's process;
  // on this host a dead owner's claim is taken over at once).
  double claim_stale_s = ResultsDb::kClaimStaleSeconds;
};

// kBusy: another live process holds the run (skipped here).
enum class RunOutcome { kSkipped, kDone, kFailed, kInterrupted, kBusy };

// Set by SIGINT/SIGTERM: the current run saves its checkpoint and stops (status stays 'running').
std::atomic<bool>& stop_requested();
// Routes SIGINT/SIGTERM to stop_requested() through a signal thread (run.cpp says why); call it
// before the process starts other threads (OpenMP, oneDNN). Idempotent.
void install_stop_handlers();

RunOutcome run_one(const RunSpec& run, ResultsDb& db, const RunnerOptions& opts, std::ostream& log);

// Checkpoint selection: whether evaluation `a` beats the best so far `b`. Higher exact match,
// then higher token accuracy, then lower loss, then the later step: ties never favour the
// earliest checkpoint (a model still improving its loss at 100% exact match is kept).
bool selection_better(const SelectionRow& a, const SelectionRow& b);
// The rule as stored in checkpoints.selected_by, with the split and length.
std::string selection_rule(const std::string& split, int64_t length);

// The differences between two config JSON documents, one "path: old -> new" per changed leaf
// ("model.hidden: 64 -> 128", "train.warmup: (absent) -> 100"), in path order.
std::vector<std::string> config_changes(const std::string& old_json, const std::string& new_json);

// What `run` would do with a run: "done", "pending" (not started), "running" (interrupted or in
// progress; resumes), "failed" (reruns), or "changed" (done or started with another config).
std::string run_state(const RunSpec& run, const ResultsDb& db);

// Runs every run in order; returns the number that failed. Stops early on a stop request.
struct SuiteTotals {
  int64_t done = 0, skipped = 0, failed = 0;
  int64_t busy = 0;  // held by another process on the same database
  bool interrupted = false;
};
SuiteTotals run_suite(const std::vector<RunSpec>& runs, ResultsDb& db, const RunnerOptions& opts,
                      std::ostream& log);

}  // namespace lb
