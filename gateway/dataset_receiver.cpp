#include "gateway/dataset_receiver.h"

#include <dcmtk/dcmnet/dul.h>

namespace pacsgw::gateway {

namespace {

std::string megabytes(std::uint64_t bytes) { return std::to_string(bytes / (1024 * 1024)) + " MiB"; }

}  // namespace

bool nextDataSetFragment(T_ASC_Association* assoc, T_ASC_PresentationContextID presId, int timeoutSeconds,
                         DUL_PDV& pdv, ReceivedDataSet& failure) {
  using Outcome = ReceivedDataSet::Outcome;
  // The next PDV of the current P-DATA PDU, reading the next PDU when the current one is used up.
  OFCondition cond = DUL_NextPDV(&assoc->DULassociation, &pdv);
  if (cond.bad()) {
    cond = DUL_ReadPDVs(&assoc->DULassociation, nullptr, DUL_NOBLOCK, timeoutSeconds);
    // DUL_PDATAPDUARRIVED is DCMTK's success code here; anything else is a timeout, abort or release.
    if (cond == DUL_PDATAPDUARRIVED) cond = DUL_NextPDV(&assoc->DULassociation, &pdv);
  }
  if (cond.bad()) {
    failure.outcome = Outcome::NetworkError;
    failure.condition = cond;
    failure.reason = cond.text();
    return false;
  }
  if (pdv.pdvType != DUL_DATASETPDV || pdv.presentationContextID != presId) {
    failure.outcome = Outcome::ProtocolError;
    failure.reason = pdv.pdvType != DUL_DATASETPDV ? "command fragment inside a data set"
                                                   : "data set fragment on another presentation context";
    return false;
  }
  return true;
}

DataSetParser::DataSetParser(E_TransferSyntax xfer, std::uint64_t maxObjectBytes, AssociationMemory& memory)
    : xfer_(xfer), maxObjectBytes_(maxObjectBytes), memory_(memory), dataset_(std::make_unique<DcmDataset>()) {
  result_.reservation = MemoryReservation(memory);
  dataset_->transferInit();
}

void DataSetParser::feed(const void* data, std::uint32_t length, bool last) {
  using Outcome = ReceivedDataSet::Outcome;
  if (refused_) return;
  if (parsed_ == EC_Normal) return;  // padding after a complete data set, as DCMTK tolerates
  // For Deflated Explicit VR Little Endian, DcmDataset::read installs the inflating filter itself; the
  // stream position it reports (tell) counts inflated bytes, which is what the object limit bounds.
  stream_.setBuffer(data, static_cast<offile_off_t>(length));
  if (last) stream_.setEos();
  const std::uint64_t before = static_cast<std::uint64_t>(stream_.tell());
  parsed_ = dataset_->read(stream_, xfer_.getXfer(), EGL_noChange);
  stream_.releaseBuffer();
  const std::uint64_t now = static_cast<std::uint64_t>(stream_.tell());
  result_.bytes = now;
  if (parsed_ != EC_Normal && parsed_ != EC_StreamNotifyClient) {
    refused_ = true;
    result_.outcome = parsed_ == EC_MemoryExhausted ? Outcome::NoMemory : Outcome::Malformed;
    if (parsed_ == EC_MemoryExhausted) {
      result_.reason = "an element length exceeds the memory available";
    } else if (parsed_ == EC_InvalidStream) {
      result_.reason = "data set truncated or an element length exceeds the data sent";
    } else {
      result_.reason = std::string("data set not parseable: ") + parsed_.text();
    }
  } else if (now > maxObjectBytes_) {
    refused_ = true;
    result_.outcome = Outcome::TooLarge;
    result_.reason = "data set larger than the limit of " + megabytes(maxObjectBytes_) +
                     (xfer_.getStreamCompression() != ESC_none ? " once inflated" : "");
  } else if (auto refusal = result_.reservation.grow(now - before); refusal != AssociationMemory::Refusal::None) {
    refused_ = true;
    result_.outcome = Outcome::NoMemory;
    result_.reason = refusal == AssociationMemory::Refusal::Association
                         ? "association memory limit of " + megabytes(memory_.limit()) + " reached"
                         : "gateway memory limit of " + megabytes(memory_.budget().total()) + " reached";
  }
  if (refused_) {
    dataset_.reset();  // give the memory back now, not after the peer finished sending
    result_.reservation.reset();
  }
}

ReceivedDataSet DataSetParser::finish() {
  using Outcome = ReceivedDataSet::Outcome;
  if (refused_) return std::move(result_);
  dataset_->transferEnd();
  if (parsed_ != EC_Normal) {
    result_.outcome = Outcome::Malformed;
    result_.reason = "data set truncated: it ends inside an element (" + std::to_string(result_.bytes) +
                     " bytes read)";
    return std::move(result_);
  }
  result_.outcome = Outcome::Received;
  result_.dataset = std::move(dataset_);
  return std::move(result_);
}

ReceivedDataSet receiveDataSetWithinLimits(T_ASC_Association* assoc, T_ASC_PresentationContextID presId,
                                           int timeoutSeconds, std::uint64_t maxObjectBytes,
                                           AssociationMemory& memory) {
  ReceivedDataSet result;
  T_ASC_PresentationContext pc;
  if (ASC_findAcceptedPresentationContext(assoc->params, presId, &pc).bad()) {
    result.outcome = ReceivedDataSet::Outcome::ProtocolError;
    result.reason = "command on a presentation context that was not accepted";
    return result;
  }
  DataSetParser parser(DcmXfer(pc.acceptedTransferSyntax).getXfer(), maxObjectBytes, memory);
  for (bool last = false; !last;) {
    DUL_PDV pdv{};
    if (!nextDataSetFragment(assoc, presId, timeoutSeconds, pdv, result)) return result;  // partial data freed
    last = pdv.lastPDV;
    parser.feed(pdv.data, pdv.fragmentLength, last);
  }
  return parser.finish();
}

}  // namespace pacsgw::gateway
