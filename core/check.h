// Errors with a meaning for the CLI: UsageError (bad input; exit code 2) and LB_CHECK for
// internal invariants (a bug; exit code 1). Messages are one line, naming the bad value.
#pragma once
#include <nlohmann/json_fwd.hpp>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace lb {

// An error message as one printable line of at most kMaxMessageChars: control characters
// (newlines, NUL, escapes) become \xNN, and an over-long message is cut with "...".
constexpr size_t kMaxMessageChars = 600;
std::string one_line(const std::string& msg);

// Bad input from the user: unknown names, impossible parameters, malformed files.
// The message is made one line of bounded length (a 10k-deep JSON value is not echoed whole).
struct UsageError : std::runtime_error {
  explicit UsageError(const std::string& msg) : std::runtime_error(one_line(msg)) {}
};

// A name that becomes a path component (suite, variant, run-key parts) or a token in a generated
// shell script: 1..kMaxNameChars of [A-Za-z0-9._+=-], not starting with '.' or '-'.
// UsageError "<what> 'name' ..." naming the accepted set otherwise.
constexpr size_t kMaxNameChars = 100;
void check_safe_name(const std::string& what, const std::string& name);

// `path` lexically inside `root` once both are made absolute and normalised (symlinks of existing
// prefixes resolved): the guard before anything is written or deleted under a checkpoint root.
bool path_is_inside(const std::string& path, const std::string& root);

// One word for a POSIX shell: single-quoted, embedded quotes as '\''.
std::string shell_quote(const std::string& word);

// Parses JSON text from a file refusing what nlohmann would accept silently: nesting deeper than
// kMaxJsonDepth and duplicate object keys (UsageError naming `what` and the key path).
constexpr int kMaxJsonDepth = 64;
nlohmann::json parse_json_strict(std::istream& in, const std::string& what);
nlohmann::json parse_json_strict(const std::string& text, const std::string& what);

[[noreturn]] void check_failed(const char* file, int line, const std::string& msg);

// "did you mean" helper: the closest of `known` to `name` by edit distance, or "" if none close.
std::string closest_name(const std::string& name, const std::vector<std::string>& known);
// "unknown <what> 'name'; did you mean 'x'? (known: a, b, c)"
std::string unknown_name_message(const std::string& what, const std::string& name,
                                 const std::vector<std::string>& known);

}  // namespace lb

#define LB_CHECK(cond, msg)                                       \
  do {                                                            \
    if (!(cond)) {                                                \
      std::ostringstream lb_check_os_;                            \
      lb_check_os_ << msg;                                        \
      ::lb::check_failed(__FILE__, __LINE__, lb_check_os_.str()); \
    }                                                             \
  } while (0)

// Throws UsageError with a streamed message when cond is false.
#define LB_REQUIRE(cond, msg)                   \
  do {                                          \
    if (!(cond)) {                              \
      std::ostringstream lb_req_os_;            \
      lb_req_os_ << msg;                        \
      throw ::lb::UsageError(lb_req_os_.str()); \
    }                                           \
  } while (0)
