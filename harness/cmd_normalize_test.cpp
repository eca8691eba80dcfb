// `lengthbench normalize`: negative scores parse as scores, --json output, one-line errors.
// (Lives here because the command's only logic is this library; it links
// harness/cmd_normalize.cpp.)
#include <doctest/doctest.h>

#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/check.h"

namespace lb {

int cmd_normalize(int argc, char** argv);

namespace {

// Runs `normalize ARGS...` and returns its stdout.
std::string run_normalize(std::vector<std::string> args) {
  args.insert(args.begin(), "normalize");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  std::ostringstream out;
  auto* old = std::cout.rdbuf(out.rdbuf());
  try {
    cmd_normalize(static_cast<int>(argv.size()), argv.data());
  } catch (...) {
    std::cout.rdbuf(old);
    throw;
  }
  std::cout.rdbuf(old);
  return out.str();
}

}  // namespace

TEST_CASE("cmd_normalize: negative scores, --json, alpha") {
  auto j = nlohmann::json::parse(run_normalize({"sparsemax", "--json", "-1", "2", "2.5"}));
  CHECK(j["support"] == 2);
  CHECK(j["tau"].get<double>() == doctest::Approx(1.75));
  CHECK(j["weights"][0].get<double>() == 0.0);
  CHECK(j["weights"][1].get<double>() == doctest::Approx(0.25));
  CHECK(j["weights"][2].get<double>() == doctest::Approx(0.75));
  j = nlohmann::json::parse(
      run_normalize({"entmax", "--alpha", "2", "--json", "--", "-1.5", "-1", "-2.5"}));
  CHECK(j.is_null() == false);
  CHECK(j["weights"].size() == 3);
  CHECK(j["weights"][1].get<double>() == doctest::Approx(0.75));
  j = nlohmann::json::parse(run_normalize({"softmax", "0", "0", "--json"}));
  CHECK(j["tau"].is_null());
  CHECK(j["weights"][0].get<double>() == doctest::Approx(0.5));
  j = nlohmann::json::parse(run_normalize({"topk", "--param", "k=1", "--json", "1", "3", "2"}));
  CHECK(j["weights"][1].get<double>() == 1.0);
  CHECK(j["tau"].get<double>() == 3.0);
  const std::string text = run_normalize({"entmax", "1", "0.5", "-1.5", "-3"});
  CHECK(text.find("support: 2 of 4") != std::string::npos);
  CHECK(text.find("tau: ") != std::string::npos);
}

TEST_CASE("cmd_normalize: bad input is a UsageError naming the value") {
  auto message = [](std::vector<std::string> args) {
    try {
      run_normalize(std::move(args));
    } catch (const UsageError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  CHECK(message({"softmax", "1", "abc"}).find("'abc'") != std::string::npos);
  CHECK(message({"entmx", "1"}).find("did you mean 'entmax'") != std::string::npos);
  CHECK(message({"entmax", "--alpha", "0.9", "1"}).find("alpha 0.9") != std::string::npos);
  CHECK(message({"topk", "--param", "k", "1"}).find("key=value") != std::string::npos);
  CHECK(message({"softmax"}).find("no scores") != std::string::npos);
  CHECK(message({}).find("missing NAME") != std::string::npos);
  CHECK(message({"softmax", "--bogus", "1"}).find("--bogus") != std::string::npos);
}

}  // namespace lb
