#pragma once
// The bounded-memory store path for large objects. A modality's C-STORE on a native (uncompressed,
// little-endian) context is read as its PDVs arrive: the elements before Pixel Data are parsed in
// memory, and when Pixel Data is longer than limits.stream_above_mb its value is encrypted piece by
// piece (AES-256-GCM, one message, as the in-memory path does) and only the ciphertext is written, to
// an already-unlinked file under <data_dir>/large-objects. The data set handed on holds the header in
// memory, the key-reference block (written once the GCM tag is known, after the last byte) and a Pixel
// Data element whose value DCMTK reads from that file in small pieces while it sends the object on.
// Plaintext pixels never reach the disk, and nothing is left on disk if the process dies.
//
// Everything else (smaller Pixel Data, no Pixel Data, an undefined length, a header larger than the
// decision window) continues on the in-memory path unchanged, with the bytes already read.
#include "config/config.h"
#include "gateway/dataset_receiver.h"
#include "gateway/instance_protector.h"
#include "gateway/memory_budget.h"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmnet/assoc.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

namespace pacsgw::gateway {

struct LargeObjectSettings {
  std::uint64_t streamAboveBytes = 0;  // Pixel Data longer than this is sealed as it arrives
  std::uint64_t maxObjectBytes = 0;    // limits.max_object_mb, for streamed objects too
  std::string directory;               // where the unlinked ciphertext files live
  int timeoutSeconds = 30;             // per PDU
};

// A file that holds ciphertext only; unlinked as soon as it is created, closed with this object.
class CiphertextFile;

struct StoreDataSet {
  std::shared_ptr<CiphertextFile> ciphertext;  // kept while `received.dataset` may read from it
  ReceivedDataSet received;
  bool sealed = false;  // Pixel Data was encrypted while it arrived: the data set is protected already
  std::optional<codecs::CryptErrorKind> cryptError;  // refused by the encryption step (received.reason says why)
};

// True for the transfer syntaxes whose Pixel Data can be sealed as it arrives.
bool streamableTransferSyntax(E_TransferSyntax xfer);
LargeObjectSettings largeObjectSettings(const config::Config& config);
// Whether a modality's C-STORE on a context of `xfer` takes this path: streaming enabled, a native
// syntax and the aes-256-gcm backend. Both forwarding modes take it: sync sends the object on from the
// ciphertext file, queued writes it into a spool record file in pieces (SpoolUpstream).
bool streamsLargeObjects(const config::Config& config, E_TransferSyntax xfer,
                         const InstanceProtector& protector);

// Reads the data set of a modality's C-STORE on a native context (see above). `protector` must use the
// aes-256-gcm backend (InstanceProtector::sealsPixelDataStreaming).
StoreDataSet receiveStoreDataSet(T_ASC_Association* assoc, T_ASC_PresentationContextID presId, E_TransferSyntax xfer,
                                 const LargeObjectSettings& settings, AssociationMemory& memory,
                                 InstanceProtector& protector);

}  // namespace pacsgw::gateway
