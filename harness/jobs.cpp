#include "harness/jobs.h"

#include <SQLiteCpp/SQLiteCpp.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <sstream>
#include <thread>

#include "core/check.h"
#include "results/db.h"

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace lb {

int usable_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  return sched_getaffinity(0, sizeof(set), &set) == 0
             ? std::max(1, CPU_COUNT(&set))
             : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

int default_threads_per_run(int jobs) { return std::max(1, usable_cpus() / std::max(1, jobs)); }

int default_jobs(int64_t left, int threads_per_run) {
  const int slots = std::max(1, usable_cpus() / std::max(1, threads_per_run));
  return static_cast<int>(std::clamp<int64_t>(left, 1, slots));
}

std::string shard_path(const std::string& db_path, const std::string& key) {
  return (fs::path(db_path + ".shards") / (fnv1a64_hex(key) + ".sqlite")).string();
}

std::string exact_key_regex(const std::string& key) {
  std::string re = "^";
  for (char c : key) {
    if (std::strchr("\\^$.|?*+()[]{}", c)) re += '\\';
    re += c;
  }
  return re + "$";
}

namespace {

// Stop requests received by the parent: 1 after the first SIGINT/SIGTERM, 2 after one that comes
// at least kRepeatMs later. A signal sent to the process group reaches the parent more than once
// at the same moment (GNU timeout signals its child and then the child's group; a terminal's
// Ctrl-C reaches every process of the group): those count as one request, so only a deliberate
// second Ctrl-C kills the children.
volatile std::sig_atomic_t g_signals = 0;
std::atomic<int64_t> g_first_signal_ms{-1};  // CLOCK_MONOTONIC of the first request
constexpr int64_t kRepeatMs = 1000;
static_assert(std::atomic<int64_t>::is_always_lock_free, "used in a signal handler");

extern "C" void lb_jobs_on_signal(int) {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);  // async-signal-safe
  const int64_t now = static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
  const int64_t first = g_first_signal_ms.load();
  if (first < 0) {
    g_first_signal_ms.store(now);
    g_signals = 1;
  } else if (now - first >= kRepeatMs) {
    g_signals = 2;
  }
  stop_requested() = true;
}

void install_jobs_handlers() {
  stop_requested();  // the flag exists before a handler can touch it
  struct sigaction sa {};
  sa.sa_handler = lb_jobs_on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: a signal cuts the poll's sleep short
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

std::string format_duration(double s) {
  std::ostringstream os;
  const auto n = static_cast<int64_t>(s);
  if (n >= 3600) {
    os << n / 3600 << "h" << std::setw(2) << std::setfill('0') << n / 60 % 60 << "m";
  } else if (n >= 60) {
    os << n / 60 << "m" << std::setw(2) << std::setfill('0') << n % 60 << "s";
  } else {
    os << n << "s";
  }
  return os.str();
}

void remove_database_files(const std::string& path) {
  std::error_code ec;
  for (const char* suffix : {"", "-wal", "-shm", "-journal"}) fs::remove(path + suffix, ec);
}

// The last non-empty line of a child's log (its error message, when it failed).
std::string last_line(const std::string& path) {
  std::ifstream in(path);
  std::string line, last;
  while (std::getline(in, line)) {
    if (!line.empty()) last = line;
  }
  return last.size() > 300 ? last.substr(0, 300) + "..." : last;
}

// A run's status and error in `db` ("" when absent).
std::pair<std::string, std::string> status_of(ResultsDb& db, const std::string& key) {
  SQLite::Statement q(db.sql(), "SELECT status, coalesce(error, '') FROM runs WHERE key = ?");
  q.bind(1, key);
  if (!q.executeStep()) return {"", ""};
  return {q.getColumn(0).getString(), q.getColumn(1).getString()};
}

// A new shard for a run that R has unfinished (a serial run killed, say): it starts as R's copy
// of that run, so the rows logged before its last checkpoint survive the merge back. Every table
// with a run_key column is copied, whatever the schema adds.
void seed_shard(const std::string& db_path, const std::string& shard, const std::string& key) {
  ResultsDb s(shard, ResultsDb::Mode::kReadWrite);
  SQLite::Database& sql = s.sql();
  SQLite::Statement attach(sql, "ATTACH DATABASE ? AS src");
  attach.bind(1, db_path);
  attach.exec();
  try {
    std::vector<std::string> tables;
    SQLite::Statement t(sql,
                        "SELECT m.name FROM main.sqlite_master m, pragma_table_info(m.name) p "
                        "WHERE m.type = 'table' AND p.name = 'run_key' ORDER BY m.name");
    while (t.executeStep()) tables.push_back(t.getColumn(0).getString());
    SQLite::Transaction tx(sql, SQLite::TransactionBehavior::IMMEDIATE);
    SQLite::Statement run(sql, "INSERT INTO main.runs SELECT * FROM src.runs WHERE key = ?");
    run.bind(1, key);
    run.exec();
    for (const auto& name : tables) {
      SQLite::Statement c(
          sql, "INSERT INTO main." + name + " SELECT * FROM src." + name + " WHERE run_key = ?");
      c.bind(1, key);
      c.exec();
    }
    tx.commit();
  } catch (...) {
    sql.exec("DETACH DATABASE src");
    throw;
  }
  sql.exec("DETACH DATABASE src");
}

// Brings a shard's run into R. The shard is the authority on a run that is not done: R's
// unfinished copy is replaced by the shard's (merge alone keeps the copy already in R), unless R's
// copy has more attempts (a serial `run` on R worked on it since): then the shard is stale and is
// deleted, and the next child starts from R's copy. Returns false when the shard was stale.
// A crash between the delete and the merge leaves the shard, merged at the next start.
bool adopt_shard(ResultsDb& db, const std::string& shard, std::vector<std::string>& conflicts) {
  std::vector<std::pair<std::string, int64_t>> shard_runs;
  {
    ResultsDb s(shard, ResultsDb::Mode::kReadOnly);
    SQLite::Statement q(s.sql(), "SELECT key, attempts FROM runs");
    while (q.executeStep())
      shard_runs.emplace_back(q.getColumn(0).getString(), q.getColumn(1).getInt64());
  }
  std::vector<std::string> replace;
  for (const auto& [key, attempts] : shard_runs) {
    SQLite::Statement q(db.sql(), "SELECT status, attempts FROM runs WHERE key = ?");
    q.bind(1, key);
    if (!q.executeStep() || q.getColumn(0).getString() == "done") continue;
    if (q.getColumn(1).getInt64() > attempts) {
      remove_database_files(shard);
      return false;
    }
    replace.push_back(key);
  }
  for (const auto& key : replace) db.delete_run(key);
  const MergeReport m = merge_databases(db.path(), {shard});
  conflicts.insert(conflicts.end(), m.conflicts.begin(), m.conflicts.end());
  return true;
}

// One progress display for the whole suite: redrawn in place on a terminal, else a plain line
// at most every 30 s; events (a run done or failed) get lines of their own.
class SuiteProgress {
 public:
  SuiteProgress(std::ostream& out, bool terminal, std::string label, int64_t total, int64_t done)
      : out_(out), terminal_(terminal), label_(std::move(label)), total_(total), done_(done) {}

  void started() { ++running_; }
  void finished(bool ok) {
    --running_;
    ++(ok ? done_ : failed_);
    ++finished_here_;
  }
  void interrupted() { --running_; }

  void event(const std::string& line) {
    if (!terminal_) {
      out_ << line << std::endl;
      return;
    }
    out_ << "\r\033[K" << line << "\n";
    draw(true);
  }
  void draw(bool now) {
    const auto t = Clock::now();
    const auto period = terminal_ ? std::chrono::milliseconds(500) : std::chrono::seconds(30);
    if (!now && t - last_ < period) return;
    last_ = t;
    const double elapsed = std::chrono::duration<double>(t - start_).count();
    std::ostringstream line;
    line << label_ << ": " << done_ << "/" << total_ << " done, " << running_ << " running, "
         << failed_ << " failed, " << format_duration(elapsed) << " elapsed";
    const int64_t left = total_ - done_ - failed_;
    if (finished_here_ > 0 && left > 0) {
      line << ", ETA " << format_duration(elapsed / finished_here_ * left);
    }
    if (terminal_) {
      out_ << "\r" << line.str() << "\033[K" << std::flush;
    } else {
      out_ << line.str() << std::endl;
    }
  }
  void finish() {
    if (terminal_) out_ << "\r\033[K" << std::flush;
  }

 private:
  std::ostream& out_;
  bool terminal_;
  std::string label_;
  int64_t total_, done_, failed_ = 0, running_ = 0, finished_here_ = 0;
  Clock::time_point start_ = Clock::now(), last_{};
};

struct Child {
  pid_t pid = 0;
  const RunSpec* run = nullptr;
  std::string shard, log;
  Clock::time_point start;
};

// The command that starts this binary again: /proc/self/exe, or, when this binary was started
// through the dynamic loader (a harness/bundle.sh bundle: `ld-linux... --library-path DIR
// lengthbench ...`), the loader, its options and the program, from /proc/self/cmdline.
std::vector<std::string> self_command() {
  const std::string exe = fs::canonical("/proc/self/exe").string();
  if (fs::path(exe).filename().string().rfind("ld-", 0) != 0) return {exe};
  std::ifstream in("/proc/self/cmdline", std::ios::binary);
  std::vector<std::string> args;
  for (std::string a; std::getline(in, a, '\0');) args.push_back(a);
  static const char* const kWithValue[] = {
      "--library-path",         "--preload",          "--argv0", "--audit", "--inhibit-rpath",
      "--glibc-hwcaps-prepend", "--glibc-hwcaps-mask"};
  for (size_t i = 1; i < args.size(); ++i) {
    if (args[i].rfind("--", 0) != 0) {
      args.resize(i + 1);
      args[0] = exe;
      return args;
    }
    for (const char* o : kWithValue) {
      if (args[i] == o) ++i;
    }
  }
  LB_CHECK(false, "cannot tell which program the loader " << exe << " runs");
}

pid_t spawn(const std::vector<std::string>& args, const std::string& log) {
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  const pid_t parent = getpid();
  const pid_t pid = fork();
  LB_CHECK(pid >= 0, "fork failed: " << std::strerror(errno));
  if (pid == 0) {
    // Only async-signal-safe calls until exec.
    prctl(PR_SET_PDEATHSIG, SIGTERM);  // the parent dies (even by SIGKILL): stop cleanly
    if (getppid() != parent) _exit(130);
    const int in = open("/dev/null", O_RDONLY);
    const int out = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (in < 0 || out < 0) _exit(127);
    dup2(in, 0);
    dup2(out, 1);
    dup2(out, 2);
    if (in > 2) close(in);
    if (out > 2) close(out);
    execv(argv[0], argv.data());
    _exit(127);
  }
  return pid;
}

}  // namespace

SuiteTotals run_jobs(const std::vector<RunSpec>& runs, const JobsOptions& opts,
                     std::ostream& progress_out, bool terminal) {
  LB_REQUIRE(opts.jobs >= 1 && opts.jobs <= 1024,
             "--jobs " << opts.jobs << " must be in [1, 1024]");
  LB_REQUIRE(opts.threads_per_run >= 1 && opts.threads_per_run <= 1024,
             "--threads-per-run " << opts.threads_per_run << " must be in [1, 1024]");
  const std::vector<std::string> binary =
      opts.binary.empty() ? self_command() : std::vector<std::string>{opts.binary};
  const fs::path shard_dir = opts.db_path + ".shards";
  fs::create_directories(shard_dir);
  // One parent per database: a second `run --jobs` on it would race for the same shards. The
  // children inherit the lock (no O_CLOEXEC), so it is held until the parent and every child of
  // it have exited: a rerun right after a kill -9 of the parent waits for the old children to
  // stop (they get SIGTERM) instead of writing the same shards.
  const std::string lock_path = (shard_dir / "lock").string();
  const int lock = open(lock_path.c_str(), O_RDWR | O_CREAT, 0644);
  LB_CHECK(lock >= 0, "cannot open " << lock_path << ": " << std::strerror(errno));
  for (int waited = 0; flock(lock, LOCK_EX | LOCK_NB) != 0; ++waited) {
    if (waited == 0) {
      progress_out << "waiting for the runs of a previous `run --jobs` on " << opts.db_path
                   << " to stop\n";
    }
    if (waited == 600) {
      close(lock);
      throw UsageError("another `run --jobs` is using " + opts.db_path + " (lock " + lock_path +
                       "); wait for it or stop it");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  struct LockGuard {
    int fd;
    ~LockGuard() { close(fd); }
  } lock_guard{lock};

  ResultsDb db(opts.db_path, ResultsDb::Mode::kReadWrite);
  // Shards left by a parent that was killed: their runs go into R first (idempotent).
  std::vector<std::string> leftovers;
  for (const auto& e : fs::directory_iterator(shard_dir)) {
    if (e.path().extension() == ".sqlite") leftovers.push_back(e.path().string());
  }
  std::sort(leftovers.begin(), leftovers.end());
  for (const auto& shard : leftovers) {
    std::vector<std::string> conflicts;
    try {
      adopt_shard(db, shard, conflicts);
    } catch (const std::exception& e) {  // e.g. created by a child killed before its schema
      progress_out << "shard " << shard << " not merged: " << e.what() << "\n";
    }
    for (const auto& c : conflicts) progress_out << "merge conflict: " << c << "\n";
  }

  // Refuse a changed config before touching anything (as a serial run does).
  if (!opts.force) {
    for (const auto& r : runs) {
      const auto hash = db.run_config_hash(r.key);
      LB_REQUIRE(!hash || *hash == r.config_hash,
                 "run " << r.key << " is in " << opts.db_path << " with config hash " << *hash
                        << " but the suite now gives " << r.config_hash
                        << "; use a new database or suite name, or --force to rerun it");
    }
  }
  SuiteTotals totals;
  std::vector<const RunSpec*> todo;
  for (const auto& r : runs) {
    const std::string shard = shard_path(opts.db_path, r.key);
    if (opts.force) {
      db.delete_run(r.key);
      remove_database_files(shard);
    } else if (db.run_status(r.key) == RunStatus::kDone) {
      ++totals.skipped;
      remove_database_files(shard);
      continue;
    }
    todo.push_back(&r);
  }
  // Longest first: the suite's tail is then short runs filling the last slots.
  std::stable_sort(todo.begin(), todo.end(), [](const RunSpec* a, const RunSpec* b) {
    return estimate_run_flops(*a) > estimate_run_flops(*b);
  });

  install_jobs_handlers();
  SuiteProgress progress(progress_out, terminal, runs.empty() ? "run" : runs[0].suite,
                         static_cast<int64_t>(runs.size()), totals.skipped);
  progress.draw(true);
  std::vector<Child> children;
  size_t next = 0;
  bool stopping = false, killed = false;

  auto launch = [&](const RunSpec& r) {
    Child c;
    c.run = &r;
    c.shard = shard_path(opts.db_path, r.key);
    c.log = c.shard.substr(0, c.shard.size() - 7) + ".log";
    if (!fs::exists(c.shard) && db.run_status(r.key) != RunStatus::kNone) {
      seed_shard(opts.db_path, c.shard, r.key);
    }
    std::vector<std::string> args = binary;
    args.insert(
        args.end(),
        {"run", opts.suite_path, "--db", c.shard, "--filter", exact_key_regex(r.key), "--threads",
         std::to_string(opts.threads_per_run), "--checkpoints", opts.checkpoint_root});
    for (const std::string& set : opts.sets) args.insert(args.end(), {"--set", set});
    if (opts.force) args.push_back("--force");
    std::ofstream(c.log, std::ios::app)
        << "# " << utc_now_iso() << " lengthbench run --jobs: " << r.key << "\n";
    c.start = Clock::now();
    c.pid = spawn(args, c.log);
    children.push_back(c);
    progress.started();
  };

  auto reap = [&](const Child& c, int wstatus) {
    const std::string& key = c.run->key;
    std::string why;    // a failure the child could not record itself
    bool ours = false;  // stopped by us: resumable, not a failure
    if (WIFSIGNALED(wstatus) && killed && WTERMSIG(wstatus) == SIGKILL) {
      ours = true;  // killed on a second request: resumes from its last checkpoint
    } else if (WIFSIGNALED(wstatus)) {
      why = std::string("the run's process was killed by signal ") +
            std::to_string(WTERMSIG(wstatus)) + " (" + strsignal(WTERMSIG(wstatus)) + ")";
    } else if (WEXITSTATUS(wstatus) == 130) {
      ours = true;  // it stopped on SIGINT/SIGTERM and saved what it had
    } else if (WEXITSTATUS(wstatus) != 0) {
      why = "the run's process exited with code " + std::to_string(WEXITSTATUS(wstatus)) + ": " +
            last_line(c.log);
    }
    try {
      if (fs::exists(c.shard)) {
        if (!ours && !why.empty()) {
          ResultsDb s(c.shard, ResultsDb::Mode::kReadWrite);
          if (s.run_status(key) == RunStatus::kRunning) s.finish_run(key, RunStatus::kFailed, why);
        }
        std::vector<std::string> conflicts;
        adopt_shard(db, c.shard, conflicts);
        for (const auto& conflict : conflicts) why = "merge conflict: " + conflict;
        if (!conflicts.empty()) ours = false;
      }
    } catch (const std::exception& e) {
      why = std::string("merging its shard failed: ") + e.what();
      ours = false;
    }
    const auto [status, error] = status_of(db, key);
    const std::string took =
        format_duration(std::chrono::duration<double>(Clock::now() - c.start).count());
    if (status == "done" && why.empty()) {
      ++totals.done;
      progress.finished(true);
      remove_database_files(c.shard);
      progress.event("done " + key + " (" + took + ")");
    } else if (ours && why.empty()) {
      totals.interrupted = true;
      progress.interrupted();
      progress.event((WIFSIGNALED(wstatus) ? "killed " : "stopped ") + key + " (" + took +
                     "); a rerun resumes it");
    } else {
      if (why.empty()) why = "its process ended without finishing the run: " + last_line(c.log);
      ++totals.failed;
      progress.finished(false);
      progress.event("FAILED " + key + ": " + (status == "failed" && !error.empty() ? error : why) +
                     " (log: " + c.log + ")");
    }
  };

  while (next < todo.size() || !children.empty()) {
    if (g_signals > 0 && !stopping) {
      stopping = true;
      progress.event("stopping: every run saves and stops (again: kill them now)");
      for (const auto& c : children) kill(c.pid, SIGTERM);
    }
    if (g_signals > 1 && !killed) {
      killed = true;
      for (const auto& c : children) kill(c.pid, SIGKILL);
    }
    while (!stopping && children.size() < static_cast<size_t>(opts.jobs) && next < todo.size()) {
      launch(*todo[next++]);
    }
    for (size_t i = 0; i < children.size();) {
      int wstatus = 0;
      const pid_t p = waitpid(children[i].pid, &wstatus, WNOHANG);
      if (p == children[i].pid) {
        const Child c = children[i];
        children.erase(children.begin() + static_cast<std::ptrdiff_t>(i));
        reap(c, wstatus);
      } else {
        ++i;
      }
    }
    if (stopping && children.empty()) break;
    progress.draw(false);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  if (stopping && next < todo.size()) totals.interrupted = true;
  progress.draw(true);
  progress.finish();
  return totals;
}

}  // namespace lb
