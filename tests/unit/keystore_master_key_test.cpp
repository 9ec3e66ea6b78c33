// Master key sources: file permission and format checks, environment variable parsing, generation.
#include "keystore/keystore.h"

#include "test_support.h"

#include <gtest/gtest.h>

#include <sys/stat.h>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>

using pacsgw::SecretBytes;
using namespace pacsgw::keystore;
namespace fs = std::filesystem;

namespace {

struct TempDir : pacsgw::testing::TempDir {
  TempDir() : pacsgw::testing::TempDir("pacsgw-mk") {}
};
using pacsgw::testing::writeFile;


const std::string kHex = pacsgw::testing::kTestMasterKeyHex;


std::string hexOf(const SecretBytes& key) {
  static const char digits[] = "0123456789abcdef";
  std::string out;
  for (std::size_t i = 0; i < key.size(); ++i) {
    out.push_back(digits[key.data()[i] >> 4]);
    out.push_back(digits[key.data()[i] & 0xf]);
  }
  return out;
}

std::string errorOf(const std::function<void()>& action) {
  try {
    action();
  } catch (const KeystoreError& e) {
    return e.what();
  }
  return "(no KeystoreError thrown)";
}

class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (value != nullptr) {
      ::setenv(name, value, 1);
    } else {
      ::unsetenv(name);
    }
  }
  ~ScopedEnv() { ::unsetenv(name_); }

 private:
  const char* name_;
};

}  // namespace

TEST(MasterKeyFile, AcceptsHexWithAndWithoutNewline) {
  TempDir dir;
  for (const std::string& content : {kHex, kHex + "\n", kHex + "\r\n"}) {
    writeFile(dir.file("k"), content, 0600);
    EXPECT_EQ(hexOf(loadMasterKeyFromFile(dir.file("k"))), kHex);
  }
  std::string upper = kHex;
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  writeFile(dir.file("k"), upper, 0400);
  EXPECT_EQ(hexOf(loadMasterKeyFromFile(dir.file("k"))), kHex);
}

TEST(MasterKeyFile, AcceptsThirtyTwoRawBytes) {
  TempDir dir;
  std::string raw(32, '\0');
  for (int i = 0; i < 32; ++i) raw[i] = static_cast<char>(0xe0 + i);
  writeFile(dir.file("k"), raw, 0600);
  const SecretBytes key = loadMasterKeyFromFile(dir.file("k"));
  ASSERT_EQ(key.size(), 32u);
  EXPECT_EQ(key.data()[0], 0xe0);
  EXPECT_EQ(key.data()[31], 0xff);
}

TEST(MasterKeyFile, RefusesGroupOrOtherAccessNamingPathModeAndFix) {
  TempDir dir;
  for (mode_t mode : {0644, 0640, 0604, 0660, 0601}) {
    writeFile(dir.file("k"), kHex, mode);
    const std::string message = errorOf([&] { loadMasterKeyFromFile(dir.file("k")); });
    char octal[8];
    std::snprintf(octal, sizeof octal, "%04o", static_cast<unsigned>(mode));
    EXPECT_NE(message.find(dir.file("k")), std::string::npos) << message;
    EXPECT_NE(message.find(octal), std::string::npos) << message;
    EXPECT_NE(message.find("chmod 600"), std::string::npos) << message;
    EXPECT_EQ(message.find(kHex), std::string::npos);
  }
}

TEST(MasterKeyFile, RefusesMissingDirectoryAndBadContent) {
  TempDir dir;
  EXPECT_NE(errorOf([&] { loadMasterKeyFromFile(dir.file("absent")); }).find("does not exist"), std::string::npos);
  fs::create_directory(dir.file("d"));
  ::chmod(dir.file("d").c_str(), 0700);
  EXPECT_NE(errorOf([&] { loadMasterKeyFromFile(dir.file("d")); }).find("not a regular file"), std::string::npos);

  const std::string bad[] = {"",
                             kHex.substr(0, 62),
                             kHex + "00",
                             kHex + "\n\n",
                             std::string(33, 'a'),
                             kHex.substr(0, 63) + "g",
                             std::string(31, 'x'),
                             kHex + " "};
  for (const std::string& content : bad) {
    writeFile(dir.file("k"), content, 0600);
    const std::string message = errorOf([&] { loadMasterKeyFromFile(dir.file("k")); });
    EXPECT_NE(message.find(dir.file("k")), std::string::npos) << message;
    EXPECT_EQ(message.find(kHex.substr(0, 16)), std::string::npos) << "key bytes leaked: " << message;
  }
}

TEST(MasterKeyFile, GenerateCreatesPrivateHexFileOnce) {
  TempDir dir;
  const std::string path = dir.file("master.key");
  ASSERT_TRUE(generateMasterKeyFile(path));
  struct stat info {};
  ASSERT_EQ(::stat(path.c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 07777, 0600u);
  EXPECT_EQ(info.st_size, 65);
  const SecretBytes first = loadMasterKeyFromFile(path);
  EXPECT_EQ(first.size(), 32u);

  // Never overwrites an existing key.
  EXPECT_FALSE(generateMasterKeyFile(path));
  EXPECT_EQ(hexOf(loadMasterKeyFromFile(path)), hexOf(first));

  // Two generated keys differ.
  ASSERT_TRUE(generateMasterKeyFile(dir.file("other.key")));
  EXPECT_NE(hexOf(loadMasterKeyFromFile(dir.file("other.key"))), hexOf(first));

  EXPECT_THROW(generateMasterKeyFile(dir.file("no/such/dir/master.key")), KeystoreError);
}

TEST(MasterKeyFile, GenerateIgnoresPermissiveUmask) {
  TempDir dir;
  const mode_t old = ::umask(0);
  const bool created = generateMasterKeyFile(dir.file("k"));
  ::umask(old);
  ASSERT_TRUE(created);
  struct stat info {};
  ASSERT_EQ(::stat(dir.file("k").c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 07777, 0600u);
}

TEST(MasterKeyEnv, ParsesHex) {
  ScopedEnv env("PACSGW_TEST_MASTER_KEY", kHex.c_str());
  EXPECT_EQ(hexOf(loadMasterKeyFromEnv("PACSGW_TEST_MASTER_KEY")), kHex);
}

TEST(MasterKeyEnv, ToleratesSurroundingWhitespaceAndUpperCase) {
  std::string upper = kHex;
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  const std::string value = "  " + upper + "\n";
  ScopedEnv env("PACSGW_TEST_MASTER_KEY", value.c_str());
  EXPECT_EQ(hexOf(loadMasterKeyFromEnv("PACSGW_TEST_MASTER_KEY")), kHex);
}

TEST(MasterKeyEnv, RefusesUnsetWrongLengthAndNonHexWithoutEchoingValue) {
  {
    ScopedEnv env("PACSGW_TEST_MASTER_KEY", nullptr);
    const std::string message = errorOf([] { loadMasterKeyFromEnv("PACSGW_TEST_MASTER_KEY"); });
    EXPECT_NE(message.find("PACSGW_TEST_MASTER_KEY"), std::string::npos);
    EXPECT_NE(message.find("not set"), std::string::npos);
  }
  for (const std::string& value : {std::string(), kHex.substr(0, 32), kHex + "ab", kHex.substr(0, 63) + "z"}) {
    ScopedEnv env("PACSGW_TEST_MASTER_KEY", value.c_str());
    const std::string message = errorOf([] { loadMasterKeyFromEnv("PACSGW_TEST_MASTER_KEY"); });
    EXPECT_NE(message.find("64 hex"), std::string::npos) << message;
    EXPECT_EQ(message.find(kHex.substr(0, 16)), std::string::npos) << "key bytes leaked: " << message;
  }
}
