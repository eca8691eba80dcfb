// One convention for machine-readable output: `--format NAME`, where each command lists the
// formats it writes (the first is the default, "text" for people). The older flags `--json` and
// `--csv` stay as aliases of `--format json` / `--format csv` where the command accepts them.
#pragma once
#include <boost/program_options.hpp>
#include <string>
#include <vector>

namespace lb {

// Adds --format (into *format) and the --json / --csv aliases among `accepted`.
void add_format_options(boost::program_options::options_description& opts, std::string* format,
                        const std::vector<std::string>& accepted);

// The chosen format after parsing: --format, else an alias, else accepted[0]. UsageError for a
// name outside `accepted` or for an alias that contradicts --format.
std::string chosen_format(const boost::program_options::variables_map& vm,
                          const std::string& format, const std::vector<std::string>& accepted);

}  // namespace lb
