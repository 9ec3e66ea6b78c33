// checkFiles(): master key file and environment, data_dir and keystore directory, against real files.
#include "config/config.h"

#include "test_support.h"

#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

using namespace pacsgw::config;
namespace fs = std::filesystem;

namespace {

struct TempDir : pacsgw::testing::TempDir {
  TempDir() : pacsgw::testing::TempDir("pacsgw-cfg") {}
};
using pacsgw::testing::writeFile;


const std::string kHex = pacsgw::testing::kTestMasterKeyHex;


// A valid configuration whose files all live in `dir`.
Config configIn(const TempDir& dir) {
  Config c = embeddedDefaults(dir.file("data"));
  fs::create_directory(dir.file("data"));
  writeFile(c.keystore.masterKeyFile, kHex + "\n", 0600);
  return c;
}

std::string keysOf(const std::vector<ConfigIssue>& issues) {
  std::string out;
  for (const ConfigIssue& issue : issues) out += (out.empty() ? "" : ",") + issue.key;
  return out;
}

}  // namespace

TEST(ConfigFiles, ValidSetupHasNoIssues) {
  TempDir dir;
  const std::vector<ConfigIssue> issues = checkFiles(configIn(dir));
  EXPECT_TRUE(issues.empty()) << issues[0].key << ": " << issues[0].message;
}

TEST(ConfigFiles, DataDirThatCanBeCreatedIsFine) {
  TempDir dir;
  Config c = configIn(dir);
  c.gateway.dataDir = dir.file("not/yet/there");
  EXPECT_TRUE(checkFiles(c).empty());
  // The keystore may sit directly in a data_dir that the gateway will create.
  c.keystore.path = dir.file("not/yet/there/keystore.db");
  EXPECT_TRUE(checkFiles(c).empty());
}

TEST(ConfigFiles, DataDirThatIsAFileIsReported) {
  TempDir dir;
  Config c = configIn(dir);
  writeFile(dir.file("plain"), "x", 0600);
  c.gateway.dataDir = dir.file("plain");
  const auto issues = checkFiles(c);
  ASSERT_EQ(keysOf(issues), "gateway.data_dir");
  EXPECT_NE(issues[0].message.find("not a directory"), std::string::npos) << issues[0].message;
}

TEST(ConfigFiles, MissingMasterKeyFileSaysHowToCreateIt) {
  TempDir dir;
  Config c = configIn(dir);
  c.sourcePath = "/etc/pacsgw/gateway.yaml";
  fs::remove(c.keystore.masterKeyFile);
  const auto issues = checkFiles(c);
  ASSERT_EQ(keysOf(issues), "keystore.master_key_file");
  EXPECT_NE(issues[0].message.find("does not exist"), std::string::npos);
  EXPECT_NE(issues[0].message.find("pacsgw keys init-master --config /etc/pacsgw/gateway.yaml"), std::string::npos)
      << issues[0].message;
}

TEST(ConfigFiles, PermissiveMasterKeyFileIsReportedWithModeAndFix) {
  TempDir dir;
  Config c = configIn(dir);
  ::chmod(c.keystore.masterKeyFile.c_str(), 0644);
  const auto issues = checkFiles(c);
  ASSERT_EQ(keysOf(issues), "keystore.master_key_file");
  EXPECT_NE(issues[0].message.find("0644"), std::string::npos) << issues[0].message;
  EXPECT_NE(issues[0].message.find("chmod 600 " + c.keystore.masterKeyFile), std::string::npos) << issues[0].message;
}

TEST(ConfigFiles, MalformedMasterKeyFileIsReportedWithoutContent) {
  TempDir dir;
  Config c = configIn(dir);
  for (const std::string& content : {std::string("secret"), kHex.substr(0, 63) + "x\n", std::string(100, 'a')}) {
    writeFile(c.keystore.masterKeyFile, content, 0600);
    const auto issues = checkFiles(c);
    ASSERT_EQ(keysOf(issues), "keystore.master_key_file") << content;
    EXPECT_EQ(issues[0].message.find(content.substr(0, 6)), std::string::npos) << issues[0].message;
  }
  writeFile(c.keystore.masterKeyFile, std::string(32, '\x01'), 0400);  // 32 raw bytes is valid
  EXPECT_TRUE(checkFiles(c).empty());
  fs::remove(c.keystore.masterKeyFile);
  fs::create_directory(c.keystore.masterKeyFile);
  EXPECT_EQ(keysOf(checkFiles(c)), "keystore.master_key_file");
}

TEST(ConfigFiles, MasterKeyEnvironmentVariable) {
  TempDir dir;
  Config c = configIn(dir);
  c.keystore.masterKeyFile.clear();
  c.keystore.masterKeyEnv = "PACSGW_TEST_CFG_MASTER_KEY";
  ::unsetenv("PACSGW_TEST_CFG_MASTER_KEY");
  auto issues = checkFiles(c);
  ASSERT_EQ(keysOf(issues), "keystore.master_key_env");
  EXPECT_NE(issues[0].message.find("PACSGW_TEST_CFG_MASTER_KEY is not set"), std::string::npos) << issues[0].message;

  ::setenv("PACSGW_TEST_CFG_MASTER_KEY", "tooshort", 1);
  issues = checkFiles(c);
  ASSERT_EQ(keysOf(issues), "keystore.master_key_env");
  EXPECT_NE(issues[0].message.find("64 hex"), std::string::npos);
  EXPECT_EQ(issues[0].message.find("tooshort"), std::string::npos) << "value leaked: " << issues[0].message;

  ::setenv("PACSGW_TEST_CFG_MASTER_KEY", kHex.c_str(), 1);
  EXPECT_TRUE(checkFiles(c).empty());
  ::unsetenv("PACSGW_TEST_CFG_MASTER_KEY");
}

TEST(ConfigFiles, KeystoreDirectoryMustExist) {
  TempDir dir;
  Config c = configIn(dir);
  c.keystore.path = dir.file("elsewhere/keystore.db");
  const auto issues = checkFiles(c);
  ASSERT_EQ(keysOf(issues), "keystore.path");
  EXPECT_NE(issues[0].message.find("does not exist"), std::string::npos);

  fs::create_directory(dir.file("elsewhere"));
  EXPECT_TRUE(checkFiles(c).empty());
  fs::create_directory(c.keystore.path);  // a directory where the file should be
  EXPECT_EQ(keysOf(checkFiles(c)), "keystore.path");
}

TEST(ConfigFiles, AllProblemsAreReportedTogether) {
  TempDir dir;
  Config c = configIn(dir);
  writeFile(dir.file("plain"), "x", 0600);
  c.gateway.dataDir = dir.file("plain");
  c.keystore.path = dir.file("missing/keystore.db");
  ::chmod(c.keystore.masterKeyFile.c_str(), 0640);
  EXPECT_EQ(keysOf(checkFiles(c)), "gateway.data_dir,keystore.path,keystore.master_key_file");
}

// A TLS private key: the gateway's user, and at most its own group, may read it (the mode and group a
// Kubernetes Secret volume with fsGroup gives its files); others, a foreign group or a writer may not.
TEST(ConfigFiles, TlsPrivateKeyReadableOnlyByTheGatewayAndItsOwnGroup) {
  TempDir dir;
  Config c = configIn(dir);
  c.gateway.tls.enabled = true;
  c.gateway.tls.certificate = dir.file("gateway.pem");
  c.gateway.tls.privateKey = dir.file("gateway.key");
  c.gateway.tls.caBundle = dir.file("ca.pem");
  writeFile(c.gateway.tls.certificate, "cert", 0644);
  writeFile(c.gateway.tls.caBundle, "ca", 0644);
  writeFile(c.gateway.tls.privateKey, "key", 0600);
  ASSERT_EQ(::chown(c.gateway.tls.privateKey.c_str(), static_cast<uid_t>(-1), ::getegid()), 0);
  EXPECT_EQ(keysOf(checkFiles(c)), "");
  ::chmod(c.gateway.tls.privateKey.c_str(), 0440);  // the Kubernetes Secret file, group = our group
  EXPECT_EQ(keysOf(checkFiles(c)), "");
  ::chmod(c.gateway.tls.privateKey.c_str(), 0444);
  auto issues = checkFiles(c);
  ASSERT_EQ(keysOf(issues), "gateway.tls.private_key");
  EXPECT_NE(issues[0].message.find("mode 0444, which gives other users"), std::string::npos) << issues[0].message;
  ::chmod(c.gateway.tls.privateKey.c_str(), 0460);
  EXPECT_EQ(keysOf(checkFiles(c)), "gateway.tls.private_key");
  // Group read by a group that is not the gateway's own.
  const gid_t foreign = ::getegid() == 0 ? 1 : 0;
  ::chmod(c.gateway.tls.privateKey.c_str(), 0440);
  if (::chown(c.gateway.tls.privateKey.c_str(), static_cast<uid_t>(-1), foreign) == 0) {
    issues = checkFiles(c);
    ASSERT_EQ(keysOf(issues), "gateway.tls.private_key");
    EXPECT_NE(issues[0].message.find("not the gateway's own group"), std::string::npos) << issues[0].message;
  }
}
