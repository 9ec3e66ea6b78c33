#include "gateway/store_forwarding.h"

#include "codecs/dicom_crypt.h"
#include "gateway/audit/audit_trail.h"
#include "gateway/gateway_metrics.h"
#include "gateway/instance_protector.h"
#include "gateway/net_util.h"
#include "gateway/relay/relay_element.h"
#include "gateway/relay/relay_service.h"
#include "gateway/store_tally.h"
#include "gateway/upstream_store.h"

#include <dcmtk/dcmdata/dcdeftag.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <optional>
#include <utility>

namespace pacsgw::gateway {

namespace {

std::string stringOf(DcmDataset& dataset, const DcmTagKey& tag) {
  OFString value;
  dataset.findAndGetOFString(tag, value);
  return value.c_str();
}

double msSince(std::chrono::steady_clock::time_point from, std::chrono::steady_clock::time_point to) {
  return std::chrono::duration<double, std::milli>(to - from).count();
}

}  // namespace

std::uint16_t statusForCryptError(codecs::CryptErrorKind kind) {
  switch (kind) {
    case codecs::CryptErrorKind::NoPixelData:
    case codecs::CryptErrorKind::MalformedObject:
    case codecs::CryptErrorKind::AlreadyEncrypted:
    case codecs::CryptErrorKind::MalformedKeyReference:
      return status::kCannotUnderstand;
    default:
      return status::kProcessingFailure;
  }
}

StoreAnswer answerFor(const StoreOutcome& outcome) {
  // An upstream that did not answer cannot have kept the instance, whatever the status field says.
  if (!outcome.delivered && status::isStored(outcome.status)) {
    return {status::kOutOfResources, outcome.errorComment.empty() ? "upstream PACS unavailable" : outcome.errorComment};
  }
  return {outcome.status, outcome.errorComment};
}

StoreForwarding::StoreForwarding(StoreSender sender, std::function<InstanceProtector&()> protector,
                                 UpstreamStore& upstream, StoreTally& tally, std::string upstreamAeTitle,
                                 const relay::RelayService* relay, keystore::Keystore& keys)
    : sender_(std::move(sender)),
      protector_(std::move(protector)),
      upstream_(upstream),
      tally_(tally),
      upstreamAeTitle_(std::move(upstreamAeTitle)),
      relay_(relay),
      keys_(keys) {}

bool StoreForwarding::refuseCapsuleFromNonPeer(const StoreRequest& request, DcmDataset& dataset, StoreAnswer& answer) {
  if (!relay::hasRelayCapsule(dataset)) return false;
  tally_.refused();
  spdlog::warn("audit: security alert: C-STORE {} from {}@{} refused (RelayCapsuleFromNonPeer): a relay capsule "
               "from a sender that is not a configured relay peer",
               printable(request.sopInstance), printable(sender_.aeTitle), sender_.address);
  audit::securityAlert("RelayCapsuleFromNonPeer", "relay capsule from a sender that is not a configured relay peer",
                       {sender_.aeTitle, sender_.address}, request.sopInstance);
  answer = {status::kNotAuthorised, "RelayCapsuleFromNonPeer"};
  return true;
}

bool StoreForwarding::uidsMatch(const StoreRequest& request, DcmDataset& dataset, const char* what) {
  if (stringOf(dataset, DCM_SOPClassUID) == request.sopClass &&
      stringOf(dataset, DCM_SOPInstanceUID) == request.sopInstance)
    return true;
  tally_.refused();
  spdlog::warn("{} {} from {}: SOP Class / Instance UID in the data set do not match the request; refused", what,
               printable(request.sopInstance), printable(sender_.aeTitle));
  return false;
}

StoreAnswer StoreForwarding::storeFromModality(const StoreRequest& request, DcmDataset& dataset) {
  const auto started = std::chrono::steady_clock::now();
  StoreAnswer refused;
  if (refuseCapsuleFromNonPeer(request, dataset, refused)) return refused;
  if (!sender_.isModality) {
    tally_.refused();
    spdlog::warn("audit: C-STORE from {}@{} refused: not a configured modality", sender_.aeTitle, sender_.address);
    return {status::kNotAuthorised, "not authorised to store"};
  }
  if (!uidsMatch(request, dataset, "C-STORE")) {
    return {status::kDataSetDoesNotMatchSopClass, "SOP UIDs in data set differ from request"};
  }
  const std::string& sopInstance = request.sopInstance;
  ProtectResult protectedInstance;
  try {
    if (request.encryptedOnArrival) {
      protectedInstance.encrypted = true;
      protectedInstance.transferSyntax = request.xfer;
      spdlog::info("C-STORE {} from {}: {:.1f} MB of Pixel Data encrypted as it arrived (large object)",
                   printable(sopInstance), printable(sender_.aeTitle), static_cast<double>(request.receivedBytes) / 1e6);
    } else {
      protectedInstance = protector_().protect(dataset, request.xfer);
    }
  } catch (const codecs::CryptError& e) {
    tally_.refused();
    spdlog::warn("C-STORE {} from {} refused ({}): {}", sopInstance, sender_.aeTitle, codecs::toString(e.kind()),
                 e.what());
    return {statusForCryptError(e.kind()), codecs::toString(e.kind())};
  } catch (const std::exception& e) {
    tally_.refused();
    spdlog::error("C-STORE {} from {}: cannot encrypt: {}", sopInstance, sender_.aeTitle, e.what());
    return {status::kProcessingFailure, "gateway cannot encrypt this object"};
  }
  if (!protectedInstance.encrypted) {
    spdlog::info("C-STORE {} from {}: no pixel data, forwarded unchanged", sopInstance, sender_.aeTitle);
  }
  const auto encryptedAt = std::chrono::steady_clock::now();
  const StoreOutcome outcome = upstream_.store(dataset, protectedInstance.transferSyntax, request.sopClass, sopInstance);
  const StoreAnswer answer = answerFor(outcome);
  if (outcome.delivered && status::isStored(answer.status)) {
    tally_.stored(dataset, dataset.getLength(request.xfer));
    spdlog::debug("C-STORE {} from {} -> {}: {} (encrypt {:.2f} ms, forward {:.2f} ms)", sopInstance, sender_.aeTitle,
                  upstreamAeTitle_, describeStatus(answer.status), msSince(started, encryptedAt),
                  msSince(encryptedAt, std::chrono::steady_clock::now()));
  } else {
    tally_.refused(dataset);
    spdlog::warn("C-STORE {} from {} -> {}: {} ({})", sopInstance, sender_.aeTitle, upstreamAeTitle_,
                 describeStatus(answer.status), answer.errorComment);
  }
  return answer;
}

StoreAnswer StoreForwarding::storeFromRelayPeer(const StoreRequest& request, DcmDataset& dataset,
                                                const config::RelayPeer& from) {
  if (!uidsMatch(request, dataset, "relayed C-STORE")) {
    return {status::kDataSetDoesNotMatchSopClass, "SOP UIDs in data set differ from request"};
  }
  const std::string& sopInstance = request.sopInstance;
  std::optional<relay::RelayRefusal> refused;
  try {
    refused = relay_->acceptRelayed(dataset, from, keys_);
  } catch (const std::exception& e) {
    refused = relay::RelayRefusal{status::kProcessingFailure, "RelayFailure", e.what()};
  }
  if (refused) {
    tally_.refused(dataset);
    spdlog::warn("audit: security alert: relayed C-STORE {} from peer {} ({}@{}) refused ({}): {}",
                 printable(sopInstance), printable(from.name), printable(sender_.aeTitle), sender_.address,
                 refused->code, printable(refused->detail));
    audit::securityAlert(refused->code, refused->detail, {sender_.aeTitle, sender_.address}, sopInstance);
    metrics::increment("pacsgw_relay_refused_total", {{"reason", refused->code}});
    return {refused->status, refused->code};
  }
  // The ciphertext and its key-reference block go on unchanged; only the capsule was removed.
  const StoreOutcome outcome = upstream_.store(dataset, request.xfer, request.sopClass, sopInstance);
  const StoreAnswer answer = answerFor(outcome);
  if (outcome.delivered && status::isStored(answer.status)) {
    tally_.stored(dataset, dataset.getLength(request.xfer));
    spdlog::debug("relayed C-STORE {} from peer {} -> {}: {}", sopInstance, printable(from.name), upstreamAeTitle_,
                  describeStatus(answer.status));
  } else {
    tally_.refused(dataset);
    spdlog::warn("relayed C-STORE {} from peer {} -> {}: {} ({})", sopInstance, printable(from.name), upstreamAeTitle_,
                 describeStatus(answer.status), answer.errorComment);
  }
  return answer;
}

}  // namespace pacsgw::gateway
