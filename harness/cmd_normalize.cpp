// `lengthbench normalize NAME [--alpha A] [--param k=v ...] [--json] SCORE...`: the weights one
// normalizer gives one row of scores, its support size and threshold τ (where it has one) — the
// quickest way to see how softmax, 1.5-entmax and sparsemax differ. The row is taken as given:
// the query length scaling of ssmax/asentmax belongs to the model, not to this row map.
//
// Scores may be negative: every token after NAME that is not an option (or an option's value) is
// a score, so "-1.5" is a score, not an option; `--` ends the options explicitly.
#include <cmath>
#include <cstdio>
#include <iostream>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/check.h"
#include "harness/command.h"
#include "models/kernels/normalizer.h"
#include "models/kernels/normalizer_registry.h"

namespace po = boost::program_options;

namespace lb {
namespace {

constexpr const char* kUsage =
    "normalize NAME [--alpha A] [--param k=v ...] [--json] SCORE...\n\n"
    "Prints the weights of normalizer NAME for one row of scores (negative scores are fine;\n"
    "'--' ends the options), the support size and the threshold tau where one exists:\n"
    "  p_i = [(alpha-1) z_i - tau]_+^(1/(alpha-1)) for the entmax family; topk: the K-th score.\n"
    "The row is the final logits: ssmax/asentmax query scaling is the model's, not applied here.\n"
    "\nnormalizers with their default parameters (--param key=value):\n";

bool is_number(const std::string& s) {
  try {
    parse_double(s, "score");
    return true;
  } catch (const UsageError&) {
    return false;
  }
}

std::string format_float(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.9g", v);
  return buf;
}

}  // namespace

int cmd_normalize(int argc, char** argv) {
  // Split argv: options (and their values) go to Boost; the rest are NAME then scores.
  std::vector<std::string> option_args;
  std::vector<std::string> positional;
  bool options_ended = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (options_ended) {
      positional.push_back(a);
    } else if (a == "--") {
      options_ended = true;
    } else if ((a == "--alpha" || a == "--param") && i + 1 < argc) {
      option_args.push_back(a);
      option_args.push_back(argv[++i]);
    } else if (a.size() > 1 && a[0] == '-' && !is_number(a)) {
      option_args.push_back(a);
    } else {
      positional.push_back(a);
    }
  }
  std::string alpha_text;
  std::vector<std::string> param_items;
  po::options_description opts("options");
  opts.add_options()
      ("alpha", po::value(&alpha_text), "alpha of entmax/asentmax (shorthand for --param alpha=A)")
      ("param", po::value(&param_items)->composing(), "normalizer parameter k=v (repeatable)")
      ("json", "print {\"weights\": [...], \"support\": k, \"tau\": t}");
  std::vector<char*> boost_argv = {argv[0]};
  for (auto& s : option_args) boost_argv.push_back(s.data());
  po::variables_map vm;
  const std::string usage = kUsage + describe_normalizers();
  if (!parse_command_line(static_cast<int>(boost_argv.size()), boost_argv.data(), usage.c_str(),
                          opts, {}, vm)) {
    return 0;
  }
  LB_REQUIRE(!positional.empty(),
             "normalize: missing NAME; known: " << normalizer_table().joined_names());
  KeyValues params = parse_key_values(param_items, "param");
  if (!alpha_text.empty()) params.emplace_back("alpha", alpha_text);
  const NormalizerSpec spec = normalizer_from_name(positional[0], params);
  LB_REQUIRE(positional.size() >= 2, "normalize: no scores given (e.g. 'lengthbench normalize "
                                         << positional[0] << " 1 0.5 -1')");
  std::vector<float> z;
  for (size_t i = 1; i < positional.size(); ++i) {
    const double v = parse_double(positional[i], "score");
    LB_REQUIRE(std::fabs(v) <= std::numeric_limits<float>::max(),
               "score " << positional[i] << " is outside the float range (|score| <= "
                        << std::numeric_limits<float>::max() << ")");
    z.push_back(static_cast<float>(v));
  }
  const int64_t n = static_cast<int64_t>(z.size());
  std::vector<float> p(n);
  const RowStats st = normalize_forward(spec, z.data(), n, p.data());
  for (float w : p) {
    LB_REQUIRE(std::isfinite(w), "normalize: " << normalizer_name(spec)
                                               << " overflows on these scores; rescale them");
  }

  if (vm.count("json")) {
    nlohmann::json j;
    j["weights"] = p;
    j["support"] = st.support;
    j["tau"] = st.has_tau ? nlohmann::json(st.tau) : nlohmann::json(nullptr);
    std::cout << j.dump() << "\n";
    return 0;
  }
  std::cout << "normalizer: " << to_json(spec).dump() << "\n";
  std::cout << "index  score            weight\n";
  for (int64_t i = 0; i < n; ++i) {
    const std::string s = format_float(z[i]);
    std::cout << i << std::string(7 - std::min<size_t>(6, std::to_string(i).size()), ' ') << s
              << std::string(17 - std::min<size_t>(16, s.size()), ' ') << format_float(p[i])
              << "\n";
  }
  std::cout << "support: " << st.support << " of " << n << "\n";
  const char* tau_meaning = normalizer_entry(spec.kind).tau;
  if (st.has_tau && tau_meaning) {
    std::cout << "tau: " << format_float(st.tau) << "  (" << tau_meaning << ")\n";
  } else {
    std::cout << "tau: none (" << normalizer_name(spec) << " has no threshold)\n";
  }
  return 0;
}

}  // namespace lb
