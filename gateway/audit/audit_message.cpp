#include "gateway/audit/audit_message.h"

#include <chrono>
#include <cstdio>
#include <ctime>

namespace pacsgw::audit {
namespace {

std::string codeXml(const char* element, const Code& c) {
  return std::string("<") + element + " csd-code=\"" + escapeXml(c.code) + "\" codeSystemName=\"" +
         escapeXml(c.system) + "\" originalText=\"" + escapeXml(c.meaning) + "\"/>";
}

}  // namespace

std::string escapeXml(const std::string& text, std::size_t maxLength) {
  std::string out;
  out.reserve(text.size());
  std::size_t kept = 0;
  for (const char ch : text) {
    if (kept++ >= maxLength) {
      out += "...";
      break;
    }
    const unsigned char c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c == 0x7F) continue;  // CR, LF, NUL, ESC: never part of a record
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      default: out.push_back(ch);
    }
  }
  return out;
}

std::string auditTimestamp() {
  const auto now = std::chrono::system_clock::now();
  const std::time_t seconds = std::chrono::system_clock::to_time_t(now);
  const auto millis = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char buf[40];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", utc.tm_year + 1900, utc.tm_mon + 1,
                utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec, static_cast<int>(millis));
  return buf;
}

std::string toXml(const AuditMessage& m, const std::string& timestamp) {
  std::string x = "<AuditMessage>";
  x += "<EventIdentification EventActionCode=\"" + std::string(1, m.action) + "\" EventDateTime=\"" +
       escapeXml(timestamp) + "\" EventOutcomeIndicator=\"" + std::to_string(static_cast<int>(m.outcome)) + "\"";
  if (!m.outcomeDescription.empty()) x += " EventOutcomeDescription=\"" + escapeXml(m.outcomeDescription) + "\"";
  x += ">" + codeXml("EventID", m.eventId);
  for (const Code& t : m.eventTypes) x += codeXml("EventTypeCode", t);
  x += "</EventIdentification>";
  for (const Participant& p : m.participants) {
    x += "<ActiveParticipant UserID=\"" + escapeXml(p.userId) + "\" UserIsRequestor=\"" +
         (p.requestor ? "true" : "false") + "\"";
    if (!p.address.empty())
      x += " NetworkAccessPointID=\"" + escapeXml(p.address) + "\" NetworkAccessPointTypeCode=\"2\"";
    x += ">";
    if (!p.role.code.empty()) x += codeXml("RoleIDCode", p.role);
    x += "</ActiveParticipant>";
  }
  x += "<AuditSourceIdentification AuditSourceID=\"" + escapeXml(m.sourceId) +
       "\"><AuditSourceTypeCode csd-code=\"4\" codeSystemName=\"DCM\" originalText=\"Application Server\"/>"
       "</AuditSourceIdentification>";
  for (const ParticipantObject& o : m.objects) {
    x += "<ParticipantObjectIdentification ParticipantObjectID=\"" + escapeXml(o.id) +
         "\" ParticipantObjectTypeCode=\"" + std::to_string(o.typeCode) + "\" ParticipantObjectTypeCodeRole=\"" +
         std::to_string(o.typeCodeRole) + "\">" + codeXml("ParticipantObjectIDTypeCode", o.idType);
    if (!o.detail.empty())
      x += "<ParticipantObjectDescription>" + escapeXml(o.detail) + "</ParticipantObjectDescription>";
    x += "</ParticipantObjectIdentification>";
  }
  x += "</AuditMessage>";
  return x;
}

}  // namespace pacsgw::audit
