#include "tools/report.h"

#include <SQLiteCpp/SQLiteCpp.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/check.h"
#include "tools/plot_data.h"
#include "tools/svg_plot.h"
#include "tools/table.h"

namespace fs = std::filesystem;

namespace lb {

namespace {

std::string esc(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '&')
      o += "&amp;";
    else if (c == '<')
      o += "&lt;";
    else if (c == '>')
      o += "&gt;";
    else if (c == '"')
      o += "&quot;";
    else
      o += c;
  }
  return o;
}

std::string num(double v, const char* fmt = "%.4g") {
  char buf[32];
  std::snprintf(buf, sizeof buf, fmt, v);
  return buf;
}

std::string col_text(SQLite::Statement& q, int i) {
  return q.getColumn(i).isNull() ? "" : q.getColumn(i).getString();
}

// The CSV of print_tables as HTML tables ("# title" lines start a table).
std::string csv_tables_html(const std::string& csv) {
  std::ostringstream o;
  std::istringstream in(csv);
  std::string line;
  bool open = false, header = false;
  while (std::getline(in, line)) {
    if (line.rfind("# ", 0) == 0) {
      if (open) o << "</table>\n";
      o << "<p class=\"caption\">" << esc(line.substr(2)) << "</p>\n<table>\n";
      open = header = true;
      continue;
    }
    if (!open || line.empty()) continue;
    o << "<tr>";
    std::stringstream cells(line);
    std::string c;
    bool first = true;
    while (std::getline(cells, c, ',')) {
      const char* tag = header ? "th" : "td";
      for (size_t p = c.find(" +- "); p != std::string::npos; p = c.find(" +- ")) {
        c.replace(p, 4, " ± ");  // the CSV's ASCII "+-" back to the sign
      }
      o << "<" << tag << (first || header ? "" : " class=\"n\"") << ">" << esc(c) << "</" << tag
        << ">";
      first = false;
    }
    o << "</tr>\n";
    header = false;
  }
  if (open) o << "</table>\n";
  return o.str();
}

// Training loss against step, one line per run, coloured by normalizer (svg_plot's styles).
struct Curve {
  std::string label, normalizer;
  std::vector<std::pair<double, double>> points;  // (step, loss)
};

std::string loss_svg(const std::vector<Curve>& curves, const std::string& title) {
  const double W = 640, H = 300, l = 60, r = 200, t = 30, b = 40;
  double xmax = 1, ymin = INFINITY, ymax = -INFINITY;
  for (const auto& c : curves) {
    for (const auto& [x, y] : c.points) {
      xmax = std::max(xmax, x);
      if (y > 0 && std::isfinite(y)) ymin = std::min(ymin, y), ymax = std::max(ymax, y);
    }
  }
  if (!(ymin < ymax)) ymin = 1e-3, ymax = 10;
  const double ly0 = std::floor(std::log10(ymin)), ly1 = std::ceil(std::log10(ymax));
  auto px = [&](double x) { return l + (W - l - r) * x / xmax; };
  auto py = [&](double y) {
    return t + (H - t - b) * (1 - (std::log10(std::max(y, ymin)) - ly0) / std::max(1.0, ly1 - ly0));
  };
  std::ostringstream o;
  o << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << W << "\" height=\"" << H
    << "\" font-family=\"Helvetica, Arial, sans-serif\" font-size=\"11\">\n"
    << "<rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>\n"
    << "<text x=\"" << l << "\" y=\"18\" font-size=\"13\">" << esc(title) << "</text>\n"
    << "<rect x=\"" << l << "\" y=\"" << t << "\" width=\"" << W - l - r << "\" height=\""
    << H - t - b << "\" fill=\"none\" stroke=\"#333333\"/>\n";
  for (double e = ly0; e <= ly1; ++e) {
    o << "<text x=\"" << l - 6 << "\" y=\"" << num(py(std::pow(10, e)) + 4, "%.1f")
      << "\" text-anchor=\"end\">1e" << e << "</text>\n";
  }
  o << "<text x=\"" << W - r << "\" y=\"" << H - b + 16 << "\" text-anchor=\"end\">step "
    << num(xmax, "%.0f") << "</text>\n<text x=\"" << l << "\" y=\"" << H - b + 16
    << "\">0</text>\n<text x=\"" << l + (W - l - r) / 2 << "\" y=\"" << H - 6
    << "\" text-anchor=\"middle\">training step (loss on a log scale)</text>\n";
  double legend_y = t + 6;
  for (const auto& c : curves) {
    const std::string colour = normalizer_style(c.normalizer).colour;
    o << "<polyline fill=\"none\" stroke=\"" << colour << "\" stroke-width=\"1.3\" points=\"";
    for (const auto& [x, y] : c.points) o << num(px(x), "%.1f") << "," << num(py(y), "%.1f") << " ";
    o << "\"><title>" << esc(c.label) << "</title></polyline>\n";
    if (legend_y < H - b) {
      o << "<line x1=\"" << W - r + 10 << "\" x2=\"" << W - r + 26 << "\" y1=\"" << legend_y
        << "\" y2=\"" << legend_y << "\" stroke=\"" << colour << "\" stroke-width=\"2\"/>"
        << "<text x=\"" << W - r + 30 << "\" y=\"" << legend_y + 4 << "\">" << esc(c.label)
        << "</text>\n";
      legend_y += 14;
    }
  }
  o << "</svg>\n";
  return o.str();
}

std::vector<Curve> loss_curves(ResultsDb& db, const std::string& suite, const std::string& task) {
  std::vector<Curve> curves;
  SQLite::Statement q(db.sql(),
                      "SELECT r.key, r.normalizer, m.step, m.loss FROM runs r JOIN "
                      "train_metrics m ON m.run_key = r.key WHERE r.suite = ? AND r.task = ? "
                      "ORDER BY r.key, m.step");
  q.bind(1, suite);
  q.bind(2, task);
  std::string key;
  while (q.executeStep()) {
    if (curves.empty() || key != q.getColumn(0).getString()) {
      key = q.getColumn(0).getString();
      // Legend label: the key without the suite/task prefix.
      const auto cut = key.find('/', key.find('/') + 1);
      curves.push_back(
          {cut == std::string::npos ? key : key.substr(cut + 1), q.getColumn(1).getString(), {}});
    }
    curves.back().points.emplace_back(q.getColumn(2).getDouble(), q.getColumn(3).getDouble());
  }
  return curves;
}

std::vector<std::pair<std::string, std::string>> suite_task_pairs(ResultsDb& db,
                                                                  const ReportOptions& opts) {
  std::vector<std::pair<std::string, std::string>> pairs;
  SQLite::Statement q(db.sql(),
                      "SELECT DISTINCT suite, task FROM runs WHERE (?1 = '' OR suite = ?1) AND "
                      "(?2 = '' OR task = ?2) ORDER BY suite, task");
  q.bind(1, opts.suite);
  q.bind(2, opts.task);
  while (q.executeStep())
    pairs.emplace_back(q.getColumn(0).getString(), q.getColumn(1).getString());
  LB_REQUIRE(
      !pairs.empty(),
      "no runs in " << db.path()
                    << (opts.suite.empty() && opts.task.empty() ? "" : " match --suite/--task"));
  return pairs;
}

std::string inline_svg(const std::string& svg) {
  // Drop an XML prolog, if any: inline SVG starts at <svg.
  const size_t p = svg.find("<svg");
  return "<div class=\"fig\">" + (p == std::string::npos ? svg : svg.substr(p)) + "</div>\n";
}

std::string figure_or_note(ResultsDb& db, PlotOptions po) {
  try {
    std::string out;
    for (const auto& f : plot_figures(db, po)) out += inline_svg(svg_figure(f));
    return out;
  } catch (const UsageError&) {
    return "<p class=\"note\">No " + esc(plot_metric_name(po.metric)) + " values recorded.</p>\n";
  }
}

const char* kStyle =
    "body{font-family:Helvetica,Arial,sans-serif;margin:24px auto;max-width:1100px;color:#222}"
    "h1{font-size:24px}h2{font-size:20px;border-bottom:1px solid #ccc;margin-top:40px}"
    "h3{font-size:16px;margin-top:24px}table{border-collapse:collapse;font-size:12px;margin:8px 0}"
    "td,th{border:1px solid #ddd;padding:3px 6px;text-align:left;vertical-align:top}"
    "td.n{text-align:right;font-variant-numeric:tabular-nums}th{background:#f3f3f3}"
    ".caption{font-size:12px;color:#555;margin:12px 0 2px}.fig{margin:8px 0;overflow-x:auto}"
    ".note{color:#777;font-size:13px}pre{font-size:11px;white-space:pre-wrap;max-width:700px}"
    "nav a{margin-right:12px}";

}  // namespace

std::string html_report(ResultsDb& db, const ReportOptions& opts) {
  const auto pairs = suite_task_pairs(db, opts);
  std::ostringstream o;
  o << "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
    << "<title>lengthbench report: " << esc(fs::path(db.path()).filename().string())
    << "</title>\n<style>" << kStyle << "</style>\n</head>\n<body>\n"
    << "<h1>lengthbench report: " << esc(fs::path(db.path()).filename().string()) << "</h1>\n"
    << "<p>Exact match is in %, over the test split; ± is the sample sd over seeds. Every figure "
       "is drawn from the same database by <code>lengthbench plot</code>'s code.</p>\n<nav>";
  for (const auto& [suite, task] : pairs) {
    o << "<a href=\"#" << esc(suite + "-" + task) << "\">" << esc(suite + " / " + task) << "</a>";
  }
  o << "</nav>\n";
  for (const auto& [suite, task] : pairs) {
    o << "<h2 id=\"" << esc(suite + "-" + task) << "\">" << esc(task) << " (suite " << esc(suite)
      << ")</h2>\n";
    // Exact-match table.
    TableOptions to;
    to.suite = suite, to.task = task, to.split = opts.split, to.format = TableFormat::kCsv;
    std::ostringstream csv;
    o << "<h3>Exact match</h3>\n";
    if (print_tables(db, to, csv) > 0)
      o << csv_tables_html(csv.str());
    else
      o << "<p class=\"note\">No finished evaluations.</p>\n";
    // Figures.
    PlotOptions po;
    po.suite = suite, po.task = task, po.split = opts.split;
    o << "<h3>Accuracy against length</h3>\n" << figure_or_note(db, po);
    o << "<h3>Dispersion</h3>\n";
    for (const MetricDef& m : metrics()) {
      if (!m.reported) continue;
      po.metric = PlotMetric{m.name};
      o << figure_or_note(db, po);
    }
    // Training curves.
    const std::vector<Curve> curves = loss_curves(db, suite, task);
    o << "<h3>Training curves</h3>\n"
      << (curves.empty()
              ? "<p class=\"note\">No training metrics.</p>\n"
              : inline_svg(loss_svg(
                    curves, task + ": training loss, " + std::to_string(curves.size()) + " runs")));
    // Selection.
    o << "<h3>Checkpoint selection</h3>\n<table>\n<tr><th>run</th><th>checkpoint</th>"
         "<th>step</th><th>selected by</th><th>score</th><th>path</th></tr>\n";
    {
      SQLite::Statement q(db.sql(),
                          "SELECT c.run_key, c.ckpt, c.step, c.selected_by, c.metric, c.path FROM "
                          "checkpoints c JOIN runs r ON r.key = c.run_key WHERE r.suite = ? AND "
                          "r.task = ? ORDER BY c.run_key, c.step, c.ckpt");
      q.bind(1, suite);
      q.bind(2, task);
      while (q.executeStep()) {
        o << "<tr><td>" << esc(col_text(q, 0)) << "</td><td>" << esc(col_text(q, 1))
          << "</td><td class=\"n\">" << col_text(q, 2) << "</td><td>" << esc(col_text(q, 3))
          << "</td><td class=\"n\">"
          << (q.getColumn(4).isNull() ? "" : num(q.getColumn(4).getDouble())) << "</td><td>"
          << esc(col_text(q, 5)) << "</td></tr>\n";
      }
    }
    o << "</table>\n";
    // Provenance.
    o << "<h3>Runs and provenance</h3>\n<table>\n<tr><th>run</th><th>seed</th><th>status</th>"
         "<th>commit</th><th>version</th><th>compiler</th><th>oneDNN</th><th>machine</th>"
         "<th>threads</th><th>config</th></tr>\n";
    {
      SQLite::Statement q(db.sql(),
                          "SELECT key, seed, status, git_commit, git_dirty, lengthbench_version, "
                          "compiler, onednn_version, onednn_isa, host, threads, config_json, "
                          "config_hash, COALESCE(error, '') FROM runs WHERE suite = ? AND task = ? "
                          "ORDER BY key");
      q.bind(1, suite);
      q.bind(2, task);
      while (q.executeStep()) {
        std::string config = col_text(q, 11);
        try {
          config = nlohmann::json::parse(config).dump(2);
        } catch (...) {
        }
        o << "<tr><td>" << esc(col_text(q, 0)) << "</td><td class=\"n\">" << col_text(q, 1)
          << "</td><td>" << esc(col_text(q, 2))
          << (col_text(q, 13).empty() ? "" : ": " + esc(col_text(q, 13))) << "</td><td>"
          << esc(col_text(q, 3).substr(0, 12)) << (q.getColumn(4).getInt() ? " (dirty)" : "")
          << "</td><td>" << esc(col_text(q, 5)) << "</td><td>" << esc(col_text(q, 6)) << "</td><td>"
          << esc(col_text(q, 7) + " " + col_text(q, 8)) << "</td><td>" << esc(col_text(q, 9))
          << "</td><td class=\"n\">" << col_text(q, 10) << "</td><td><details><summary>"
          << esc(col_text(q, 12)) << "</summary><pre>" << esc(config)
          << "</pre></details></td></tr>\n";
      }
    }
    o << "</table>\n";
  }
  o << "</body>\n</html>\n";
  return o.str();
}

std::vector<std::pair<std::string, std::string>> loss_figures(ResultsDb& db,
                                                              const ReportOptions& opts) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& [suite, task] : suite_task_pairs(db, opts)) {
    const std::vector<Curve> curves = loss_curves(db, suite, task);
    if (curves.empty()) continue;
    std::string name = suite + "." + task + ".loss.svg";
    for (char& c : name) {
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-') c = '_';
    }
    out.emplace_back(name, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n" +
                               loss_svg(curves, task + ": training loss, " +
                                                    std::to_string(curves.size()) + " runs"));
  }
  LB_REQUIRE(!out.empty(), "no training metrics in " << db.path());
  return out;
}

std::string write_report(ResultsDb& db, const ReportOptions& opts, const std::string& dir) {
  const std::string html = html_report(db, opts);
  std::error_code ec;
  fs::create_directories(dir, ec);
  LB_REQUIRE(fs::is_directory(dir), "--out '" << dir << "' is not a directory we can create");
  const std::string path = dir + "/index.html";
  {
    std::ofstream f(path + ".tmp");
    LB_REQUIRE(f << html, "cannot write '" << path << "'");
  }
  fs::rename(path + ".tmp", path);
  return path;
}

}  // namespace lb
