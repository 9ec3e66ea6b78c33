#pragma once
// Retrieval of objects without a key-reference block. Whoever controls the PACS can strip the block
// and replace the pixels, so "no key reference" alone never proves "stored before the gateway": an
// object passes unchanged only if the gateway cannot have encrypted it.
#include "config/config.h"
#include "keystore/keystore.h"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdatset.h>

#include <string>

namespace pacsgw::gateway {

struct PassthroughDecision {
  bool allowed = false;
  std::string code;    // refusals: NotEncrypted | StudyDateNotBeforeCutover | KeyReferenceRemoved
  std::string reason;  // why it was allowed or refused; safe to log (no values from the object)
};

// Allowed only when cipher.passthrough_unencrypted is on, the object's Study Date is before
// cipher.passthrough_before (when configured), and the keystore holds no data key for the object's
// study, series or instance (a key there means the gateway encrypted objects of it, so an object
// arriving without a block was stripped).
PassthroughDecision decidePassthrough(const config::CipherSection& cipher, keystore::Keystore& keys,
                                      DcmDataset& dataset);

}  // namespace pacsgw::gateway
