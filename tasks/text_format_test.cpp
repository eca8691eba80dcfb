// The reference text format: export -> import round trip, thread independence, bad files.
#include "tasks/text_format.h"

#include <doctest/doctest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/check.h"
#include "tasks/registry.h"

using namespace lb;
namespace fs = std::filesystem;

namespace {

std::string temp_dir(const std::string& tag) {
  const fs::path d = fs::temp_directory_path() / ("lb_text_" + tag + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  return d.string();
}

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

void write_file(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

}  // namespace

TEST_CASE("text_format: export then import gives the same samples, for every task") {
  for (const auto& task : all_tasks()) {
    CAPTURE(task.name);
    const TaskParams p = make_params(task, {});
    const std::string dir = temp_dir(task.name);
    Split train(task, p, 9, SplitKind::kTrain, 0);
    Split test(task, p, 9, SplitKind::kTest, 128);
    write_text_split(train, 40, dir, "train", 3);
    write_text_split(test, 10, dir, text_split_name(SplitKind::kTest, 0, 128), 2);
    const auto splits = list_text_splits(dir);
    REQUIRE(splits.size() == 2);
    CHECK(splits[0].name == "test_0_128");
    CHECK(splits[0].kind == "test");
    CHECK(splits[0].index == 0);
    CHECK(splits[0].group == "128");
    CHECK(splits[1].name == "train");
    for (const auto& [split, name, count] :
         {std::tuple{&train, "train", 40}, std::tuple{&test, "test_0_128", 10}}) {
      TextSplitReader reader(task, p, dir, name);
      Sample s;
      int64_t n = 0;
      while (reader.next(s)) {
        const Sample want = split->get(n++);
        CHECK(s.input == want.input);
        CHECK(s.target == want.target);
        CHECK(s.loss_mask == want.loss_mask);
        CHECK(s.relevant_pos == want.relevant_pos);
        CHECK(s.relevant_begin == want.relevant_begin);
      }
      CHECK(n == count);
    }
    fs::remove_all(dir);
  }
}

TEST_CASE("text_format: the bytes do not depend on the thread count") {
  const TaskDef& task = find_task("mqmtar");
  const TaskParams p = make_params(task, {});
  Split test(task, p, 1, SplitKind::kTest, 512);
  const std::string a = temp_dir("t1"), b = temp_dir("t4");
  write_text_split(test, 37, a, "x", 1);
  write_text_split(test, 37, b, "x", 4);
  CHECK(slurp(a + "/x.src") == slurp(b + "/x.src"));
  CHECK(slurp(a + "/x.trg") == slurp(b + "/x.trg"));
  CHECK(!fs::exists(a + "/x.src.tmp"));
  fs::remove_all(a);
  fs::remove_all(b);
}

TEST_CASE("text_format: files in the reference generator's exact format are read") {
  // Lines as the reference script prints them (the released scripts/generate_data.py).
  const std::string dir = temp_dir("ref");
  fs::create_directories(dir);
  write_file(dir + "/train.src", "21 20 1 23 11 29\n29 5 1 31 27 20 0 11 25\n");
  write_file(dir + "/train.trg", "21 20 1 23 11 29\n29 5 1 31 27 20 0 11 25\n");
  const TaskDef& copy = find_task("copy");
  TextSplitReader r(copy, make_params(copy, {}), dir, "train");
  Sample s;
  REQUIRE(r.next(s));
  CHECK(s.raw.src.size() == 6);
  REQUIRE(r.next(s));
  CHECK(s.input.front() == 33);
  CHECK(!r.next(s));
  fs::remove_all(dir);
}

TEST_CASE("text_format: bad files are refused naming file, line and token") {
  const std::string dir = temp_dir("bad");
  fs::create_directories(dir);
  const TaskDef& copy = find_task("copy");
  const TaskParams p = make_params(copy, {});
  auto error_of = [&](const std::string& src, const std::string& trg) {
    write_file(dir + "/x.src", src);
    write_file(dir + "/x.trg", trg);
    try {
      TextSplitReader r(copy, p, dir, "x");
      Sample s;
      while (r.next(s)) {
      }
    } catch (const UsageError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  CHECK(error_of("1 2\n1 x\n", "1 2\n1 2\n").find("x.src:2: 'x' is not a token id") !=
        std::string::npos);
  CHECK(error_of("1 32\n", "1 32\n").find("token 32 is outside the task's ids 0..31") !=
        std::string::npos);
  CHECK(error_of("1 2\n", "1 3\n").find("x.src:1: copy: trg is not a copy of src") !=
        std::string::npos);
  CHECK(error_of("1 2\n3\n", "1 2\n").find("differ in line count") != std::string::npos);
  CHECK(error_of("1 -2\n", "1 -2\n").find("outside") != std::string::npos);
  write_file(dir + "/lonely.src", "1\n");
  CHECK_THROWS_AS(list_text_splits(dir), UsageError);
  CHECK_THROWS_AS(list_text_splits(dir + "/missing"), UsageError);
  fs::remove_all(dir);
}
