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
    // A peer is identified by AE title and source address only: whoever shares the address can
    // claim the AE title and get its access.
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
                              " and receive plaintext. Give the decrypt workstation a dedicated address"});
    out.push_back({key, w.aeTitle + " receives decrypted pixels over plain DICOM (no TLS): keep it and the "
                                    "gateway on a protected network segment"});
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
