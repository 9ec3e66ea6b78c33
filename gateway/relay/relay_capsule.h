#pragma once
// The relay capsule: a study's data key on its way to a peer gateway at another site.
//
//   AuthEnvelopedData (AES-256-GCM; RSA-OAEP-SHA-256 key transport or ECDH key agreement to the
//   recipient's relay certificate)
//     └─ SignedData (signed with the sender's relay key, no certificates inside)
//          └─ the capsule text: sender and recipient AE titles, study, key id, scope, backend, data key
//
// Only the recipient can open it; the recipient accepts it only with a valid signature of the peer's
// configured certificate; the signed text binds the key to one study, key id, scope and backend.
#include "keystore/keystore.h"

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace pacsgw::gateway::relay {

enum class CapsuleErrorKind {
  Malformed,         // not a capsule of this format (bad DER, wrong content types, bad text)
  NotForUs,          // not addressed to this gateway's relay certificate, or altered in transit (GCM)
  NotAuthentic,      // the signature does not verify with the sending peer's configured certificate
  DoesNotMatch,      // authentic, but names another sender / recipient / study / key / scope / backend
};
const char* toString(CapsuleErrorKind kind);  // "RelayCapsuleMalformed", ...

class CapsuleError : public std::runtime_error {
 public:
  CapsuleError(CapsuleErrorKind kind, const std::string& message) : std::runtime_error(message), kind_(kind) {}
  CapsuleErrorKind kind() const { return kind_; }

 private:
  CapsuleErrorKind kind_;
};

struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using X509Ptr = std::unique_ptr<X509, X509Free>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;

// A relay certificate (PEM), and with it the private key when it is this gateway's own.
struct RelayKeyPair {
  X509Ptr certificate;
  PkeyPtr privateKey;
};
// Throws std::runtime_error naming the file: unreadable, not PEM, key not matching the certificate,
// private key file readable by group or others, unsupported key type (RSA >= 2048 bits, EC).
RelayKeyPair loadRelayKeyPair(const std::string& certificatePath, const std::string& privateKeyPath);
X509Ptr loadRelayCertificate(const std::string& certificatePath);

// What a capsule says. The data key is only ever held in SecretBytes and wiped buffers.
struct CapsuleContent {
  std::string senderAeTitle;
  std::string recipientAeTitle;
  std::string studyUid;
  std::string keyId;
  keystore::KeyScope scope = keystore::KeyScope::Study;
  std::string scopeUid;
  std::string backendId;
  SecretBytes dataKey;
  std::string issuedAt;  // ISO 8601 UTC, informative
};

// Signs with `sender` and envelopes to `recipientCertificate`; returns the DER bytes.
std::vector<std::uint8_t> sealCapsule(const CapsuleContent& content, const RelayKeyPair& sender,
                                      X509* recipientCertificate);
// Opens with `recipient` and verifies the signature against `senderCertificate` (and nothing else).
// Throws CapsuleError. The caller still checks the content against the object it came with.
CapsuleContent openCapsule(const std::uint8_t* der, std::size_t size, const RelayKeyPair& recipient,
                           X509* senderCertificate);

constexpr std::size_t kMaxCapsuleBytes = 64 * 1024;

}  // namespace pacsgw::gateway::relay
