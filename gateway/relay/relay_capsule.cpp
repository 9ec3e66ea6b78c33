#include "gateway/relay/relay_capsule.h"

#include <openssl/bio.h>
#include <openssl/cms.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include <sys/stat.h>

#include <ctime>
#include <map>
#include <set>

namespace pacsgw::gateway::relay {

namespace {

constexpr const char* kFormatLine = "pacsgw-relay-capsule: 1";
constexpr std::size_t kMaxFieldBytes = 256;
const std::set<std::string> kFields = {"sender", "recipient", "study", "key_id", "scope",
                                       "scope_uid", "backend", "data_key", "issued_at"};

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct CmsFree {
  void operator()(CMS_ContentInfo* c) const { CMS_ContentInfo_free(c); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;
using CmsPtr = std::unique_ptr<CMS_ContentInfo, CmsFree>;

// The first OpenSSL error on the queue, for messages (never contains key material); clears the queue.
std::string opensslReason() {
  const unsigned long code = ERR_get_error();
  ERR_clear_error();
  if (code == 0) return "no detail";
  char text[256];
  ERR_error_string_n(code, text, sizeof text);
  return text;
}

// A std::string that wipes itself: the capsule text holds the data key in hex.
struct WipedString {
  std::string value;
  ~WipedString() { OPENSSL_cleanse(value.data(), value.size()); }
};
struct WipedBytes {
  std::vector<std::uint8_t> value;
  ~WipedBytes() { OPENSSL_cleanse(value.data(), value.size()); }
};

std::vector<std::uint8_t> derOf(CMS_ContentInfo* cms) {
  const int length = i2d_CMS_ContentInfo(cms, nullptr);
  if (length <= 0) throw std::runtime_error("relay capsule: cannot encode: " + opensslReason());
  std::vector<std::uint8_t> out(static_cast<std::size_t>(length));
  unsigned char* p = out.data();
  i2d_CMS_ContentInfo(cms, &p);
  return out;
}

CmsPtr parseDer(const std::uint8_t* der, std::size_t size, int expectedType, const char* what) {
  if (size == 0 || size > kMaxCapsuleBytes) {
    throw CapsuleError(CapsuleErrorKind::Malformed, std::string("relay capsule: ") + what + " of " +
                                                        std::to_string(size) + " bytes (expected 1 to " +
                                                        std::to_string(kMaxCapsuleBytes) + ")");
  }
  const unsigned char* p = der;
  CmsPtr cms(d2i_CMS_ContentInfo(nullptr, &p, static_cast<long>(size)));
  if (!cms || p != der + size) {
    ERR_clear_error();
    throw CapsuleError(CapsuleErrorKind::Malformed, std::string("relay capsule: ") + what + " is not DER CMS");
  }
  if (OBJ_obj2nid(CMS_get0_type(cms.get())) != expectedType) {
    throw CapsuleError(CapsuleErrorKind::Malformed, std::string("relay capsule: ") + what + " has content type " +
                                                        OBJ_nid2sn(OBJ_obj2nid(CMS_get0_type(cms.get()))));
  }
  return cms;
}

std::vector<std::uint8_t> bioBytes(BIO* bio) {
  char* data = nullptr;
  const long length = BIO_get_mem_data(bio, &data);
  if (length <= 0 || data == nullptr) return {};
  return std::vector<std::uint8_t>(data, data + length);
}

std::string hexOf(const std::uint8_t* data, std::size_t size) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  out.reserve(size * 2);
  for (std::size_t i = 0; i < size; ++i) {
    out.push_back(digits[data[i] >> 4]);
    out.push_back(digits[data[i] & 15]);
  }
  return out;
}

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

std::string utcNow() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return text;
}

bool printableField(const std::string& value) {
  if (value.empty() || value.size() > kMaxFieldBytes) return false;
  for (const char c : value) {
    if (c < 0x20 || c > 0x7E) return false;
  }
  return true;
}

std::string serialise(const CapsuleContent& c) {
  const std::map<std::string, std::string> fields = {
      {"sender", c.senderAeTitle}, {"recipient", c.recipientAeTitle}, {"study", c.studyUid},
      {"key_id", c.keyId},         {"scope", keystore::toString(c.scope)}, {"scope_uid", c.scopeUid},
      {"backend", c.backendId},    {"issued_at", c.issuedAt.empty() ? utcNow() : c.issuedAt}};
  std::string out = std::string(kFormatLine) + "\n";
  for (const auto& [name, value] : fields) {
    if (!printableField(value)) throw std::runtime_error("relay capsule: field " + name + " is empty or not printable");
    out += name + ": " + value + "\n";
  }
  if (c.dataKey.size() != 32) throw std::runtime_error("relay capsule: the data key must have 32 bytes");
  WipedString hex{hexOf(c.dataKey.data(), c.dataKey.size())};
  out += "data_key: " + hex.value + "\n";
  return out;
}

CapsuleContent parse(const std::string& text) {
  const auto malformed = [](const std::string& why) {
    return CapsuleError(CapsuleErrorKind::Malformed, "relay capsule: " + why);
  };
  std::map<std::string, std::string> fields;
  std::size_t position = 0;
  bool first = true;
  while (position < text.size()) {
    const std::size_t end = text.find('\n', position);
    if (end == std::string::npos) throw malformed("text does not end with a newline");
    const std::string line = text.substr(position, end - position);
    position = end + 1;
    if (first) {
      if (line != kFormatLine) throw malformed("unknown format (first line '" + line.substr(0, 40) + "')");
      first = false;
      continue;
    }
    const std::size_t colon = line.find(": ");
    if (colon == std::string::npos) throw malformed("line without 'name: value'");
    const std::string name = line.substr(0, colon);
    std::string value = line.substr(colon + 2);
    if (kFields.count(name) == 0) throw malformed("unknown field");
    if (!printableField(value)) throw malformed("field " + name + " is empty, too long or not printable");
    if (!fields.emplace(name, std::move(value)).second) throw malformed("field " + name + " appears twice");
  }
  if (first) throw malformed("empty text");
  for (const auto& name : kFields) {
    if (fields.count(name) == 0) throw malformed("field " + name + " is missing");
  }
  CapsuleContent out;
  out.senderAeTitle = fields["sender"];
  out.recipientAeTitle = fields["recipient"];
  out.studyUid = fields["study"];
  out.keyId = fields["key_id"];
  out.scopeUid = fields["scope_uid"];
  out.backendId = fields["backend"];
  out.issuedAt = fields["issued_at"];
  try {
    out.scope = keystore::keyScopeFromString(fields["scope"]);
  } catch (const keystore::KeystoreError&) {
    throw malformed("unknown key scope");
  }
  std::string& hex = fields["data_key"];
  if (hex.size() != 64) {
    OPENSSL_cleanse(hex.data(), hex.size());
    throw malformed("data key is not 32 bytes of lower-case hex");
  }
  out.dataKey = SecretBytes(32);
  for (std::size_t i = 0; i < 32; ++i) {
    const int high = hexValue(hex[2 * i]), low = hexValue(hex[2 * i + 1]);
    if (high < 0 || low < 0) {
      OPENSSL_cleanse(hex.data(), hex.size());
      throw malformed("data key is not 32 bytes of lower-case hex");
    }
    out.dataKey.data()[i] = static_cast<std::uint8_t>(high << 4 | low);
  }
  OPENSSL_cleanse(hex.data(), hex.size());
  return out;
}

void requireUsableKey(EVP_PKEY* key, const std::string& path) {
  const int type = EVP_PKEY_get_base_id(key);
  if (type == EVP_PKEY_RSA) {
    if (EVP_PKEY_get_bits(key) < 2048) throw std::runtime_error(path + ": RSA keys must have at least 2048 bits");
    return;
  }
  if (type == EVP_PKEY_EC) return;
  throw std::runtime_error(path + ": unsupported key type (use RSA of at least 2048 bits or EC P-256/P-384)");
}

}  // namespace

const char* toString(CapsuleErrorKind kind) {
  switch (kind) {
    case CapsuleErrorKind::Malformed: return "RelayCapsuleMalformed";
    case CapsuleErrorKind::NotForUs: return "RelayCapsuleCannotBeOpened";
    case CapsuleErrorKind::NotAuthentic: return "RelayCapsuleNotAuthentic";
    case CapsuleErrorKind::DoesNotMatch: return "RelayCapsuleDoesNotMatch";
  }
  return "RelayCapsuleMalformed";
}

X509Ptr loadRelayCertificate(const std::string& certificatePath) {
  BioPtr bio(BIO_new_file(certificatePath.c_str(), "r"));
  if (!bio) {
    ERR_clear_error();
    throw std::runtime_error(certificatePath + ": cannot open the relay certificate");
  }
  X509Ptr certificate(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (!certificate) throw std::runtime_error(certificatePath + ": not a PEM certificate: " + opensslReason());
  EVP_PKEY* publicKey = X509_get0_pubkey(certificate.get());
  if (publicKey == nullptr) throw std::runtime_error(certificatePath + ": certificate without a usable public key");
  requireUsableKey(publicKey, certificatePath);
  return certificate;
}

RelayKeyPair loadRelayKeyPair(const std::string& certificatePath, const std::string& privateKeyPath) {
  RelayKeyPair pair;
  pair.certificate = loadRelayCertificate(certificatePath);
  struct stat st {};
  if (::stat(privateKeyPath.c_str(), &st) != 0) throw std::runtime_error(privateKeyPath + ": cannot read the relay private key");
  if ((st.st_mode & 077) != 0) {
    throw std::runtime_error(privateKeyPath + ": the relay private key must not be readable by group or others "
                                              "(chmod 600)");
  }
  BioPtr bio(BIO_new_file(privateKeyPath.c_str(), "r"));
  if (!bio) {
    ERR_clear_error();
    throw std::runtime_error(privateKeyPath + ": cannot open the relay private key");
  }
  pair.privateKey.reset(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  if (!pair.privateKey) {
    ERR_clear_error();
    throw std::runtime_error(privateKeyPath + ": not an unencrypted PEM private key");
  }
  if (X509_check_private_key(pair.certificate.get(), pair.privateKey.get()) != 1) {
    ERR_clear_error();
    throw std::runtime_error(privateKeyPath + ": does not belong to the certificate " + certificatePath);
  }
  return pair;
}

std::vector<std::uint8_t> sealCapsule(const CapsuleContent& content, const RelayKeyPair& sender,
                                      X509* recipientCertificate) {
  WipedString text{serialise(content)};
  BioPtr textBio(BIO_new_mem_buf(text.value.data(), static_cast<int>(text.value.size())));
  CmsPtr signedData(CMS_sign(sender.certificate.get(), sender.privateKey.get(), nullptr, textBio.get(),
                             CMS_BINARY | CMS_NOCERTS | CMS_NOSMIMECAP));
  if (!signedData) throw std::runtime_error("relay capsule: cannot sign: " + opensslReason());
  WipedBytes signedDer{derOf(signedData.get())};

  // AES-256-GCM content encryption makes this AuthEnvelopedData (RFC 5083): altered bytes never decrypt.
  CmsPtr envelope(CMS_encrypt(nullptr, nullptr, EVP_aes_256_gcm(), CMS_BINARY | CMS_PARTIAL));
  if (!envelope) throw std::runtime_error("relay capsule: cannot create the envelope: " + opensslReason());
  EVP_PKEY* recipientKey = X509_get0_pubkey(recipientCertificate);
  const bool rsa = recipientKey != nullptr && EVP_PKEY_get_base_id(recipientKey) == EVP_PKEY_RSA;
  CMS_RecipientInfo* recipient = CMS_add1_recipient_cert(envelope.get(), recipientCertificate, rsa ? CMS_KEY_PARAM : 0);
  if (recipient == nullptr) throw std::runtime_error("relay capsule: cannot add the recipient: " + opensslReason());
  if (rsa) {  // RSA-OAEP with SHA-256, never PKCS #1 v1.5
    EVP_PKEY_CTX* ctx = CMS_RecipientInfo_get0_pkey_ctx(recipient);
    if (ctx == nullptr || EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING) <= 0 ||
        EVP_PKEY_CTX_set_rsa_oaep_md(ctx, EVP_sha256()) <= 0 || EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, EVP_sha256()) <= 0) {
      throw std::runtime_error("relay capsule: cannot select RSA-OAEP: " + opensslReason());
    }
  }
  BioPtr signedBio(BIO_new_mem_buf(signedDer.value.data(), static_cast<int>(signedDer.value.size())));
  if (CMS_final(envelope.get(), signedBio.get(), nullptr, CMS_BINARY) != 1) {
    throw std::runtime_error("relay capsule: cannot encrypt: " + opensslReason());
  }
  return derOf(envelope.get());
}

CapsuleContent openCapsule(const std::uint8_t* der, std::size_t size, const RelayKeyPair& recipient,
                           X509* senderCertificate) {
  CmsPtr envelope = parseDer(der, size, NID_id_smime_ct_authEnvelopedData, "envelope");
  BioPtr plain(BIO_new(BIO_s_secmem()));
  if (CMS_decrypt(envelope.get(), recipient.privateKey.get(), recipient.certificate.get(), nullptr, plain.get(),
                  CMS_BINARY) != 1) {
    throw CapsuleError(CapsuleErrorKind::NotForUs,
                       "relay capsule: cannot be opened with this gateway's relay key (addressed to another "
                       "certificate, or altered in transit): " + opensslReason());
  }
  WipedBytes signedDer{bioBytes(plain.get())};
  CmsPtr signedData = parseDer(signedDer.value.data(), signedDer.value.size(), NID_pkcs7_signed, "signed content");
  if (sk_CMS_SignerInfo_num(CMS_get0_SignerInfos(signedData.get())) != 1 ||
      OBJ_obj2nid(CMS_get0_eContentType(signedData.get())) != NID_pkcs7_data) {
    throw CapsuleError(CapsuleErrorKind::Malformed, "relay capsule: expected exactly one signer over plain data");
  }
  STACK_OF(X509)* trusted = sk_X509_new_null();
  sk_X509_push(trusted, senderCertificate);
  BioPtr text(BIO_new(BIO_s_secmem()));
  // Only the configured certificate of the sending peer may have signed (no certificate from inside the
  // capsule, no chain: the peer's certificate is pinned in the configuration).
  const int verified = CMS_verify(signedData.get(), trusted, nullptr, nullptr, text.get(),
                                  CMS_BINARY | CMS_NOINTERN | CMS_NO_SIGNER_CERT_VERIFY);
  sk_X509_free(trusted);
  if (verified != 1) {
    throw CapsuleError(CapsuleErrorKind::NotAuthentic,
                       "relay capsule: signature does not verify with the sending peer's configured certificate: " +
                           opensslReason());
  }
  WipedBytes textBytes{bioBytes(text.get())};
  WipedString textString{std::string(textBytes.value.begin(), textBytes.value.end())};
  return parse(textString.value);
}

}  // namespace pacsgw::gateway::relay
