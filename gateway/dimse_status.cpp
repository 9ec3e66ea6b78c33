#include "gateway/dimse_status.h"

#include <cstdio>

namespace pacsgw::gateway {

std::uint16_t refusalStatus(const std::string& reason) {
  static const struct {
    const char* reason;
    std::uint16_t status;
  } kStatuses[] = {
      {"AuthenticationFailed", status::kRefusedAuthenticationFailed},
      {"BoundAttributesChanged", status::kRefusedBoundAttributesChanged},
      {"KeyScopeMismatch", status::kRefusedKeyScopeMismatch},
      {"KeyReferenceRemoved", status::kRefusedKeyReferenceRemoved},
      {"NotEncrypted", status::kRefusedNotEncrypted},
      {"StudyDateNotBeforeCutover", status::kRefusedStudyDateNotBeforeCutover},
      {"UnknownKey", status::kRefusedUnknownKey},
      {"KeyDestroyed", status::kRefusedKeyDestroyed},
      {"UnknownBackend", status::kRefusedUnknownBackend},
      {"MalformedKeyReference", status::kRefusedMalformedKeyReference},
  };
  for (const auto& entry : kStatuses) {
    if (reason == entry.reason) return entry.status;
  }
  return status::kProcessingFailure;
}

std::string describeStatus(std::uint16_t s) {
  if (s == status::kSuccess) return "Success";
  if (status::isPending(s)) return "Pending";
  if (s == status::kCancel) return "Cancel";
  if (s == status::kProcessingFailure) return "Failure: Processing failure";
  if (s == status::kSopClassNotSupported) return "Refused: SOP Class not supported";
  if (s == status::kNotAuthorised) return "Refused: Not authorised";
  if (s == status::kMoveDestinationUnknown) return "Refused: Move Destination unknown";
  if (status::isOutOfResources(s)) return "Refused: Out of Resources";
  if (status::isDataSetMismatch(s)) return "Error: Data Set does not match SOP Class";
  if (s == status::kNoAcceptableTransferSyntax) return "Failure: no acceptable transfer syntax";
  if (status::isTrustRefusal(s)) return "Error: Cannot understand (object refused: not trustworthy)";
  if (status::isCannotUnderstand(s)) return "Error: Cannot understand";
  if (status::isWarning(s)) return "Warning";
  char text[48];
  std::snprintf(text, sizeof(text), "Status 0x%04X", s);
  return text;
}

std::string statusLabel(std::uint16_t s) {
  char text[8];
  std::snprintf(text, sizeof(text), "%04x", s);
  return text;
}

}  // namespace pacsgw::gateway
