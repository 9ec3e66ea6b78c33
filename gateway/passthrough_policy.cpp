#include "gateway/passthrough_policy.h"

#include <dcmtk/dcmdata/dcdeftag.h>

namespace pacsgw::gateway {
namespace {

std::string value(DcmDataset& dataset, const DcmTagKey& tag) {
  OFString v;
  if (dataset.findAndGetOFString(tag, v).bad()) return {};
  return v.c_str();
}

bool isDate(const std::string& s) {
  if (s.size() != 8) return false;
  for (const char c : s)
    if (c < '0' || c > '9') return false;
  return true;
}

}  // namespace

PassthroughDecision decidePassthrough(const config::CipherSection& cipher, keystore::Keystore& keys,
                                      DcmDataset& dataset) {
  if (!cipher.passthroughUnencrypted)
    return {false, "NotEncrypted", "instance was never encrypted and cipher.passthrough_unencrypted is off"};
  if (!cipher.passthroughBefore.empty()) {
    const std::string studyDate = value(dataset, DCM_StudyDate);
    if (!isDate(studyDate))
      return {false, "StudyDateNotBeforeCutover", "instance carries no key reference and no valid Study Date to compare with "
                     "cipher.passthrough_before"};
    // YYYYMMDD strings order like the dates they name.
    if (studyDate >= cipher.passthroughBefore)
      return {false, "StudyDateNotBeforeCutover", "instance carries no key reference but its Study Date is not before "
                     "cipher.passthrough_before " + cipher.passthroughBefore};
  }
  const struct {
    keystore::KeyScope scope;
    DcmTagKey tag;
  } scopes[] = {{keystore::KeyScope::Study, DCM_StudyInstanceUID},
                {keystore::KeyScope::Series, DCM_SeriesInstanceUID},
                {keystore::KeyScope::Instance, DCM_SOPInstanceUID}};
  for (const auto& s : scopes) {
    const std::string uid = value(dataset, s.tag);
    if (uid.empty()) return {false, "NotEncrypted", "instance carries no key reference and lacks its Study / Series / SOP Instance UID"};
    if (keys.hasKeyFor(s.scope, uid))
      return {false, "KeyReferenceRemoved", std::string("instance carries no key reference although the gateway holds a data key for its ") +
                         keystore::toString(s.scope) + ": the key reference was removed in the PACS"};
  }
  return {true, "", cipher.passthroughBefore.empty()
                    ? "no data key exists for its study, series or instance"
                    : "Study Date before cipher.passthrough_before and no data key for its study, series or instance"};
}

}  // namespace pacsgw::gateway
