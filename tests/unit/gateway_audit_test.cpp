// Audit messages: well-formed, one line each, values from the wire cannot forge or break a record;
// records are on disk when record() returns.
#include "gateway/audit/audit_message.h"
#include "gateway/audit/audit_trail.h"
#include "test_support.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

using namespace pacsgw;

namespace {

std::vector<std::string> lines(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> out;
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

std::size_t count(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

}  // namespace

TEST(AuditMessage, EscapesMarkupAndDropsControlCharacters) {
  EXPECT_EQ(audit::escapeXml("a<b>&\"c'"), "a&lt;b&gt;&amp;&quot;c&apos;");
  EXPECT_EQ(audit::escapeXml("line1\r\nline2\x1b[31m\x7f"), "line1line2[31m");
  EXPECT_EQ(audit::escapeXml(std::string(2000, 'x')).size(), 1024u + 3u);
}

TEST(AuditMessage, AForgedAeTitleStaysInsideItsAttribute) {
  audit::AuditMessage m;
  m.eventId = {"110114", "DCM", "User Authentication"};
  m.action = 'E';
  m.outcome = audit::Outcome::MinorFailure;
  m.outcomeDescription = "calling AE title\nnot configured";
  m.participants = {{"EVIL\"/><AuditMessage>\n", "10.0.0.1", true, {"110153", "DCM", "Source Role ID"}}};
  m.sourceId = "GATEWAY";
  const std::string xml = audit::toXml(m, "2025-01-01T00:00:00.000Z");
  EXPECT_EQ(xml.find('\n'), std::string::npos);
  EXPECT_EQ(count(xml, "<AuditMessage>"), 1u);
  EXPECT_EQ(count(xml, "</AuditMessage>"), 1u);
  EXPECT_NE(xml.find("UserID=\"EVIL&quot;/&gt;&lt;AuditMessage&gt;\""), std::string::npos) << xml;
  EXPECT_NE(xml.find("EventOutcomeIndicator=\"4\""), std::string::npos);
  EXPECT_NE(xml.find("<EventID csd-code=\"110114\" codeSystemName=\"DCM\""), std::string::npos);
}

TEST(AuditTrail, EachEventIsOneDurableLine) {
  pacsgw::testing::TempDir dir("pacsgw-audit");
  const std::string path = dir.file("audit.log");
  audit::open(path, "GATEWAY");
  audit::applicationStarted("test");
  audit::associationRefused({"CT9", "10.1.2.3"}, "calling AE title and host are not configured");
  audit::instancesStored({"CT1", "10.1.2.4"}, "1.2.3", "PID<1>", 5, 1);
  audit::instancesTransferred({"WS2", "10.1.2.5"}, {"WS1", "10.1.2.6"}, "1.2.3", 4, 0, true);
  audit::securityAlert("BoundAttributesChanged", "rescale slope changed", {"PACS", "10.1.2.7"}, "1.2.3.4");
  audit::keyEvent("denied", "0b6d3c1e-8f4a-4c2b-9e7d-5a1f3b2c4d6e", "1.2.3", false, "key destroyed");
  // Read back without closing: fdatasync ran before each call returned.
  const auto got = lines(path);
  audit::close();
  ASSERT_EQ(got.size(), 6u);
  for (const auto& line : got) {
    EXPECT_EQ(line.rfind("<AuditMessage>", 0), 0u) << line;
    EXPECT_EQ(line.substr(line.size() - 15), "</AuditMessage>") << line;
    EXPECT_NE(line.find("AuditSourceID=\"GATEWAY\""), std::string::npos);
  }
  EXPECT_NE(got[0].find("csd-code=\"110120\""), std::string::npos);  // Application Start
  EXPECT_NE(got[1].find("csd-code=\"110114\""), std::string::npos);
  EXPECT_NE(got[1].find("UserID=\"CT9\""), std::string::npos);
  EXPECT_NE(got[2].find("EventActionCode=\"C\""), std::string::npos);
  EXPECT_NE(got[2].find("PID&lt;1&gt;"), std::string::npos);
  EXPECT_NE(got[3].find("csd-code=\"DECRYPTED\""), std::string::npos);
  EXPECT_NE(got[3].find("UserID=\"WS1\""), std::string::npos);
  EXPECT_NE(got[4].find("csd-code=\"110113\""), std::string::npos);
  EXPECT_NE(got[4].find("EventOutcomeIndicator=\"8\""), std::string::npos);
  EXPECT_NE(got[5].find("KEY-denied"), std::string::npos);

  // Appending: a reopened trail adds to what is there, it never truncates.
  audit::open(path, "GATEWAY");
  audit::applicationStopped("test");
  audit::close();
  EXPECT_EQ(lines(path).size(), 7u);
  audit::applicationStopped("not open: dropped");
  EXPECT_EQ(lines(path).size(), 7u);
}
