#pragma once
// DIMSE messages written as whole P-DATA-TF PDUs, one write per PDU. DCMTK's own writer sends each
// PDU's 12 header bytes and its data in two writes: with TCP_NODELAY (set on every DICOM socket) that
// is two TCP segments per PDU and a second wake-up of the receiver, for every 16 KiB a PACS accepts.
// Used for the C-STOREs the gateway sends on; the response is read with DCMTK as before.
#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdatset.h>
#include <dcmtk/dcmnet/assoc.h>
#include <dcmtk/dcmnet/dimse.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace pacsgw::gateway {

// The command set of a C-STORE-RQ as it goes on the wire (Implicit VR Little Endian, with its group
// length). Throws std::runtime_error when it cannot be encoded.
std::vector<std::uint8_t> encodeStoreCommand(const T_DIMSE_C_StoreRQ& request);

class PDataWriter {
 public:
  // PDVs are at most what DCMTK computed from the peer's maximum PDU length (assoc->sendPDVLength).
  explicit PDataWriter(T_ASC_Association* assoc);

  // Sends `size` bytes as the command (or the data set) fragments of one message on `presId`; the last
  // fragment carries the "last" bit. False with `error` set when the connection failed.
  bool sendBytes(T_ASC_PresentationContextID presId, const std::uint8_t* data, std::size_t size, bool command,
                 std::string& error);
  // Encodes `dataset` in `xfer` straight into the PDU buffer, a PDV at a time, and sends it. False
  // with `error` when it could not be encoded or the connection failed: the message is then incomplete.
  bool sendDataSet(T_ASC_PresentationContextID presId, DcmDataset& dataset, E_TransferSyntax xfer,
                   std::string& error);

 private:
  // Writes the PDU in the buffer: its headers, then `payload` bytes already at buffer_[kHeaderBytes].
  bool writePdu(T_ASC_PresentationContextID presId, std::size_t payload, bool command, bool last, std::string& error);

  static constexpr std::size_t kHeaderBytes = 12;  // PDU type, length; PDV item length, context, control
  T_ASC_Association* assoc_;
  std::size_t maxPdv_;
  std::vector<std::uint8_t> buffer_;
};

}  // namespace pacsgw::gateway
