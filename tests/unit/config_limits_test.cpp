// The limits section: defaults, every key read, ranges and the ordering between the memory limits.
#include "config/config.h"

#include <gtest/gtest.h>

#include <string>

using namespace pacsgw::config;

namespace {

std::string withLimits(const std::string& limits) {
  return "gateway: { ae_title: GATEWAY, port: 11113 }\n"
         "upstream: { ae_title: PACS, host: 127.0.0.1, port: 104 }\n"
         "keystore: { path: /srv/ks.db, master_key_file: /srv/master.key }\n" +
         limits;
}

std::string issuesText(const std::string& yaml) {
  try {
    parseConfig(yaml, "test.yaml");
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

TEST(ConfigLimits, DefaultsWhenAbsent) {
  const Config c = parseConfig(withLimits(""));
  EXPECT_EQ(c.limits.associationRequestTimeoutSeconds, 5u);
  EXPECT_EQ(c.limits.maxConnections, 0u);
  EXPECT_EQ(c.limits.maxConnectionsPerAddress, 16u);
  EXPECT_EQ(c.limits.maxObjectMb, 1024u);
  EXPECT_EQ(c.limits.maxAssociationMb, 1024u);
  EXPECT_EQ(c.limits.maxInFlightMb, 2048u);
  EXPECT_EQ(c.limits.streamAboveMb, 64u);
}

TEST(ConfigLimits, StreamAboveIsReadRoundTripsAndMayBeOff) {
  const Config c = parseConfig(withLimits("limits: { stream_above_mb: 256 }\n"));
  EXPECT_EQ(c.limits.streamAboveMb, 256u);
  EXPECT_EQ(parseConfig(toYaml(c)).limits.streamAboveMb, 256u);
  EXPECT_EQ(parseConfig(withLimits("limits: { stream_above_mb: 0 }\n")).limits.streamAboveMb, 0u);
  EXPECT_NE(issuesText(withLimits("limits: { stream_above_mb: -1 }\n")).find("limits.stream_above_mb"),
            std::string::npos);
  EXPECT_NE(issuesText(withLimits("limits: { stream_above_mb: 70000 }\n")).find("limits.stream_above_mb"),
            std::string::npos);
}

TEST(ConfigLimits, EveryKeyIsReadAndRoundTrips) {
  const Config c = parseConfig(withLimits(
      "limits: { association_request_timeout_s: 3, max_connections: 40, max_connections_per_address: 4,\n"
      "          max_object_mb: 64, max_association_mb: 128, max_in_flight_mb: 256 }\n"));
  EXPECT_EQ(c.limits.associationRequestTimeoutSeconds, 3u);
  EXPECT_EQ(c.limits.maxConnections, 40u);
  EXPECT_EQ(c.limits.maxConnectionsPerAddress, 4u);
  EXPECT_EQ(c.limits.maxObjectMb, 64u);
  EXPECT_EQ(c.limits.maxAssociationMb, 128u);
  EXPECT_EQ(c.limits.maxInFlightMb, 256u);
  const Config again = parseConfig(toYaml(c));
  EXPECT_EQ(again.limits.maxConnectionsPerAddress, 4u);
  EXPECT_EQ(again.limits.maxInFlightMb, 256u);
}

TEST(ConfigLimits, RangesAndOrderingAreChecked) {
  EXPECT_NE(issuesText(withLimits("limits: { association_request_timeout_s: 0 }\n"))
                .find("limits.association_request_timeout_s"),
            std::string::npos);
  EXPECT_NE(issuesText(withLimits("limits: { max_connections_per_address: 0 }\n"))
                .find("limits.max_connections_per_address"),
            std::string::npos);
  const std::string ordering =
      issuesText(withLimits("limits: { max_object_mb: 512, max_association_mb: 256, max_in_flight_mb: 128 }\n"));
  EXPECT_NE(ordering.find("limits.max_association_mb: must be at least limits.max_object_mb"), std::string::npos)
      << ordering;
  EXPECT_NE(ordering.find("limits.max_in_flight_mb: must be at least limits.max_association_mb"), std::string::npos)
      << ordering;
  EXPECT_NE(issuesText(withLimits("limits: { max_objet_mb: 5 }\n")).find("unknown key"), std::string::npos);
}

}  // namespace

namespace {
// A two-byte file once made `pacsgw config check` spin forever inside the YAML library.
TEST(ConfigText, ControlCharactersAreRefusedWithTheirPosition) {
  EXPECT_NE(issuesText(std::string(",\x03", 2)).find("control character 0x03 at line 1, column 2"), std::string::npos);
  EXPECT_NE(issuesText(std::string("gateway:\n  \0", 12)).find("control character 0x00 at line 2, column 3"),
            std::string::npos);
  EXPECT_EQ(issuesText(withLimits("limits:\t{ max_object_mb: 8 }\r\n")), "") << "tab and CR LF are fine";
}

// A file holding a lone comma made the YAML library loop forever, allocating as it went.
TEST(ConfigText, StrayTopLevelCommaIsASyntaxError) {
  EXPECT_NE(issuesText(",").find("YAML syntax error at line 1, column 1: unexpected ','"), std::string::npos)
      << issuesText(",");
  EXPECT_NE(issuesText(", # a comment").find("unexpected ','"), std::string::npos);
  EXPECT_NE(issuesText("---\na: 1\n---\nb: 2\n").find("expected one YAML document, found 2"), std::string::npos);
}
}  // namespace
