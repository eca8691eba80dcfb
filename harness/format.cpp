#include "harness/format.h"

#include <algorithm>

#include "core/check.h"

namespace po = boost::program_options;

namespace lb {

namespace {

bool has(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

std::string joined(const std::vector<std::string>& v, const char* sep) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : sep) + s;
  return out;
}

}  // namespace

void add_format_options(po::options_description& opts, std::string* format,
                        const std::vector<std::string>& accepted) {
  const std::string help =
      "output format: " + joined(accepted, ", ") + " (default " + accepted.front() + ")";
  opts.add_options()("format", po::value(format), help.c_str());
  if (has(accepted, "json")) opts.add_options()("json", "same as --format json");
  if (has(accepted, "csv")) opts.add_options()("csv", "same as --format csv");
}

std::string chosen_format(const po::variables_map& vm, const std::string& format,
                          const std::vector<std::string>& accepted) {
  std::string alias;
  for (const char* a : {"json", "csv"}) {
    if (vm.count(a)) {
      LB_REQUIRE(alias.empty(), "choose one of --json and --csv (or --format NAME)");
      alias = a;
    }
  }
  std::string f = vm.count("format") ? format : alias.empty() ? accepted.front() : alias;
  LB_REQUIRE(alias.empty() || alias == f,
             "--" << alias << " contradicts --format " << format << "; give one of them");
  LB_REQUIRE(has(accepted, f), "--format '" << f << "' is not one of: " << joined(accepted, ", "));
  return f;
}

}  // namespace lb
