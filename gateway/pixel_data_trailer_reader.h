#pragma once
// The elements after a streamed Pixel Data value (Data Set Trailing Padding, private groups above
// 7FE0), parsed in memory; shared by both large-object receivers (large_object_store, large_object_retrieve).
#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdatset.h>
#include <dcmtk/dcmdata/dcistrmb.h>

#include <cstdint>
#include <memory>
#include <string>

namespace pacsgw::gateway {

class PixelDataTrailerReader {
 public:
  enum class Step {
    More,       // the data set goes on in the next fragment
    Complete,   // the data set ended: moveInto() next
    TooLarge,   // more than kDecisionWindowBytes after Pixel Data; error() says so
    Malformed,  // not parseable or truncated; error() says why
  };

  explicit PixelDataTrailerReader(E_TransferSyntax xfer) : xfer_(xfer) {}

  // Called once the last byte of Pixel Data's value has arrived.
  void start() { trailer_->transferInit(); }
  Step read(const std::uint8_t* data, std::uint32_t length, bool last);
  const std::string& error() const { return error_; }
  // Moves the elements read into `header`, dropping Data Set Trailing Padding. False when one is not
  // after Pixel Data or is in `header` already.
  bool moveInto(DcmDataset& header);
  // Gives back the memory of a refused data set.
  void reset() { trailer_.reset(); }

 private:
  const E_TransferSyntax xfer_;
  std::unique_ptr<DcmDataset> trailer_ = std::make_unique<DcmDataset>();
  DcmInputBufferStream stream_;
  std::uint64_t bytes_ = 0;
  std::string error_;
};

}  // namespace pacsgw::gateway
