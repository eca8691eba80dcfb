// `lengthbench run --jobs N`: a suite's runs, N at a time, one child process per run.
//
// Each child is this binary, `run SUITE --filter '^KEY$' --db SHARD --threads M --checkpoints
// ROOT`, writing its own shard database DB.shards/<fnv1a64(KEY)>.sqlite (SQLite wants one writer
// per file) and its output to DB.shards/<fnv1a64(KEY)>.log. The parent is the only writer of DB:
// it merges a child's shard into DB (results/merge.cpp; the shard's copy of an unfinished run
// replaces DB's) as soon as the child exits, then deletes the shard of a run that is done.
//
// Restartability: checkpoints live under the same root as a serial run's, and a shard outlives
// an unfinished run, so a rerun first merges shards left by a killed parent, then resumes every
// run that is not done from its shard and its last checkpoint; the database ends equal to a
// serial run's. A child dies with its parent (PR_SET_PDEATHSIG: SIGTERM, so it stops cleanly).
// SIGINT/SIGTERM to the parent stop every child cleanly (SIGTERM; a second signal: SIGKILL).
// A run that fails (an exception, or a child killed from outside) is recorded 'failed' with its
// error and merged; the other runs go on.
#pragma once
#include <ostream>
#include <string>
#include <vector>

#include "harness/run.h"
#include "harness/suite.h"

namespace lb {

struct JobsOptions {
  std::string suite_path;       // the suite file the children load
  std::vector<std::string> sets;  // `run --set PATH=VALUE` overrides, passed on to every child
  std::string db_path;          // the results database R
  std::string checkpoint_root;  // shared by every child (as in a serial run)
  int jobs = 1;                 // runs at once
  int threads_per_run = 1;      // each child's --threads
  bool force = false;           // `run --force`: restart the selected runs from step 0
  std::string binary;           // the lengthbench binary the children run (default: this one)
};

// The CPUs this process may use (its affinity set: a SLURM allocation or taskset), at least 1.
int usable_cpus();

// max(1, usable_cpus() / jobs): the default --threads-per-run.
int default_threads_per_run(int jobs);

// `run` without --jobs and --threads: one run per CPU, one thread each — the best suite
// throughput measured (results/bench/README.md: small16 on 16 cores, 16 x 1 against 8 x 2 and
// 4 x 4) — but no more jobs than runs `left` to do, nor than CPUs / `threads_per_run` when that
// is given (0: not given). 1 means the serial runner in this process.
int default_jobs(int64_t left, int threads_per_run);

// Where run `key`'s shard database (and its log, with .log for .sqlite) lives for database
// `db_path`.
std::string shard_path(const std::string& db_path, const std::string& key);

// A regular expression (ECMAScript) that matches exactly `key`, anchored: ^key$ with every
// special character escaped.
std::string exact_key_regex(const std::string& key);

// Runs `runs` (the selection of the suite at opts.suite_path) with opts.jobs children at a time,
// merging into opts.db_path; one progress display on `progress` (redrawn on a terminal, else a
// line at most every 30 s). Installs its own SIGINT/SIGTERM handlers. Throws UsageError, before
// starting anything, when a selected run is in the database with another config hash (and not
// opts.force).
SuiteTotals run_jobs(const std::vector<RunSpec>& runs, const JobsOptions& opts,
                     std::ostream& progress, bool terminal);

}  // namespace lb
