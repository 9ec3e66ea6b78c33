#pragma once
// What every association's services share: read-only after start, or internally synchronised.
#include "config/config.h"
#include "gateway/access_policy.h"
#include "gateway/memory_budget.h"
#include "gateway/peer_association.h"
#include "gateway/retrieve_jobs.h"

#include <atomic>

namespace pacsgw::keystore {
class Keystore;
}
namespace pacsgw::gateway::spool {
class Spool;
}
namespace pacsgw::gateway::relay {
class RelayService;
}

namespace pacsgw::gateway {

struct GatewayContext {
  const config::Config& config;
  keystore::Keystore& keys;
  const AccessPolicy& policy;
  std::atomic<bool>& stopping;
  NetworkTimeouts timeouts;
  RetrieveRegistry& retrieves;
  MemoryBudget& memory;  // data sets held by all associations together (limits.max_in_flight_mb)
  spool::Spool* spool = nullptr;  // set with upstream.forward: queued
  const relay::RelayService* relay = nullptr;  // set with a relay: section
};

}  // namespace pacsgw::gateway
