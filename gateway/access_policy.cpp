#include "gateway/access_policy.h"

#include "gateway/net_util.h"

#include <algorithm>

namespace pacsgw::gateway {

namespace {
std::vector<std::string> addressesOf(const std::string& host) {
  std::vector<std::string> out = resolveHost(host);
  // A host configured as a literal address matches itself even if the resolver is unavailable.
  if (std::find(out.begin(), out.end(), host) == out.end()) out.push_back(host);
  return out;
}
}  // namespace

AccessPolicy::AccessPolicy(const config::Config& config) : config_(config) {
  for (const auto& m : config.modalities)
    modalities_.push_back({m.aeTitle, addressesOf(m.host), config::peerUsesTls(config, m.tls), m.certificateIdentity});
  for (const auto& w : config.workstations)
    workstations_.push_back({w.aeTitle, addressesOf(w.host), config::peerUsesTls(config, w.tls), w.certificateIdentity});
  const auto& up = config.upstream;
  upstream_ = {up.aeTitle, addressesOf(up.host), config::peerUsesTls(config, up.tls), up.certificateIdentity};
  if (config.relay) {
    for (const auto& p : config.relay->peers)
      relayPeers_.push_back({p.aeTitle, addressesOf(p.host), config::peerUsesTls(config, p.tls), p.certificateIdentity});
  }
}

bool AccessPolicy::matches(const Entry& entry, const std::string& aeTitle, const std::string& address) {
  return entry.aeTitle == aeTitle &&
         std::find(entry.addresses.begin(), entry.addresses.end(), address) != entry.addresses.end();
}

bool AccessPolicy::transportFits(const Entry& entry, const tls::CertificateIdentity* certificate,
                                 std::string& refusal) {
  if (entry.tls && certificate == nullptr) {
    refusal = entry.aeTitle + " is configured for TLS but connected over plain DICOM";
    return false;
  }
  // A plain peer that connects over TLS anyway is fine: its certificate chains to the CA bundle.
  if (!entry.certificateIdentity.empty() &&
      (certificate == nullptr || !certificate->matches(entry.certificateIdentity))) {
    refusal = entry.aeTitle + " must present a certificate of " + entry.certificateIdentity + ", got " +
              (certificate == nullptr ? std::string("none") : certificate->describe());
    return false;
  }
  return true;
}

PeerIdentity AccessPolicy::identify(const std::string& callingAeTitle, const std::string& peerAddress,
                                    const tls::CertificateIdentity* certificate) const {
  PeerIdentity id;
  id.aeTitle = callingAeTitle;
  id.address = peerAddress;
  if (certificate != nullptr) id.certificate = certificate->subject;
  const auto fits = [&](const Entry& e) {
    return matches(e, callingAeTitle, peerAddress) && transportFits(e, certificate, id.transportRefusal);
  };
  for (const auto& m : modalities_) {
    if (fits(m)) id.isModality = true;
  }
  for (std::size_t i = 0; i < workstations_.size(); ++i) {
    if (fits(workstations_[i])) id.workstation = &config_.workstations[i];
  }
  id.isUpstream = fits(upstream_);
  for (std::size_t i = 0; i < relayPeers_.size(); ++i) {
    if (fits(relayPeers_[i])) id.relayPeer = &config_.relay->peers[i];
  }
  if (id.isModality || id.workstation != nullptr || id.isUpstream || id.relayPeer != nullptr) id.transportRefusal.clear();
  return id;
}

bool AccessPolicy::knowsAddress(const std::string& peerAddress) const {
  const auto listed = [&](const Entry& e) {
    return std::find(e.addresses.begin(), e.addresses.end(), peerAddress) != e.addresses.end();
  };
  return std::any_of(modalities_.begin(), modalities_.end(), listed) ||
         std::any_of(workstations_.begin(), workstations_.end(), listed) || listed(upstream_) ||
         std::any_of(relayPeers_.begin(), relayPeers_.end(), listed);
}

const config::Workstation* AccessPolicy::workstationByAeTitle(const std::string& aeTitle) const {
  for (const auto& w : config_.workstations) {
    if (w.aeTitle == aeTitle) return &w;
  }
  return nullptr;
}

bool AccessPolicy::mayMoveTo(const config::Workstation& caller, const std::string& destinationAeTitle) {
  if (destinationAeTitle == caller.aeTitle || !caller.moveDestinations) return true;
  const auto& allowed = *caller.moveDestinations;
  return std::find(allowed.begin(), allowed.end(), destinationAeTitle) != allowed.end();
}

}  // namespace pacsgw::gateway
