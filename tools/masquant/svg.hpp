// svg.hpp: a minimal SVG line-plot writer for the demo's figure (no dependencies).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

namespace masquant::cli {

/// One polyline of a panel.
struct series {
  std::string label;
  std::string color;      ///< any SVG color
  std::vector<double> y;  ///< plotted against x = 0, 1, 2, ...
};

/// One plot: series on a logarithmic y axis, plus optional vertical markers.
struct panel {
  std::string title, x_label, y_label;
  std::vector<series> lines;
  struct marker {
    double x;
    std::string label, color;
  };
  std::vector<marker> markers;
};

namespace internal {
inline std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", v);
  return buf;
}
inline std::string escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '<')
      out += "&lt;";
    else if (c == '>')
      out += "&gt;";
    else if (c == '&')
      out += "&amp;";
    else
      out += c;
  }
  return out;
}
}  // namespace internal

/// Renders panels side by side into one SVG document. Values <= 0 are clipped to the axis floor.
inline std::string render_svg(const std::vector<panel>& panels, const std::string& title) {
  const double pw = 560, ph = 360, ml = 70, mr = 20, mt = 60, mb = 55;
  const double width = pw * double(panels.size()), height = ph + 30;
  std::string out = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + internal::num(width) +
                    "\" height=\"" + internal::num(height) +
                    "\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" "
                    "height=\"100%\" fill=\"white\"/>\n<text x=\"" +
                    internal::num(width / 2) +
                    "\" y=\"20\" text-anchor=\"middle\" font-size=\"15\">" +
                    internal::escape(title) + "</text>\n";
  for (std::size_t p = 0; p < panels.size(); ++p) {
    const panel& pn = panels[p];
    const double x0 = pw * double(p) + ml, x1 = pw * double(p + 1) - mr, y0 = mt, y1 = ph - mb + 30;
    double lo = INFINITY, hi = 0, n = 1;
    for (const auto& s : pn.lines) {
      n = std::max(n, double(s.y.size()));
      for (double v : s.y)
        if (v > 0 && std::isfinite(v)) lo = std::min(lo, v), hi = std::max(hi, v);
    }
    if (!(hi > 0)) lo = 1, hi = 10;
    const double llo = std::floor(std::log10(lo)),
                 lhi = std::max(llo + 1, std::ceil(std::log10(hi)));
    auto px = [&](double x) { return x0 + (x1 - x0) * x / std::max(1.0, n - 1); };
    auto py = [&](double v) {
      const double l = v > 0 && std::isfinite(v) ? std::log10(v) : llo;
      return y1 - (y1 - y0) * (std::clamp(l, llo, lhi) - llo) / (lhi - llo);
    };
    out += "<g>\n<text x=\"" + internal::num((x0 + x1) / 2) + "\" y=\"" + internal::num(y0 - 12) +
           "\" text-anchor=\"middle\" font-size=\"13\">" + internal::escape(pn.title) + "</text>\n";
    out += "<rect x=\"" + internal::num(x0) + "\" y=\"" + internal::num(y0) + "\" width=\"" +
           internal::num(x1 - x0) + "\" height=\"" + internal::num(y1 - y0) +
           "\" fill=\"none\" stroke=\"#444\"/>\n";
    for (double l = llo; l <= lhi; l += 1) {
      const double y = py(std::pow(10.0, l));
      out += "<line x1=\"" + internal::num(x0) + "\" x2=\"" + internal::num(x1) + "\" y1=\"" +
             internal::num(y) + "\" y2=\"" + internal::num(y) + "\" stroke=\"#ddd\"/>\n<text x=\"" +
             internal::num(x0 - 6) + "\" y=\"" + internal::num(y + 4) +
             "\" text-anchor=\"end\">1e" + std::to_string(int(l)) + "</text>\n";
    }
    out += "<text x=\"" + internal::num(x0) + "\" y=\"" + internal::num(y1 + 16) +
           "\">0</text>\n<text x=\"" + internal::num(x1) + "\" y=\"" + internal::num(y1 + 16) +
           "\" text-anchor=\"end\">" + std::to_string(long(n - 1)) + "</text>\n<text x=\"" +
           internal::num((x0 + x1) / 2) + "\" y=\"" + internal::num(y1 + 32) +
           "\" text-anchor=\"middle\">" + internal::escape(pn.x_label) +
           "</text>\n<text transform=\"translate(" + internal::num(x0 - 52) + "," +
           internal::num((y0 + y1) / 2) + ") rotate(-90)\" text-anchor=\"middle\">" +
           internal::escape(pn.y_label) + "</text>\n";
    for (const auto& s : pn.lines) {
      out += "<polyline fill=\"none\" stroke-width=\"1\" stroke-opacity=\"0.8\" stroke=\"" +
             s.color + "\" points=\"";
      for (std::size_t i = 0; i < s.y.size(); ++i)
        out += internal::num(px(double(i))) + "," + internal::num(py(s.y[i])) + " ";
      out += "\"/>\n";
    }
    for (const auto& m : pn.markers) {
      out += "<line x1=\"" + internal::num(px(m.x)) + "\" x2=\"" + internal::num(px(m.x)) +
             "\" y1=\"" + internal::num(y0) + "\" y2=\"" + internal::num(y1) + "\" stroke=\"" +
             m.color + "\" stroke-dasharray=\"4 3\"/>\n<text x=\"" + internal::num(px(m.x) + 4) +
             "\" y=\"" + internal::num(y0 + 14) + "\" fill=\"" + m.color + "\">" +
             internal::escape(m.label) + "</text>\n";
    }
    double ly = y0 + 14;
    for (const auto& s : pn.lines) {
      out += "<text x=\"" + internal::num(x1 - 8) + "\" y=\"" +
             internal::num(ly + (pn.markers.empty() ? 0 : 16)) + "\" text-anchor=\"end\" fill=\"" +
             s.color + "\">" + internal::escape(s.label) + "</text>\n";
      ly += 15;
    }
    out += "</g>\n";
  }
  return out + "</svg>\n";
}

}  // namespace masquant::cli
