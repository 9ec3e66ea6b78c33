// Audit records as RFC 5424 messages in RFC 5425 octet-counting frames: the header is fixed, and no
// value from the wire (AE title, UID) can end a frame early, start another one or add structured data.
#include "gateway/audit/audit_message.h"
#include "gateway/audit/syslog_backlog.h"
#include "gateway/audit/syslog_frame.h"

#include "test_support.h"

#include <gtest/gtest.h>

#include <sys/stat.h>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include <string>
#include <vector>

using namespace pacsgw;

namespace {

// Splits a byte stream into RFC 5425 frames ("MSG-LEN SP MSG"), as a receiver does.
std::vector<std::string> parseFrames(const std::string& stream) {
  std::vector<std::string> messages;
  std::size_t at = 0;
  while (at < stream.size()) {
    const std::size_t space = stream.find(' ', at);
    if (space == std::string::npos) throw std::runtime_error("no length");
    const std::size_t length = std::stoul(stream.substr(at, space - at));
    if (space + 1 + length > stream.size()) throw std::runtime_error("truncated frame");
    messages.push_back(stream.substr(space + 1, length));
    at = space + 1 + length;
  }
  return messages;
}

const audit::SyslogHeader kHeader{"gw-host", "pacsgw", "4242"};

std::string forgedRecord(const std::string& aeTitle) {
  audit::AuditMessage m;
  m.eventId = {"110114", "DCM", "User Authentication"};
  m.outcome = audit::Outcome::MinorFailure;
  m.participants = {{aeTitle, "10.0.0.1", true, {"110153", "DCM", "Source Role ID"}}};
  m.sourceId = "GATEWAY";
  return audit::toXml(m, "2025-03-01T14:22:33.512Z");
}

}  // namespace

TEST(SyslogFrame, HeaderIsRfc5424WithTheRecordsOwnTimestamp) {
  const std::string record = forgedRecord("CT1");
  EXPECT_EQ(audit::syslogMessage(kHeader, record),
            "<85>1 2025-03-01T14:22:33.512Z gw-host pacsgw 4242 IHE+RFC-3881 - \xEF\xBB\xBF" + record);
}

TEST(SyslogFrame, OctetCountCoversTheWholeMessage) {
  const std::string record = forgedRecord("CT1");
  const std::string frame = audit::syslogFrame(kHeader, record);
  const std::string message = audit::syslogMessage(kHeader, record);
  EXPECT_EQ(frame, std::to_string(message.size()) + " " + message);
}

TEST(SyslogFrame, AForgedAeTitleCannotStartAnotherFrameOrAddStructuredData) {
  // Characters special to RFC 5424 structured data (] " \) and XML, a line break and a complete
  // fake frame with its own header.
  const std::string forged = "EV\"] [x@1 a=\"b\"]\\\n12 <13>1 - - - - - -\r\n</AuditMessage><AuditMessage>";
  const std::string stream = audit::syslogFrame(kHeader, forgedRecord(forged)) +
                             audit::syslogFrame(kHeader, forgedRecord("CT1"));
  const std::vector<std::string> messages = parseFrames(stream);
  ASSERT_EQ(messages.size(), 2u);
  const std::string prefix = "<85>1 2025-03-01T14:22:33.512Z gw-host pacsgw 4242 IHE+RFC-3881 - \xEF\xBB\xBF";
  for (const std::string& m : messages) {
    ASSERT_EQ(m.rfind(prefix, 0), 0u) << m;
    const std::string body = m.substr(prefix.size());
    EXPECT_EQ(body.find('\n'), std::string::npos);
    EXPECT_EQ(body.find('\r'), std::string::npos);
    // One record per message, the forged markup escaped inside its attribute.
    EXPECT_EQ(body.rfind("<AuditMessage>", 0), 0u);
    EXPECT_EQ(body.find("<AuditMessage>", 1), std::string::npos) << body;
    EXPECT_EQ(body.size() - body.rfind("</AuditMessage>"), std::string("</AuditMessage>").size());
  }
  EXPECT_NE(messages[0].find("UserID=\"EV&quot;] [x@1 a=&quot;b&quot;]\\12 &lt;13&gt;1"), std::string::npos)
      << messages[0];
}

TEST(SyslogFrame, HeaderFieldsArePrintableAsciiWithinTheirLimits) {
  EXPECT_EQ(audit::headerField("gw host\n\x01\xC3\xA9", 255), "gwhost");
  EXPECT_EQ(audit::headerField("", 48), "-");
  EXPECT_EQ(audit::headerField(std::string(100, 'a'), 48), std::string(48, 'a'));
  const std::string m = audit::syslogMessage({"a b", "app name", ""}, forgedRecord("CT1"));
  EXPECT_EQ(m.rfind("<85>1 2025-03-01T14:22:33.512Z ab appname - IHE+RFC-3881 - ", 0), 0u) << m;
}

TEST(SyslogFrame, TimestampIsTakenOnlyFromAWellFormedEventDateTime) {
  EXPECT_EQ(audit::recordTimestamp(forgedRecord("CT1")), "2025-03-01T14:22:33.512Z");
  EXPECT_EQ(audit::recordTimestamp("<AuditMessage><EventIdentification EventDateTime=\"x y\"/>"), "-");
  EXPECT_EQ(audit::recordTimestamp("no timestamp"), "-");
}

// The backlog counts complete records between the sent offset and the end of the log: appended ones
// raise it, acknowledged ones lower it, a rotation starts over; before the forwarder's position is
// known it is 0.
TEST(SyslogBacklog, CountsRecordsWrittenAndNotYetAcknowledged) {
  pacsgw::testing::TempDir dir("pacsgw-backlog");
  const std::string log = dir.file("audit.log");
  const auto append = [&](const std::string& text) {
    std::ofstream out(log, std::ios::app | std::ios::binary);
    out << text;
  };
  append("<r1/>\n<r2/>\n");
  struct stat st {};
  ASSERT_EQ(::stat(log.c_str(), &st), 0);
  audit::SyslogBacklog backlog(log);
  EXPECT_EQ(backlog.records(), 0u);
  backlog.restart(st.st_ino, 6);  // "<r1/>\n" was sent before a restart
  EXPECT_EQ(backlog.records(), 1u);
  append("<r3/>\n<r4");  // r4 still being written
  EXPECT_EQ(backlog.records(), 2u);
  append("/>\n");
  EXPECT_EQ(backlog.records(), 3u);
  backlog.acknowledged(2);
  EXPECT_EQ(backlog.records(), 1u);
  backlog.acknowledged(5);  // never below 0
  EXPECT_EQ(backlog.records(), 0u);
  // Rotated: a new file under the same name is counted from its beginning.
  std::filesystem::rename(log, log + ".1");
  append("<n1/>\n<n2/>\n<n3/>\n");
  EXPECT_EQ(backlog.records(), 3u);
}
