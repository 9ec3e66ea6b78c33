#pragma once
// The store path: a C-STORE from a modality (encrypted, then handed to the PACS or the spool) or from a
// relay peer gateway (its key capsule checked, the ciphertext handed on unchanged). The session passes
// the received data set in and sends the returned status back; no sockets here.
#include "codecs/dicom_crypt.h"
#include "gateway/peer_association.h"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdatset.h>

#include <cstdint>
#include <functional>
#include <string>

namespace pacsgw::keystore {
class Keystore;
}
namespace pacsgw::config {
struct RelayPeer;
}
namespace pacsgw::gateway::relay {
class RelayService;
}

namespace pacsgw::gateway {

class InstanceProtector;
class StoreTally;
class UpstreamStore;

// A received C-STORE as the store path needs it.
struct StoreRequest {
  std::string sopClass;     // Affected SOP Class UID of the request
  std::string sopInstance;  // Affected SOP Instance UID of the request
  E_TransferSyntax xfer = EXS_Unknown;  // the presentation context's transfer syntax
  // A large object whose Pixel Data was encrypted while it arrived (large_object_store.h).
  bool encryptedOnArrival = false;
  std::uint64_t receivedBytes = 0;
};

// The status (and Error Comment) to answer the sender with.
struct StoreAnswer {
  std::uint16_t status = 0;
  std::string errorComment;
};

// Who sent it, for log and audit lines.
struct StoreSender {
  std::string aeTitle;
  std::string address;
  bool isModality = false;  // configured under modalities:
};

class StoreForwarding {
 public:
  // `protector` is asked for the first time an instance is encrypted (making one may load a cipher
  // backend). `upstreamAeTitle` names the PACS in log lines. `relay` may be null (no relay: section).
  StoreForwarding(StoreSender sender, std::function<InstanceProtector&()> protector, UpstreamStore& upstream,
                  StoreTally& tally, std::string upstreamAeTitle, const relay::RelayService* relay,
                  keystore::Keystore& keys);

  // A modality's instance: refused unless the sender is a modality and the data set matches the
  // request; encrypted; handed upstream. The modality is told Success (or a B0xx warning) only when the
  // PACS or the spool kept the instance, and the PACS's refusal otherwise.
  StoreAnswer storeFromModality(const StoreRequest& request, DcmDataset& dataset);
  // An instance from a relay peer gateway: its capsule is verified and its key imported before the
  // ciphertext goes on to the PACS unchanged.
  StoreAnswer storeFromRelayPeer(const StoreRequest& request, DcmDataset& dataset, const config::RelayPeer& from);

 private:
  // A relay capsule on an object from anyone but a relay peer: refused and audited; set when it was.
  bool refuseCapsuleFromNonPeer(const StoreRequest& request, DcmDataset& dataset, StoreAnswer& answer);
  bool uidsMatch(const StoreRequest& request, DcmDataset& dataset, const char* what);
  // Hands the instance upstream and counts it; the answer for the sender.
  StoreAnswer handUpstream(const StoreRequest& request, DcmDataset& dataset, E_TransferSyntax xfer,
                           const std::string& from);

  StoreSender sender_;
  std::function<InstanceProtector&()> protector_;
  UpstreamStore& upstream_;
  StoreTally& tally_;
  std::string upstreamAeTitle_;
  const relay::RelayService* relay_;
  keystore::Keystore& keys_;
};

// The status a modality's object is refused with when the gateway cannot encrypt it: C000 when the
// object itself is at fault (no pixel data, malformed, already encrypted), else 0110.
std::uint16_t statusForCryptError(codecs::CryptErrorKind kind);

// The answer to a sender when the PACS (or the spool) answered `outcome`: the PACS's own status when it
// answered, Out of Resources (A700, the sender retries later) when it could not be reached.
StoreAnswer answerFor(const StoreOutcome& outcome);

}  // namespace pacsgw::gateway
