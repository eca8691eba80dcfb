#include "harness/command.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <iostream>
#include <sstream>

#include "core/check.h"

namespace po = boost::program_options;

namespace lb {

bool parse_command_line(int argc, char** argv, const char* usage,
                        const po::options_description& options,
                        const po::positional_options_description& positional,
                        po::variables_map& vm) {
  po::options_description all(options);
  all.add_options()("help,h", "print this help");
  try {
    po::store(po::command_line_parser(argc, argv)
                  .options(all)
                  .positional(positional)
                  .style(po::command_line_style::default_style &
                         ~po::command_line_style::allow_guessing)
                  .run(),
              vm);
    if (vm.count("help")) {
      std::cout << "usage: lengthbench " << usage << "\n\n" << all << "\n";
      return false;
    }
    po::notify(vm);
  } catch (const po::error& e) {
    throw UsageError(std::string(argv[0]) + ": " + e.what() + " (see 'lengthbench " + argv[0] +
                     " --help')");
  }
  return true;
}

}  // namespace lb
