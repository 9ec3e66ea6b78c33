#include "gateway/relay/relay_service.h"

#include "codecs/dicom_crypt.h"
#include "gateway/instance_protector.h"
#include "gateway/audit/audit_trail.h"
#include "gateway/dimse_status.h"
#include "gateway/net_util.h"
#include "gateway/relay/relay_element.h"

#include <dcmtk/dcmdata/dcdeftag.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <stdexcept>

namespace pacsgw::gateway::relay {

namespace {

std::string uidOf(DcmDataset& dataset, const DcmTagKey& tag) {
  OFString value;
  dataset.findAndGetOFString(tag, value);
  return value.c_str();
}

DcmTagKey scopeTag(keystore::KeyScope scope) {
  return scope == keystore::KeyScope::Study    ? DCM_StudyInstanceUID
         : scope == keystore::KeyScope::Series ? DCM_SeriesInstanceUID
                                               : DCM_SOPInstanceUID;
}

std::string upper(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(), [](unsigned char c) { return std::toupper(c); });
  return text;
}

RelayRefusal refusal(std::uint16_t statusCode, std::string code, std::string detail) {
  return RelayRefusal{statusCode, std::move(code), std::move(detail)};
}

}  // namespace

bool mayCarryPixelData(DcmDataset& dataset) {
  return dataset.tagExists(DCM_PixelData) || dataset.tagExists(DCM_FloatPixelData) ||
         dataset.tagExists(DCM_DoubleFloatPixelData) || dataset.tagExists(DCM_Rows) || dataset.tagExists(DCM_Columns);
}

RelayService::RelayService(const config::Config& config) : ownAeTitle_(config.gateway.aeTitle) {
  if (!config.relay) throw std::runtime_error("no relay section in the configuration");
  own_ = loadRelayKeyPair(config.relay->certificate, config.relay->privateKey);
  for (const config::RelayPeer& peer : config.relay->peers) {
    peers_.push_back(Peer{&peer, loadRelayCertificate(peer.certificate)});
  }
}

const RelayService::Peer* RelayService::find(const std::string& aeTitle) const {
  for (const Peer& peer : peers_) {
    if (peer.config->aeTitle == aeTitle) return &peer;
  }
  return nullptr;
}

const config::RelayPeer* RelayService::peerByAeTitle(const std::string& aeTitle) const {
  const Peer* peer = find(aeTitle);
  return peer == nullptr ? nullptr : peer->config;
}

void RelayService::attachCapsule(DcmDataset& dataset, const config::RelayPeer& peer, keystore::Keystore& keys) const {
  const Peer* recipient = find(peer.aeTitle);
  if (recipient == nullptr) throw std::runtime_error("relay peer " + peer.aeTitle + " is not configured");
  const codecs::KeyReference reference = codecs::readKeyReference(dataset);
  keystore::DataKey key;
  try {
    key = keys.get(reference.keyId);
  } catch (const keystore::KeyDestroyedError& e) {
    throw codecs::CryptError(codecs::CryptErrorKind::KeyDestroyed, e.what());
  } catch (const keystore::KeystoreError& e) {
    throw codecs::CryptError(codecs::CryptErrorKind::UnknownKey, e.what());
  }
  // Never hand out a key for an object that names another study than the key was made for.
  requireKeyScopeMatches(dataset, key);
  if (upper(keystore::toString(key.scope)) != reference.keyScope) {
    throw codecs::CryptError(codecs::CryptErrorKind::KeyScopeMismatch,
                             "the key reference's scope differs from the data key's");
  }
  CapsuleContent content;
  content.senderAeTitle = ownAeTitle_;
  content.recipientAeTitle = peer.aeTitle;
  content.studyUid = uidOf(dataset, DCM_StudyInstanceUID);
  content.keyId = key.id;
  content.scope = key.scope;
  content.scopeUid = key.scopeUid;
  content.backendId = reference.record.backendId;
  content.dataKey = std::move(key.key);
  writeRelayCapsule(dataset, sealCapsule(content, own_, recipient->certificate.get()));
}

std::optional<RelayRefusal> RelayService::acceptRelayed(DcmDataset& dataset, const config::RelayPeer& from,
                                                        keystore::Keystore& keys) const {
  const Peer* sender = find(from.aeTitle);
  if (sender == nullptr) return refusal(status::kNotAuthorised, "RelayPeerUnknown", "not a configured relay peer");
  std::optional<std::vector<std::uint8_t>> capsuleBytes;
  try {
    capsuleBytes = readRelayCapsule(dataset);
  } catch (const std::exception& e) {
    return refusal(status::kCannotUnderstand, "RelayCapsuleMalformed", e.what());
  }
  if (!codecs::hasKeyReference(dataset)) {
    if (capsuleBytes) {
      return refusal(status::kCannotUnderstand, "RelayCapsuleMalformed", "capsule on an object without key reference");
    }
    if (mayCarryPixelData(dataset)) {
      return refusal(status::kCannotUnderstand, "NotEncrypted", "image relayed without encryption");
    }
    return std::nullopt;  // a report, key object, presentation state: nothing to protect
  }
  if (!capsuleBytes) {
    return refusal(status::kCannotUnderstand, "RelayCapsuleMissing", "encrypted object relayed without a capsule");
  }
  codecs::KeyReference reference;
  try {
    reference = codecs::readKeyReference(dataset);
  } catch (const codecs::CryptError& e) {
    return refusal(status::kCannotUnderstand, codecs::toString(e.kind()), e.what());
  }
  CapsuleContent content;
  try {
    content = openCapsule(capsuleBytes->data(), capsuleBytes->size(), own_, sender->certificate.get());
  } catch (const CapsuleError& e) {
    const std::uint16_t code = e.kind() == CapsuleErrorKind::Malformed ? status::kCannotUnderstand : status::kNotAuthorised;
    return refusal(code, toString(e.kind()), e.what());
  }
  // The signed content must name this very exchange and this very object.
  std::string mismatch;
  if (content.senderAeTitle != from.aeTitle) mismatch = "sender";
  else if (content.recipientAeTitle != ownAeTitle_) mismatch = "recipient";
  else if (content.studyUid != uidOf(dataset, DCM_StudyInstanceUID)) mismatch = "study";
  else if (content.keyId != reference.keyId) mismatch = "key id";
  else if (upper(keystore::toString(content.scope)) != reference.keyScope) mismatch = "key scope";
  else if (content.scopeUid != uidOf(dataset, scopeTag(content.scope))) mismatch = "scope UID";
  else if (content.backendId != reference.record.backendId) mismatch = "backend";
  if (!mismatch.empty()) {
    return refusal(status::kNotAuthorised, toString(CapsuleErrorKind::DoesNotMatch),
                   "the capsule's " + mismatch + " does not match the object and the association");
  }
  try {
    const bool known = keys.hasKeyFor(content.scope, content.scopeUid);
    keys.importKey(keystore::DataKey{content.keyId, content.scope, content.scopeUid, std::move(content.dataKey)});
    if (!known) {
      spdlog::info("audit: data key {} for {} {} imported from relay peer {} ({})", content.keyId,
                   keystore::toString(content.scope), printable(content.scopeUid), printable(from.name),
                   printable(from.aeTitle));
      audit::keyEvent("imported", content.keyId, content.scopeUid, true, "relayed by peer " + from.name);
    }
  } catch (const keystore::KeyConflictError& e) {
    return refusal(status::kProcessingFailure, "RelayKeyConflict", e.what());
  } catch (const keystore::KeyDestroyedError& e) {
    return refusal(status::kProcessingFailure, "KeyDestroyed", e.what());
  } catch (const keystore::KeystoreError& e) {
    return refusal(status::kProcessingFailure, "KeystoreFailure", e.what());
  }
  removeRelayCapsule(dataset);
  return std::nullopt;
}

}  // namespace pacsgw::gateway::relay
