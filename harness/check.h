// Errors with a meaning for the CLI: UsageError (bad input; exit code 2) and LB_CHECK for
// internal invariants (a bug; exit code 1). Messages are one line, naming the bad value.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace lb {

// Bad input from the user: unknown names, impossible parameters, malformed files.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

[[noreturn]] void check_failed(const char* file, int line, const std::string& msg);

// "did you mean" helper: the closest of `known` to `name` by edit distance, or "" if none close.
std::string closest_name(const std::string& name, const std::vector<std::string>& known);
// "unknown <what> 'name'; did you mean 'x'? (known: a, b, c)"
std::string unknown_name_message(const std::string& what, const std::string& name,
                                 const std::vector<std::string>& known);

}  // namespace lb

#define LB_CHECK(cond, msg)                                        \
  do {                                                             \
    if (!(cond)) {                                                 \
      std::ostringstream lb_check_os_;                             \
      lb_check_os_ << msg;                                         \
      ::lb::check_failed(__FILE__, __LINE__, lb_check_os_.str());  \
    }                                                              \
  } while (0)

// Throws UsageError with a streamed message when cond is false.
#define LB_REQUIRE(cond, msg)                                      \
  do {                                                             \
    if (!(cond)) {                                                 \
      std::ostringstream lb_req_os_;                               \
      lb_req_os_ << msg;                                           \
      throw ::lb::UsageError(lb_req_os_.str());                    \
    }                                                              \
  } while (0)
