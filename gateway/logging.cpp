#include "gateway/logging.h"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/oflog/oflog.h>
#include <spdlog/formatter.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdio>
#include <ctime>

namespace pacsgw::gateway {

namespace {

constexpr const char* kTextPattern = "%Y-%m-%dT%H:%M:%S.%e%z %^%-5l%$ [%t] %v";

// Length of the valid UTF-8 sequence starting at s[i], or 0 when the bytes there are not one.
std::size_t utf8SequenceLength(std::string_view s, std::size_t i) {
  const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = byte(i);
  std::size_t length = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
  if (length == 0 || i + length > s.size() || (length == 2 && c < 0xC2)) return 0;
  for (std::size_t k = 1; k < length; ++k) {
    if ((byte(i + k) & 0xC0) != 0x80) return 0;
  }
  return length;
}

// A JSON string body: quotes, backslashes and control characters escaped; bytes that are not valid
// UTF-8 (possible in values from the wire) become U+FFFD so every line stays parseable.
void appendJsonString(std::string_view text, spdlog::memory_buf_t& out) {
  for (std::size_t i = 0; i < text.size();) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(c));
      ++i;
    } else if (c < 0x20 || c == 0x7F) {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\u%04x", c);
      out.append(escaped, escaped + 6);
      ++i;
    } else if (std::size_t length = utf8SequenceLength(text, i); length > 0) {
      out.append(text.data() + i, text.data() + i + length);
      i += length;
    } else {
      const std::string_view replacement = "\\ufffd";
      out.append(replacement.data(), replacement.data() + replacement.size());
      ++i;
    }
  }
}

class JsonLineFormatter : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    // The text log's timestamp: local time with milliseconds and UTC offset.
    const std::time_t seconds = std::chrono::system_clock::to_time_t(msg.time);
    const auto millis =
        std::chrono::duration_cast<std::chrono::milliseconds>(msg.time.time_since_epoch()).count() % 1000;
    std::tm local{};
    ::localtime_r(&seconds, &local);
    char date[32];
    char zone[8];
    std::strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &local);
    std::strftime(zone, sizeof zone, "%z", &local);
    char head[96];
    const int n = std::snprintf(head, sizeof head, "{\"time\":\"%s.%03d%c%.2s:%.2s\",\"level\":\"", date,
                                static_cast<int>(millis), zone[0], zone + 1, zone + 3);
    dest.append(head, head + n);
    const auto level = spdlog::level::to_string_view(msg.level);
    dest.append(level.data(), level.data() + level.size());
    const std::string thread = "\",\"thread\":" + std::to_string(msg.thread_id) + ",\"message\":\"";
    dest.append(thread.data(), thread.data() + thread.size());
    appendJsonString(std::string_view(msg.payload.data(), msg.payload.size()), dest);
    const std::string_view end = "\"}\n";
    dest.append(end.data(), end.data() + end.size());
  }

  std::unique_ptr<spdlog::formatter> clone() const override { return std::make_unique<JsonLineFormatter>(); }
};

}  // namespace

std::unique_ptr<spdlog::formatter> makeJsonLogFormatter() { return std::make_unique<JsonLineFormatter>(); }

void setupLogging(const std::string& level, const std::string& format) {
  auto logger = spdlog::get("pacsgw");
  if (!logger) logger = spdlog::stderr_color_mt("pacsgw");
  if (format == "json") {
    logger->set_formatter(makeJsonLogFormatter());
  } else {
    logger->set_pattern(kTextPattern);
  }
  logger->set_level(spdlog::level::from_str(level));
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(logger);
  // DCMTK reports the same failures we log with context; keep only its errors.
  OFLog::configure(level == "trace" ? OFLogger::DEBUG_LOG_LEVEL : OFLogger::ERROR_LOG_LEVEL);
}

}  // namespace pacsgw::gateway
