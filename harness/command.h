// The lengthbench subcommands: one explicit table (harness/commands.cpp), one function each.
// A command gets argv without the program name (argv[0] is the command's own name), returns its
// exit code, and throws lb::UsageError for bad input (main prints it on one line, exit code 2).
#pragma once
#include <string>
#include <vector>

#include <boost/program_options.hpp>

namespace lb {

using CommandFn = int (*)(int argc, char** argv);

struct Command {
  const char* name;
  const char* summary;  // one line for `lengthbench --help`
  CommandFn run;
};

const std::vector<Command>& all_commands();

// Parses a command's options; prints help and returns false on --help. Unknown options and
// malformed values become UsageError naming the option. `positional` may be empty.
bool parse_command_line(int argc, char** argv, const char* usage,
                        const boost::program_options::options_description& options,
                        const boost::program_options::positional_options_description& positional,
                        boost::program_options::variables_map& vm);

// "k=v" pairs from --param options into (key, value) pairs; a pair without '=' is a UsageError.
std::vector<std::pair<std::string, std::string>> parse_key_values(
    const std::vector<std::string>& items, const char* option_name);

// "64,128,256" into numbers; empty items, non-numbers and values outside [lo, hi] are UsageErrors.
std::vector<int64_t> parse_int_list(const std::string& text, const char* option_name, int64_t lo,
                                    int64_t hi);

// Strict number parsing for option values: the whole string must be a number.
int64_t parse_int(const std::string& text, const std::string& what);
double parse_double(const std::string& text, const std::string& what);

}  // namespace lb
