#include "gateway/audit/syslog_frame.h"

namespace pacsgw::audit {

std::string headerField(const std::string& text, std::size_t maxLength) {
  std::string out;
  for (const char ch : text) {
    const unsigned char c = static_cast<unsigned char>(ch);
    if (c < 33 || c > 126) continue;
    if (out.size() == maxLength) break;
    out.push_back(ch);
  }
  return out.empty() ? "-" : out;
}

std::string recordTimestamp(const std::string& xmlRecord) {
  static const std::string kAttribute = "EventDateTime=\"";
  const auto start = xmlRecord.find(kAttribute);
  if (start == std::string::npos) return "-";
  const auto begin = start + kAttribute.size();
  const auto end = xmlRecord.find('"', begin);
  if (end == std::string::npos) return "-";
  // Only the shape toXml() writes (2025-03-01T14:22:33.512Z) is a valid RFC 5424 TIMESTAMP here.
  const std::string value = xmlRecord.substr(begin, end - begin);
  if (value.size() != 24 || value[10] != 'T' || value.back() != 'Z') return "-";
  for (std::size_t i = 0; i < value.size(); ++i) {
    const char c = value[i];
    const bool separator = i == 4 || i == 7 || i == 10 || i == 13 || i == 16 || i == 19 || i == 23;
    if (!separator && (c < '0' || c > '9')) return "-";
  }
  return value;
}

std::string syslogMessage(const SyslogHeader& header, const std::string& xmlRecord) {
  std::string m = "<85>1 ";
  m += recordTimestamp(xmlRecord) + ' ';
  m += headerField(header.hostname, 255) + ' ';
  m += headerField(header.appName, 48) + ' ';
  m += headerField(header.procId, 128) + ' ';
  m += "IHE+RFC-3881 - ";
  m += "\xEF\xBB\xBF";  // the BOM: the message is UTF-8 (RFC 5424 section 6.4)
  m += xmlRecord;
  return m;
}

std::string syslogFrame(const SyslogHeader& header, const std::string& xmlRecord) {
  const std::string message = syslogMessage(header, xmlRecord);
  return std::to_string(message.size()) + ' ' + message;
}

}  // namespace pacsgw::audit
