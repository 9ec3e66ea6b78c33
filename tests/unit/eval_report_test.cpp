// JSON output, PNG encoding and SVG figures of the evaluation report.
#include "codecs/eval/json.h"
#include "codecs/eval/report.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

namespace pacsgw::eval {
namespace {

TEST(EvalJson, WritesOrderedObjectsAndNullForNonFinite) {
  Json j = Json::object();
  j["b"] = 1.5;
  j["a"] = true;
  j["inf"] = std::numeric_limits<double>::infinity();
  j["text"] = "quote \" and \\ and \n";
  Json arr = Json::array();
  arr.push(1);
  arr.push(2);
  j["list"] = arr;
  j["b"] = 2;  // assignment keeps the first position
  EXPECT_EQ(j.dump(0), "{\"b\":2,\"a\":true,\"inf\":null,\"text\":\"quote \\\" and \\\\ and \\n\",\"list\":[1, 2]}");
  EXPECT_EQ(Json(0.1).dump(), "0.1");
  EXPECT_EQ(Json(99.58932).dump(), "99.58932");
  ASSERT_NE(j.find("a"), nullptr);
  EXPECT_TRUE(j.find("a")->boolean());
  EXPECT_EQ(j.find("missing"), nullptr);
}

TEST(EvalReport, Base64) {
  EXPECT_EQ(base64({}), "");
  EXPECT_EQ(base64({'f'}), "Zg==");
  EXPECT_EQ(base64({'f', 'o'}), "Zm8=");
  EXPECT_EQ(base64({'f', 'o', 'o', 'b', 'a', 'r'}), "Zm9vYmFy");
}

TEST(EvalReport, PngIsWellFormed) {
  Thumbnail t;
  t.width = 3;
  t.height = 2;
  t.pixels = {0, 128, 255, 10, 20, 30};
  const auto png = encodePngGray(t);
  ASSERT_GT(png.size(), 8u + 25 + 12);
  EXPECT_EQ(std::vector<std::uint8_t>(png.begin(), png.begin() + 8),
            (std::vector<std::uint8_t>{0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'}));
  // IHDR: length 13, then the type, width 3, height 2, depth 8, colour type 0.
  EXPECT_EQ(png[11], 13);
  EXPECT_EQ(std::string(png.begin() + 12, png.begin() + 16), "IHDR");
  EXPECT_EQ(png[19], 3);
  EXPECT_EQ(png[23], 2);
  EXPECT_EQ(png[24], 8);
  EXPECT_EQ(png[25], 0);
  // CRC-32 of "IHDR" + data for this header (checked with an independent implementation).
  const std::uint32_t crc = (png[29] << 24) | (png[30] << 16) | (png[31] << 8) | png[32];
  EXPECT_EQ(crc, 0xB81F39C6u);
  EXPECT_EQ(std::string(png.end() - 8, png.end() - 4), "IEND");
}

TEST(EvalReport, SvgFigures) {
  const std::string hist = svgHistogram({1, 2, 0, 4}, "h <1>");
  EXPECT_NE(hist.find("<svg"), std::string::npos);
  EXPECT_NE(hist.find("h &lt;1&gt;"), std::string::npos);
  const std::string sc = svgScatter({{0, 0}, {255, 255}, {255, 255}}, 255, "s");
  EXPECT_NE(sc.find("M4 "), std::string::npos);
  // The duplicate point is drawn once.
  std::size_t moves = 0;
  for (char c : sc) moves += c == 'M';
  EXPECT_EQ(moves, 2u);
}

TEST(EvalReport, HtmlEscape) {
  EXPECT_EQ(htmlEscape("<a href=\"x\">&</a>"), "&lt;a href=&quot;x&quot;&gt;&amp;&lt;/a&gt;");
}

}  // namespace
}  // namespace pacsgw::eval
