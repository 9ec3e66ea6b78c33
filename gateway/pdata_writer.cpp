#include "gateway/pdata_writer.h"

#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcostrmb.h>
#include <dcmtk/dcmdata/dcwcache.h>
#include <dcmtk/dcmnet/dcmtrans.h>
#include <dcmtk/dcmnet/dul.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace pacsgw::gateway {

namespace {

// The largest PDV when the peer sets no limit (maximum length 0), as DCMTK's writer does not bound it.
constexpr std::size_t kUnboundedPdv = 1u << 20;

void putBigEndian32(std::uint8_t* p, std::uint32_t value) {
  p[0] = static_cast<std::uint8_t>(value >> 24);
  p[1] = static_cast<std::uint8_t>(value >> 16);
  p[2] = static_cast<std::uint8_t>(value >> 8);
  p[3] = static_cast<std::uint8_t>(value);
}

}  // namespace

std::vector<std::uint8_t> encodeStoreCommand(const T_DIMSE_C_StoreRQ& request) {
  DcmDataset command;
  OFCondition cond = command.putAndInsertString(DCM_AffectedSOPClassUID, request.AffectedSOPClassUID);
  if (cond.good()) cond = command.putAndInsertUint16(DCM_CommandField, DIMSE_C_STORE_RQ);
  if (cond.good()) cond = command.putAndInsertUint16(DCM_MessageID, request.MessageID);
  if (cond.good()) cond = command.putAndInsertUint16(DCM_Priority, static_cast<Uint16>(request.Priority));
  if (cond.good()) cond = command.putAndInsertUint16(DCM_CommandDataSetType, DIMSE_DATASET_PRESENT);
  if (cond.good()) cond = command.putAndInsertString(DCM_AffectedSOPInstanceUID, request.AffectedSOPInstanceUID);
  if (cond.good() && (request.opts & O_STORE_MOVEORIGINATORAETITLE) != 0) {
    cond = command.putAndInsertString(DCM_MoveOriginatorApplicationEntityTitle,
                                      request.MoveOriginatorApplicationEntityTitle);
  }
  if (cond.good() && (request.opts & O_STORE_MOVEORIGINATORID) != 0) {
    cond = command.putAndInsertUint16(DCM_MoveOriginatorMessageID, request.MoveOriginatorID);
  }
  if (cond.bad()) throw std::runtime_error(std::string("cannot build the C-STORE command: ") + cond.text());
  // Command sets are always Implicit VR Little Endian and carry their group length (PS3.7 6.3.1).
  std::vector<std::uint8_t> bytes(1024);
  command.transferInit();
  DcmOutputBufferStream stream(bytes.data(), static_cast<offile_off_t>(bytes.size()));
  cond = command.write(stream, EXS_LittleEndianImplicit, EET_ExplicitLength, nullptr, EGL_withGL);
  command.transferEnd();
  void* written = nullptr;
  offile_off_t length = 0;
  stream.flushBuffer(written, length);
  if (cond != EC_Normal) throw std::runtime_error(std::string("cannot encode the C-STORE command: ") + cond.text());
  bytes.resize(static_cast<std::size_t>(length));
  return bytes;
}

PDataWriter::PDataWriter(T_ASC_Association* assoc) : assoc_(assoc) {
  const unsigned long pdv = assoc->sendPDVLength;
  maxPdv_ = pdv == 0 ? kUnboundedPdv : static_cast<std::size_t>(std::min<unsigned long>(pdv, kUnboundedPdv));
  // A PDV must be even and leave room for at least one tag; DCMTK never computes less than that.
  maxPdv_ = std::max<std::size_t>(maxPdv_ & ~std::size_t{1}, 256);
  buffer_.resize(kHeaderBytes + maxPdv_);
}

bool PDataWriter::writePdu(T_ASC_PresentationContextID presId, std::size_t payload, bool command, bool last,
                           std::string& error) {
  std::uint8_t* p = buffer_.data();
  p[0] = 0x04;  // P-DATA-TF
  p[1] = 0x00;
  putBigEndian32(p + 2, static_cast<std::uint32_t>(payload + 6));  // one PDV item: its length field + 2 + data
  putBigEndian32(p + 6, static_cast<std::uint32_t>(payload + 2));  // presentation context + control header + data
  p[10] = presId;
  p[11] = static_cast<std::uint8_t>((command ? 0x01 : 0x00) | (last ? 0x02 : 0x00));
  DcmTransportConnection* connection = DUL_getTransportConnection(assoc_->DULassociation);
  if (connection == nullptr) {
    error = "association has no connection";
    return false;
  }
  std::size_t left = kHeaderBytes + payload;
  char* from = reinterpret_cast<char*>(p);
  while (left > 0) {
    const ssize_t n = connection->write(from, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      error = std::string("cannot send to the peer: ") + (n < 0 ? std::strerror(errno) : "connection closed");
      return false;
    }
    from += n;
    left -= static_cast<std::size_t>(n);
  }
  return true;
}

bool PDataWriter::sendBytes(T_ASC_PresentationContextID presId, const std::uint8_t* data, std::size_t size,
                            bool command, std::string& error) {
  do {
    const std::size_t n = std::min(size, maxPdv_);
    if (n > 0) std::memcpy(buffer_.data() + kHeaderBytes, data, n);
    data += n;
    size -= n;
    if (!writePdu(presId, n, command, size == 0, error)) return false;
  } while (size > 0);
  return true;
}

bool PDataWriter::sendDataSet(T_ASC_PresentationContextID presId, DcmDataset& dataset, E_TransferSyntax xfer,
                              std::string& error) {
  DcmWriteCache cache;
  DcmOutputBufferStream stream(buffer_.data() + kHeaderBytes, static_cast<offile_off_t>(maxPdv_));
  dataset.transferInit();
  OFCondition cond = EC_StreamNotifyClient;
  while (cond == EC_StreamNotifyClient) {
    cond = dataset.write(stream, xfer, EET_ExplicitLength, &cache);
    void* filled = nullptr;
    offile_off_t length = 0;
    stream.flushBuffer(filled, length);
    if (cond != EC_Normal && cond != EC_StreamNotifyClient) break;
    const bool last = cond == EC_Normal;
    if (length == 0 && !last) continue;
    if (!writePdu(presId, static_cast<std::size_t>(length), false, last, error)) {
      dataset.transferEnd();
      return false;
    }
  }
  dataset.transferEnd();
  if (cond.bad()) {
    error = std::string("cannot encode the data set: ") + cond.text();
    return false;
  }
  return true;
}

}  // namespace pacsgw::gateway
