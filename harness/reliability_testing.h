// Helpers of the tests that drive the lengthbench binary (LB_BINARY) for issue 17's reliability
// items (reliability_test.cpp, reliability_concurrency_test.cpp): running a program with its
// output captured, the one-line usage-error check, a tiny suite, and small file and database
// helpers.
#pragma once
#include <SQLiteCpp/SQLiteCpp.h>
#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/check.h"
#include "models/kernels/normalizer.h"
#include "models/sha256.h"

namespace lb::reliability_testing {

using nlohmann::json;
namespace fs = std::filesystem;

struct Result {
  int code = -1;  // exit status; 128 + signal when killed by one
  std::string out, err;
};

inline fs::path temp_dir(const std::string& tag) {
  const fs::path d = fs::temp_directory_path() / ("lb_rel_" + tag + "_" + std::to_string(getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

inline std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline void write(const fs::path& p, const std::string& text) {
  std::ofstream out(p, std::ios::binary);
  out << text;
}

// Runs `program args...` in `cwd` (default: here) with stdout and stderr captured.
inline Result run_program(const std::vector<std::string>& args, const fs::path& cwd = {},
                          const std::vector<std::string>& env = {}) {
  const fs::path dir = temp_dir("io");
  const fs::path out = dir / "out", err = dir / "err";
  const pid_t pid = fork();
  if (pid == 0) {
    if (!cwd.empty() && chdir(cwd.c_str()) != 0) _exit(126);
    for (const auto& e : env) putenv(const_cast<char*>(e.c_str()));
    dup2(open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644), 1);
    dup2(open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644), 2);
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  Result r;
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = slurp(out);
  r.err = slurp(err);
  fs::remove_all(dir);
  return r;
}

inline Result cli(std::vector<std::string> args, const fs::path& cwd = {}) {
  args.insert(args.begin(), LB_BINARY);
  return run_program(args, cwd);
}

// A usage error: exit 2 and exactly one bounded line on stderr naming the problem.
inline void require_usage_error(const Result& r, const std::string& mention) {
  INFO("stderr: " << r.err);
  CHECK(r.code == 2);
  CHECK(r.err.find(mention) != std::string::npos);
  CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
  CHECK(r.err.size() < lb::kMaxMessageChars + 64);
}

// One tiny copy run: trains in well under a second.
inline json tiny_suite(int steps = 16) {
  json j = json::parse(R"({
    "name": "rel",
    "model": {"preset": "tiny"},
    "train": {"batch": 4, "warmup": 2, "log_every": 4, "checkpoint_every": 8,
              "task_params": {"seq_len": 6, "vary_len": 2}},
    "tasks": ["copy"],
    "lr": [3e-3],
    "eval": {"lengths": [6, 12], "samples": 4},
    "select": {"length": 12, "samples": 4, "every": 8}
  })");
  j["train"]["steps"] = steps;
  return j;
}

inline fs::path write_suite(const fs::path& dir, const json& suite,
                            const std::string& name = "suite.json") {
  write(dir / name, suite.dump());
  return dir / name;
}

inline std::string query1(const fs::path& db, const std::string& sql) {
  SQLite::Database d(db.string(), SQLite::OPEN_READONLY);
  SQLite::Statement q(d, sql);
  REQUIRE(q.executeStep());
  return q.getColumn(0).isNull() ? "NULL" : q.getColumn(0).getString();
}

inline void flip_a_bit(const fs::path& file) {
  std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(-5, std::ios::end);
  char c = 0;
  f.get(c);
  f.seekp(-5, std::ios::end);
  f.put(static_cast<char>(c ^ 0x10));
}

}  // namespace lb::reliability_testing
