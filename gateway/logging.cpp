#include "gateway/logging.h"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/oflog/oflog.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

namespace pacsgw::gateway {

void setupLogging(const std::string& level) {
  auto logger = spdlog::stderr_color_mt("pacsgw");
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e%z %^%-5l%$ [%t] %v");
  logger->set_level(spdlog::level::from_str(level));
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(logger);
  // DCMTK reports the same failures we log with context; keep only its errors.
  OFLog::configure(level == "trace" ? OFLogger::DEBUG_LOG_LEVEL : OFLogger::ERROR_LOG_LEVEL);
}

}  // namespace pacsgw::gateway
