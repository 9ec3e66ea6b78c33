#pragma once
// Site-to-site relay of encrypted studies (docs/relay.md). The sending gateway attaches to each
// ciphertext object a capsule carrying the study's data key for the receiving peer; the receiving
// gateway verifies the capsule against the object and the sending peer, imports the key into its own
// keystore and removes the capsule before the object goes to its PACS. The ciphertext is not touched.
#include "config/config.h"
#include "gateway/relay/relay_capsule.h"
#include "keystore/keystore.h"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdatset.h>

#include <cstdint>
#include <string>
#include <vector>

namespace pacsgw::gateway::relay {

// Why a relayed object was refused: the DIMSE status for the sender, the Error Comment / audit code,
// and the detail for the log.
struct RelayRefusal {
  std::uint16_t status = 0;
  std::string code;
  std::string detail;
};

class RelayService {
 public:
  // Loads this gateway's relay key pair and every peer certificate; throws std::runtime_error naming
  // the file at fault.
  RelayService(const config::Config& config);

  const config::RelayPeer* peerByAeTitle(const std::string& aeTitle) const;

  // Sending side: attaches a capsule for `peer` carrying the data key of the object's key reference.
  // Throws codecs::CryptError (no or malformed key reference, key scope mismatch), keystore::KeystoreError.
  void attachCapsule(DcmDataset& dataset, const config::RelayPeer& peer, keystore::Keystore& keys) const;

  // Receiving side: for an object relayed by `from`. On success the key is in `keys` and the capsule
  // element is gone (returns nullopt); otherwise the refusal (the object must not reach the PACS).
  std::optional<RelayRefusal> acceptRelayed(DcmDataset& dataset, const config::RelayPeer& from,
                                            keystore::Keystore& keys) const;

 private:
  struct Peer {
    const config::RelayPeer* config;
    X509Ptr certificate;
  };
  const Peer* find(const std::string& aeTitle) const;

  std::string ownAeTitle_;
  RelayKeyPair own_;
  std::vector<Peer> peers_;
};

// True when the object has pixel data or an image pixel module (something a gateway would encrypt).
bool mayCarryPixelData(DcmDataset& dataset);

}  // namespace pacsgw::gateway::relay
