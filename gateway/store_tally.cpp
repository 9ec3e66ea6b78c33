#include "gateway/store_tally.h"

#include "gateway/audit/audit_trail.h"

#include <dcmtk/dcmdata/dcdeftag.h>
#include <spdlog/spdlog.h>

namespace pacsgw::gateway {

StoreTally::StoreTally(std::string peerAeTitle, std::string peerAddress)
    : peerAeTitle_(std::move(peerAeTitle)), peerAddress_(std::move(peerAddress)) {}

StoreTally::~StoreTally() {
  for (const auto& [studyUid, study] : studies_)
    audit::instancesStored({peerAeTitle_, peerAddress_}, studyUid, study.patientId, study.stored, study.failed);
  if (stored_ + failed_ > 0) {
    spdlog::info("association from {}@{} ended: {} instances forwarded, {} refused, {:.1f} MB", peerAeTitle_,
                 peerAddress_, stored_, failed_, static_cast<double>(bytes_) / 1e6);
  }
}

StoreTally::Study& StoreTally::studyOf(DcmDataset& dataset) {
  OFString study, patient;
  dataset.findAndGetOFString(DCM_StudyInstanceUID, study);
  dataset.findAndGetOFString(DCM_PatientID, patient);
  Study& tally = studies_[study.c_str()];
  tally.patientId = patient.c_str();
  return tally;
}

void StoreTally::stored(DcmDataset& dataset, std::uint64_t bytes) {
  ++stored_;
  bytes_ += bytes;
  ++studyOf(dataset).stored;
}

void StoreTally::refused(DcmDataset& dataset) {
  ++failed_;
  ++studyOf(dataset).failed;
}

}  // namespace pacsgw::gateway
