#pragma once
// Warnings about configurations that work but let access be borrowed: a decrypt grant another peer
// could claim (shared address, no certificate identity), a caller that can have plaintext sent
// elsewhere, decrypted pixels crossing the network in clear (a decrypt workstation without TLS). `pacsgw config check` prints them (they never fail the check: test set-ups on one loopback
// address rely on such configurations) and `pacsgw serve` logs them at start.
#include "config/config.h"

#include <vector>

namespace pacsgw::config {

std::vector<ConfigIssue> securityWarnings(const Config& config);

}  // namespace pacsgw::config
