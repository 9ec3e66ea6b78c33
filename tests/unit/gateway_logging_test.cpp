// The JSON-lines log format: one parseable object per line whatever a message contains.
#include "gateway/logging.h"

#include <gtest/gtest.h>
#include <spdlog/details/log_msg.h>
#include <spdlog/formatter.h>

#include <regex>
#include <string>

namespace pacsgw::gateway {
namespace {

std::string formatJson(std::string_view payload, spdlog::level::level_enum level = spdlog::level::warn) {
  spdlog::details::log_msg msg(spdlog::source_loc{}, "pacsgw", level, spdlog::string_view_t(payload.data(), payload.size()));
  msg.thread_id = 4242;
  spdlog::memory_buf_t out;
  makeJsonLogFormatter()->format(msg, out);
  return std::string(out.data(), out.size());
}

TEST(JsonLog, HasTheTextLogFieldsOnOneLine) {
  const std::string line = formatJson("association from CT1@10.0.0.1 accepted");
  EXPECT_TRUE(std::regex_match(line, std::regex(R"(\{"time":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d",)"
                                                R"("level":"warning","thread":4242,)"
                                                R"("message":"association from CT1@10\.0\.0\.1 accepted"\}\n)")))
      << line;
}

TEST(JsonLog, EscapesQuotesControlCharactersAndBrokenUtf8) {
  const std::string line = formatJson(std::string("a \"quoted\" \\ value\nsecond line\t\x01 caf\xc3\xa9 bad\xff\xc3", 44));
  const auto at = line.find("\"message\":");
  ASSERT_NE(at, std::string::npos);
  EXPECT_EQ(line.substr(at), "\"message\":\"a \\\"quoted\\\" \\\\ value\\u000asecond line\\u0009\\u0001 caf\xc3\xa9 "
                             "bad\\ufffd\\ufffd\"}\n");
  EXPECT_EQ(line.find('\n'), line.size() - 1);  // exactly one line
}

}  // namespace
}  // namespace pacsgw::gateway
