// The lengthbench subcommands: one explicit table (harness/commands.cpp), one function each.
// A command gets argv without the program name (argv[0] is the command's own name), returns its
// exit code, and throws lb::UsageError for bad input (main prints it on one line, exit code 2).
#pragma once
#include <boost/program_options.hpp>
#include <string>
#include <vector>

#include "core/parse.h"  // the strict value parsers commands use

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

}  // namespace lb
