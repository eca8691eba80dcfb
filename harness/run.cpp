#include "harness/run.h"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <condition_variable>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iomanip>
#include <iostream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "core/check.h"
#include "harness/eval.h"
#include "harness/run_eval.h"
#include "harness/trainer.h"
#include "results/metrics.h"
#include "tasks/registry.h"

namespace fs = std::filesystem;

namespace lb {

std::atomic<bool>& stop_requested() {
  static std::atomic<bool> flag{false};
  return flag;
}

extern "C" void lb_on_stop_signal(int) { stop_requested() = true; }

// SIGINT/SIGTERM are taken by a thread of their own that waits for them (sigwait); the calling
// thread blocks them, and so does every thread started after it (threads inherit the mask). So a
// signal never interrupts a compute thread: oneDNN's JIT kernels can run with their stack pointer
// in a heap block (valgrind: "client switching stacks"), and a signal frame pushed there (several
// KiB of AVX-512, on AMX machines more) overwrote the heap — a SIGTERM during training aborted the
// run with "corrupted size vs. prev_size". The handler stays installed for a thread started
// before this call: there it sets the flag as before, instead of the default action.
void install_stop_handlers() {
  static std::once_flag once;
  std::call_once(once, [] {
    std::signal(SIGINT, lb_on_stop_signal);
    std::signal(SIGTERM, lb_on_stop_signal);
    sigset_t stops;
    sigemptyset(&stops);
    sigaddset(&stops, SIGINT);
    sigaddset(&stops, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stops, nullptr);
    std::thread([stops] {
      for (;;) {
        int sig = 0;
        if (sigwait(&stops, &sig) == 0) stop_requested() = true;
      }
    }).detach();
  });
}

namespace {

// The checkpoint of `dir` to resume from, or "" when there is none or it is stale: written for
// another config of the run (its manifest's run_config_hash differs; e.g. the suite was edited
// and the database deleted) or without a manifest. A stale run folder is removed, with a message.
fs::path resumable_checkpoint(const RunSpec& run, const fs::path& run_dir, std::ostream& log) {
  const std::string found = Trainer::checkpoint_to_resume((run_dir / "last").string());
  if (found.empty()) return {};
  std::string tag = "(no manifest)";
  if (fs::exists(fs::path(found) / "manifest.json")) {
    std::ifstream in(fs::path(found) / "manifest.json");
    try {
      const nlohmann::json m = parse_json_strict(in, "manifest");
      tag = m.is_object() ? m.value("run_config_hash", std::string("?")) : "?";
    } catch (const UsageError&) {
      tag = "(unreadable manifest)";
    }
  }
  if (tag == run.config_hash) return found;
  log << run.key << ": checkpoint " << found << " was written for config hash " << tag
      << ", the run now has " << run.config_hash << ": discarded, training from step 0\n";
  std::error_code ec;
  fs::remove_all(run_dir, ec);
  LB_REQUIRE(!ec, "cannot remove stale checkpoints " << run_dir.string() << ": " << ec.message());
  return {};
}

std::string format_seconds(double s) {
  std::ostringstream os;
  if (s >= 3600) os << static_cast<int>(s / 3600) << "h" << std::setw(2) << std::setfill('0') << static_cast<int>(s / 60) % 60 << "m";
  else if (s >= 60) os << static_cast<int>(s / 60) << "m" << std::setw(2) << std::setfill('0') << static_cast<int>(s) % 60 << "s";
  else os << std::fixed << std::setprecision(1) << s << "s";
  return os.str();
}

// A checkpoint path as stored in the database: relative to the database's folder, so a database
// and its checkpoint folder can move together (and committed ones resolve from the repository).
std::string db_relative(const fs::path& p, const ResultsDb& db) {
  const fs::path base = fs::absolute(db.path()).parent_path();
  return fs::absolute(p).lexically_normal().lexically_relative(base.lexically_normal()).string();
}

// A one-line progress bar with ETA on stderr (a terminal; redrawn at most 5 times a second), or
// without a terminal one plain line on `log` at most every `plain_every_s` seconds: step,
// tokens/s since the last line, elapsed, ETA (for cluster logs).
class Progress {
 public:
  Progress(bool bar, std::string label, int64_t total, std::ostream* log = nullptr,
           double plain_every_s = 30)
      : bar_(bar), label_(std::move(label)), total_(total), log_(log), every_(plain_every_s) {}
  void update(int64_t done, const std::string& detail, int64_t tokens = 0) {
    tokens_ += tokens;
    if (!bar_) {
      const auto now = std::chrono::steady_clock::now();
      const double since = std::chrono::duration<double>(now - plain_last_).count();
      if (!log_ || since < every_) return;
      const double elapsed = std::chrono::duration<double>(now - start_).count();
      *log_ << label_ << ": step " << done << "/" << total_ << ", "
            << static_cast<int64_t>(tokens_ / std::max(since, 1e-9)) << " tok/s, elapsed "
            << format_seconds(elapsed) << ", ETA "
            << (done > first_ ? format_seconds(elapsed / (done - first_) * (total_ - done))
                              : std::string("?"))
            << ", " << detail << "\n" << std::flush;
      plain_last_ = now;
      tokens_ = 0;
      return;
    }
    const auto now = std::chrono::steady_clock::now();
    if (done < total_ && now - last_ < std::chrono::milliseconds(200)) return;
    last_ = now;
    const double elapsed = std::chrono::duration<double>(now - start_).count();
    const int width = 24, fill = static_cast<int>(width * done / std::max<int64_t>(1, total_));
    std::cerr << "\r" << label_ << " [" << std::string(fill, '#') << std::string(width - fill, '.')
              << "] " << done << "/" << total_ << " " << detail;
    if (done > first_ && done < total_) {
      std::cerr << " ETA " << format_seconds(elapsed / (done - first_) * (total_ - done));
    }
    std::cerr << "\033[K" << std::flush;
  }
  void start_at(int64_t done) { first_ = done; }
  void finish() {
    if (bar_) std::cerr << "\r\033[K" << std::flush;
  }

 private:
  bool bar_;
  std::string label_;
  int64_t total_, first_ = 0, tokens_ = 0;
  std::ostream* log_;
  double every_;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now(), last_{},
                                        plain_last_ = start_;
};

// Flattens a JSON document into "a.b.c" -> leaf text.
void flatten(const nlohmann::json& j, const std::string& path, std::map<std::string, std::string>& out) {
  if (j.is_object() && !j.empty()) {
    for (const auto& [k, v] : j.items()) flatten(v, path.empty() ? k : path + "." + k, out);
  } else {
    out[path] = j.dump();
  }
}

// The message naming what changed between a stored run's config and the suite's.
std::string changed_config_message(const ResultsDb& db, const RunSpec& run) {
  const auto old_json = db.run_config_json(run.key);
  std::string changes;
  for (const auto& c : config_changes(old_json.value_or("{}"), run.config.dump())) {
    changes += (changes.empty() ? "" : "; ") + c;
  }
  return changes.empty() ? "no config key differs (the hash rule changed?)" : changes;
}

// LB_TEST_SIGNAL_AT=POINT@N:SIG (run.h): sends SIG to this process at the N-th arrival at POINT.
void test_signal_point(const char* point) {
  static const char* spec = std::getenv("LB_TEST_SIGNAL_AT");
  if (!spec) return;
  static std::mutex mutex;
  static std::map<std::string, int64_t> arrivals;
  const std::string s = spec;
  const size_t at = s.find('@'), colon = s.find(':', at == std::string::npos ? 0 : at);
  if (at == std::string::npos || colon == std::string::npos || s.substr(0, at) != point) return;
  int64_t n = 0;
  {
    std::lock_guard<std::mutex> lock(mutex);
    n = ++arrivals[point];
  }
  if (n != std::atoll(s.c_str() + at + 1)) return;
  const std::string sig = s.substr(colon + 1);
  // As a signal from outside would: to the process (this thread blocks INT and TERM). The flag
  // is also set here, so the run stops at this point, not whenever the signal thread wakes.
  if (sig != "KILL") stop_requested() = true;
  kill(getpid(), sig == "KILL" ? SIGKILL : sig == "TERM" ? SIGTERM : SIGINT);
}

// Refreshes the claim's heartbeat every `every` from its own connection while a run is held,
// so that a long evaluation length does not look like a dead owner; gives the claim up (the run
// stays 'running' unless finished) when it goes out of scope.
class ClaimKeeper {
 public:
  ClaimKeeper(ResultsDb& db, std::string key, std::chrono::seconds every)
      : db_(db), key_(std::move(key)) {
    thread_ = std::thread([this, path = db.path(), every] {
      std::unique_lock<std::mutex> lock(mutex_);
      while (!cv_.wait_for(lock, every, [&] { return stop_; })) {
        try {
          ResultsDb(path, ResultsDb::Mode::kReadWrite, 5000).heartbeat(key_);
        } catch (const std::exception&) {
          // A busy database skips one beat; the next one comes in `every`.
        }
      }
    });
  }
  ~ClaimKeeper() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
    try {
      db_.release_run(key_);
    } catch (const std::exception&) {
      // A claim left behind is taken over: its owner (this process) is gone by then.
    }
  }

 private:
  ResultsDb& db_;
  std::string key_;
  std::mutex mutex_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

// Sets a run's checkpoint rows from its checkpoint folders (step and sha256 from each manifest):
// a kill between a checkpoint's rename and its row leaves the row behind the folder.
void reconcile_checkpoint_rows(const RunSpec& run, const fs::path& dir, ResultsDb& db) {
  for (const char* name : {"last", "best"}) {
    const std::string found = Trainer::checkpoint_to_resume((dir / name).string());
    if (found.empty() || !fs::exists(fs::path(found) / "manifest.json")) continue;
    std::ifstream in(fs::path(found) / "manifest.json");
    nlohmann::json m;
    try {
      m = parse_json_strict(in, "manifest");
    } catch (const UsageError&) {
      continue;  // an unreadable manifest fails the run where the checkpoint is loaded
    }
    if (!m.is_object() || m.value("run_config_hash", std::string()) != run.config_hash ||
        !m.contains("step") || !m["step"].is_number_integer()) {
      continue;
    }
    const int64_t step = m["step"].get<int64_t>();
    const std::string sha = m["sha256"].value("model.safetensors", std::string());
    if (db.checkpoint_step(run.key, name) == step) continue;
    CheckpointRow row{name, step, db_relative(dir / name, db), sha, "", std::nullopt};
    if (std::string(name) == "best") {
      row.selected_by = selection_rule(run.select.split, run.select.length);
      for (const auto& s : db.selection_evals(run.key)) {
        if (s.step == step) row.metric = s.exact_match;
      }
    }
    db.add_checkpoint(run.key, row);
  }
}

RunRecord record_of(const RunSpec& r) {
  RunRecord rec;
  rec.key = r.key;
  rec.suite = r.suite;
  rec.task = r.task;
  rec.variant = r.variant;
  rec.task_version = r.task_version;
  rec.normalizer = attention_code(r.model.attention);
  rec.pos_encoding = position_encoding_name(r.model.position);
  rec.seed = static_cast<int64_t>(r.seed);
  rec.lr = r.train.lr;
  rec.train_max_length = r.train_max_length;
  rec.select_split = r.select.split;
  rec.select_length = r.select.length;
  rec.config_json = r.config.dump();
  rec.config_hash = r.config_hash;
  return rec;
}

}  // namespace

// The order is the metric list's (results/metrics.h selection_rank).
bool selection_better(const SelectionRow& a, const SelectionRow& b) {
  return selection_better_by_metrics(a, b);
}

std::string selection_rule(const std::string& split, int64_t length) {
  return selection_rule() + "@" + split + "/" + std::to_string(length);
}

std::vector<std::string> config_changes(const std::string& old_json, const std::string& new_json) {
  std::map<std::string, std::string> a, b;
  flatten(nlohmann::json::parse(old_json), "", a);
  flatten(nlohmann::json::parse(new_json), "", b);
  std::vector<std::string> out;
  for (const auto& [k, v] : a) {
    const auto it = b.find(k);
    if (it == b.end()) out.push_back(k + ": " + v + " -> (absent)");
    else if (it->second != v) out.push_back(k + ": " + v + " -> " + it->second);
  }
  for (const auto& [k, v] : b) {
    if (!a.count(k)) out.push_back(k + ": (absent) -> " + v);
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string run_state(const RunSpec& run, const ResultsDb& db) {
  const RunStatus st = db.run_status(run.key);
  if (st == RunStatus::kNone) return "pending";
  if (db.run_config_hash(run.key).value_or("") != run.config_hash) return "changed";
  return run_status_name(st);
}

RunOutcome run_one(const RunSpec& run, ResultsDb& db, const RunnerOptions& opts, std::ostream& log) {
  const fs::path dir = fs::path(opts.checkpoint_root) / run.key;
  // Nothing is written or deleted outside the checkpoint root, whatever the key holds.
  LB_REQUIRE(
      path_is_inside(dir.string(), opts.checkpoint_root),
      "run key " << run.key << " resolves outside the checkpoint folder " << opts.checkpoint_root);
  auto busy = [&](const std::string& owner) {
    log << run.key << ": being run by " << owner << " on this database; skipped\n";
    return RunOutcome::kBusy;
  };
  if (opts.force) {
    // Never under a live process's feet. Checkpoints go first, so a rerun stopped midway can
    // never resume from the old weights; the rows then go in one transaction.
    if (const auto owner = db.live_owner(run.key, opts.claim_stale_s)) return busy(*owner);
    std::error_code ec;
    fs::remove_all(dir, ec);
    LB_REQUIRE(!ec, "--force: cannot remove " << dir.string() << ": " << ec.message());
    if (db.delete_run(run.key)) log << run.key << ": --force: previous results deleted\n";
  }
  const RunStatus status = db.run_status(run.key);
  if (status == RunStatus::kDone) {
    const auto hash = db.run_config_hash(run.key);
    LB_REQUIRE(hash && *hash == run.config_hash,
               "run " << run.key << " is done in " << db.path() << " with config hash "
                      << hash.value_or("?") << " but the suite now gives " << run.config_hash
                      << " (changed: " << changed_config_message(db, run)
                      << "); use a new database or suite name, or --force to rerun it");
    return RunOutcome::kSkipped;
  }
  if (status != RunStatus::kNone) {
    LB_REQUIRE(db.run_config_hash(run.key).value_or("") == run.config_hash,
               "run " << run.key << " exists in " << db.path() << " with another config (changed: "
                      << changed_config_message(db, run)
                      << "); use a new database or suite name, or --force to rerun it");
  }
  // The claim comes before anything touches the run's checkpoints.
  const ResultsDb::ClaimResult claim =
      db.claim_run(record_of(run), Provenance::current(opts.threads), opts.claim_stale_s);
  if (claim.outcome == ResultsDb::Claim::kDone) return RunOutcome::kSkipped;  // finished meanwhile
  if (claim.outcome == ResultsDb::Claim::kBusy) {
    return busy(claim.owner + " (heartbeat " + claim.heartbeat_at + ")");
  }
  const ClaimKeeper keeper(db, run.key, std::chrono::seconds(30));
  const std::atomic<bool>* stop = &stop_requested();
  try {
    Trainer trainer(run.model, run.train);
    const fs::path resume = resumable_checkpoint(run, dir, log);
    reconcile_checkpoint_rows(run, dir, db);
    if (!resume.empty()) {
      trainer.load(resume.string());
      log << run.key << ": resuming at step " << trainer.steps_done() << "\n";
    }
    // Every selection evaluation is stored; the best so far is the one at the step the 'best'
    // checkpoint records (a resumed run replays the later steps and reaches the same choice).
    // A run starting from step 0 has no valid best yet, whatever an earlier attempt recorded.
    std::optional<SelectionRow> best;
    if (const auto best_step = resume.empty() ? std::nullopt : db.checkpoint_step(run.key, "best")) {
      for (const auto& row : db.selection_evals(run.key)) {
        if (row.step == *best_step) best = row;
      }
    }
    auto select = [&](int64_t step) {
      SelectionRow row = evaluate_selection(trainer.model(), run, opts.threads, stop);
      row.step = step;
      db.add_selection_eval(run.key, row);
      if (!best || selection_better(row, *best)) {
        best = row;
        const std::string sha = trainer.save_atomic((dir / "best").string(), run.config_hash);
        db.add_checkpoint(run.key, {"best", step, db_relative(dir / "best", db), sha,
                                    selection_rule(run.select.split, run.select.length),
                                    row.exact_match});
      }
    };
    const int64_t steps = run.train.steps;
    Progress progress(opts.progress_bar, run.key, steps, &log, opts.progress_every_s);
    progress.start_at(trainer.steps_done());
    // One row per log_every steps: means over the interval (a resumed run rewrites the rows
    // after its checkpoint, by step).
    double sum_loss = 0, sum_grad = 0, sum_seconds = 0;
    int64_t sum_tokens = 0, interval = 0;
    const auto t0 = std::chrono::steady_clock::now();
    while (trainer.steps_done() < steps) {
      if (stop_requested()) {
        progress.finish();
        log << run.key << ": interrupted at step " << trainer.steps_done()
            << "; resumes from its last checkpoint\n";
        return RunOutcome::kInterrupted;
      }
      const StepStats s = trainer.step();
      if (!std::isfinite(s.loss) || !std::isfinite(s.grad_norm)) {
        throw std::runtime_error("training diverged at step " + std::to_string(s.step) + ": loss " +
                                 std::to_string(s.loss) + ", gradient norm " +
                                 std::to_string(s.grad_norm));
      }
      sum_loss += s.loss;
      sum_grad += s.grad_norm;
      sum_seconds += s.seconds;
      sum_tokens += s.tokens;
      ++interval;
      if (s.step % run.train.log_every == 0 || s.step == steps) {
        const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        db.add_train_metrics(run.key, {{s.step, sum_loss / interval, s.lr, sum_grad / interval,
                                        sum_tokens / std::max(1e-9, sum_seconds), wall}});
        sum_loss = sum_grad = sum_seconds = 0;
        sum_tokens = interval = 0;
        db.heartbeat(run.key);
      }
      progress.update(s.step, "loss " + std::to_string(s.loss).substr(0, 6), s.tokens);
      const bool ckpt = s.step == steps ||
                        (run.train.checkpoint_every > 0 && s.step % run.train.checkpoint_every == 0);
      const bool sel = s.step == steps || (run.select.every > 0 && s.step % run.select.every == 0);
      // Selection first, so a checkpoint never records a state whose selection is not yet saved.
      if (sel) select(s.step);
      if (ckpt) {
        const std::string sha = trainer.save_atomic((dir / "last").string(), run.config_hash);
        test_signal_point("checkpoint-saved");
        db.add_checkpoint(run.key,
                          {"last", s.step, db_relative(dir / "last", db), sha, "", std::nullopt});
      }
    }
    progress.finish();
    // Evaluate the selected checkpoint: its selection score, then the ladder.
    Trainer chosen(run.model, run.train);
    // load() verifies the sha256 of every file; the manifest ties the weights to this config.
    const std::string best_dir = Trainer::checkpoint_to_resume((dir / "best").string());
    LB_CHECK(!best_dir.empty(), "run " << run.key << " has no best checkpoint in " << dir.string());
    const nlohmann::json manifest = Trainer::verify_checkpoint(best_dir);
    if (manifest.is_null() || manifest.value("run_config_hash", std::string()) != run.config_hash) {
      throw std::runtime_error("best checkpoint " + best_dir + " was not written for config hash " +
                               run.config_hash + "; rerun with --force");
    }
    chosen.load(best_dir);
    const int64_t best_step = chosen.steps_done();
    if (best) {
      log << run.key << ": selected step " << best_step << " of " << steps << " ("
          << selection_rule(run.select.split, run.select.length) << ": exact match "
          << 100 * best->exact_match << "%, token accuracy " << 100 * best->token_accuracy
          << "%, loss " << best->loss << ")\n";
    }
    // Rows an earlier attempt stored for this checkpoint, by split and length: not recomputed.
    auto stored = [&](const std::string& split, int64_t samples) {
      std::map<int64_t, EvalRow> rows;
      for (EvalRow& e : db.evals_of(run.key, "best", best_step, split)) {
        if (e.samples == samples || e.skipped) rows[e.length] = e;
      }
      return rows;
    };
    const std::map<int64_t, EvalRow> stored_select = stored(run.select.split, run.select.samples);
    const std::map<int64_t, EvalRow> stored_ladder = stored(run.eval.split, run.eval.samples);
    if (!stored_select.count(run.select.length)) {
      EvalOutcome v = evaluate_for_run(chosen.model(), run, run.select.split, run.select.length,
                                       run.select.samples, opts.threads, true, stop);
      v.row.ckpt = "best";
      v.row.step = best_step;
      db.add_eval(run.key, v.row, v.attn);
    }
    // The ladder; the last length's row and the run's 'done' are one transaction.
    const TaskDef& task = find_task(run.task);
    EvalOptions eo = run_eval_options(run, run.eval.split, run.eval.samples, true);
    eo.lengths = run.eval.lengths;
    eo.stop_at_zero = run.eval.stop_at_zero;
    eo.stop = stop;
    size_t left = eo.lengths.size();  // lengths not yet stored or known
    LadderCallbacks each;
    each.known = [&](int64_t L) -> std::optional<EvalRow> {
      const auto it = stored_ladder.find(L);
      if (it == stored_ladder.end()) return std::nullopt;
      --left;
      log << run.key << ": " << run.eval.split << " L=" << L << " already stored\n";
      return it->second;
    };
    each.progress = [](int64_t, int64_t, int64_t) { test_signal_point("eval-sample"); };
    each.done = [&](const LengthResult& r) {
      EvalRow row = r.eval;
      row.ckpt = "best";
      row.step = best_step;
      row.split = run.eval.split;
      const bool last = --left == 0;
      db.transaction([&] {
        db.add_eval(run.key, row, r.attn);
        if (last) db.finish_run(run.key, RunStatus::kDone);
      });
      test_signal_point("eval-stored");
      if (!row.skipped) {
        log << run.key << ": " << run.eval.split << " L=" << row.length << " exact match "
            << 100 * row.exact_match << "%\n";
      }
    };
    run_ladder(chosen.model(), task, make_params(task, run.train.task_params), eo, each);
    if (db.run_status(run.key) != RunStatus::kDone) db.finish_run(run.key, RunStatus::kDone);
    return RunOutcome::kDone;
  } catch (const EvalInterrupted&) {
    log << run.key << ": interrupted during evaluation; the length in progress is not stored, "
        << "and resumes\n";
    return RunOutcome::kInterrupted;
  } catch (const std::exception& e) {
    db.finish_run(run.key, RunStatus::kFailed, e.what());
    log << run.key << ": failed: " << e.what() << "\n";
    return RunOutcome::kFailed;
  }
}

SuiteTotals run_suite(const std::vector<RunSpec>& runs, ResultsDb& db, const RunnerOptions& opts,
                      std::ostream& log) {
  SuiteTotals t;
  const auto t0 = std::chrono::steady_clock::now();
  for (size_t i = 0; i < runs.size(); ++i) {
    if (stop_requested()) {
      t.interrupted = true;
      break;
    }
    if (db.run_status(runs[i].key) != RunStatus::kDone) {
      // Suite progress: runs done of the total, elapsed, and an ETA from the runs trained so far.
      const double elapsed =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      const int64_t trained = t.done + t.failed, left = static_cast<int64_t>(runs.size() - i);
      log << "[" << i + 1 << "/" << runs.size() << "] " << runs[i].key << "  (elapsed "
          << format_seconds(elapsed) << ", ETA "
          << (trained > 0 ? format_seconds(elapsed / trained * left) : std::string("?")) << ")\n";
    }
    switch (run_one(runs[i], db, opts, log)) {
      case RunOutcome::kSkipped: ++t.skipped; break;
      case RunOutcome::kDone: ++t.done; break;
      case RunOutcome::kFailed: ++t.failed; break;
      case RunOutcome::kBusy:
        ++t.busy;
        break;
      case RunOutcome::kInterrupted: t.interrupted = true; return t;
    }
  }
  return t;
}

}  // namespace lb
