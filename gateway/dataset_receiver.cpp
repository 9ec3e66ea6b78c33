#include "gateway/dataset_receiver.h"

#include <dcmtk/dcmdata/dcistrmb.h>
#include <dcmtk/dcmdata/dcxfer.h>
#include <dcmtk/dcmnet/dul.h>

namespace pacsgw::gateway {

namespace {

// The next PDV of the current P-DATA PDU, reading the next PDU when the current one is used up.
OFCondition nextPdv(T_ASC_Association* assoc, int timeoutSeconds, DUL_PDV& pdv) {
  if (DUL_NextPDV(&assoc->DULassociation, &pdv).good()) return EC_Normal;
  OFCondition cond = DUL_ReadPDVs(&assoc->DULassociation, nullptr, DUL_NOBLOCK, timeoutSeconds);
  if (cond != DUL_PDATAPDUARRIVED) return cond;  // DCMTK's success code here; timeouts, aborts, releases
  return DUL_NextPDV(&assoc->DULassociation, &pdv);
}

std::string megabytes(std::uint64_t bytes) { return std::to_string(bytes / (1024 * 1024)) + " MiB"; }

}  // namespace

ReceivedDataSet receiveDataSetWithinLimits(T_ASC_Association* assoc, T_ASC_PresentationContextID presId,
                                           int timeoutSeconds, std::uint64_t maxObjectBytes,
                                           AssociationMemory& memory) {
  using Outcome = ReceivedDataSet::Outcome;
  ReceivedDataSet result;
  T_ASC_PresentationContext pc;
  if (ASC_findAcceptedPresentationContext(assoc->params, presId, &pc).bad()) {
    result.outcome = Outcome::ProtocolError;
    result.reason = "command on a presentation context that was not accepted";
    return result;
  }
  const DcmXfer xfer(pc.acceptedTransferSyntax);
  result.reservation = MemoryReservation(memory);
  auto dataset = std::make_unique<DcmDataset>();
  // For Deflated Explicit VR Little Endian, DcmDataset::read installs the inflating filter itself; the
  // stream position it reports (tell) counts inflated bytes, which is what the object limit bounds.
  DcmInputBufferStream stream;
  dataset->transferInit();
  // Once a refusal is decided, the rest of the data set is read and dropped (`refused` stays set).
  bool refused = false;
  OFCondition parsed = EC_StreamNotifyClient;
  for (bool last = false; !last;) {
    DUL_PDV pdv{};
    OFCondition cond = nextPdv(assoc, timeoutSeconds, pdv);
    if (cond.bad()) {
      result.outcome = Outcome::NetworkError;
      result.condition = cond;
      result.reason = cond.text();
      return result;  // partial data freed with `dataset`, the reservation with `result`
    }
    if (pdv.pdvType != DUL_DATASETPDV || pdv.presentationContextID != presId) {
      result.outcome = Outcome::ProtocolError;
      result.reason = pdv.pdvType != DUL_DATASETPDV ? "command fragment inside a data set"
                                                     : "data set fragment on another presentation context";
      return result;
    }
    last = pdv.lastPDV;
    if (refused) continue;
    if (parsed == EC_Normal) continue;  // padding after a complete data set, as DCMTK tolerates
    stream.setBuffer(pdv.data, static_cast<offile_off_t>(pdv.fragmentLength));
    if (last) stream.setEos();
    const std::uint64_t before = static_cast<std::uint64_t>(stream.tell());
    parsed = dataset->read(stream, xfer.getXfer(), EGL_noChange);
    stream.releaseBuffer();
    const std::uint64_t now = static_cast<std::uint64_t>(stream.tell());
    result.bytes = now;
    if (parsed != EC_Normal && parsed != EC_StreamNotifyClient) {
      refused = true;
      result.outcome = parsed == EC_MemoryExhausted ? Outcome::NoMemory : Outcome::Malformed;
      if (parsed == EC_MemoryExhausted) {
        result.reason = "an element length exceeds the memory available";
      } else if (parsed == EC_InvalidStream || parsed == EC_StreamNotifyClient) {
        result.reason = "data set truncated or an element length exceeds the data sent";
      } else {
        result.reason = std::string("data set not parseable: ") + parsed.text();
      }
    } else if (now > maxObjectBytes) {
      refused = true;
      result.outcome = Outcome::TooLarge;
      result.reason = "data set larger than the limit of " + megabytes(maxObjectBytes) +
                      (xfer.getStreamCompression() != ESC_none ? " once inflated" : "");
    } else if (auto refusal = result.reservation.grow(now - before); refusal != AssociationMemory::Refusal::None) {
      refused = true;
      result.outcome = Outcome::NoMemory;
      result.reason = refusal == AssociationMemory::Refusal::Association
                          ? "association memory limit of " + megabytes(memory.limit()) + " reached"
                          : "gateway memory limit of " + megabytes(memory.budget().total()) + " reached";
    }
    if (refused) {
      dataset.reset();  // give the memory back now, not after the peer finished sending
      result.reservation.reset();
    }
  }
  if (refused) return result;
  dataset->transferEnd();
  if (parsed != EC_Normal) {
    result.outcome = Outcome::Malformed;
    result.reason = "data set truncated: it ends inside an element (" + std::to_string(result.bytes) +
                    " bytes read)";
    return result;
  }
  result.outcome = Outcome::Received;
  result.dataset = std::move(dataset);
  return result;
}

}  // namespace pacsgw::gateway
