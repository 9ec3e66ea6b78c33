#pragma once
// A retrieve job's delivery thread: verified instances leave in arrival order, to the C-MOVE
// destination over an association opened (and re-opened for new kinds of objects) as needed, or back
// on the C-GET requester's own association; each outcome is counted in the job.
#include "gateway/gateway_context.h"
#include "gateway/retrieve_jobs.h"

namespace pacsgw::gateway {

// Runs until the job stops its deliveries (RetrieveJob::stopDeliveries).
void runDeliveries(GatewayContext& context, RetrieveJob& job);

}  // namespace pacsgw::gateway
