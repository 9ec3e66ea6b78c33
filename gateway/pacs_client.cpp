#include "gateway/pacs_client.h"

#include "gateway/dimse_status.h"

#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmnet/scu.h>

#include <stdexcept>

namespace pacsgw::gateway {

namespace {

// Each compressed syntax on a context of its own, so the PACS can send an object exactly as it
// stores it instead of transcoding it; the uncompressed ones share one context.
const std::vector<std::vector<const char*>> kSyntaxGroups = {
    {UID_LittleEndianExplicitTransferSyntax, UID_LittleEndianImplicitTransferSyntax, UID_BigEndianExplicitTransferSyntax},
    {UID_JPEGProcess14SV1TransferSyntax},
    {UID_JPEGProcess14TransferSyntax},
    {UID_JPEGLSLosslessTransferSyntax},
    {UID_JPEGLSLossyTransferSyntax},
    {UID_RLELosslessTransferSyntax},
    {UID_JPEGProcess1TransferSyntax},
    {UID_JPEGProcess2_4TransferSyntax},
    {UID_JPEG2000LosslessOnlyTransferSyntax},
    {UID_JPEG2000TransferSyntax},
    {UID_DeflatedExplicitVRLittleEndianTransferSyntax},
};

OFList<OFString> syntaxList(const std::vector<const char*>& uids) {
  OFList<OFString> list;
  for (const char* uid : uids) list.push_back(uid);
  return list;
}

}  // namespace

class PacsClient::Scu : public DcmSCU {
 public:
  std::unique_ptr<DcmDataset> received;  // the last object a C-GET delivered

 protected:
  OFCondition handleSTORERequest(const T_ASC_PresentationContextID, DcmDataset* incoming, OFBool& continueSession,
                                 Uint16& status) override {
    received.reset(incoming);  // we own it from here
    continueSession = OFTrue;
    status = status::kSuccess;
    return EC_Normal;
  }
};

PacsClient::PacsClient(const config::Config& config, Purpose purpose, const std::set<std::string>& sopClasses)
    : scu_(std::make_unique<Scu>()) {
  const auto& up = config.upstream;
  Scu& scu = *scu_;
  scu.setAETitle(config.gateway.aeTitle.c_str());
  scu.setPeerAETitle(up.aeTitle.c_str());
  scu.setPeerHostName(up.host.c_str());
  scu.setPeerPort(up.port);
  scu.setMaxReceivePDULength(config.gateway.maxPduBytes);
  scu.setConnectionTimeout(static_cast<Sint32>(config.gateway.connectTimeoutSeconds));
  scu.setACSETimeout(config.gateway.acseTimeoutSeconds);
  scu.setDIMSETimeout(config.gateway.dimseTimeoutSeconds);
  scu.setDIMSEBlockingMode(DIMSE_NONBLOCKING);
  std::size_t contexts = 0;
  switch (purpose) {
    case Purpose::Query:
      scu.addPresentationContext(UID_FINDStudyRootQueryRetrieveInformationModel,
                                 syntaxList({UID_LittleEndianExplicitTransferSyntax, UID_LittleEndianImplicitTransferSyntax}));
      break;
    case Purpose::Retrieve:
      scu.addPresentationContext(UID_GETStudyRootQueryRetrieveInformationModel,
                                 syntaxList({UID_LittleEndianExplicitTransferSyntax, UID_LittleEndianImplicitTransferSyntax}));
      contexts = 1;
      [[fallthrough]];
    case Purpose::Store:
      for (const std::string& sopClass : sopClasses) {
        for (const auto& group : kSyntaxGroups) {
          if (++contexts > 128) {
            throw std::runtime_error("too many SOP classes in one study for one association (" +
                                     std::to_string(sopClasses.size()) + ")");
          }
          scu.addPresentationContext(sopClass.c_str(), syntaxList(group),
                                     purpose == Purpose::Retrieve ? ASC_SC_ROLE_SCP : ASC_SC_ROLE_DEFAULT);
        }
      }
      break;
  }
  const std::string where = up.aeTitle + "@" + up.host + ":" + std::to_string(up.port);
  OFCondition cond = scu.initNetwork();
  if (cond.good()) cond = scu.negotiateAssociation();
  if (cond.bad()) throw std::runtime_error("cannot associate with the PACS " + where + ": " + cond.text());
}

PacsClient::~PacsClient() {
  if (scu_->isConnected()) scu_->releaseAssociation();
}

std::vector<std::unique_ptr<DcmDataset>> PacsClient::find(DcmDataset& query) {
  const T_ASC_PresentationContextID pc = scu_->findPresentationContextID(UID_FINDStudyRootQueryRetrieveInformationModel, "");
  if (pc == 0) throw std::runtime_error("the PACS accepted no study-root C-FIND context");
  OFList<QRResponse*> responses;
  OFCondition cond = scu_->sendFINDRequest(pc, &query, &responses);
  std::vector<std::unique_ptr<DcmDataset>> results;
  std::uint16_t finalStatus = 0xFFFF;
  for (QRResponse* r : responses) {
    if (r->m_dataset != nullptr && status::isPending(r->m_status)) {
      results.emplace_back(r->m_dataset);
      r->m_dataset = nullptr;
    }
    finalStatus = r->m_status;
    delete r;
  }
  if (cond.bad()) throw std::runtime_error(std::string("C-FIND failed: ") + cond.text());
  if (!status::isSuccess(finalStatus)) {
    throw std::runtime_error("C-FIND ended with status 0x" + [&] {
      char text[8];
      std::snprintf(text, sizeof text, "%04x", finalStatus);
      return std::string(text);
    }());
  }
  return results;
}

std::unique_ptr<DcmDataset> PacsClient::getInstance(const std::string& studyUid, const std::string& seriesUid,
                                                    const std::string& sopInstanceUid, std::string& problem) {
  const T_ASC_PresentationContextID pc = scu_->findPresentationContextID(UID_GETStudyRootQueryRetrieveInformationModel, "");
  if (pc == 0) throw std::runtime_error("the PACS accepted no study-root C-GET context");
  DcmDataset keys;
  keys.putAndInsertString(DCM_QueryRetrieveLevel, "IMAGE");
  keys.putAndInsertString(DCM_StudyInstanceUID, studyUid.c_str());
  keys.putAndInsertString(DCM_SeriesInstanceUID, seriesUid.c_str());
  keys.putAndInsertString(DCM_SOPInstanceUID, sopInstanceUid.c_str());
  scu_->received.reset();
  OFList<RetrieveResponse*> responses;
  OFCondition cond = scu_->sendCGETRequest(pc, &keys, &responses);
  std::uint16_t finalStatus = 0xFFFF;
  for (RetrieveResponse* r : responses) {
    finalStatus = r->m_status;
    delete r;
  }
  if (cond.bad()) {
    problem = std::string("C-GET failed: ") + cond.text();
    return nullptr;
  }
  if (!scu_->received) {
    char text[64];
    std::snprintf(text, sizeof text, "the PACS sent no object (C-GET status 0x%04x)", finalStatus);
    problem = text;
  }
  return std::move(scu_->received);
}

std::uint16_t PacsClient::store(DcmDataset& dataset, E_TransferSyntax xfer, const std::string& sopClassUid) {
  T_ASC_PresentationContextID pc = scu_->findPresentationContextID(sopClassUid.c_str(), DcmXfer(xfer).getXferID());
  if (pc == 0 && (xfer == EXS_LittleEndianImplicit || xfer == EXS_BigEndianExplicit)) {
    pc = scu_->findPresentationContextID(sopClassUid.c_str(), UID_LittleEndianExplicitTransferSyntax);
  }
  if (pc == 0) {
    throw std::runtime_error(std::string("the PACS accepted no context for this object in ") + DcmXfer(xfer).getXferName());
  }
  Uint16 status = 0xFFFF;
  OFCondition cond = scu_->sendSTORERequest(pc, OFFilename(), &dataset, status);
  if (cond.bad()) throw std::runtime_error(std::string("C-STORE failed: ") + cond.text());
  return status;
}

}  // namespace pacsgw::gateway
