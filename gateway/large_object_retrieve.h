#pragma once
// The bounded-memory retrieval path for large objects. A C-STORE sub-operation from the PACS on a
// native context whose Pixel Data is longer than limits.stream_above_mb and protected by aes-256-gcm is
// read as its PDVs arrive: the elements before and after Pixel Data are parsed in memory, and the
// Pixel Data value (ciphertext) is written as it comes to an already-unlinked file under
// <data_dir>/large-objects. The data set handed on holds the header and a Pixel Data element that DCMTK
// reads from that file in small pieces.
//
// For a decrypting destination, openSpooledPixelData() then reads the file once to verify the GCM tag
// (the plaintext of that pass is thrown away) and only then swaps the Pixel Data element for one whose
// value is decrypted piece by piece from the file while DCMTK writes the P-DATA to the destination.
// No plaintext reaches the disk, and none leaves before the tag verified.
//
// Everything else (other backends, no key reference, smaller Pixel Data, an undefined length, a header
// larger than the decision window) continues on the in-memory path unchanged, with the bytes already read.
#include "codecs/native_pixel_open.h"
#include "gateway/dataset_receiver.h"
#include "gateway/large_object_store.h"
#include "gateway/memory_budget.h"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmnet/assoc.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace pacsgw::gateway {

// The Pixel Data value of a retrieved large object, as ciphertext in a nameless file (mode 0600,
// unlinked at once, closed with the last reference).
class SpooledPixelData {
 public:
  // Throws std::runtime_error when the file cannot be created.
  SpooledPixelData(const std::string& directory, DcmEVR vr, std::uint32_t length);
  ~SpooledPixelData();
  SpooledPixelData(const SpooledPixelData&) = delete;
  SpooledPixelData& operator=(const SpooledPixelData&) = delete;

  // Takes the disk space for the whole value now; false when the disk cannot hold it.
  bool reserve();
  // Appends the next bytes of the value. Throws std::runtime_error.
  void append(const std::uint8_t* data, std::size_t size);
  // Reads up to `size` bytes at `offset`; returns how many (0 at the end). Throws std::runtime_error.
  std::size_t readAt(std::uint64_t offset, std::uint8_t* data, std::size_t size) const;
  std::uint32_t length() const { return length_; }
  std::uint64_t written() const { return written_; }
  DcmEVR vr() const { return vr_; }

 private:
  int fd_ = -1;
  DcmEVR vr_;
  std::uint32_t length_;
  std::uint64_t written_ = 0;
};

struct RetrievedDataSet {
  ReceivedDataSet received;
  // Set when Pixel Data was spooled: `received.dataset` reads its ciphertext from this file.
  std::shared_ptr<SpooledPixelData> spooled;
};

// Whether a sub-operation on a context of `xfer` may take this path (streaming enabled, a native syntax).
bool streamsRetrievedObjects(const config::Config& config, E_TransferSyntax xfer);

// Reads the data set of a C-STORE sub-operation on a native context (see above).
RetrievedDataSet receiveRetrievedDataSet(T_ASC_Association* assoc, T_ASC_PresentationContextID presId,
                                         E_TransferSyntax xfer, const LargeObjectSettings& settings,
                                         AssociationMemory& memory);

// First pass over the spooled ciphertext: feeds it to `opener` in pieces. Throws CryptError.
void checkSpooledPixelData(const SpooledPixelData& pixels, codecs::NativePixelDataOpener& opener);

// After the tag verified: `dataset`'s Pixel Data now reads as plaintext, decrypted from the file
// piece by piece whenever DCMTK reads the value (each read decrypts from the file again).
void readSpooledPixelDataDecrypted(DcmDataset& dataset, std::shared_ptr<SpooledPixelData> pixels,
                                   codecs::VerifiedGcmMessage message);

}  // namespace pacsgw::gateway
