// The store path's queued mode: the encrypted instance goes into the durable spool and the
// modality is answered from the spool's outcome; the forwarder delivers it later.
#include "gateway/net_util.h"
#include "gateway/session.h"
#include "gateway/spool/dataset_bytes.h"
#include "gateway/spool/spool.h"

#include <dcmtk/dcmdata/dcxfer.h>
#include <spdlog/spdlog.h>

#include <chrono>

namespace pacsgw::gateway {

StoreOutcome Session::spoolInstance(DcmDataset& dataset, E_TransferSyntax xfer, const std::string& sopClass,
                                    const std::string& sopInstance) {
  StoreOutcome outcome;
  outcome.status = status::kOutOfResources;
  const E_TransferSyntax stored = spool::spoolTransferSyntax(xfer);
  spool::SpoolRecordMeta meta;
  meta.receivedUnixMs = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count();
  meta.sopClassUid = sopClass;
  meta.sopInstanceUid = sopInstance;
  meta.transferSyntaxUid = DcmXfer(stored).getXferID();
  meta.callingAeTitle = peer_.aeTitle.substr(0, spool::kMaxAeTitleBytes);
  std::string payload;
  try {
    payload = spool::encodeDataset(dataset, stored);
  } catch (const std::exception& e) {
    spdlog::error("C-STORE {} from {}: cannot spool: {}", printable(sopInstance), printable(peer_.aeTitle), e.what());
    outcome.errorComment = "gateway cannot spool this object";
    return outcome;
  }
  const spool::AdmitResult admitted = context_.spool->admit(meta, payload);
  if (!admitted.stored) {
    // Out of Resources: the modality keeps the instance and retries later.
    spdlog::warn("C-STORE {} from {} refused: {}", printable(sopInstance), printable(peer_.aeTitle), admitted.reason);
    outcome.errorComment = admitted.full ? "gateway spool full" : "gateway spool write failed";
    return outcome;
  }
  outcome.delivered = true;
  outcome.status = status::kSuccess;
  outcome.errorComment.clear();
  return outcome;
}

}  // namespace pacsgw::gateway
