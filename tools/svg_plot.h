// Paper-style figures as self-contained SVG, written by hand (no plotting dependency): metric
// against evaluation length on a log2 axis, one line with markers per attention variant, a ± sd
// band over seeds, a dashed line at the longest training length, a legend and a title.
//
// Contract: the bytes depend only on the PlotFigure (fixed layout, fixed number formatting, no
// time or path), so the same database gives the same files. A normalizer's colour and marker come
// from one fixed table keyed by its base name (the part before the first '-', so
// "asentmax-init=near-one" is drawn like "asentmax"); series of one base in a figure are told
// apart by their dash pattern, in series order. Hollow markers are exact-match zeros implied by a
// skipped evaluation (tools/plot_data.h).
#pragma once
#include <limits>
#include <string>
#include <vector>

#include "tools/plot_data.h"

namespace lb {

// Maps data to pixels: linear in v, or in log2(v) when log2 is set. lo/hi are the domain in the
// transformed units (log2 of lengths for the x axis).
struct PlotAxis {
  double lo = 0, hi = 1;
  double px_lo = 0, px_hi = 1;
  bool log2 = false;
  double to_px(double v) const;
  double from_px(double px) const;  // the inverse of to_px
};

// Where a figure's parts go. y is in display units: a value times y_scale (100 for percents).
struct PlotLayout {
  double width = 0, height = 0;
  PlotAxis x, y;
  double y_scale = 1;
  std::vector<double> y_ticks;  // display units, ascending, from y.lo to y.hi
};

// Drawing choices that are not data. ymin/ymax (display units, e.g. percent) fix the y range
// (`plot --ylim LO:HI`); NaN: automatic, which zooms in when every value sits in a narrow band
// (exact match all within 35 points: the range is cut to the data, on 5-point steps).
struct SvgOptions {
  double ymin = std::numeric_limits<double>::quiet_NaN();
  double ymax = std::numeric_limits<double>::quiet_NaN();
  bool auto_zoom = true;
};
PlotLayout plot_layout(const PlotFigure& fig, const SvgOptions& opts = {});

// The chance level of a task's exact match / token accuracy as a fraction (flip_flop and parity:
// 0.5, one bit), or NaN where none is meaningful (long sequences: practically 0).
double task_chance_level(const std::string& task);

// "copy: exact match (%)"; the caption "mean ± sd over n = 3 seeds; test split".
std::string figure_title(const PlotFigure& f);
std::string figure_caption(const PlotFigure& f);
// The legend text of a series: "ASEntmax + NAPE", "+ lr 0.001" when the label names an lr.
std::string series_display_label(const PlotSeries& s);

struct SeriesStyle {
  std::string colour;  // "#rrggbb"
  std::string marker;  // circle, square, triangle, diamond, triangle-down, cross, plus, star
};
// The fixed style of a normalizer, by its base name; unknown names get a stable fallback.
SeriesStyle normalizer_style(const std::string& normalizer);

// Names for readers: "softmax", "SSMax", "1.5-entmax", "1.3-entmax" (entmax-alpha=1.3),
// "sparsemax", "ASEntmax", "top-k"; parameters other than alpha stay as "(init=near-one)".
// Unknown names are returned unchanged.
std::string normalizer_display_name(const std::string& code);
// Fixed-point with at most two decimals, no trailing zeros and no "-0": the number format of
// every SVG we write (stable bytes, small files).
std::string svg_number(double v);

// "NAPE", "RoPE", "ALiBi", "NoPE"; unknown names unchanged.
std::string position_display_name(const std::string& position);

// The whole SVG document of one figure.
std::string svg_figure(const PlotFigure& fig, const SvgOptions& opts = {});

// "SUITE.TASK.SPLIT.PROTOCOL.METRIC.svg", characters outside [A-Za-z0-9_=-] replaced by '_'.
std::string plot_file_name(const PlotFigure& fig);

// Writes each figure to dir (created if missing), then dir/index.md listing every .svg in dir
// with its title; each file is written to a temporary name and renamed. Returns the paths
// written, index last. A directory that cannot be created or written is a UsageError.
// With `png` / `pdf`, each SVG is also converted by rsvg-convert (Debian's librsvg2-bin) next to
// it; a missing rsvg-convert is a UsageError naming the package.
struct PlotFileOptions {
  SvgOptions svg;
  bool png = false, pdf = false;
};
std::vector<std::string> write_plot_files(const std::vector<PlotFigure>& figs,
                                          const std::string& dir, const PlotFileOptions& opts = {});
// rsvg-convert of one SVG file into `format` (png or pdf) beside it; returns the path written.
std::string convert_svg(const std::string& svg_path, const std::string& format);

}  // namespace lb
