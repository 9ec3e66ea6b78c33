#pragma once
// The PACS's C-STORE sub-operations for the retrieves the gateway re-issued: which retrieve each one
// belongs to, whether it may be handed out (key reference, passthrough, decryption per the
// destination's access), and its place in that retrieve's delivery queue. No sockets: the session
// passes the received data set in and sends the returned status back to the PACS.
#include "gateway/audit/audit_trail.h"
#include "gateway/memory_budget.h"
#include "gateway/passthrough_policy.h"
#include "gateway/retrieve_jobs.h"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdatset.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

namespace pacsgw::gateway {

class SpooledPixelData;  // gateway/large_object_retrieve.h

// One C-STORE sub-operation as it arrived from the PACS.
struct SubOperation {
  std::string sopClass;
  std::string sopInstance;
  // Move Originator Message ID, when the PACS named the gateway as the move originator.
  std::optional<std::uint16_t> originatorMessageId;
  std::unique_ptr<DcmDataset> dataset;
  E_TransferSyntax xfer = EXS_Unknown;
  MemoryReservation memory;  // the received bytes; handed to the delivery queue with the data set
  // A large object whose Pixel Data value (ciphertext) was spooled to a file as it arrived; `dataset`
  // reads that value from the file. Null for objects received whole.
  std::shared_ptr<SpooledPixelData> spooled;
};

// The answer to send back to the PACS for that C-STORE.
struct IntakeAnswer {
  std::uint16_t status = 0;
  std::string errorComment;
};

// What the intake asks of the key side; the gateway's implementation wraps InstanceProtector and the
// passthrough policy, tests substitute their own.
class SubOperationVerifier {
 public:
  virtual ~SubOperationVerifier() = default;
  // Verifies and decrypts in place; returns the transfer syntax afterwards. Throws codecs::CryptError.
  // The data key used is added to `releases` (audited once per key and retrieve).
  virtual E_TransferSyntax restore(DcmDataset& dataset, E_TransferSyntax xfer, audit::KeyReleases& releases) = 0;
  // The same for a large object whose Pixel Data is in `pixels`: the tag is verified over the whole
  // file first; only then does `dataset`'s Pixel Data read as plaintext. Throws codecs::CryptError.
  virtual E_TransferSyntax restoreSpooled(DcmDataset& dataset, E_TransferSyntax xfer,
                                          std::shared_ptr<SpooledPixelData> pixels, audit::KeyReleases& releases) = 0;
  // May an object with pixel data but no key-reference block go out unchanged?
  virtual PassthroughDecision passthrough(DcmDataset& dataset) = 0;
  // C-MOVE to a relay peer: adds the key capsule for that peer (the pixels stay ciphertext).
  virtual void attachRelayCapsule(DcmDataset& dataset, const config::RelayPeer& peer) = 0;
};

class SubOperationIntake {
 public:
  // `pacsAeTitle` / `pacsAddress` name the PACS in log and audit lines. `queueRoom` bounds the wait for
  // a place in a full delivery queue (answer the PACS within its own timeout).
  SubOperationIntake(RetrieveRegistry& retrieves, SubOperationVerifier& verifier, std::chrono::seconds queueRoom,
                     std::string pacsAeTitle, std::string pacsAddress);

  // Verifies the sub-operation and queues it for its retrieve's destination.
  IntakeAnswer accept(SubOperation operation);
  // A sub-operation whose data set was refused while it was read (too large, no memory, malformed):
  // counted as a failure of its retrieve so the requester's counts add up.
  IntakeAnswer refuse(const std::string& sopInstance, std::optional<std::uint16_t> originatorMessageId,
                      std::uint16_t status, const std::string& reason);

 private:
  // The outstanding retrieve the sub-operation belongs to, with it admitted; null when none.
  std::shared_ptr<RetrieveJob> admit(const std::string& sopInstance, std::optional<std::uint16_t> originator);

  RetrieveRegistry& retrieves_;
  SubOperationVerifier& verifier_;
  std::chrono::seconds queueRoom_;
  std::string pacsAeTitle_;
  std::string pacsAddress_;
};

}  // namespace pacsgw::gateway
