// `lengthbench plot`: the series extracted from a small database, the SVG's structure, its axis
// transform (log2 x), legend, byte-stable output, and the one-line errors with exit code 2.
#include <SQLiteCpp/SQLiteCpp.h>
#include <doctest/doctest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>

#include "core/check.h"
#include "results/testing.h"
#include "tools/plot_data.h"
#include "tools/svg_plot.h"

using namespace lb;
namespace fs = std::filesystem;

namespace {

using testing::add_finished_run;

// Two variants x two seeds at one lr, evaluations written in a shuffled length order; softmax
// is skipped at 512 (after its 0% at 256).
std::string make_db(const std::string& tag) {
  const std::string path =
      (fs::temp_directory_path() / ("lb_plot_" + tag + "_" + std::to_string(getpid()) + ".sqlite"))
          .string();
  fs::remove(path);
  ResultsDb db(path, ResultsDb::Mode::kReadWrite);
  add_finished_run(db, "a0", "softmax", 0, 1e-3, 0.1,
                   {{512, 0, 0, true}, {64, 1.0, 1.0, false}, {256, 0.0, 0.3, false}}, 0.6);
  add_finished_run(db, "a1", "softmax", 1, 1e-3, 0.2,
                   {{256, 0.0, 0.5, false}, {64, 0.5, 0.9, false}, {512, 0, 0, true}}, 0.8);
  add_finished_run(db, "b0", "asentmax", 0, 1e-3, 0.9,
                   {{64, 1.0, 1.0, false}, {512, 0.75, 0.9, false}, {256, 0.5, 0.8, false}}, 0.2);
  add_finished_run(db, "b1", "asentmax", 1, 1e-3, 0.8,
                   {{256, 0.7, 0.9, false}, {512, 0.25, 0.6, false}, {64, 0.8, 0.95, false}}, 0.4);
  return path;
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const UsageError& e) {
    return e.what();
  }
  return "";
}

// "" when `s` is well-formed XML as far as this writer can produce it: one root element, every
// start tag closed by its own end tag, quoted attributes, only the five predefined entities.
std::string xml_problem(const std::string& s) {
  std::vector<std::string> stack;
  int roots = 0;
  for (size_t i = 0; i < s.size();) {
    if (s[i] == '&') {
      bool known = false;
      for (const char* ent : {"&amp;", "&lt;", "&gt;", "&quot;", "&apos;"}) {
        known = known || s.compare(i, std::strlen(ent), ent) == 0;
      }
      if (!known) return "bad entity at " + std::to_string(i);
      ++i;
      continue;
    }
    if (s[i] != '<') {
      if (s[i] == '>') return "stray '>' at " + std::to_string(i);
      ++i;
      continue;
    }
    if (s.compare(i, 2, "<?") == 0) {
      const size_t end = s.find("?>", i);
      if (end == std::string::npos || i != 0) return "bad declaration";
      i = end + 2;
      continue;
    }
    const size_t end = s.find('>', i);
    if (end == std::string::npos) return "unterminated tag at " + std::to_string(i);
    const std::string tag = s.substr(i + 1, end - i - 1);
    if (std::count(tag.begin(), tag.end(), '"') % 2 != 0)
      return "unbalanced quotes in <" + tag + ">";
    if (tag.find('<') != std::string::npos) return "'<' inside <" + tag + ">";
    if (!tag.empty() && tag[0] == '/') {
      if (stack.empty() || stack.back() != tag.substr(1))
        return "mismatched </" + tag.substr(1) + ">";
      stack.pop_back();
    } else {
      const std::string name = tag.substr(0, tag.find_first_of(" /"));
      if (name.empty()) return "empty tag name";
      if (stack.empty()) ++roots;
      if (tag.back() != '/') stack.push_back(name);
    }
    i = end + 1;
  }
  if (!stack.empty()) return "unclosed <" + stack.back() + ">";
  return roots == 1 ? "" : std::to_string(roots) + " root elements";
}

// Every start tag beginning with `prefix` (e.g. "<path class=\"marker\""), in document order.
std::vector<std::string> tags(const std::string& s, const std::string& prefix) {
  std::vector<std::string> out;
  for (size_t i = s.find(prefix); i != std::string::npos; i = s.find(prefix, i + 1)) {
    out.push_back(s.substr(i, s.find('>', i) - i + 1));
  }
  return out;
}

std::string attr(const std::string& tag, const std::string& name) {
  const size_t a = tag.find(" " + name + "=\"");
  if (a == std::string::npos) return "";
  const size_t b = a + name.size() + 3;
  return tag.substr(b, tag.find('"', b) - b);
}

// The text between each `open` tag prefix and the next `close`.
std::vector<std::string> blocks(const std::string& s, const std::string& open,
                                const std::string& close) {
  std::vector<std::string> out;
  for (size_t i = s.find(open); i != std::string::npos; i = s.find(open, i + 1)) {
    out.push_back(s.substr(i, s.find(close, i) - i));
  }
  return out;
}

// The point a marker is drawn at: its path starts "M x,y".
std::pair<double, double> marker_point(const std::string& tag) {
  const std::string d = attr(tag, "d");
  const size_t comma = d.find(',');
  return {std::stod(d.substr(1, comma - 1)), std::stod(d.substr(comma + 1))};
}

const PlotSeries& series_named(const PlotFigure& f, const std::string& normalizer) {
  for (const auto& s : f.series) {
    if (s.normalizer == normalizer) return s;
  }
  throw std::runtime_error("no series " + normalizer);
}

// The exit code of `lengthbench ARGS`, its stderr in *err.
int run_lengthbench(const std::string& args, std::string* err) {
  const fs::path log = fs::temp_directory_path() / ("lb_plot_err_" + std::to_string(getpid()));
  const int status = std::system(
      (std::string("'") + LB_BINARY + "' " + args + " >/dev/null 2>'" + log.string() + "'")
          .c_str());
  *err = read_file(log);
  fs::remove(log);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace

TEST_CASE("plot_data: one series per variant, mean ± sd over seeds, ascending lengths") {
  const std::string path = make_db("data");
  ResultsDb db(path, ResultsDb::Mode::kReadWrite);
  PlotOptions o;
  auto figs = plot_figures(db, o);
  REQUIRE(figs.size() == 1);
  CHECK(figs[0].suite == "s");
  CHECK(figs[0].task == "copy");
  CHECK(figs[0].train_max_length == 64);
  REQUIRE(figs[0].series.size() == 2);
  CHECK(figs[0].series[0].label == "asentmax / nape");  // one lr: not in the label
  CHECK(figs[0].series[1].label == "softmax / nape");
  const PlotSeries& a = series_named(figs[0], "asentmax");
  REQUIRE(a.points.size() == 3);
  CHECK(a.points[0].length == 64);
  CHECK(a.points[1].length == 256);
  CHECK(a.points[2].length == 512);
  CHECK(a.points[0].value == doctest::Approx(0.9));
  CHECK(a.points[0].sd == doctest::Approx(std::sqrt(0.02)));
  CHECK(a.points[0].seeds == 2);
  CHECK(a.points[2].value == doctest::Approx(0.5));
  CHECK(a.points[2].sd == doctest::Approx(std::sqrt(0.125)));
  CHECK_FALSE(a.points[2].implied);
  const PlotSeries& s = series_named(figs[0], "softmax");
  REQUIRE(s.points.size() == 3);
  CHECK(s.points[2].length == 512);  // both seeds skipped: exact match 0, implied
  CHECK(s.points[2].value == 0.0);
  CHECK(s.points[2].implied);
  CHECK_FALSE(s.points[1].implied);

  SUBCASE("attention statistics: mean over layers x heads of a kind, then over seeds") {
    o.metric = PlotMetric::kEntropyNorm;
    figs = plot_figures(db, o);
    CHECK(figs[0].heads.find("NoPE") != std::string::npos);
    const PlotSeries& sm = series_named(figs[0], "softmax");
    REQUIRE(sm.points.size() == 2);  // no statistics at the skipped 512
    CHECK(sm.points[1].length == 256);
    CHECK(sm.points[0].value == doctest::Approx(0.8));  // default: the NoPE heads (entropy + 0.1)
    CHECK(sm.points[0].sd == doctest::Approx(std::sqrt(0.02)));
    o.heads = "all";
    CHECK(series_named(plot_figures(db, o)[0], "softmax").points[0].value == doctest::Approx(0.7));
    o.heads = "alibi";
    CHECK(series_named(plot_figures(db, o)[0], "softmax").points[0].value == doctest::Approx(0.6));
    o.heads = "nope+scaled";
    CHECK(series_named(plot_figures(db, o)[0], "softmax").points[0].value == doctest::Approx(0.8));
    o.heads = "rope";  // no such heads: nothing to plot
    CHECK_THROWS_AS(plot_figures(db, o), UsageError);
    CHECK_THROWS_AS(plot_heads_from_name("scaled"), UsageError);
    o.heads = "all";
    o.metric = PlotMetric::kSupport;
    CHECK(series_named(plot_figures(db, o)[0], "asentmax").points[1].value == doctest::Approx(1.2));
    o.metric = PlotMetric::kTokenAccuracy;
    CHECK(series_named(plot_figures(db, o)[0], "softmax").points.size() == 2);
  }
  SUBCASE("best of seeds: the run chosen on validation, no sd") {
    o.protocol = TableProtocol::kBestOf;
    figs = plot_figures(db, o);
    REQUIRE(figs[0].series.size() == 2);
    const PlotSeries& b = series_named(figs[0], "asentmax");  // seed 0 wins (0.9 > 0.8)
    CHECK(b.points[2].value == doctest::Approx(0.75));
    CHECK(std::isnan(b.points[2].sd));
    CHECK(series_named(figs[0], "softmax").points[0].value == doctest::Approx(0.5));  // seed 1
  }
  SUBCASE("suite variants are separate series, never averaged as seeds") {
    add_finished_run(db, "w0", "asentmax", 0, 1e-3, 0.5, {{64, 0.0, 0.5, false}}, 0.5, {"wide"});
    figs = plot_figures(db, o);
    REQUIRE(figs[0].series.size() == 3);
    CHECK(figs[0].series[0].label == "asentmax / nape / (none)");
    CHECK(figs[0].series[0].points[0].value == doctest::Approx(0.9));  // unchanged by "wide"
    CHECK(figs[0].series[1].label == "asentmax / nape / wide");
    CHECK(figs[0].series[1].points[0].seeds == 1);
  }
  SUBCASE("several learning rates: one series per lr, named in the label") {
    add_finished_run(db, "c0", "asentmax", 0, 3e-3, 0.5, {{64, 0.25, 0.5, false}}, 0.5);
    figs = plot_figures(db, o);
    REQUIRE(figs[0].series.size() == 3);
    CHECK(figs[0].series[0].label == "asentmax / nape / lr 0.001");
    CHECK(figs[0].series[1].label == "asentmax / nape / lr 0.003");
    CHECK(figs[0].series[1].points.size() == 1);
    CHECK(std::isnan(figs[0].series[1].points[0].sd));
    CHECK(figs[0].series[2].label == "softmax / nape / lr 0.001");
  }
  fs::remove(path);
}

TEST_CASE("svg_plot: the log2 length axis and the y axis map pixels back to values") {
  PlotAxis x;
  x.log2 = true;
  x.lo = 5;
  x.hi = 10;
  x.px_lo = 100;
  x.px_hi = 600;
  CHECK(x.to_px(32) == doctest::Approx(100));
  CHECK(x.to_px(1024) == doctest::Approx(600));
  CHECK(x.to_px(64) - x.to_px(32) == doctest::Approx(x.to_px(1024) - x.to_px(512)));  // log2
  CHECK(x.from_px(x.to_px(100)) == doctest::Approx(100));

  const std::string path = make_db("axis");
  ResultsDb db(path, ResultsDb::Mode::kReadOnly);
  for (PlotMetric m : {PlotMetric::kExactMatch, PlotMetric::kSupport}) {
    PlotOptions o;
    o.metric = m;
    const PlotFigure fig = plot_figures(db, o)[0];
    const PlotLayout l = plot_layout(fig);
    const std::string svg = svg_figure(fig);
    const auto groups = blocks(svg, "<g class=\"series\"", "</g>");
    REQUIRE(groups.size() == fig.series.size());
    for (size_t i = 0; i < groups.size(); ++i) {
      const auto markers = tags(groups[i], "<path class=\"marker\"");
      REQUIRE(markers.size() == fig.series[i].points.size());
      for (size_t k = 0; k < markers.size(); ++k) {
        const auto [px, py] = marker_point(markers[k]);
        const PlotPoint& p = fig.series[i].points[k];
        CHECK(l.x.from_px(px) == doctest::Approx(static_cast<double>(p.length)).epsilon(1e-4));
        CHECK(l.y.from_px(py) / l.y_scale == doctest::Approx(p.value).epsilon(1e-3));
      }
      if (markers.size() < 3) continue;  // softmax has no statistics at its skipped 512
      // Equal length ratios are equal pixel steps: 64 -> 256 is twice 256 -> 512.
      const double x64 = marker_point(markers[0]).first, x256 = marker_point(markers[1]).first;
      const double x512 = marker_point(markers[2]).first;
      CHECK(x256 - x64 == doctest::Approx(2 * (x512 - x256)).epsilon(1e-3));
    }
    const auto train = tags(svg, "<line class=\"train-length\"");
    REQUIRE(train.size() == 1);
    CHECK(std::stod(attr(train[0], "x1")) == doctest::Approx(l.x.to_px(64)).epsilon(1e-4));
    CHECK(svg.find("64 (1×)") != std::string::npos);
    CHECK(svg.find("512 (8×)") != std::string::npos);
  }
  fs::remove(path);
}

TEST_CASE("svg_plot: well-formed, a legend entry per variant, colours fixed by normalizer") {
  const std::string path = make_db("svg");
  {
    ResultsDb db(path, ResultsDb::Mode::kReadWrite);
    add_finished_run(db, "c0", "asentmax-init=near-one", 0, 1e-3, 0.5, {{64, 0.25, 0.5, false}},
                     0.5);
  }
  ResultsDb db(path, ResultsDb::Mode::kReadOnly);
  const PlotFigure fig = plot_figures(db, PlotOptions{})[0];
  const std::string svg = svg_figure(fig);
  CHECK(xml_problem(svg) == "");
  CHECK(xml_problem("<svg><g></svg></g>") != "");  // the checker itself rejects bad nesting
  CHECK(xml_problem("<svg>a & b</svg>") != "");
  CHECK(svg.find("<svg xmlns=\"http://www.w3.org/2000/svg\"") != std::string::npos);
  CHECK(svg.find("<title>copy: exact match (%); mean ± sd over n = ") != std::string::npos);
  CHECK(svg.find("; test split; suite s</title>") != std::string::npos);
  const auto legend = blocks(svg, "<g class=\"legend\">", "</g>");
  REQUIRE(legend.size() == 1);
  const auto texts = blocks(legend[0], "<text x=", "</text>");
  REQUIRE(texts.size() == fig.series.size());
  for (size_t i = 0; i < fig.series.size(); ++i) {
    CHECK(texts[i].substr(texts[i].find('>') + 1) == series_display_label(fig.series[i]));
  }
  CHECK(legend[0].find("hollow marker") != std::string::npos);  // softmax's implied zero
  CHECK(legend[0].find("band: ± sd over seeds") != std::string::npos);
  // The same base normalizer keeps its colour; the variant is told apart by its dash.
  const auto groups = tags(svg, "<g class=\"series\"");
  REQUIRE(groups.size() == 3);
  CHECK(attr(groups[0], "stroke") == normalizer_style("asentmax").colour);
  CHECK(attr(groups[1], "stroke") == normalizer_style("asentmax").colour);
  CHECK(attr(groups[2], "stroke") == normalizer_style("softmax").colour);
  CHECK(normalizer_style("softmax").colour != normalizer_style("asentmax").colour);
  CHECK(normalizer_style("entmax").marker != normalizer_style("ssmax").marker);
  const auto lines = tags(svg, "<polyline");
  REQUIRE(lines.size() == 2);  // the near-one variant has one point: marker only
  CHECK(attr(lines[0], "stroke-dasharray") == "");
  const auto legend_lines = tags(legend[0], "<line");
  REQUIRE(legend_lines.size() == 3);
  CHECK(attr(legend_lines[1], "stroke-dasharray") != "");
  fs::remove(path);
}

TEST_CASE("plot files: identical bytes on a second call, no temporary left, an index") {
  const std::string path = make_db("files");
  const fs::path dir = fs::temp_directory_path() / ("lb_plot_out_" + std::to_string(getpid()));
  fs::remove_all(dir);
  ResultsDb db(path, ResultsDb::Mode::kReadOnly);
  PlotOptions o;
  auto written = write_plot_files(plot_figures(db, o), (dir / "a").string());
  REQUIRE(written.size() == 2);
  CHECK(fs::path(written[0]).filename() == "s.copy.test.mean.exact_match.svg");
  CHECK(fs::path(written[1]).filename() == "index.md");
  const std::string first = read_file(written[0]);
  write_plot_files(plot_figures(db, o), (dir / "a").string());
  CHECK(read_file(written[0]) == first);
  int files = 0;
  for (const auto& e : fs::directory_iterator(dir / "a")) {
    ++files;
    CHECK(e.path().filename().string().find(".tmp") == std::string::npos);
  }
  CHECK(files == 2);
  o.metric = PlotMetric::kEntropyNorm;
  write_plot_files(plot_figures(db, o), (dir / "a").string());
  const std::string index = read_file(dir / "a" / "index.md");
  CHECK(index.find("- [s.copy.test.mean.entropy_norm.svg](s.copy.test.mean.entropy_norm.svg): copy: "
                   "normalised entropy") != std::string::npos);
  CHECK(index.find("(s.copy.test.mean.exact_match.svg): copy: exact match (%)") !=
        std::string::npos);
  fs::remove_all(dir);
  fs::remove(path);
}

TEST_CASE("plot: bad input is one line naming the value and the accepted ones, exit code 2") {
  CHECK(error_of([] { plot_metric_from_name("accuracy"); }) ==
        "--metric 'accuracy' is not one of: exact_match, token_accuracy, entropy_norm, support, "
        "relevant_mass, max_weight");
  CHECK(error_of([] { plot_protocol_from_name("median"); }) ==
        "--protocol 'median' is not one of: mean, best");
  CHECK(plot_metric_from_name("relevant_mass") == PlotMetric::kRelevantMass);
  const std::string path = make_db("errors");
  const fs::path dir = fs::temp_directory_path() / ("lb_plot_cli_" + std::to_string(getpid()));
  {
    ResultsDb db(path, ResultsDb::Mode::kReadOnly);
    PlotOptions o;
    o.task = "sort";
    const std::string e = error_of([&] { plot_figures(db, o); });
    CHECK(e.find("task 'sort'") != std::string::npos);
    CHECK(e.find("tasks copy") != std::string::npos);
    o.task = "";
    o.split = "val";
    CHECK(error_of([&] { plot_figures(db, o); }).find("splits test, validation") !=
          std::string::npos);
  }
  std::string err;
  CHECK(run_lengthbench("plot '" + path + "' --out '" + dir.string() + "' --metric accuracy",
                        &err) == 2);
  CHECK(err ==
        "lengthbench: error: --metric 'accuracy' is not one of: exact_match, token_accuracy, "
        "entropy_norm, support, relevant_mass, max_weight\n");
  CHECK(run_lengthbench("plot '" + path + "' --out '" + dir.string() + "' --protocol median",
                        &err) == 2);
  CHECK(err.find("'median' is not one of: mean, best") != std::string::npos);
  CHECK(run_lengthbench("plot '" + path + "' --out '" + dir.string() + "' --format png", &err) ==
        2);
  CHECK(err.find("--format") != std::string::npos);
  CHECK(run_lengthbench("plot /nonexistent/r.sqlite --out '" + dir.string() + "'", &err) == 2);
  CHECK(err.find("'/nonexistent/r.sqlite' does not exist") != std::string::npos);
  CHECK(run_lengthbench("plot '" + path + "' --out '" + dir.string() + "' --suite nope", &err) ==
        2);
  CHECK(err.find("suite 'nope'") != std::string::npos);
  CHECK(std::count(err.begin(), err.end(), '\n') == 1);
  CHECK_FALSE(fs::exists(dir));  // nothing written on bad input
  CHECK(run_lengthbench("plot '" + path + "' --out '" + dir.string() + "'", &err) == 0);
  CHECK(fs::exists(dir / "s.copy.test.mean.exact_match.svg"));
  fs::remove_all(dir);
  fs::remove(path);
}

TEST_CASE("plot: every plotted metric of results/metrics.h is a choice, read from its table") {
  const std::string path = make_db("registry");
  {
    ResultsDb db(path, ResultsDb::Mode::kReadOnly);
    REQUIRE(plot_metric_names().size() > 0);
    for (const std::string& name : plot_metric_names()) {
      CAPTURE(name);
      const PlotMetric m = plot_metric_from_name(name);
      CHECK(m.def().name == name);
      CHECK(plot_metric_title(m) == m.def().title);
      PlotOptions o;
      o.metric = m;
      const auto figs = plot_figures(db, o);
      REQUIRE(figs.size() == 1);
      CHECK(xml_problem(svg_figure(figs[0])) == "");
      // asentmax at 64: the mean over its two seeds of each run's value there (attention
      // statistics: the mean over the run's NoPE heads), computed here from the table itself.
      const std::string per_run =
          m.def().tables & kInAttn
              ? "SELECT AVG(" + name +
                    ") AS x FROM attn_stats WHERE split = 'test' AND length = 64 "
                    "AND run_key IN ('b0', 'b1') AND head_kind LIKE 'nope%' GROUP BY run_key"
              : "SELECT " + name +
                    " AS x FROM evals WHERE split = 'test' AND length = 64 AND "
                    "run_key IN ('b0', 'b1')";
      const double want = db.sql().execAndGet("SELECT AVG(x) FROM (" + per_run + ")").getDouble();
      bool found = false;
      for (const auto& s : figs[0].series) {
        if (s.normalizer != "asentmax") continue;
        REQUIRE(!s.points.empty());
        CHECK(s.points[0].length == 64);
        CHECK(s.points[0].seeds == 2);
        CHECK(s.points[0].value == doctest::Approx(want));
        found = true;
      }
      CHECK(found);
    }
    // Metrics the list does not offer for plotting are refused with the list.
    std::string choices;
    for (const std::string& name : plot_metric_names())
      choices += (choices.empty() ? "" : ", ") + name;
    for (const MetricDef& m : metrics()) {
      if (!m.plotted) {
        CHECK(error_of([&] { plot_metric_from_name(m.name); }) ==
              "--metric '" + std::string(m.name) + "' is not one of: " + choices);
      }
    }
  }
  fs::remove(path);
}
