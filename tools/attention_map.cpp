#include "tools/attention_map.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

#include "tools/svg_plot.h"

namespace lb {

namespace {

std::string rgb(int r, int g, int b) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "#%02x%02x%02x", r, g, b);
  return buf;
}

constexpr int kLevels = 32;

}  // namespace

std::string attention_cell_colour(float w, bool visible) {
  if (!visible) return "#e4e4e4";
  if (!(w > 0.f)) return "#ffffff";
  // Level 1..kLevels on sqrt(w): the faintest non-zero weight is level 1, a clear pale blue.
  const int level =
      std::clamp(static_cast<int>(std::ceil(std::sqrt(std::min(w, 1.f)) * kLevels)), 1, kLevels);
  const double t = (level - 1) / double(kLevels - 1);
  auto lerp = [t](int a, int b) { return static_cast<int>(std::lround(a + (b - a) * t)); };
  return rgb(lerp(189, 8), lerp(215, 48), lerp(238, 107));
}

std::string svg_attention_map(const AttentionMap& m) {
  const int64_t T = std::max<int64_t>(1, m.T);
  const double cell = std::clamp(200.0 / T, 1.0, 12.0);
  const double panel = cell * T;
  const int64_t cols = std::min<int64_t>(m.heads, 8);
  const int64_t rows_per_layer = (m.heads + cols - 1) / std::max<int64_t>(1, cols);
  const double gap = 28, left = 20, top = 56, legend_h = 40;
  const double width = left + cols * (panel + gap);
  const double height = top + m.layers * rows_per_layer * (panel + gap) + legend_h;
  std::ostringstream os;
  os << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << svg_number(width) << "\" height=\""
     << svg_number(height) << "\" viewBox=\"0 0 " << svg_number(width) << " " << svg_number(height)
     << "\" font-family=\"Helvetica, Arial, sans-serif\">\n"
     << "<rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>\n"
     << "<text x=\"" << svg_number(left) << "\" y=\"22\" font-size=\"15\">" << m.title
     << "</text>\n"
     << "<text x=\"" << svg_number(left)
     << "\" y=\"40\" font-size=\"11\" fill=\"#444444\">rows: query "
        "position i; columns: key position j; red outline: the task's relevant positions</text>\n";
  for (int64_t l = 0; l < m.layers; ++l) {
    for (int64_t h = 0; h < m.heads; ++h) {
      const double x0 = left + (h % cols) * (panel + gap);
      const double y0 = top + (l * rows_per_layer + h / cols) * (panel + gap) + 14;
      os << "<g class=\"panel\" data-layer=\"" << l << "\" data-head=\"" << h << "\">\n"
         << "<text x=\"" << svg_number(x0) << "\" y=\"" << svg_number(y0 - 4)
         << "\" font-size=\"10\">layer " << l << ", head " << h << "</text>\n"
         << "<rect x=\"" << svg_number(x0) << "\" y=\"" << svg_number(y0) << "\" width=\""
         << svg_number(panel) << "\" height=\"" << svg_number(panel) << "\" fill=\""
         << attention_cell_colour(0, false) << "\"/>\n";
      const float* W = m.weights.data() + (l * m.heads + h) * m.T * m.T;
      for (int64_t i = 0; i < m.T; ++i) {
        int64_t j = 0;
        while (j <= i) {
          const std::string c = attention_cell_colour(W[i * m.T + j], true);
          int64_t k = j + 1;
          while (k <= i && attention_cell_colour(W[i * m.T + k], true) == c) ++k;
          os << "<rect class=\"" << (c == "#ffffff" ? "z" : "w") << "\" x=\""
             << svg_number(x0 + j * cell) << "\" y=\"" << svg_number(y0 + i * cell) << "\" width=\""
             << svg_number((k - j) * cell) << "\" height=\"" << svg_number(cell) << "\" fill=\""
             << c << "\"/>\n";
          j = k;
        }
      }
      for (int64_t i = 0; i < m.T && i < static_cast<int64_t>(m.relevant.size()); ++i) {
        for (int32_t j : m.relevant[i]) {
          if (j < 0 || j > i) continue;
          os << "<rect class=\"rel\" x=\"" << svg_number(x0 + j * cell) << "\" y=\""
             << svg_number(y0 + i * cell) << "\" width=\"" << svg_number(cell) << "\" height=\""
             << svg_number(cell) << "\" fill=\"none\" stroke=\"#d62728\" stroke-width=\""
             << svg_number(std::max(0.5, cell / 5)) << "\"/>\n";
        }
      }
      os << "</g>\n";
    }
  }
  // Legend: the colour of exact 0, of small and large weights, of invisible keys, relevance.
  const double ly = height - legend_h + 10;
  double lx = left;
  auto swatch = [&](const std::string& fill, const std::string& stroke, const std::string& label) {
    os << "<rect x=\"" << svg_number(lx) << "\" y=\"" << svg_number(ly)
       << "\" width=\"14\" height=\"14\" fill=\"" << fill << "\" stroke=\"" << stroke
       << "\"/>\n<text x=\"" << svg_number(lx + 18) << "\" y=\"" << svg_number(ly + 11)
       << "\" font-size=\"11\">" << label << "</text>\n";
    lx += 30 + 7.0 * label.size();
  };
  swatch("#ffffff", "#888888", "exactly 0");
  swatch(attention_cell_colour(1e-4f, true), "none", "0.0001");
  swatch(attention_cell_colour(0.01f, true), "none", "0.01");
  swatch(attention_cell_colour(0.1f, true), "none", "0.1");
  swatch(attention_cell_colour(0.5f, true), "none", "0.5");
  swatch(attention_cell_colour(1.f, true), "none", "1");
  swatch(attention_cell_colour(0, false), "none", "not visible (j > i)");
  swatch("none", "#d62728", "relevant position");
  os << "</svg>\n";
  return os.str();
}

}  // namespace lb
