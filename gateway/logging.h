#pragma once
#include <string>

namespace pacsgw::gateway {
// Sets up stderr logging at `level` (trace|debug|info|warn|error) and quiets DCMTK's own logger.
void setupLogging(const std::string& level);
}  // namespace pacsgw::gateway
