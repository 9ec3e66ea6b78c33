#include "gateway/upstream_store.h"

#include "config/config.h"
#include "gateway/gateway_metrics.h"
#include "gateway/net_util.h"
#include "gateway/peer_endpoints.h"
#include "gateway/spool/dataset_bytes.h"
#include "gateway/spool/spool.h"

#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmdata/dcxfer.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <set>
#include <utility>

namespace pacsgw::gateway {

std::vector<ProposedContext> upstreamContextsFor(T_ASC_Parameters* inbound, bool decodesCompressed) {
  std::vector<ProposedContext> contexts;
  std::set<std::pair<std::string, std::string>> seen;
  const int count = ASC_countPresentationContexts(inbound);
  for (int i = 0; i < count; ++i) {
    T_ASC_PresentationContext pc;
    if (ASC_getPresentationContext(inbound, i, &pc).bad()) continue;
    if (pc.resultReason != ASC_P_ACCEPTANCE) continue;
    if (std::string(pc.abstractSyntax) == UID_VerificationSOPClass) continue;
    const std::string ts = pc.acceptedTransferSyntax;
    if (!seen.insert({pc.abstractSyntax, ts}).second) continue;
    ProposedContext ctx{pc.abstractSyntax, {ts}};
    const bool native = isNativeTransferSyntax(DcmXfer(ts.c_str()).getXfer());
    if (native) {
      for (const char* alt : {UID_LittleEndianExplicitTransferSyntax, UID_LittleEndianImplicitTransferSyntax}) {
        if (ts != alt) ctx.transferSyntaxes.push_back(alt);
      }
    }
    contexts.push_back(ctx);
    // Compressed objects leave decoded when the backend needs pixel values: offer native too.
    if (!native && decodesCompressed && seen.insert({pc.abstractSyntax, "native"}).second && contexts.size() < 128) {
      contexts.push_back(ProposedContext{pc.abstractSyntax, {UID_LittleEndianExplicitTransferSyntax,
                                                             UID_LittleEndianImplicitTransferSyntax}});
    }
    if (contexts.size() == 128) break;
  }
  return contexts;
}

DirectUpstream::DirectUpstream(const config::Config& config, NetworkTimeouts timeouts,
                               std::function<std::vector<ProposedContext>()> contexts)
    : config_(config), timeouts_(timeouts), contextsFor_(std::move(contexts)) {}

StoreOutcome DirectUpstream::store(DcmDataset& dataset, E_TransferSyntax xfer, const std::string& sopClass,
                                   const std::string& sopInstance) {
  for (int attempt = 0; attempt < 2; ++attempt) {
    const bool reused = association_ && association_->usable();
    if (!reused) {
      association_.reset();
      if (!contexts_) contexts_ = contextsFor_();
      try {
        association_ = PeerAssociation::open(upstreamEndpoint(config_), config_.gateway.aeTitle, *contexts_, timeouts_,
                                             config_.gateway.maxPduBytes);
      } catch (const PeerUnavailable& e) {
        spdlog::error("upstream PACS unavailable: {}", e.what());
        metrics::increment("pacsgw_upstream_errors_total", {{"kind", "connect"}});
        StoreOutcome outcome;
        outcome.status = status::kOutOfResources;
        outcome.errorComment = "upstream PACS unavailable";
        return outcome;
      }
    }
    StoreOutcome outcome = association_->store(dataset, xfer, sopClass, sopInstance);
    countDelivery(Delivery::ToPacs, outcome, dataset, xfer);
    // A reused association may have been closed by the PACS while idle: retry once on a fresh one.
    if (outcome.delivered || !reused) {
      if (!outcome.delivered) outcome.status = status::kOutOfResources;
      return outcome;
    }
  }
  StoreOutcome failed;
  failed.status = status::kOutOfResources;
  failed.errorComment = "upstream PACS unavailable";
  return failed;
}

SpoolUpstream::SpoolUpstream(spool::Spool& spool, std::string callingAeTitle)
    : spool_(spool), callingAeTitle_(std::move(callingAeTitle)) {}

StoreOutcome SpoolUpstream::store(DcmDataset& dataset, E_TransferSyntax xfer, const std::string& sopClass,
                                  const std::string& sopInstance) {
  StoreOutcome outcome;
  outcome.status = status::kOutOfResources;
  const E_TransferSyntax stored = spool::spoolTransferSyntax(xfer);
  spool::SpoolRecordMeta meta;
  meta.receivedUnixMs =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count();
  meta.sopClassUid = sopClass;
  meta.sopInstanceUid = sopInstance;
  meta.transferSyntaxUid = DcmXfer(stored).getXferID();
  meta.callingAeTitle = callingAeTitle_.substr(0, spool::kMaxAeTitleBytes);
  const std::uint64_t streamAbove = spool_.limits().streamAboveBytes;
  if (streamAbove > 0) {
    const std::uint64_t length = spool::encodedLength(dataset, stored);
    if (length > streamAbove) return storeStreamed(dataset, stored, meta, length);
  }
  std::string payload;
  try {
    payload = spool::encodeDataset(dataset, stored);
  } catch (const std::exception& e) {
    spdlog::error("C-STORE {} from {}: cannot spool: {}", printable(sopInstance), printable(callingAeTitle_), e.what());
    outcome.errorComment = "gateway cannot spool this object";
    return outcome;
  }
  const spool::AdmitResult admitted = spool_.admit(meta, payload);
  if (!admitted.stored) {
    // Out of Resources: the sender keeps the instance and retries later.
    spdlog::warn("C-STORE {} from {} refused: {}", printable(sopInstance), printable(callingAeTitle_), admitted.reason);
    outcome.errorComment = admitted.full ? "gateway spool full" : "gateway spool write failed";
    return outcome;
  }
  outcome.delivered = true;
  outcome.status = status::kSuccess;
  outcome.errorComment.clear();
  return outcome;
}

}  // namespace pacsgw::gateway

namespace pacsgw::gateway {

StoreOutcome SpoolUpstream::storeStreamed(DcmDataset& dataset, E_TransferSyntax stored, const spool::SpoolRecordMeta& meta,
                                          std::uint64_t length) {
  StoreOutcome outcome;
  outcome.status = status::kOutOfResources;
  // Encoded in pieces straight into the record file: a streamed object's Pixel Data is read from its
  // ciphertext file as it is written, so neither copy is ever whole in memory.
  const spool::AdmitResult admitted = spool_.admitStreamed(
      meta, length, [&](const spool::PayloadSink& sink) { spool::writeDataset(dataset, stored, sink); });
  if (!admitted.stored) {
    spdlog::warn("C-STORE {} from {} refused: {}", printable(meta.sopInstanceUid), printable(callingAeTitle_),
                 admitted.reason);
    outcome.errorComment = admitted.full ? "gateway spool full" : "gateway spool write failed";
    return outcome;
  }
  spdlog::info("C-STORE {} from {}: {} MiB spooled in pieces as {}", printable(meta.sopInstanceUid),
               printable(callingAeTitle_), length >> 20, admitted.name);
  outcome.delivered = true;
  outcome.status = status::kSuccess;
  return outcome;
}

}  // namespace pacsgw::gateway
