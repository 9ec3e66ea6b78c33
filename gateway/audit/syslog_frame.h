#pragma once
// One audit record as a syslog message (RFC 5424) framed for TLS transport (RFC 5425, octet counting):
//   MSG-LEN SP "<85>1 " TIMESTAMP SP HOSTNAME SP APP-NAME SP PROCID SP MSGID SP "-" SP BOM XML
// Facility 10 (security/authorization), severity 5 (notice): PRI 85. MSGID "IHE+RFC-3881" names the
// payload format, as audit repositories expect. The header fields are reduced to printable US-ASCII
// (RFC 5424 PRINTUSASCII) and their maximum lengths; the XML body is counted in MSG-LEN, so nothing
// inside a record (an AE title with "]", a quote or a fake "<85>1 ..." header) can end it early or
// start another one.
#include <string>

namespace pacsgw::audit {

struct SyslogHeader {
  std::string hostname;  // of this machine
  std::string appName;   // e.g. "pacsgw"
  std::string procId;    // the process id
};

// The EventDateTime of a record written by toXml(), or "-" (NILVALUE) when there is none.
std::string recordTimestamp(const std::string& xmlRecord);

// The RFC 5424 message (without the length prefix).
std::string syslogMessage(const SyslogHeader& header, const std::string& xmlRecord);

// The message with its RFC 5425 octet-counting prefix, ready to write to the TLS stream.
std::string syslogFrame(const SyslogHeader& header, const std::string& xmlRecord);

// A header field as RFC 5424 allows it: printable US-ASCII without spaces, at most `maxLength`
// characters; "-" when nothing is left.
std::string headerField(const std::string& text, std::size_t maxLength);

}  // namespace pacsgw::audit
