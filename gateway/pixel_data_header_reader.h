#pragma once
// The header phase both large-object receivers share (large_object_store, large_object_retrieve): the
// elements before Pixel Data are parsed as the PDVs arrive, while their raw bytes are kept so that the
// in-memory path can take over with them, until the parser stops at a top-level Pixel Data element or
// the header outgrows the decision window. What happens next is each receiver's decision.
#include "gateway/memory_budget.h"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdatset.h>
#include <dcmtk/dcmdata/dcistrmb.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

namespace pacsgw::gateway {

// A header larger than this without reaching Pixel Data goes the in-memory way.
constexpr std::size_t kDecisionWindowBytes = std::size_t{16} << 20;

// Pixel Data's VR and 32-bit length as read from the stream.
struct PixelDataHeader {
  DcmEVR vr = EVR_OW;
  std::uint32_t length = 0;
};

// Whether `directory`'s file system has room for `bytes` and a margin; true when it cannot tell.
bool enoughDiskFor(const std::string& directory, std::uint64_t bytes);

class PixelDataHeaderReader {
 public:
  enum class Step {
    More,            // the header goes on in the next fragment
    WindowExceeded,  // no Pixel Data within kDecisionWindowBytes
    NoMemory,        // the association's memory limit refused the bytes
    Stopped,         // the parser stopped at Pixel Data or at the end of the data set: see pixelData()
  };

  explicit PixelDataHeaderReader(E_TransferSyntax xfer) : xfer_(xfer) {}

  // Parses the next fragment into `header`; the raw bytes and the parsed header are both counted
  // against `memory` until the decision.
  Step read(DcmDataset& header, MemoryReservation& memory, const std::uint8_t* data, std::uint32_t length,
            bool last);

  // After Stopped: how many raw bytes lie before Pixel Data's value ...
  std::size_t end() const { return end_; }
  // ... and Pixel Data's header if that is where the parser stopped (not set at the end of the data set
  // or for a Pixel Data element not in OB/OW with a 32-bit length).
  const std::optional<PixelDataHeader>& pixelData() const { return pixelData_; }
  // The raw bytes read so far; the reader holds none afterwards.
  std::string takeBytes();

 private:
  const E_TransferSyntax xfer_;
  std::string bytes_;  // raw bytes until the decision
  DcmInputBufferStream stream_;
  std::size_t end_ = 0;
  std::optional<PixelDataHeader> pixelData_;
};

}  // namespace pacsgw::gateway
