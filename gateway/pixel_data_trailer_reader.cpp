#include "gateway/pixel_data_trailer_reader.h"

#include "gateway/pixel_data_header_reader.h"

#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcelem.h>

namespace pacsgw::gateway {

PixelDataTrailerReader::Step PixelDataTrailerReader::read(const std::uint8_t* data, std::uint32_t length, bool last) {
  bytes_ += length;
  if (bytes_ > kDecisionWindowBytes) {
    error_ = "too many elements after Pixel Data";
    return Step::TooLarge;
  }
  if (bytes_ == 0) return last ? Step::Complete : Step::More;  // nothing after Pixel Data, the usual case
  stream_.setBuffer(data, static_cast<offile_off_t>(length));
  if (last) stream_.setEos();
  OFCondition cond = trailer_->read(stream_, xfer_, EGL_noChange);
  stream_.releaseBuffer();
  if (cond == EC_EndOfStream) cond = EC_Normal;
  if (cond != EC_Normal && cond != EC_StreamNotifyClient) {
    error_ = std::string("data set not parseable after Pixel Data: ") + cond.text();
    return Step::Malformed;
  }
  if (!last) return Step::More;
  if (cond != EC_Normal) {
    error_ = "data set truncated after Pixel Data";
    return Step::Malformed;
  }
  return Step::Complete;
}

bool PixelDataTrailerReader::moveInto(DcmDataset& header) {
  trailer_->transferEnd();
  while (DcmElement* element = trailer_->remove(0UL)) {
    if (element->getTag() == DCM_DataSetTrailingPadding) {
      delete element;
      continue;
    }
    if (element->getTag() <= DCM_PixelData || header.tagExists(element->getTag())) {
      delete element;
      return false;
    }
    header.insert(element);
  }
  return true;
}

}  // namespace pacsgw::gateway
