#pragma once
#include <memory>
#include <string>

namespace spdlog {
class formatter;
}

namespace pacsgw::gateway {
// Sets up stderr logging at `level` (trace|debug|info|warn|error) and quiets DCMTK's own logger.
// `format` "text" writes "<time> <level> [<thread>] <message>" lines; "json" writes the same fields
// as one JSON object per line ({"time":…,"level":…,"thread":…,"message":…}) for Loki, ELK and the like.
void setupLogging(const std::string& level, const std::string& format = "text");

// The JSON-lines formatter on its own (for tests).
std::unique_ptr<spdlog::formatter> makeJsonLogFormatter();
}  // namespace pacsgw::gateway
