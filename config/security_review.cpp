#include "config/security_review.h"

#include <string>

namespace pacsgw::config {

std::vector<ConfigIssue> securityWarnings(const Config& c) {
  std::vector<ConfigIssue> out;
  std::vector<std::string> decryptAes;
  for (std::size_t i = 0; i < c.workstations.size(); ++i) {
    const Workstation& w = c.workstations[i];
    if (w.access != Access::Decrypt) continue;
    decryptAes.push_back(w.aeTitle);
    const std::string key = "workstations[" + std::to_string(i) + "]";
    // Without a certificate identity a peer is identified by AE title and source address only:
    // whoever shares the address can claim the AE title and get its access.
    std::string sharing;
    for (const Workstation& other : c.workstations)
      if (&other != &w && other.host == w.host && other.access != Access::Decrypt)
        sharing += (sharing.empty() ? "" : ", ") + other.aeTitle + " (" + toString(other.access) + ")";
    for (const Modality& m : c.modalities)
      if (m.host == w.host) sharing += (sharing.empty() ? "" : ", ") + m.aeTitle + " (modality)";
    if (!sharing.empty())
      out.push_back({key, "decrypt grant for " + w.aeTitle + " shares its address " + w.host +
                              " with lesser grants: " + sharing +
                              "; any process there can claim " + w.aeTitle +
                              " and receive plaintext. Give the decrypt workstation a dedicated address" +
                              (w.certificateIdentity.empty() ? " or bind it to a certificate_identity (TLS)" : "")});
    // Bound to neither a certificate identity nor a dedicated address: any peer at that address
    // (another AE, the PACS, a relay) can claim it.
    bool sharedAtAll = c.upstream.host == w.host;
    for (const Workstation& other : c.workstations) sharedAtAll = sharedAtAll || (&other != &w && other.host == w.host);
    for (const Modality& m : c.modalities) sharedAtAll = sharedAtAll || m.host == w.host;
    if (w.certificateIdentity.empty() && sharedAtAll)
      out.push_back({key + ".certificate_identity",
                     "decrypt grant for " + w.aeTitle + " is bound to neither a certificate identity nor a dedicated "
                     "address (" + w.host + " is also configured for other peers); set certificate_identity "
                     "(with TLS) or give it an address of its own"});
    if (!peerUsesTls(c, w.tls))
      out.push_back({key, w.aeTitle + " receives decrypted pixels over plain DICOM (no TLS): configure gateway.tls "
                                      "and TLS for this workstation, or keep it and the gateway on a protected "
                                      "network segment"});
  }
  if (c.relay) {
    for (std::size_t i = 0; i < c.relay->peers.size(); ++i) {
      const RelayPeer& p = c.relay->peers[i];
      if (peerUsesTls(c, p.tls)) continue;
      // Pixels stay ciphertext and the study key travels in its capsule, but every other attribute
      // (patient name, ID, study description) crosses the sites' network readable.
      out.push_back({"relay.peers[" + std::to_string(i) + "]",
                     "relay peer " + p.name + " is reached over plain DICOM: patient attributes cross the network "
                     "between the sites in clear (pixels and key stay encrypted); configure gateway.tls and TLS "
                     "for this peer"});
    }
  }
  if (decryptAes.empty()) return out;
  for (std::size_t i = 0; i < c.workstations.size(); ++i) {
    const Workstation& w = c.workstations[i];
    if (w.access != Access::Ciphertext || w.moveDestinations) continue;
    std::string targets;
    for (const auto& ae : decryptAes) targets += (targets.empty() ? "" : ", ") + ae;
    out.push_back({"workstations[" + std::to_string(i) + "].move_destinations",
                   w.aeTitle + " has ciphertext access but may C-MOVE to the decrypt destination(s) " + targets +
                       "; list the destinations it may use in move_destinations"});
  }
  return out;
}

}  // namespace pacsgw::config
