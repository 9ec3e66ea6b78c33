// The relay capsule: only the addressed peer opens it, only the configured sender's signature is
// accepted, altered bytes are refused, and a capsule only releases its key for the study it names.
#include "codecs/dicom_crypt.h"
#include "gateway/instance_protector.h"
#include "gateway/relay/relay_capsule.h"
#include "gateway/relay/relay_element.h"
#include "gateway/relay/relay_service.h"
#include "test_support.h"

#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <gtest/gtest.h>
#include <openssl/ec.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include <cstdio>

using namespace pacsgw;
using namespace pacsgw::gateway::relay;

namespace {

constexpr const char* kKeyId = "3f1c2a9e-5b7d-4e21-9c3a-7d2e1f0a4b6c";

// A self-signed relay certificate and its key, like `openssl req -x509` makes them.
RelayKeyPair makeKeyPair(const std::string& commonName, bool rsa = false) {
  RelayKeyPair pair;
  pair.privateKey.reset(rsa ? EVP_RSA_gen(2048) : EVP_EC_gen("P-256"));
  X509* x = X509_new();
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
  X509_gmtime_adj(X509_getm_notBefore(x), 0);
  X509_gmtime_adj(X509_getm_notAfter(x), 3600);
  X509_set_pubkey(x, pair.privateKey.get());
  X509_NAME* name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(commonName.c_str()), -1,
                             -1, 0);
  X509_set_issuer_name(x, name);
  X509_sign(x, pair.privateKey.get(), EVP_sha256());
  pair.certificate.reset(x);
  return pair;
}

void writePem(const RelayKeyPair& pair, const std::string& certPath, const std::string& keyPath) {
  FILE* c = std::fopen(certPath.c_str(), "w");
  PEM_write_X509(c, pair.certificate.get());
  std::fclose(c);
  FILE* k = std::fopen(keyPath.c_str(), "w");
  PEM_write_PrivateKey(k, pair.privateKey.get(), nullptr, nullptr, 0, nullptr, nullptr);
  std::fclose(k);
  ::chmod(keyPath.c_str(), 0600);
}

SecretBytes testKey(std::uint8_t seed) {
  SecretBytes k(32);
  for (std::size_t i = 0; i < 32; ++i) k.data()[i] = static_cast<std::uint8_t>(seed + 3 * i);
  return k;
}

CapsuleContent content(const std::string& study) {
  CapsuleContent c;
  c.senderAeTitle = "SITE_A";
  c.recipientAeTitle = "SITE_B";
  c.studyUid = study;
  c.keyId = kKeyId;
  c.scope = keystore::KeyScope::Study;
  c.scopeUid = study;
  c.backendId = "aes-256-gcm";
  c.dataKey = testKey(9);
  return c;
}

bool sameKey(const SecretBytes& a, const SecretBytes& b) {
  return a.size() == b.size() && std::equal(a.data(), a.data() + a.size(), b.data());
}

CapsuleErrorKind openKind(const std::vector<std::uint8_t>& der, const RelayKeyPair& recipient, X509* sender) {
  try {
    openCapsule(der.data(), der.size(), recipient, sender);
  } catch (const CapsuleError& e) {
    return e.kind();
  }
  ADD_FAILURE() << "the capsule opened";
  return CapsuleErrorKind::Malformed;
}

}  // namespace

TEST(RelayCapsule, RoundTripWithEcAndRsaRecipients) {
  for (const bool rsa : {false, true}) {
    const RelayKeyPair a = makeKeyPair("site-a", rsa);
    const RelayKeyPair b = makeKeyPair("site-b", rsa);
    const std::vector<std::uint8_t> der = sealCapsule(content("1.2.3.4"), a, b.certificate.get());
    const CapsuleContent opened = openCapsule(der.data(), der.size(), b, a.certificate.get());
    EXPECT_EQ(opened.studyUid, "1.2.3.4");
    EXPECT_EQ(opened.keyId, kKeyId);
    EXPECT_EQ(opened.senderAeTitle, "SITE_A");
    EXPECT_EQ(opened.recipientAeTitle, "SITE_B");
    EXPECT_EQ(opened.backendId, "aes-256-gcm");
    EXPECT_EQ(opened.scope, keystore::KeyScope::Study);
    EXPECT_TRUE(sameKey(opened.dataKey, testKey(9))) << (rsa ? "RSA" : "EC");
    // The key never appears in clear in what crosses the network.
    const SecretBytes key = testKey(9);
    EXPECT_EQ(std::search(der.begin(), der.end(), key.data(), key.data() + key.size()), der.end());
  }
}

TEST(RelayCapsule, OnlyTheAddressedRecipientOpensIt) {
  const RelayKeyPair a = makeKeyPair("site-a"), b = makeKeyPair("site-b"), c = makeKeyPair("site-c");
  const std::vector<std::uint8_t> der = sealCapsule(content("1.2.3.4"), a, b.certificate.get());
  EXPECT_EQ(openKind(der, c, a.certificate.get()), CapsuleErrorKind::NotForUs);
}

TEST(RelayCapsule, AlteredBytesAreRefused) {
  const RelayKeyPair a = makeKeyPair("site-a"), b = makeKeyPair("site-b");
  const std::vector<std::uint8_t> der = sealCapsule(content("1.2.3.4"), a, b.certificate.get());
  // Every byte of the encrypted content and the GCM tag (the last ~part of the envelope) is covered.
  for (std::size_t offset : {der.size() - 1, der.size() - 20, der.size() - 200, der.size() / 2}) {
    std::vector<std::uint8_t> altered = der;
    altered[offset] ^= 0x01;
    try {
      openCapsule(altered.data(), altered.size(), b, a.certificate.get());
      ADD_FAILURE() << "altered byte " << offset << " was accepted";
    } catch (const CapsuleError&) {
    }
  }
  std::vector<std::uint8_t> truncated(der.begin(), der.end() - 1);
  EXPECT_EQ(openKind(truncated, b, a.certificate.get()), CapsuleErrorKind::Malformed);
}

TEST(RelayCapsule, SignatureOfAnotherSiteIsRefused) {
  // Site C knows B's public certificate and seals a capsule to B: B expects A's signature.
  const RelayKeyPair a = makeKeyPair("site-a"), b = makeKeyPair("site-b"), c = makeKeyPair("site-c");
  const std::vector<std::uint8_t> der = sealCapsule(content("1.2.3.4"), c, b.certificate.get());
  EXPECT_EQ(openKind(der, b, a.certificate.get()), CapsuleErrorKind::NotAuthentic);
}

// ---- the capsule bound to an encrypted object, through RelayService ----------------------------

namespace {

std::string newUid() {
  char buf[100];
  return dcmGenerateUniqueIdentifier(buf, SITE_INSTANCE_UID_ROOT);
}

DcmDataset image(const std::string& studyUid) {
  DcmDataset ds;
  ds.putAndInsertString(DCM_SOPClassUID, UID_SecondaryCaptureImageStorage);
  ds.putAndInsertString(DCM_SOPInstanceUID, newUid().c_str());
  ds.putAndInsertString(DCM_StudyInstanceUID, studyUid.c_str());
  ds.putAndInsertString(DCM_SeriesInstanceUID, newUid().c_str());
  ds.putAndInsertString(DCM_PatientID, "PID-RELAY");
  ds.putAndInsertUint16(DCM_Rows, 4);
  ds.putAndInsertUint16(DCM_Columns, 4);
  ds.putAndInsertUint16(DCM_BitsAllocated, 16);
  ds.putAndInsertUint16(DCM_BitsStored, 16);
  ds.putAndInsertUint16(DCM_HighBit, 15);
  ds.putAndInsertUint16(DCM_PixelRepresentation, 0);
  ds.putAndInsertUint16(DCM_SamplesPerPixel, 1);
  ds.putAndInsertString(DCM_PhotometricInterpretation, "MONOCHROME2");
  std::vector<Uint16> pixels(16);
  for (std::size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<Uint16>(100 * i + 7);
  ds.putAndInsertUint16Array(DCM_PixelData, pixels.data(), pixels.size());
  return ds;
}

// Two sites, each with its own keystore (own master key) and relay configuration naming the other.
struct RelaySites : ::testing::Test {
  pacsgw::testing::TempDir dir{"pacsgw-relay"};
  std::unique_ptr<keystore::Keystore> keysA = keystore::Keystore::open(dir.file("a.db"), testKey(1));
  std::unique_ptr<keystore::Keystore> keysB = keystore::Keystore::open(dir.file("b.db"), testKey(2));
  config::Config configA, configB;
  std::unique_ptr<RelayService> relayA, relayB;
  config::CipherSection cipher;

  void SetUp() override {
    writePem(makeKeyPair("site-a"), dir.file("a.crt"), dir.file("a.key"));
    writePem(makeKeyPair("site-b"), dir.file("b.crt"), dir.file("b.key"));
    writePem(makeKeyPair("site-c"), dir.file("c.crt"), dir.file("c.key"));
    configA.gateway.aeTitle = "SITE_A";
    configA.relay = config::RelaySection{dir.file("a.crt"), dir.file("a.key"),
                                         {{"site-b", "SITE_B", "127.0.0.1", 11112, dir.file("b.crt")}}};
    configB.gateway.aeTitle = "SITE_B";
    configB.relay = config::RelaySection{dir.file("b.crt"), dir.file("b.key"),
                                         {{"site-a", "SITE_A", "127.0.0.1", 11113, dir.file("a.crt")}}};
    relayA = std::make_unique<RelayService>(configA);
    relayB = std::make_unique<RelayService>(configB);
  }

  // An object encrypted at site A, with a capsule for B attached.
  DcmDataset relayedFromA(const std::string& studyUid) {
    DcmDataset ds = image(studyUid);
    gateway::InstanceProtector(*keysA, cipher).protect(ds, EXS_LittleEndianExplicit);
    relayA->attachCapsule(ds, configA.relay->peers.front(), *keysA);
    return ds;
  }
  const config::RelayPeer& peerAatB() const { return configB.relay->peers.front(); }
};

}  // namespace

TEST_F(RelaySites, ReceiverImportsTheKeyAndDecryptsBitExact) {
  const std::string study = newUid();
  DcmDataset original = image(study);
  DcmDataset ds = relayedFromA(study);
  ASSERT_TRUE(hasRelayCapsule(ds));
  ASSERT_FALSE(relayB->acceptRelayed(ds, peerAatB(), *keysB).has_value());
  EXPECT_FALSE(hasRelayCapsule(ds)) << "the capsule must not reach the PACS";
  EXPECT_TRUE(codecs::hasKeyReference(ds)) << "the ciphertext and its key reference stay as they are";
  EXPECT_EQ(codecs::readKeyReference(ds).keyId, keysA->getOrCreate(keystore::KeyScope::Study, study).id);
  gateway::InstanceProtector(*keysB, cipher).restore(ds, EXS_LittleEndianExplicit);
  const Uint16 *got = nullptr, *want = nullptr;
  unsigned long gotCount = 0, wantCount = 0;
  ASSERT_TRUE(ds.findAndGetUint16Array(DCM_PixelData, got, &gotCount).good());
  ASSERT_TRUE(original.findAndGetUint16Array(DCM_PixelData, want, &wantCount).good());
  ASSERT_EQ(gotCount, wantCount);
  EXPECT_TRUE(std::equal(got, got + gotCount, want));
  // The same study again (a second object, or the same one re-sent): same key, accepted.
  DcmDataset again = relayedFromA(study);
  EXPECT_FALSE(relayB->acceptRelayed(again, peerAatB(), *keysB).has_value());
}

TEST_F(RelaySites, CapsuleMovedToAnotherStudysObjectIsRefused) {
  const std::string studyX = newUid(), studyY = newUid();
  DcmDataset x = relayedFromA(studyX);
  DcmDataset y = relayedFromA(studyY);
  // Y's ciphertext with X's capsule: authentic, but it names another study and key.
  writeRelayCapsule(y, *readRelayCapsule(x));
  const auto refused = relayB->acceptRelayed(y, peerAatB(), *keysB);
  ASSERT_TRUE(refused.has_value());
  EXPECT_EQ(refused->code, "RelayCapsuleDoesNotMatch");
  EXPECT_EQ(refused->status, 0x0124);
  EXPECT_FALSE(keysB->hasKeyFor(keystore::KeyScope::Study, studyX));
  EXPECT_FALSE(keysB->hasKeyFor(keystore::KeyScope::Study, studyY));
}

TEST_F(RelaySites, RefusalsNameTheirReason) {
  const std::string study = newUid();
  // No capsule on an encrypted object.
  DcmDataset bare = relayedFromA(study);
  removeRelayCapsule(bare);
  auto refused = relayB->acceptRelayed(bare, peerAatB(), *keysB);
  ASSERT_TRUE(refused.has_value());
  EXPECT_EQ(refused->code, "RelayCapsuleMissing");
  EXPECT_EQ(refused->status, 0xC000);
  // A capsule signed by a site B does not trust.
  config::Config configC = configA;
  configC.relay->certificate = dir.file("c.crt");
  configC.relay->privateKey = dir.file("c.key");
  RelayService relayC(configC);
  DcmDataset forged = image(study);
  gateway::InstanceProtector(*keysA, cipher).protect(forged, EXS_LittleEndianExplicit);
  relayC.attachCapsule(forged, configC.relay->peers.front(), *keysA);
  refused = relayB->acceptRelayed(forged, peerAatB(), *keysB);
  ASSERT_TRUE(refused.has_value());
  EXPECT_EQ(refused->code, "RelayCapsuleNotAuthentic");
  EXPECT_EQ(refused->status, 0x0124);
  EXPECT_FALSE(keysB->hasKeyFor(keystore::KeyScope::Study, study));
}

TEST_F(RelaySites, AnotherKeyForAStudyTheReceiverKnowsIsRefused) {
  const std::string study = newUid();
  keysB->getOrCreate(keystore::KeyScope::Study, study);  // B already has its own key for this study
  DcmDataset ds = relayedFromA(study);
  const auto refused = relayB->acceptRelayed(ds, peerAatB(), *keysB);
  ASSERT_TRUE(refused.has_value());
  EXPECT_EQ(refused->code, "RelayKeyConflict");
  EXPECT_TRUE(hasRelayCapsule(ds));
}

TEST(RelayCapsuleElement, FoundInAnyBlockBesideOtherCreatorsAndGroups) {
  DcmDataset ds;
  ASSERT_TRUE(ds.putAndInsertString(DCM_SOPInstanceUID, "1.2.3").good());
  ASSERT_TRUE(ds.putAndInsertString(DcmTag(0x0079, 0x0010, EVR_LO), "OTHER VENDOR").good());
  ASSERT_TRUE(ds.putAndInsertString(DcmTag(0x0081, 0x0010, EVR_LO), "PACSGW RELAY 1").good());  // wrong group
  ASSERT_TRUE(ds.putAndInsertString(DcmTag(0x0079, 0x1001, EVR_LO), "not a capsule").good());
  EXPECT_FALSE(hasRelayCapsule(ds));
  // The creator with trailing spaces in block 0x42, its capsule element present: found.
  ASSERT_TRUE(ds.putAndInsertString(DcmTag(0x0079, 0x0042, EVR_LO), "PACSGW RELAY 1 ").good());
  EXPECT_FALSE(hasRelayCapsule(ds)) << "a creator without its capsule element is no capsule";
  const Uint8 der[] = {0x30, 0x00};
  ASSERT_TRUE(ds.putAndInsertUint8Array(DcmTag(0x0079, 0x4201, EVR_OB), der, sizeof der).good());
  EXPECT_TRUE(hasRelayCapsule(ds));
  removeRelayCapsule(ds);
  EXPECT_FALSE(hasRelayCapsule(ds));
  EXPECT_TRUE(ds.tagExists(DcmTagKey(0x0079, 0x0010))) << "another vendor's block is left alone";
}

TEST(RelayKeyPairFiles, PrivateKeyReadableByOthersIsRefused) {
  pacsgw::testing::TempDir dir{"pacsgw-relay-files"};
  writePem(makeKeyPair("site-a"), dir.file("a.crt"), dir.file("a.key"));
  ::chmod(dir.file("a.key").c_str(), 0644);
  EXPECT_THROW(loadRelayKeyPair(dir.file("a.crt"), dir.file("a.key")), std::runtime_error);
  ::chmod(dir.file("a.key").c_str(), 0600);
  writePem(makeKeyPair("site-b"), dir.file("b.crt"), dir.file("b.key"));
  EXPECT_THROW(loadRelayKeyPair(dir.file("a.crt"), dir.file("b.key")), std::runtime_error);  // not its key
  EXPECT_NO_THROW(loadRelayKeyPair(dir.file("a.crt"), dir.file("a.key")));
}

TEST(RelayElement, OddLengthCapsuleSurvivesTheEvenPadding) {
  // OB values are padded to even length on the wire; the DER inside says where the capsule ends.
  pacsgw::testing::TempDir dir{"pacsgw-relay-element"};
  for (const std::vector<std::uint8_t>& capsule :
       {std::vector<std::uint8_t>{0x30, 0x03, 0x01, 0x02, 0x00}, std::vector<std::uint8_t>{0x30, 0x02, 0x05, 0x00}}) {
    DcmFileFormat file;
    file.getDataset()->putAndInsertString(DCM_SOPClassUID, UID_SecondaryCaptureImageStorage);
    file.getDataset()->putAndInsertString(DCM_SOPInstanceUID, newUid().c_str());
    writeRelayCapsule(*file.getDataset(), capsule);
    const std::string path = dir.file("capsule.dcm");
    ASSERT_TRUE(file.saveFile(path.c_str(), EXS_LittleEndianExplicit).good());
    DcmFileFormat read;
    ASSERT_TRUE(read.loadFile(path.c_str()).good());
    ASSERT_TRUE(hasRelayCapsule(*read.getDataset()));
    EXPECT_EQ(*readRelayCapsule(*read.getDataset()), capsule);
    removeRelayCapsule(*read.getDataset());
    EXPECT_FALSE(hasRelayCapsule(*read.getDataset()));
    EXPECT_FALSE(read.getDataset()->tagExists(DcmTagKey(kRelayGroup, 0x0010)));
  }
}
