#pragma once
// A retrieve job's delivery thread: verified instances leave in arrival order through the job's
// InstanceDelivery (the C-MOVE destination, or back on the C-GET requester's own association); each
// outcome is counted in the job. An unreachable destination costs one attempt, not one per instance,
// and after a failed exchange with a C-GET requester nothing more is sent to it.
#include "gateway/retrieve_jobs.h"
#include "gateway/retrieve_peers.h"

namespace pacsgw::gateway {

// Runs until the job stops its deliveries (RetrieveJob::stopDeliveries).
void runDeliveries(RetrieveJob& job, InstanceDelivery& delivery);

}  // namespace pacsgw::gateway
