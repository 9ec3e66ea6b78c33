#pragma once
// Who may talk to the gateway: calling AE title, peer address and, over TLS, the verified certificate
// identity, checked at association time. A peer configured for TLS gets no role over a plain
// connection, and a peer with a certificate_identity gets none without a certificate naming it.
#include "config/config.h"
#include "gateway/tls/certificate_identity.h"

#include <string>
#include <vector>

namespace pacsgw::gateway {

struct PeerIdentity {
  std::string aeTitle;
  std::string address;
  bool isModality = false;          // may C-STORE
  const config::Workstation* workstation = nullptr;  // may query / retrieve (per its access)
  bool isUpstream = false;          // the PACS delivering C-MOVE sub-operations to us
  const config::RelayPeer* relayPeer = nullptr;  // a peer gateway relaying studies to us (relay.peers)
  std::string certificate;          // the verified certificate's subject over TLS, "" over plain DICOM
  // Why a configured (AE title, address) got no role: TLS missing or the wrong certificate identity.
  std::string transportRefusal;
};

class AccessPolicy {
 public:
  // Resolves every configured host name once, so a DNS outage later cannot widen access.
  explicit AccessPolicy(const config::Config& config);
  // The identity for (calling AE, peer address), or an identity with no role when unknown.
  // `certificate` is the verified peer certificate of a TLS connection, nullptr over plain DICOM.
  PeerIdentity identify(const std::string& callingAeTitle, const std::string& peerAddress,
                        const tls::CertificateIdentity* certificate = nullptr) const;
  // True when `peerAddress` is the address of any configured modality, workstation or the PACS: the
  // only addresses whose connections are worth reading at all.
  bool knowsAddress(const std::string& peerAddress) const;
  // The workstation a C-MOVE destination AE title names, or nullptr.
  const config::Workstation* workstationByAeTitle(const std::string& aeTitle) const;
  // Whether `caller` may name `destinationAeTitle` as C-MOVE destination: itself always, others when
  // listed in its move_destinations (or when it has no such list).
  static bool mayMoveTo(const config::Workstation& caller, const std::string& destinationAeTitle);

 private:
  struct Entry {
    std::string aeTitle;
    std::vector<std::string> addresses;
    bool tls = false;                 // must connect over TLS
    std::string certificateIdentity;  // its certificate must carry this identity ("" = any valid one)
  };
  static bool matches(const Entry& entry, const std::string& aeTitle, const std::string& address);
  // Whether the connection's transport satisfies `entry`; sets `refusal` when not.
  static bool transportFits(const Entry& entry, const tls::CertificateIdentity* certificate, std::string& refusal);

  const config::Config& config_;
  std::vector<Entry> modalities_;
  std::vector<Entry> workstations_;
  Entry upstream_;
  std::vector<Entry> relayPeers_;
};

}  // namespace pacsgw::gateway
