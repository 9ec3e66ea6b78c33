#pragma once
// `pacsgw keys ...` subcommands and the keystore start-up checks of `pacsgw serve`.
#include "config/config.h"
#include "keystore/keystore.h"

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace pacsgw::gateway {

// A command line that does not make sense; the CLI prints the usage after the message.
class KeysUsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// args: the whole command line without the program name ("keys", "<subcommand>", options...).
int runKeysCommand(const std::vector<std::string>& args);

// Opens the keystore for `serve`: logs what the open did (new keystore, migration, anchor) and verifies
// every wrapped data key, logging each damaged one by id and scope UID.
std::unique_ptr<keystore::Keystore> openKeystoreForServe(const config::Config& config, bool acceptNewKeystore);

}  // namespace pacsgw::gateway
