// upstream.forward and the spool section: defaults, accepted values, and precise messages.
#include "config/config.h"

#include <gtest/gtest.h>

#include <string>

using namespace pacsgw::config;

namespace {

std::string document(const std::string& upstreamExtra, const std::string& rest = "") {
  return "gateway: { ae_title: GATEWAY, port: 11113, data_dir: /srv/pacsgw }\n"
         "upstream: { ae_title: PACS, host: pacs.example.org, port: 104" +
         upstreamExtra + " }\nkeystore: { path: /srv/ks.db, master_key_file: /srv/master.key }\n" + rest;
}

std::string messagesOf(const std::string& yaml) {
  try {
    parseConfig(yaml, "test.yaml");
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

TEST(ConfigSpool, DefaultsAreSyncWithASpoolUnderTheDataDir) {
  const Config c = parseConfig(document(""));
  EXPECT_EQ(c.upstream.forward, "sync");
  EXPECT_EQ(spoolDirectory(c), "/srv/pacsgw/spool");
  EXPECT_EQ(c.spool.associations, 2u);
  EXPECT_EQ(c.spool.maxInstances, 100000u);
  EXPECT_EQ(c.spool.maxBytes, 10ull << 30);
}

TEST(ConfigSpool, QueuedWithEverySpoolKey) {
  const Config c = parseConfig(document(", forward: queued",
                                        "spool: { dir: /fast/spool, max_bytes: 2147483648, max_instances: 5000,\n"
                                        "         associations: 4, retry_initial_s: 2, retry_max_s: 120,\n"
                                        "         processing_failure_attempts: 5 }\n"));
  EXPECT_EQ(c.upstream.forward, "queued");
  EXPECT_EQ(spoolDirectory(c), "/fast/spool");
  EXPECT_EQ(c.spool.maxBytes, 2147483648ull);
  EXPECT_EQ(c.spool.maxInstances, 5000u);
  EXPECT_EQ(c.spool.associations, 4u);
  EXPECT_EQ(c.spool.retryInitialSeconds, 2u);
  EXPECT_EQ(c.spool.retryMaxSeconds, 120u);
  EXPECT_EQ(c.spool.processingFailureAttempts, 5u);
  // And back out: toYaml writes every key so the file round-trips.
  const Config again = parseConfig(toYaml(c));
  EXPECT_EQ(again.upstream.forward, "queued");
  EXPECT_EQ(spoolDirectory(again), "/fast/spool");
  EXPECT_EQ(again.spool.maxBytes, c.spool.maxBytes);
}

TEST(ConfigSpool, MistakesAreNamedAtTheirKey) {
  EXPECT_NE(messagesOf(document(", forward: later")).find("upstream.forward: must be one of sync, queued"),
            std::string::npos)
      << messagesOf(document(", forward: later"));
  EXPECT_NE(messagesOf(document("", "spool: { associations: 0 }\n")).find("spool.associations: must be between 1"),
            std::string::npos);
  EXPECT_NE(messagesOf(document("", "spool: { max_bytes: 1000 }\n")).find("spool.max_bytes"), std::string::npos);
  EXPECT_NE(messagesOf(document("", "spool: { retry_initial_s: 10, retry_max_s: 5 }\n")).find("spool.retry_max_s"),
            std::string::npos);
  EXPECT_NE(messagesOf(document("", "spool: { max_instance: 5 }\n")).find("did you mean 'max_instances'"),
            std::string::npos)
      << messagesOf(document("", "spool: { max_instance: 5 }\n"));
}

}  // namespace
