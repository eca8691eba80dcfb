#include "core/check.h"

#include <doctest/doctest.h>

#include "core/parse.h"

using namespace lb;

TEST_CASE("check: did-you-mean names the closest known name") {
  const std::vector<std::string> known = {"copy", "reverse", "sort", "mqmtar"};
  CHECK(closest_name("cpy", known) == "copy");
  CHECK(closest_name("revers", known) == "reverse");
  CHECK(closest_name("zzzzzzzz", known) == "");
  const std::string m = unknown_name_message("task", "srt", known);
  CHECK(m == "unknown task 'srt'; did you mean 'sort'? (known: copy, reverse, sort, mqmtar)");
}

TEST_CASE("command: option values are parsed strictly") {
  CHECK(parse_int_list("64,128", "lengths", 1, 100000) == std::vector<int64_t>{64, 128});
  CHECK_THROWS_AS(parse_int_list("64,,128", "lengths", 1, 100000), UsageError);
  CHECK_THROWS_AS(parse_int_list("64,x", "lengths", 1, 100000), UsageError);
  CHECK_THROWS_AS(parse_int_list("0", "lengths", 1, 100000), UsageError);
  CHECK_THROWS_AS(parse_int("12a", "n"), UsageError);
  CHECK(parse_double("-1.5e3", "x") == -1500.0);
  CHECK_THROWS_AS(parse_double("nan", "x"), UsageError);
  CHECK_THROWS_AS(parse_key_values({"novalue"}, "param"), UsageError);
  CHECK(parse_key_values({"a=b=c"}, "param")[0].second == "b=c");
}
