// Fuzzes the configuration parser and validator: any text must yield a Config or a ConfigError listing
// the problems; any other exception, crash or hang is a bug.
#include "config/config.h"

#include <cstdint>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    pacsgw::config::Config config = pacsgw::config::parseConfig(text, "fuzz.yaml");
    (void)pacsgw::config::toYaml(config);
  } catch (const pacsgw::config::ConfigError&) {
    // rejected with a message: the expected outcome for most inputs
  }
  return 0;
}
