#pragma once
// DICOM audit messages (PS3.15 A.5, the RFC 3881 schema): the security-relevant events of the gateway
// as one self-contained XML <AuditMessage> each. Values that come from the network (AE titles, UIDs,
// patient IDs, error texts) are escaped here, so no peer can forge or break a record.
#include <string>
#include <vector>

namespace pacsgw::audit {

// RFC 3881 EventOutcomeIndicator.
enum class Outcome { Success = 0, MinorFailure = 4, SeriousFailure = 8, MajorFailure = 12 };

struct Code {
  std::string code;        // csd-code
  std::string system;      // codeSystemName: "DCM" for PS3.16 codes, "99PACSGW" for the gateway's own
  std::string meaning;     // originalText
};

struct Participant {
  std::string userId;       // AE title (or process / OS user for the local side)
  std::string address;      // NetworkAccessPointID (IP address), may be empty
  bool requestor = false;
  Code role;                // e.g. 110153 Source Role ID, 110152 Destination Role ID
};

struct ParticipantObject {
  std::string id;           // e.g. Study Instance UID, Patient ID, key id, file path
  int typeCode = 2;         // 1 person, 2 system object
  int typeCodeRole = 3;     // 1 patient, 3 report, 13 security resource, ...
  Code idType;              // 110180 Study Instance UID, 2 Patient Number, ...
  std::string detail;       // free text: counts, reason, destination; escaped
};

struct AuditMessage {
  Code eventId;             // 110100 Application Activity, 110104 Instances Transferred, ...
  char action = 'E';        // C R U D E
  Outcome outcome = Outcome::Success;
  std::string outcomeDescription;  // why a failure happened (escaped)
  std::vector<Code> eventTypes;
  std::vector<Participant> participants;
  std::string sourceId;     // AuditSourceID: the gateway's AE title
  std::vector<ParticipantObject> objects;
};

// UTC timestamp with milliseconds, e.g. 2025-03-01T14:22:33.512Z.
std::string auditTimestamp();

// The record as one line of XML (no line breaks inside; control characters removed from values).
std::string toXml(const AuditMessage& message, const std::string& timestamp);

// XML-escapes text for an attribute value and drops control characters (including CR / LF).
std::string escapeXml(const std::string& text, std::size_t maxLength = 1024);

}  // namespace pacsgw::audit
