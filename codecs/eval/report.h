#pragma once
// The self-contained HTML report of `pacsgw eval`: tables, inline SVG histograms and correlation scatter
// plots (as the papers' figures), PNG thumbnails embedded as data URIs. No external resources.
#include "codecs/eval/eval_runner.h"

#include <cstdint>
#include <string>
#include <vector>

namespace pacsgw::eval {

std::string renderHtmlReport(const EvalReport& report);

// Building blocks, exposed for tests.
std::string svgHistogram(const std::vector<std::uint64_t>& bins, const std::string& title);
std::string svgScatter(const std::vector<std::pair<double, double>>& xy, double maxValue, const std::string& title);
std::vector<std::uint8_t> encodePngGray(const Thumbnail& t);  // uncompressed (stored) deflate blocks
std::string base64(const std::vector<std::uint8_t>& data);
std::string htmlEscape(const std::string& s);

}  // namespace pacsgw::eval
