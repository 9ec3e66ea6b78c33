#pragma once
// Receives the data set that follows a DIMSE command, within memory limits: the per-object cap applies
// to the bytes after inflation (a deflated data set is inflated piece by piece as it is parsed, so a
// deflate bomb is cut off at the cap, not after it was inflated whole), and every byte held is taken
// from the association's and the process's budget. A refused data set is read to its end and dropped,
// so the association stays usable and the peer gets a precise status.
#include "gateway/memory_budget.h"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdatset.h>
#include <dcmtk/dcmdata/dcistrmb.h>
#include <dcmtk/dcmdata/dcxfer.h>
#include <dcmtk/dcmnet/assoc.h>

#include <cstdint>
#include <memory>
#include <string>

namespace pacsgw::gateway {

struct ReceivedDataSet {
  enum class Outcome {
    Received,       // `dataset` holds the data set, `reservation` its bytes
    TooLarge,       // larger than the per-object limit: refuse with 0xA700
    NoMemory,       // the association's or the process's budget is spent: refuse with 0xA700
    Malformed,      // truncated or not parseable: refuse with 0xC000
    ProtocolError,  // the PDV stream itself is broken (wrong context, command inside data set): abort
    NetworkError,   // timeout, abort or release by the peer: `condition` says which
  };
  Outcome outcome = Outcome::NetworkError;
  std::unique_ptr<DcmDataset> dataset;
  MemoryReservation reservation;
  std::uint64_t bytes = 0;     // bytes of the data set read (after inflation), at most the cap + one PDV
  std::string reason;          // for the log and the Error Comment
  OFCondition condition;       // Outcome::NetworkError
};

// Parses a data set from the fragments it arrives in, within the limits above. Feeding stops mattering
// once a refusal is decided (the rest is dropped); finish() after the last fragment gives the outcome.
class DataSetParser {
 public:
  DataSetParser(E_TransferSyntax xfer, std::uint64_t maxObjectBytes, AssociationMemory& memory);
  void feed(const void* data, std::uint32_t length, bool last);
  ReceivedDataSet finish();

 private:
  DcmXfer xfer_;
  std::uint64_t maxObjectBytes_;
  AssociationMemory& memory_;
  ReceivedDataSet result_;
  std::unique_ptr<DcmDataset> dataset_;
  DcmInputBufferStream stream_;
  bool refused_ = false;
  OFCondition parsed_ = EC_StreamNotifyClient;
};

// The next fragment of the data set on `presId`, reading the next P-DATA PDU when needed. False when
// the association failed (`failure` says how: NetworkError or ProtocolError).
bool nextDataSetFragment(T_ASC_Association* assoc, T_ASC_PresentationContextID presId, int timeoutSeconds,
                         DUL_PDV& pdv, ReceivedDataSet& failure);

// `presId` is the presentation context of the command; the data set must come on the same one.
ReceivedDataSet receiveDataSetWithinLimits(T_ASC_Association* assoc, T_ASC_PresentationContextID presId,
                                           int timeoutSeconds, std::uint64_t maxObjectBytes,
                                           AssociationMemory& memory);

}  // namespace pacsgw::gateway
