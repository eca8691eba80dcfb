#include "tools/svg_plot.h"

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iterator>
#include <set>
#include <sstream>

#include "core/check.h"

extern char** environ;

namespace lb {

std::string svg_number(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.2f", v);
  std::string s = buf;
  while (s.back() == '0') s.pop_back();
  if (s.back() == '.') s.pop_back();
  return s == "-0" ? "0" : s;
}

namespace {

// Layout in pixels: the plot area spans [kLeft, kWidth - kRight] x [kTop, kTop + kPlotH]; the
// tick labels, axis title and a two-column legend sit below it.
constexpr double kWidth = 760, kLeft = 72, kRight = 24, kTop = 68, kPlotH = 300;
constexpr double kInset = 6;     // data never touches the frame
constexpr double kRowH = 18;     // legend row
constexpr double kTickGap = 72;  // minimum distance between labelled x ticks
constexpr double kBottom = kTop + kPlotH;
constexpr double kLegendTop = kBottom + 62;

struct StyleEntry {
  const char* normalizer;
  const char* colour;
  const char* marker;
};

// The fixed style table, one row per normalizer of models/kernels/normalizer_registry.cpp.
constexpr StyleEntry kStyles[] = {
    {"softmax", "#1f77b4", "circle"},         {"ssmax", "#ff7f0e", "square"},
    {"entmax", "#2ca02c", "triangle"},        {"sparsemax", "#d62728", "diamond"},
    {"asentmax", "#9467bd", "triangle-down"}, {"topk", "#8c564b", "cross"},
    {"stickbreaking", "#e377c2", "plus"},     {"adaptive_temperature", "#7f7f7f", "star"},
};
constexpr const char* kFallbackColours[] = {"#17becf", "#bcbd22", "#393b79", "#637939"};

// Dash patterns of the first, second, ... series sharing a base normalizer in one figure.
constexpr const char* kDashes[] = {"", "7 4", "2 3", "9 3 2 3"};

std::string xml_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string base_name(const std::string& normalizer) {
  return normalizer.substr(0, normalizer.find('-'));
}

// "64 (1×)", as tools/table.cpp labels its columns.
std::string length_label(int64_t length, int64_t train_max) {
  std::ostringstream os;
  os << length << " (" << std::setprecision(3)
     << static_cast<double>(length) / std::max<int64_t>(1, train_max) << "×)";
  return os.str();
}

// The marker outline centred on (0, 0), as relative path commands after "M x,y".
std::string marker_path(const std::string& marker) {
  if (marker == "square") return "m-3.5,-3.5h7v7h-7z";
  if (marker == "triangle") return "m0,-4.8l4.3,7.6h-8.6z";
  if (marker == "diamond") return "m0,-5l5,5l-5,5l-5,-5z";
  if (marker == "triangle-down") return "m0,4.8l4.3,-7.6h-8.6z";
  if (marker == "cross") return "m-4,-4l8,8m0,-8l-8,8";
  if (marker == "plus") return "m-4.5,0h9m-4.5,-4.5v9";
  if (marker == "star") {
    std::string d;
    double px = 0, py = 0;
    for (int i = 0; i <= 10; ++i) {
      const double r = i % 2 ? 2.2 : 5.2, a = M_PI * i / 5;
      const double x = r * std::sin(a), y = -r * std::cos(a);
      d += (i == 0 ? "m" : "l") + svg_number(x - px) + "," + svg_number(y - py);
      px = x;
      py = y;
    }
    return d + "z";
  }
  return "m-4,0a4,4 0 1,0 8,0a4,4 0 1,0 -8,0z";  // circle
}

std::string protocol_text(TableProtocol p) {
  return p == TableProtocol::kMeanSd ? "mean ± sd over seeds"
                                     : "best of seeds × learning rates (selected on validation)";
}

// Ticks from lo to hi (lo < hi) with step 1, 2, 2.5 or 5 x 10^k, about five intervals.
std::vector<double> nice_ticks_range(double lo, double hi) {
  const double raw = (hi - lo) / 5, mag = std::pow(10.0, std::floor(std::log10(raw)));
  const double f = raw / mag;
  const double step = (f <= 1 ? 1 : f <= 2 ? 2 : f <= 2.5 ? 2.5 : f <= 5 ? 5 : 10) * mag;
  std::vector<double> ticks;
  const double first = std::floor(lo / step + 1e-9) * step;
  for (double t = first; t < hi + step - 1e-9; t += step) ticks.push_back(t);
  return ticks;
}

// Ticks 0, step, ..., top with step 1, 2, 2.5 or 5 x 10^k, top >= hi, about five intervals.
std::vector<double> nice_ticks(double hi) {
  if (!(hi > 0)) hi = 1;
  const double raw = hi / 5, mag = std::pow(10.0, std::floor(std::log10(raw)));
  const double f = raw / mag;
  const double step = (f <= 1 ? 1 : f <= 2 ? 2 : f <= 2.5 ? 2.5 : f <= 5 ? 5 : 10) * mag;
  const int n = static_cast<int>(std::ceil(hi / step - 1e-9));
  std::vector<double> ticks;
  for (int i = 0; i <= n; ++i) ticks.push_back(i * step);
  return ticks;
}

std::string tick_text(double v, double step) {
  int decimals = std::max(0, static_cast<int>(-std::floor(std::log10(step) + 1e-9)));
  const double scaled = step * std::pow(10.0, decimals);
  if (std::fabs(scaled - std::round(scaled)) > 1e-6) ++decimals;  // 2.5 x 10^k
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

void write_atomically(const std::filesystem::path& path, const std::string& bytes) {
  const std::filesystem::path tmp = path.string() + ".tmp-" + std::to_string(getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << bytes;
    out.close();
    LB_REQUIRE(out.good(), "plot: cannot write '" << tmp.string() << "'");
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  LB_REQUIRE(!ec, "plot: cannot rename '" << tmp.string() << "' to '" << path.string()
                                          << "': " << ec.message());
}

// The text of the first <title> element of an SVG file ("" if none), unescaped as written.
std::string svg_title(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::string head(4096, '\0');
  in.read(head.data(), static_cast<std::streamsize>(head.size()));
  head.resize(static_cast<size_t>(in.gcount()));
  const size_t a = head.find("<title>"), b = head.find("</title>");
  return a == std::string::npos || b == std::string::npos || b < a ? ""
                                                                   : head.substr(a + 7, b - a - 7);
}

}  // namespace

double PlotAxis::to_px(double v) const {
  const double t = log2 ? std::log2(v) : v;
  return px_lo + (t - lo) / (hi - lo) * (px_hi - px_lo);
}

double PlotAxis::from_px(double px) const {
  const double t = lo + (px - px_lo) / (px_hi - px_lo) * (hi - lo);
  return log2 ? std::exp2(t) : t;
}

std::string figure_title(const PlotFigure& f) {
  return f.task + ": " + plot_metric_title(f.metric) + (f.heads.empty() ? "" : ", " + f.heads);
}

std::string figure_caption(const PlotFigure& f) {
  int64_t lo = 0, hi = 0;
  for (const auto& s : f.series) {
    for (const auto& p : s.points) {
      lo = lo == 0 ? p.seeds : std::min(lo, p.seeds);
      hi = std::max(hi, p.seeds);
    }
  }
  const std::string n =
      lo == hi ? std::to_string(hi) : std::to_string(lo) + "–" + std::to_string(hi);
  const std::string what = f.protocol == TableProtocol::kMeanSd
                               ? "mean ± sd over n = " + n + (hi == 1 ? " seed" : " seeds")
                               : "best of seeds × learning rates (selected on validation)";
  return what + "; " + f.split + " split";
}

std::string series_display_label(const PlotSeries& s) {
  std::string label =
      normalizer_display_name(s.normalizer) + " + " + position_display_name(s.pos_encoding);
  const size_t lr = s.label.find(" / lr ");
  if (lr != std::string::npos) label += ", lr " + s.label.substr(lr + 6);
  return label;
}

double task_chance_level(const std::string& task) {
  if (task == "flip_flop" || task == "parity") return 0.5;
  return std::numeric_limits<double>::quiet_NaN();
}

PlotLayout plot_layout(const PlotFigure& fig, const SvgOptions& opts) {
  PlotLayout l;
  std::set<int64_t> lengths;
  double top = 0;
  for (const auto& s : fig.series) {
    for (const auto& p : s.points) {
      lengths.insert(p.length);
      top = std::max(top, p.value + (std::isnan(p.sd) ? 0.0 : p.sd));
    }
  }
  if (fig.train_max_length > 0) lengths.insert(fig.train_max_length);
  LB_CHECK(!lengths.empty(), "plot_layout: a figure without points");
  l.x.log2 = true;
  l.x.lo = std::log2(static_cast<double>(*lengths.begin())) - 0.35;
  l.x.hi = std::log2(static_cast<double>(*lengths.rbegin())) + 0.35;
  l.x.px_lo = kLeft;
  l.x.px_hi = kWidth - kRight;
  double bottom = INFINITY;
  for (const auto& s : fig.series) {
    for (const auto& p : s.points)
      bottom = std::min(bottom, p.value - (std::isnan(p.sd) ? 0.0 : p.sd));
  }
  if (plot_metric_is_percent(fig.metric)) {
    l.y_scale = 100;
    l.y_ticks = {0, 20, 40, 60, 80, 100};
    // Automatic zoom: every value (± sd) within 35 points: the range on 5-point steps around them.
    const double lo = std::max(0.0, bottom * 100), hi = std::min(100.0, top * 100);
    if (opts.auto_zoom && hi - lo < 35 && std::isnan(opts.ymin) && std::isnan(opts.ymax)) {
      const double zlo = std::max(0.0, std::floor((lo - 2) / 5) * 5);
      const double zhi = std::min(100.0, std::max(zlo + 10, std::ceil((hi + 2) / 5) * 5));
      l.y_ticks = nice_ticks_range(zlo, zhi);
    }
  } else {
    l.y_ticks = nice_ticks(top);
  }
  if (!std::isnan(opts.ymin) || !std::isnan(opts.ymax)) {
    const double lo = std::isnan(opts.ymin) ? l.y_ticks.front() : opts.ymin;
    const double hi = std::isnan(opts.ymax) ? l.y_ticks.back() : opts.ymax;
    LB_REQUIRE(lo < hi, "--ylim " << lo << ":" << hi << " needs LO < HI");
    l.y_ticks = nice_ticks_range(lo, hi);
    l.y_ticks.front() = std::max(l.y_ticks.front(), lo);
    while (l.y_ticks.size() > 2 && l.y_ticks.back() > hi + 1e-9) l.y_ticks.pop_back();
    if (l.y_ticks.back() < hi - 1e-9) l.y_ticks.push_back(hi);
    if (l.y_ticks.front() > lo + 1e-9) l.y_ticks.insert(l.y_ticks.begin(), lo);
    if (l.y_ticks.size() > 1 && l.y_ticks[1] <= l.y_ticks[0])
      l.y_ticks.erase(l.y_ticks.begin() + 1);
  }
  l.y.lo = l.y_ticks.front();
  l.y.hi = l.y_ticks.back();
  l.y.px_lo = kBottom - kInset;
  l.y.px_hi = kTop + kInset;
  l.width = kWidth;
  l.height = kLegendTop + (std::ceil(fig.series.size() / 2.0) + 1) * kRowH + 6;  // + the notes row
  return l;
}

std::string normalizer_display_name(const std::string& code) {
  static const std::pair<const char*, const char*> kNames[] = {
      {"softmax", "softmax"},
      {"ssmax", "SSMax"},
      {"entmax", "1.5-entmax"},
      {"sparsemax", "sparsemax"},
      {"asentmax", "ASEntmax"},
      {"topk", "top-k"},
      {"stickbreaking", "stick-breaking"},
      {"adaptive_temperature", "adaptive temperature"}};
  const std::string base = base_name(code);
  std::string rest = code.size() > base.size() ? code.substr(base.size() + 1) : "";
  std::string name = base;
  for (const auto& [k, v] : kNames) {
    if (base == k) name = v;
  }
  // entmax-alpha=1.3 -> 1.3-entmax; other parameters in parentheses.
  std::string params;
  size_t start = 0;
  while (!rest.empty() && start <= rest.size()) {
    // Parameters are "-key=value"; a '-' inside a value ("init=near-one") does not split.
    size_t dash = rest.find('-', start);
    while (dash != std::string::npos) {
      const size_t eq = rest.find('=', dash), next = rest.find('-', dash + 1);
      if (eq != std::string::npos && (next == std::string::npos || eq < next)) break;
      dash = next;
    }
    const std::string p =
        rest.substr(start, dash == std::string::npos ? std::string::npos : dash - start);
    if (base == "entmax" && p.rfind("alpha=", 0) == 0) {
      name = p.substr(6) + "-entmax";
    } else if (!p.empty()) {
      params += (params.empty() ? "" : ", ") + p;
    }
    if (dash == std::string::npos) break;
    start = dash + 1;
  }
  return params.empty() ? name : name + " (" + params + ")";
}

std::string position_display_name(const std::string& position) {
  if (position == "nape") return "NAPE";
  if (position == "rope") return "RoPE";
  if (position == "alibi") return "ALiBi";
  if (position == "nope") return "NoPE";
  return position;
}

SeriesStyle normalizer_style(const std::string& normalizer) {
  const std::string base = base_name(normalizer);
  for (const auto& e : kStyles) {
    if (base == e.normalizer) return {e.colour, e.marker};
  }
  uint32_t h = 2166136261u;  // FNV-1a: the same fallback on every platform
  for (unsigned char c : base) h = (h ^ c) * 16777619u;
  return {kFallbackColours[h % std::size(kFallbackColours)], "circle"};
}

std::string plot_file_name(const PlotFigure& f) {
  std::string name = f.suite + "." + f.task + "." + f.split + "." + plot_protocol_name(f.protocol) +
                     "." + plot_metric_name(f.metric) +
                     (f.heads.empty() || f.heads.rfind("NoPE heads", 0) == 0
                          ? ""
                          : "." + f.heads.substr(0, f.heads.find(' ')));
  for (char& c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '=' && c != '-' &&
        c != '.')
      c = '_';
  }
  return name + ".svg";
}

std::string svg_figure(const PlotFigure& fig, const SvgOptions& opts) {
  const PlotLayout l = plot_layout(fig, opts);
  const double right = kWidth - kRight;
  std::ostringstream o;
  o << "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << svg_number(l.width) << "\" height=\""
    << svg_number(l.height) << "\" viewBox=\"0 0 " << svg_number(l.width) << " "
    << svg_number(l.height)
    << "\" font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\" font-size=\"12\">\n"
    << "<title>"
    << xml_escape(figure_title(fig) + "; " + figure_caption(fig) + "; suite " + fig.suite)
    << "</title>\n"
    << "<rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>\n"
    << "<text x=\"" << svg_number(kLeft) << "\" y=\"24\" font-size=\"15\" font-weight=\"bold\">"
    << xml_escape(figure_title(fig)) << "</text>\n"
    << "<text x=\"" << svg_number(kLeft) << "\" y=\"43\" fill=\"#444444\">"
    << xml_escape(figure_caption(fig)) << "</text>\n";

  // Grid, frame, ticks and axis titles.
  std::set<int64_t> lengths;
  for (const auto& s : fig.series) {
    for (const auto& p : s.points) lengths.insert(p.length);
  }
  o << "<g class=\"grid\" stroke=\"#e6e6e6\" stroke-width=\"1\">\n";
  for (double t : l.y_ticks) {
    o << "<line x1=\"" << svg_number(kLeft) << "\" x2=\"" << svg_number(right) << "\" y1=\""
      << svg_number(l.y.to_px(t)) << "\" y2=\"" << svg_number(l.y.to_px(t)) << "\"/>\n";
  }
  for (int64_t L : lengths) {
    const double x = l.x.to_px(static_cast<double>(L));
    o << "<line x1=\"" << svg_number(x) << "\" x2=\"" << svg_number(x) << "\" y1=\""
      << svg_number(kTop) << "\" y2=\"" << svg_number(kBottom) << "\"/>\n";
  }
  o << "</g>\n<rect class=\"frame\" x=\"" << svg_number(kLeft) << "\" y=\"" << svg_number(kTop)
    << "\" width=\"" << svg_number(right - kLeft) << "\" height=\"" << svg_number(kPlotH)
    << "\" fill=\"none\" stroke=\"#333333\" stroke-width=\"1\"/>\n";
  o << "<g class=\"y-ticks\" text-anchor=\"end\">\n";
  const double step = l.y_ticks.size() > 1 ? l.y_ticks[1] - l.y_ticks[0] : 1;
  for (double t : l.y_ticks) {
    o << "<text x=\"" << svg_number(kLeft - 6) << "\" y=\"" << svg_number(l.y.to_px(t) + 4) << "\">"
      << tick_text(t, step) << "</text>\n";
  }
  o << "</g>\n<g class=\"x-ticks\" text-anchor=\"middle\">\n";
  double last_labelled = -1e9;
  for (int64_t L : lengths) {
    const double x = l.x.to_px(static_cast<double>(L));
    if (x - last_labelled < kTickGap) continue;
    last_labelled = x;
    o << "<text x=\"" << svg_number(x) << "\" y=\"" << svg_number(kBottom + 18) << "\">"
      << length_label(L, fig.train_max_length) << "</text>\n";
  }
  o << "</g>\n<text x=\"" << svg_number((kLeft + right) / 2) << "\" y=\""
    << svg_number(kBottom + 40)
    << "\" text-anchor=\"middle\">evaluation length (× longest training length), log scale</text>\n"
    << "<text transform=\"translate(18 " << svg_number(kTop + kPlotH / 2)
    << ") rotate(-90)\" text-anchor=\"middle\">"
    << xml_escape(plot_metric_is_percent(fig.metric) ? plot_metric_title(fig.metric)
                                                     : plot_metric_name(fig.metric))
    << "</text>\n";
  if (fig.train_max_length > 0) {
    const double x = l.x.to_px(static_cast<double>(fig.train_max_length));
    o << "<line class=\"train-length\" x1=\"" << svg_number(x) << "\" x2=\"" << svg_number(x)
      << "\" y1=\"" << svg_number(kTop) << "\" y2=\"" << svg_number(kBottom)
      << "\" stroke=\"#555555\" stroke-width=\"1.2\" stroke-dasharray=\"5 4\"/>\n"
      << "<text x=\"" << svg_number(x) << "\" y=\"" << svg_number(kTop - 5)
      << "\" text-anchor=\"middle\" font-size=\"11\" fill=\"#555555\">trained ≤ "
      << fig.train_max_length << "</text>\n";
  }

  // Styles: colour and marker by base normalizer, dash by rank among series of that base.
  std::vector<SeriesStyle> styles;
  std::vector<std::string> dashes;
  std::vector<std::string> bases;
  for (const auto& s : fig.series) {
    styles.push_back(normalizer_style(s.normalizer));
    const std::string base = base_name(s.normalizer);
    dashes.push_back(kDashes[std::count(bases.begin(), bases.end(), base) % std::size(kDashes)]);
    bases.push_back(base);
  }
  const auto y_px = [&](double value) {
    return l.y.to_px(std::clamp(value * l.y_scale, l.y.lo, l.y.hi));
  };
  // The chance level, where the task has one and it is inside the y range.
  const double chance = task_chance_level(fig.task);
  if (fig.metric.def().percent && !std::isnan(chance) && chance * l.y_scale >= l.y.lo &&
      chance * l.y_scale <= l.y.hi) {
    o << "<line class=\"chance\" x1=\"" << svg_number(kLeft) << "\" x2=\"" << svg_number(right)
      << "\" y1=\"" << svg_number(y_px(chance)) << "\" y2=\"" << svg_number(y_px(chance))
      << "\" stroke=\"#999999\" stroke-width=\"1.2\" stroke-dasharray=\"2 3\"/>\n"
      << "<text x=\"" << svg_number(right - 4) << "\" y=\"" << svg_number(y_px(chance) - 4)
      << "\" text-anchor=\"end\" font-size=\"11\" fill=\"#777777\">chance "
      << svg_number(chance * l.y_scale) << (l.y_scale == 100 ? "%" : "") << "</text>\n";
  }

  // ± sd bands under every line.
  bool any_band = false, any_implied = false;
  // Fainter bands, each with a thin edge, once four or more series overlap.
  const bool many = fig.series.size() >= 4;
  o << "<g class=\"bands\" fill-opacity=\"" << (many ? "0.09" : "0.16") << "\""
    << (many ? " stroke-opacity=\"0.35\" stroke-width=\"0.8\"" : " stroke=\"none\"") << ">\n";
  for (size_t i = 0; i < fig.series.size(); ++i) {
    const auto& pts = fig.series[i].points;
    const bool band =
        std::any_of(pts.begin(), pts.end(), [](const PlotPoint& p) { return p.sd > 0; });
    if (!band) continue;
    any_band = true;
    o << "<polygon fill=\"" << styles[i].colour << "\""
      << (many ? " stroke=\"" + styles[i].colour + "\"" : "") << " points=\"";
    for (size_t k = 0; k < pts.size(); ++k) {
      const double sd = std::isnan(pts[k].sd) ? 0 : pts[k].sd;
      o << (k ? " " : "") << svg_number(l.x.to_px(static_cast<double>(pts[k].length))) << ","
        << svg_number(y_px(pts[k].value + sd));
    }
    for (size_t k = pts.size(); k-- > 0;) {
      const double sd = std::isnan(pts[k].sd) ? 0 : pts[k].sd;
      o << " " << svg_number(l.x.to_px(static_cast<double>(pts[k].length))) << ","
        << svg_number(y_px(pts[k].value - sd));
    }
    o << "\"/>\n";
  }
  o << "</g>\n";

  // One group per series: its line, then one marker per point ("M x,y" is the point).
  for (size_t i = 0; i < fig.series.size(); ++i) {
    const auto& s = fig.series[i];
    const std::string& c = styles[i].colour;
    o << "<g class=\"series\" stroke=\"" << c << "\">\n<title>"
      << xml_escape(series_display_label(s)) << "</title>\n";
    if (s.points.size() > 1) {
      o << "<polyline fill=\"none\" stroke-width=\"2\""
        << (dashes[i].empty() ? "" : " stroke-dasharray=\"" + std::string(dashes[i]) + "\"")
        << " points=\"";
      for (size_t k = 0; k < s.points.size(); ++k) {
        o << (k ? " " : "") << svg_number(l.x.to_px(static_cast<double>(s.points[k].length))) << ","
          << svg_number(y_px(s.points[k].value));
      }
      o << "\"/>\n";
    }
    for (const auto& p : s.points) {
      any_implied = any_implied || p.implied;
      o << "<path class=\"marker\" fill=\"" << (p.implied ? "#ffffff" : c)
        << "\" stroke-width=\"1.5\" d=\"M" << svg_number(l.x.to_px(static_cast<double>(p.length)))
        << "," << svg_number(y_px(p.value)) << marker_path(styles[i].marker) << "\"/>\n";
    }
    o << "</g>\n";
  }

  // Legend: two columns under the axis, then a row of notes.
  o << "<g class=\"legend\">\n";
  const double col_w = (right - kLeft) / 2;
  for (size_t i = 0; i < fig.series.size(); ++i) {
    const double x = kLeft + (i % 2) * col_w, y = kLegendTop + static_cast<double>(i / 2) * kRowH;
    const std::string& c = styles[i].colour;
    o << "<line x1=\"" << svg_number(x) << "\" x2=\"" << svg_number(x + 28) << "\" y1=\""
      << svg_number(y) << "\" y2=\"" << svg_number(y) << "\" stroke=\"" << c
      << "\" stroke-width=\"2\""
      << (dashes[i].empty() ? "" : " stroke-dasharray=\"" + std::string(dashes[i]) + "\"") << "/>\n"
      << "<path fill=\"" << c << "\" stroke=\"" << c << "\" stroke-width=\"1.5\" d=\"M"
      << svg_number(x + 14) << "," << svg_number(y) << marker_path(styles[i].marker) << "\"/>\n"
      << "<text x=\"" << svg_number(x + 36) << "\" y=\"" << svg_number(y + 4) << "\">"
      << xml_escape(series_display_label(fig.series[i])) << "</text>\n";
  }
  std::string notes;
  if (any_band) notes += "band: ± sd over seeds";
  if (any_implied) {
    notes += std::string(notes.empty() ? "" : "; ") +
             "hollow marker: not evaluated after a 0% length (0 implied)";
  }
  if (!notes.empty()) {
    o << "<text class=\"notes\" x=\"" << svg_number(kLeft) << "\" y=\""
      << svg_number(kLegendTop + std::ceil(fig.series.size() / 2.0) * kRowH + 4)
      << "\" font-size=\"11\" fill=\"#555555\">" << xml_escape(notes) << "</text>\n";
  }
  o << "</g>\n</svg>\n";
  return o.str();
}

std::string convert_svg(const std::string& svg_path, const std::string& format) {
  LB_CHECK(format == "png" || format == "pdf", "convert_svg: format " << format);
  const std::string out = std::filesystem::path(svg_path).replace_extension("." + format).string();
  const std::string tmp = out + ".tmp-" + std::to_string(getpid());
  std::vector<std::string> args = {"rsvg-convert", "-f", format, "-o", tmp, svg_path};
  if (format == "png") args.insert(args.begin() + 1, {"-z", "2"});  // 2x: sharp in print
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  const int rc = posix_spawnp(&pid, "rsvg-convert", nullptr, nullptr, argv.data(), environ);
  LB_REQUIRE(rc == 0, "--" << format << " needs rsvg-convert (Debian package librsvg2-bin): "
                           << std::strerror(rc));
  int status = 0;
  waitpid(pid, &status, 0);
  LB_REQUIRE(WIFEXITED(status) && WEXITSTATUS(status) == 0,
             "rsvg-convert failed on '" << svg_path << "' (exit " << WEXITSTATUS(status) << ")");
  std::filesystem::rename(tmp, out);
  return out;
}

std::vector<std::string> write_plot_files(const std::vector<PlotFigure>& figs,
                                          const std::string& dir, const PlotFileOptions& opts) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(dir, ec);
  LB_REQUIRE(!ec && fs::is_directory(dir), "--out '" << dir
                                                     << "' is not a directory that can be created"
                                                     << (ec ? ": " + ec.message() : ""));
  std::vector<std::string> written;
  for (const auto& f : figs) {
    const fs::path path = fs::path(dir) / plot_file_name(f);
    write_atomically(path, svg_figure(f, opts.svg));
    written.push_back(path.string());
    if (opts.png) written.push_back(convert_svg(path.string(), "png"));
    if (opts.pdf) written.push_back(convert_svg(path.string(), "pdf"));
  }
  // The index covers every figure in the folder, from this call or earlier ones.
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.is_regular_file() && entry.path().extension() == ".svg") {
      names.push_back(entry.path().filename().string());
    }
  }
  std::sort(names.begin(), names.end());
  std::string index =
      "# Figures\n\nMade by `lengthbench plot` from a results database; one per suite × task × "
      "split × protocol × metric. Rerunning the command rewrites them.\n\n";
  for (const auto& n : names)
    index += "- [" + n + "](" + n + "): " + svg_title(fs::path(dir) / n) + "\n";
  const fs::path index_path = fs::path(dir) / "index.md";
  write_atomically(index_path, index);
  written.push_back(index_path.string());
  return written;
}

}  // namespace lb
