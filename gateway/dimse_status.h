#pragma once
// DIMSE status codes the gateway produces or interprets (PS3.4 / PS3.7), and the predicates every
// service uses to classify them. One place, so the store, find and retrieve paths agree.
#include <cstdint>
#include <string>

namespace pacsgw::gateway {

namespace status {
constexpr std::uint16_t kSuccess = 0x0000;
constexpr std::uint16_t kProcessingFailure = 0x0110;
// Some archives answer this for an instance they already hold (a re-sent one): it is there.
constexpr std::uint16_t kDuplicateSopInstance = 0x0111;
constexpr std::uint16_t kSopClassNotSupported = 0x0122;
constexpr std::uint16_t kNotAuthorised = 0x0124;
constexpr std::uint16_t kOutOfResources = 0xA700;
constexpr std::uint16_t kUnableToCalculateMatches = 0xA701;     // C-MOVE / C-GET: out of resources
constexpr std::uint16_t kUnableToPerformSubOperations = 0xA702;  // C-MOVE / C-GET: out of resources
constexpr std::uint16_t kMoveDestinationUnknown = 0xA801;
constexpr std::uint16_t kDataSetDoesNotMatchSopClass = 0xA900;
constexpr std::uint16_t kCannotUnderstand = 0xC000;
constexpr std::uint16_t kUnableToProcess = 0xC001;
// A retrieve sub-operation the destination cannot take: it accepted no presentation context for the
// object's SOP class in any transfer syntax the gateway can produce losslessly from the stored one.
constexpr std::uint16_t kNoAcceptableTransferSyntax = 0xC002;
// A retrieve sub-operation (C-STORE from the PACS) the gateway refuses because the object cannot be
// trusted: one "Error: Cannot understand" code (Cxxx, implementation-specific) per reason, so the PACS
// log names it too. The Error Comment carries the reason's name. See refusalStatus().
constexpr std::uint16_t kRefusedAuthenticationFailed = 0xC210;
constexpr std::uint16_t kRefusedBoundAttributesChanged = 0xC211;
constexpr std::uint16_t kRefusedKeyScopeMismatch = 0xC212;
constexpr std::uint16_t kRefusedKeyReferenceRemoved = 0xC213;
constexpr std::uint16_t kRefusedNotEncrypted = 0xC214;
constexpr std::uint16_t kRefusedStudyDateNotBeforeCutover = 0xC215;
constexpr std::uint16_t kRefusedUnknownKey = 0xC216;
constexpr std::uint16_t kRefusedKeyDestroyed = 0xC217;
constexpr std::uint16_t kRefusedUnknownBackend = 0xC218;
constexpr std::uint16_t kRefusedMalformedKeyReference = 0xC219;
constexpr std::uint16_t kSubOperationsCompleteWithFailures = 0xB000;
constexpr std::uint16_t kCancel = 0xFE00;
constexpr std::uint16_t kPending = 0xFF00;
constexpr std::uint16_t kPendingWithWarnings = 0xFF01;

constexpr bool isSuccess(std::uint16_t s) { return s == kSuccess; }
constexpr bool isWarning(std::uint16_t s) { return (s & 0xF000) == 0xB000; }
constexpr bool isPending(std::uint16_t s) { return s == kPending || s == kPendingWithWarnings; }
constexpr bool isCancel(std::uint16_t s) { return s == kCancel; }
// A C-STORE the peer kept: success or one of the B0xx warnings.
constexpr bool isStored(std::uint16_t s) { return isSuccess(s) || isWarning(s); }
// Neither success, warning, pending nor cancel.
constexpr bool isFailure(std::uint16_t s) { return !isSuccess(s) && !isWarning(s) && !isPending(s) && !isCancel(s); }
// A7xx "Refused: Out of Resources": the peer may recover, so the same request may succeed later.
constexpr bool isOutOfResources(std::uint16_t s) { return (s & 0xFF00) == 0xA700; }
constexpr bool isTransient(std::uint16_t s) { return isOutOfResources(s); }
// A8xx: C-MOVE "Refused: Move Destination unknown".
constexpr bool isMoveDestinationUnknown(std::uint16_t s) { return (s & 0xFF00) == 0xA800; }
// A9xx: "Error: Data Set does not match SOP Class".
constexpr bool isDataSetMismatch(std::uint16_t s) { return (s & 0xFF00) == 0xA900; }
// Cxxx: "Error: Cannot understand" (the C2xx codes below are the gateway's own refusals).
constexpr bool isCannotUnderstand(std::uint16_t s) { return (s & 0xF000) == 0xC000; }
// One of the gateway's C210-C219 refusals of an object that cannot be trusted.
constexpr bool isTrustRefusal(std::uint16_t s) {
  return s >= kRefusedAuthenticationFailed && s <= kRefusedMalformedKeyReference;
}
}  // namespace status

// The status a refused retrieve sub-operation is answered with, from the refusal's reason (a
// codecs::CryptErrorKind name or a passthrough decision code); 0110 for any other reason.
std::uint16_t refusalStatus(const std::string& reason);

// Short text for a DIMSE status, for logs ("Success", "Refused: Out of Resources", ...).
std::string describeStatus(std::uint16_t status);

// "0000", "a700", ...: the status as four lower-case hex digits (metrics labels, log lines).
std::string statusLabel(std::uint16_t status);

}  // namespace pacsgw::gateway
