#include "gateway/peer_association.h"

#include "gateway/net_util.h"
#include "gateway/outgoing_connections.h"
#include "gateway/tls/certificate_identity.h"
#include "gateway/tls/tls_layer.h"

#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmnet/diutil.h>
#include <dcmtk/dcmnet/dul.h>

#include <chrono>
#include <cstdio>

namespace pacsgw::gateway {

std::unique_ptr<PeerAssociation> PeerAssociation::open(const PeerEndpoint& peer, const std::string& callingAeTitle,
                                                       const std::vector<ProposedContext>& contexts,
                                                       const NetworkTimeouts& timeouts, unsigned maxPduBytes) {
  std::unique_ptr<PeerAssociation> self(new PeerAssociation());
  self->peer_ = peer;
  self->timeouts_ = timeouts;
  const std::string where = peer.aeTitle + "@" + peer.host + ":" + std::to_string(peer.port);
  if (contexts.empty()) throw PeerUnavailable("no presentation context to propose to " + where);
  if (contexts.size() > 128) throw PeerUnavailable("more than 128 presentation contexts for " + where);

  dcmConnectionTimeout.set(static_cast<Sint32>(timeouts.connectSeconds));
  OFCondition cond = ASC_initializeNetwork(NET_REQUESTOR, 0, timeouts.acseSeconds, &self->network_);
  if (cond.bad()) throw PeerUnavailable("cannot initialise network: " + std::string(cond.text()));
  if (peer.tls) {
    // The layer is shared and outlives this network (peer_ keeps a reference).
    cond = ASC_setTransportLayer(self->network_, peer.tls->layer.get(), 0);
    if (cond.bad()) throw PeerUnavailable("cannot set up TLS: " + std::string(cond.text()));
  }

  T_ASC_Parameters* params = nullptr;
  cond = ASC_createAssociationParameters(&params, static_cast<long>(maxPduBytes));
  if (cond.bad()) throw PeerUnavailable("cannot create association parameters: " + std::string(cond.text()));
  ASC_setAPTitles(params, callingAeTitle.c_str(), peer.aeTitle.c_str(), nullptr);
  if (peer.tls) ASC_setTransportLayerType(params, OFTrue);
  const std::string address = peer.host + ":" + std::to_string(peer.port);
  ASC_setPresentationAddresses(params, OFStandard::getHostName().c_str(), address.c_str());

  T_ASC_PresentationContextID id = 1;
  for (const auto& ctx : contexts) {
    std::vector<const char*> syntaxes;
    for (const auto& ts : ctx.transferSyntaxes) syntaxes.push_back(ts.c_str());
    cond = ASC_addPresentationContext(params, id, ctx.abstractSyntax.c_str(), syntaxes.data(),
                                      static_cast<int>(syntaxes.size()));
    if (cond.bad()) {
      ASC_destroyAssociationParameters(&params);
      throw PeerUnavailable("cannot add presentation context: " + std::string(cond.text()));
    }
    id = static_cast<T_ASC_PresentationContextID>(id + 2);
  }

  const auto requested = std::chrono::steady_clock::now();
  cond = ASC_requestAssociation(self->network_, params, &self->assoc_);
  if (cond.bad()) {
    std::string reason = cond.text();
    // A peer that accepted TCP and then said nothing: name the wait that ran out, not only DCMTK's text.
    const auto waited = std::chrono::steady_clock::now() - requested;
    if (waited >= std::chrono::seconds(timeouts.acseSeconds) - std::chrono::milliseconds(250)) {
      const bool inHandshake = peer.tls && reason.find("TLS") != std::string::npos;
      reason = std::string(inHandshake ? "TLS handshake" : "association request") + " timed out after " +
               std::to_string(std::chrono::duration_cast<std::chrono::seconds>(waited).count()) +
               " s (acse_timeout_s " + std::to_string(timeouts.acseSeconds) + " s): " + reason;
    }
    if (cond == DUL_ASSOCIATIONREJECTED) {
      T_ASC_RejectParameters rej;
      ASC_getRejectParameters(params, &rej);
      OFString text;
      reason = "association rejected: " + std::string(ASC_printRejectParameters(text, &rej).c_str());
    }
    if (self->assoc_ == nullptr) ASC_destroyAssociationParameters(&params);
    throw PeerUnavailable("cannot associate with " + where + ": " + reason);
  }
  setTcpNoDelay(associationSocket(self->assoc_));
  if (peer.tls) tls::restoreSocketTimeouts(associationSocket(self->assoc_));  // bounded for the handshake only
  self->shutdownHandle_ = OutgoingConnections::instance().add(associationSocket(self->assoc_));
  if (peer.tls) self->checkPeerIdentity(where);
  if (ASC_countAcceptedPresentationContexts(self->assoc_->params) == 0) {
    throw NoAcceptedContext(where + " accepted none of the proposed presentation contexts");
  }
  self->usable_ = true;
  return self;
}

void PeerAssociation::checkPeerIdentity(const std::string& where) {
  // The handshake already verified the chain against gateway.tls.ca_bundle; here: is it the right peer.
  if (peer_.tls->expectedIdentity.empty()) return;
  std::vector<unsigned char> der(ASC_getPeerCertificateLength(assoc_));
  const unsigned long length = der.empty() ? 0 : ASC_getPeerCertificate(assoc_, der.data(), der.size());
  const auto identity = tls::CertificateIdentity::fromDer(der.data(), length);
  if (!identity || !identity->matches(peer_.tls->expectedIdentity)) {
    throw PeerUnavailable("TLS peer " + where + " presented " +
                          (identity ? printable(identity->describe()) : std::string("no certificate")) +
                          ", not the configured identity " + peer_.tls->expectedIdentity);
  }
}

PeerAssociation::~PeerAssociation() {
  if (assoc_ != nullptr) {
    // Release (or abort), then destroy: destroy drops the connection exactly once.
    if (usable_) {
      if (ASC_releaseAssociation(assoc_).bad()) ASC_abortAssociation(assoc_);
    } else {
      ASC_abortAssociation(assoc_);
    }
    ASC_destroyAssociation(&assoc_);
  }
  if (network_ != nullptr) ASC_dropNetwork(&network_);
  OutgoingConnections::instance().remove(shutdownHandle_);
}

DeliveryContext PeerAssociation::deliveryContextFor(const std::string& sopClassUid, E_TransferSyntax xfer,
                                                    Transcoding transcoding) {
  const auto key = std::make_tuple(sopClassUid, xfer, transcoding);
  const auto known = chosenContexts_.find(key);
  if (known != chosenContexts_.end()) return known->second;
  const DeliveryContext context = chooseDeliveryContext(assoc_, sopClassUid, xfer, transcoding);
  if (chosenContexts_.size() < 1024) chosenContexts_.emplace(key, context);  // bounded by what a peer sends
  return context;
}

StoreOutcome PeerAssociation::store(DcmDataset& dataset, E_TransferSyntax xfer, const std::string& sopClassUid,
                                    const std::string& sopInstanceUid, const MoveOriginator* originator,
                                    Transcoding transcoding) {
  StoreOutcome outcome;
  if (!usable_) {
    outcome.errorComment = "association to " + peer_.aeTitle + " is no longer usable";
    return outcome;
  }
  const DeliveryContext context = deliveryContextFor(sopClassUid, xfer, transcoding);
  if (context.id == 0) {
    const bool classAccepted = !acceptedContexts(assoc_, sopClassUid).empty();
    outcome.status = classAccepted ? status::kNoAcceptableTransferSyntax : status::kSopClassNotSupported;
    outcome.errorComment = peer_.aeTitle + " accepted no context for this SOP class in " + DcmXfer(xfer).getXferName() +
                           " or a syntax it can be converted to";
    return outcome;
  }
  std::string why;
  if (!transcode(dataset, xfer, context.xfer, why)) {
    outcome.status = status::kNoAcceptableTransferSyntax;
    outcome.errorComment = "cannot convert for " + peer_.aeTitle + ": " + why;
    return outcome;
  }
  if (!dataset.canWriteXfer(context.xfer, xfer)) {
    outcome.status = status::kNoAcceptableTransferSyntax;
    outcome.errorComment = std::string("cannot encode this object in ") + DcmXfer(context.xfer).getXferName() +
                           " for " + peer_.aeTitle;
    return outcome;
  }
  T_DIMSE_C_StoreRQ request = storeRequest(sopClassUid, sopInstanceUid, originator);
  const E_TransferSyntax out = context.xfer;
  return exchangeStore(context.id, request, [&](std::string& error) {
    return writer_->sendDataSet(context.id, dataset, out, error);
  });
}

StoreOutcome PeerAssociation::storeEncoded(const std::uint8_t* bytes, std::size_t size, E_TransferSyntax xfer,
                                           const std::string& sopClassUid, const std::string& sopInstanceUid) {
  StoreOutcome outcome;
  if (!usable_) {
    outcome.errorComment = "association to " + peer_.aeTitle + " is no longer usable";
    return outcome;
  }
  // Lossless: only the exact syntax qualifies, so the peer receives these bytes unchanged.
  const DeliveryContext context = deliveryContextFor(sopClassUid, xfer, Transcoding::Lossless);
  if (context.id == 0 || context.xfer != xfer) {
    outcome.needsEncoding = true;
    return outcome;
  }
  T_DIMSE_C_StoreRQ request = storeRequest(sopClassUid, sopInstanceUid, nullptr);
  return exchangeStore(context.id, request, [&](std::string& error) {
    return writer_->sendBytes(context.id, bytes, size, false, error);
  });
}

T_DIMSE_C_StoreRQ PeerAssociation::storeRequest(const std::string& sopClassUid, const std::string& sopInstanceUid,
                                                const MoveOriginator* originator) {
  T_DIMSE_C_StoreRQ request{};
  request.MessageID = nextMessageId();
  OFStandard::strlcpy(request.AffectedSOPClassUID, sopClassUid.c_str(), sizeof(request.AffectedSOPClassUID));
  OFStandard::strlcpy(request.AffectedSOPInstanceUID, sopInstanceUid.c_str(), sizeof(request.AffectedSOPInstanceUID));
  request.DataSetType = DIMSE_DATASET_PRESENT;
  request.Priority = DIMSE_PRIORITY_MEDIUM;
  if (originator != nullptr) {
    OFStandard::strlcpy(request.MoveOriginatorApplicationEntityTitle, originator->aeTitle.c_str(),
                        sizeof(request.MoveOriginatorApplicationEntityTitle));
    request.MoveOriginatorID = originator->messageId;
    request.opts = O_STORE_MOVEORIGINATORAETITLE | O_STORE_MOVEORIGINATORID;
  }
  return request;
}

template <typename SendDataSet>
StoreOutcome PeerAssociation::exchangeStore(T_ASC_PresentationContextID presId, T_DIMSE_C_StoreRQ& request,
                                            SendDataSet sendDataSet) {
  StoreOutcome outcome;
  const auto broken = [&](const std::string& why) {
    usable_ = false;
    outcome.errorComment = "C-STORE to " + peer_.aeTitle + " failed: " + why;
    return outcome;
  };
  std::vector<std::uint8_t> command;
  try {
    command = encodeStoreCommand(request);
  } catch (const std::exception& e) {
    outcome.errorComment = e.what();  // nothing sent: the association stays usable
    return outcome;
  }
  if (!writer_) writer_ = std::make_unique<PDataWriter>(assoc_);
  std::string error;
  if (!writer_->sendBytes(presId, command.data(), command.size(), true, error)) return broken(error);
  // A data set that fails half-way leaves the peer inside a message: the association cannot go on.
  if (!sendDataSet(error)) return broken(error);

  T_DIMSE_Message response{};
  T_ASC_PresentationContextID responseContext = 0;
  DcmDataset* statusDetail = nullptr;
  const OFCondition cond = DIMSE_receiveCommand(assoc_, DIMSE_NONBLOCKING, timeouts_.dimseSeconds, &responseContext,
                                                &response, &statusDetail);
  std::unique_ptr<DcmDataset> detail(statusDetail);
  if (cond.bad()) return broken(cond.text());
  if (response.CommandField != DIMSE_C_STORE_RSP) return broken("the peer answered with another message than C-STORE-RSP");
  const T_DIMSE_C_StoreRSP& rsp = response.msg.CStoreRSP;
  if (rsp.MessageIDBeingRespondedTo != request.MessageID) {
    return broken("the peer answered message " + std::to_string(rsp.MessageIDBeingRespondedTo) + " instead of " +
                  std::to_string(request.MessageID));
  }
  outcome.delivered = true;
  outcome.status = rsp.DimseStatus;
  if (detail) {
    OFString comment;
    if (detail->findAndGetOFString(DCM_ErrorComment, comment).good()) outcome.errorComment = comment.c_str();
  }
  return outcome;
}

}  // namespace pacsgw::gateway
