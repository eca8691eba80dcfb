// Running suites: each run trains with periodic checkpoints and checkpoint selection, evaluates
// its best checkpoint over the ladder, and writes everything to the results database.
//
// Restartability: a run already done in the database is skipped; a run found 'running' (killed,
// Ctrl-C, power loss) resumes from its last checkpoint and re-logs the steps after it (rows are
// replaced, never duplicated), giving the same numbers as an uninterrupted run at the same thread
// count; a run that throws (NaN loss, bad config) is recorded 'failed' with its error and the
// suite goes on.
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
  // Restart every run from step 0, whatever its state: its rows and checkpoints are deleted
  // first (`run --force`). Off: done runs are skipped, others resume.
  bool force = false;
};

enum class RunOutcome { kSkipped, kDone, kFailed, kInterrupted };

// Set by SIGINT/SIGTERM: the current run saves its checkpoint and stops (status stays 'running').
std::atomic<bool>& stop_requested();
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
  bool interrupted = false;
};
SuiteTotals run_suite(const std::vector<RunSpec>& runs, ResultsDb& db, const RunnerOptions& opts,
                      std::ostream& log);

}  // namespace lb
