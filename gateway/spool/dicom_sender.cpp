#include "gateway/spool/dicom_sender.h"

#include "gateway/spool/dataset_bytes.h"
#include "gateway/net_util.h"

#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmdata/dcxfer.h>

#include <spdlog/spdlog.h>

#include <algorithm>

namespace pacsgw::gateway::spool {

namespace {

// An association carries at most 128 contexts; native syntaxes take two each.
constexpr std::size_t kMaxWanted = 40;  // 40 x (1 + 2 alternatives) + verification < 128

// DCMTK's own context lookup falls back to any accepted context of the SOP class, which would send
// an encapsulated data set on a native context (and fail mid-message). Only an exact match, or any
// native syntax for native data, is usable.
bool hasUsableContext(T_ASC_Association* assoc, const std::string& sopClass, E_TransferSyntax xfer) {
  const char* wanted = DcmXfer(xfer).getXferID();
  const int count = ASC_countPresentationContexts(assoc->params);
  for (int i = 0; i < count; ++i) {
    T_ASC_PresentationContext pc;
    if (ASC_getPresentationContext(assoc->params, i, &pc).bad()) continue;
    if (pc.resultReason != ASC_P_ACCEPTANCE || sopClass != pc.abstractSyntax) continue;
    if (std::string(pc.acceptedTransferSyntax) == wanted) return true;
    if (isNativeTransferSyntax(xfer) && isNativeTransferSyntax(DcmXfer(pc.acceptedTransferSyntax).getXfer())) return true;
  }
  return false;
}

}  // namespace

DicomUpstreamSender::DicomUpstreamSender(PeerEndpoint peer, std::string callingAeTitle, NetworkTimeouts timeouts,
                                         unsigned maxPduBytes)
    : peer_(std::move(peer)), callingAeTitle_(std::move(callingAeTitle)), timeouts_(timeouts),
      maxPduBytes_(maxPduBytes) {}

std::vector<ProposedContext> DicomUpstreamSender::contexts() const {
  std::vector<ProposedContext> out;
  for (const auto& [sopClass, ts] : wanted_) {
    ProposedContext context{sopClass, {ts}};
    if (isNativeTransferSyntax(DcmXfer(ts.c_str()).getXfer())) {
      // Native pixel values survive re-encoding: any native syntax the PACS prefers will do.
      for (const char* alt : {UID_LittleEndianExplicitTransferSyntax, UID_LittleEndianImplicitTransferSyntax}) {
        if (ts != alt) context.transferSyntaxes.push_back(alt);
      }
    }
    out.push_back(context);
  }
  // Verification keeps the association open even when the PACS refuses every storage context, so
  // such a refusal shows up as "no presentation context" (quarantined) and not as "unreachable".
  out.push_back(ProposedContext{UID_VerificationSOPClass, {UID_LittleEndianImplicitTransferSyntax}});
  return out;
}

SendResult DicomUpstreamSender::send(const SpoolRecordView& record) {
  SendResult result;
  const E_TransferSyntax xfer = DcmXfer(record.meta.transferSyntaxUid.c_str()).getXfer();
  if (xfer == EXS_Unknown) {
    result.kind = SendKind::Undecodable;
    result.detail = "unknown transfer syntax " + record.meta.transferSyntaxUid;
    return result;
  }
  // The record's bytes go out as they are when the PACS accepted their transfer syntax; they are
  // decoded (and re-encoded by DCMTK) only for a PACS that wants another one.
  std::unique_ptr<DcmDataset> dataset;
  std::string undecodable;
  result = deliverWith(record.meta, xfer, [&](PeerAssociation& association) {
    StoreOutcome outcome = association.storeEncoded(record.payload, record.payloadSize, xfer, record.meta.sopClassUid,
                                                    record.meta.sopInstanceUid);
    if (!outcome.needsEncoding) return outcome;
    if (!dataset) {
      try {
        dataset = decodeDataset(record.payload, record.payloadSize, xfer);
      } catch (const std::exception& e) {
        undecodable = e.what();
        outcome.errorComment = undecodable;
        return outcome;  // nothing was sent
      }
    }
    return association.store(*dataset, xfer, record.meta.sopClassUid, record.meta.sopInstanceUid);
  });
  if (!undecodable.empty()) {
    result.kind = SendKind::Undecodable;
    result.detail = undecodable;
  }
  return result;
}

SendResult DicomUpstreamSender::sendFile(const SpoolRecordFile& record) {
  SendResult result;
  const E_TransferSyntax xfer = DcmXfer(record.meta.transferSyntaxUid.c_str()).getXfer();
  if (xfer == EXS_Unknown) {
    result.kind = SendKind::Undecodable;
    result.detail = "unknown transfer syntax " + record.meta.transferSyntaxUid;
    return result;
  }
  std::unique_ptr<DcmDataset> dataset;
  bool pixelsInFile = false;
  try {
    dataset = openDatasetInFile(record.path, record.payloadOffset, record.payloadSize, xfer, pixelsInFile);
  } catch (const std::exception& e) {
    result.kind = SendKind::Undecodable;
    result.detail = e.what();
    return result;
  }
  spdlog::info("forwarder: sending {} ({} MiB{}) from the spool file", printable(record.meta.sopInstanceUid),
               record.payloadSize >> 20, pixelsInFile ? ", Pixel Data read in pieces" : ", read whole");
  return deliver(record.meta, xfer, *dataset);
}

SendResult DicomUpstreamSender::deliver(const SpoolRecordMeta& meta, E_TransferSyntax xfer, DcmDataset& dataset) {
  return deliverWith(meta, xfer, [&](PeerAssociation& association) {
    return association.store(dataset, xfer, meta.sopClassUid, meta.sopInstanceUid);
  });
}

SendResult DicomUpstreamSender::deliverWith(const SpoolRecordMeta& meta, E_TransferSyntax xfer,
                                            const std::function<StoreOutcome(PeerAssociation&)>& store) {
  SendResult result;
  const std::pair<std::string, std::string> key{meta.sopClassUid, meta.transferSyntaxUid};
  if (std::find(wanted_.begin(), wanted_.end(), key) == wanted_.end()) {
    if (wanted_.size() >= kMaxWanted) wanted_.erase(wanted_.begin());
    wanted_.push_back(key);
    association_.reset();  // released; the next one proposes the new context too
  }
  for (int attempt = 0; attempt < 2; ++attempt) {
    const bool reused = association_ && association_->usable();
    if (!reused) {
      association_.reset();
      try {
        association_ = PeerAssociation::open(peer_, callingAeTitle_, contexts(), timeouts_, maxPduBytes_);
      } catch (const PeerUnavailable& e) {
        result.kind = SendKind::Unreachable;
        result.detail = e.what();
        return result;
      }
    }
    if (!hasUsableContext(association_->raw(), meta.sopClassUid, xfer)) {
      result.kind = SendKind::NoContext;
      result.detail = "SOP class " + meta.sopClassUid + " in transfer syntax " + meta.transferSyntaxUid +
                      " (" + DcmXfer(xfer).getXferName() + ") refused by " + peer_.aeTitle;
      return result;
    }
    const StoreOutcome outcome = store(*association_);
    if (outcome.delivered) {
      result.kind = SendKind::Answered;
      result.status = outcome.status;
      result.detail = outcome.errorComment;
      return result;
    }
    if (association_->usable() && (outcome.status == status::kSopClassNotSupported ||
                                   outcome.status == status::kNoAcceptableTransferSyntax)) {
      result.kind = SendKind::NoContext;
      result.detail = outcome.errorComment;
      return result;
    }
    result.kind = SendKind::Broken;
    result.detail = outcome.errorComment;
    // An association reused after a pause may have been closed by the PACS: one retry on a fresh one.
    if (!reused) break;
  }
  return result;
}

}  // namespace pacsgw::gateway::spool
