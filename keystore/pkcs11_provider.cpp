// PKCS#11 master key provider (see pkcs11_provider.h). Messages name the module, token and key label
// and the PKCS#11 return code, never the PIN or key material.
#include "keystore/pkcs11_provider.h"
#include "keystore/keystore_internal.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include <dlfcn.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

// Last, and with its member-name macros that clash with ordinary identifiers removed afterwards
// (the structure members keep their PKCS#11 names: pValue, ulValueLen, ...).
#include <p11-kit/pkcs11.h>
#undef value
#undef value_len
#undef count
#undef parameter
#undef parameter_len
#undef params
#undef reserved

namespace pacsgw::keystore {

namespace {

constexpr int kTokenWrap = 3;  // data_keys.wrap_format of a token AES-GCM wrap
constexpr std::size_t kIvBytes = 12;
constexpr std::size_t kTagBytes = 16;
constexpr std::size_t kMaxDataKeyBytes = 4096;
constexpr std::size_t kMaxPinBytes = 256;
constexpr char kAadLabel[] = "pacsgw data key token wrap v3";
constexpr char kCheckLabel[] = "pacsgw keystore master key check v1";
constexpr char kCheckDomain[] = "pacsgw pkcs11 master key check v1";
// The check value is one GCM encryption of a fixed label under this IV. Repeating it repeats the same
// plaintext and AAD, which reveals nothing new; wraps never use this IV (see freshIv).
constexpr unsigned char kCheckIv[kIvBytes] = {'p', 'a', 'c', 's', 'g', 'w', '-', 'c', 'h', 'e', 'c', 'k'};

std::string rvText(CK_RV rv) {
  switch (rv) {
    case CKR_OK: return "CKR_OK";
    case CKR_PIN_INCORRECT: return "CKR_PIN_INCORRECT";
    case CKR_PIN_LOCKED: return "CKR_PIN_LOCKED";
    case CKR_PIN_EXPIRED: return "CKR_PIN_EXPIRED";
    case CKR_PIN_LEN_RANGE: return "CKR_PIN_LEN_RANGE";
    case CKR_USER_PIN_NOT_INITIALIZED: return "CKR_USER_PIN_NOT_INITIALIZED";
    case CKR_TOKEN_NOT_PRESENT: return "CKR_TOKEN_NOT_PRESENT";
    case CKR_DEVICE_REMOVED: return "CKR_DEVICE_REMOVED";
    case CKR_DEVICE_ERROR: return "CKR_DEVICE_ERROR";
    case CKR_SESSION_HANDLE_INVALID: return "CKR_SESSION_HANDLE_INVALID";
    case CKR_SESSION_CLOSED: return "CKR_SESSION_CLOSED";
    case CKR_USER_NOT_LOGGED_IN: return "CKR_USER_NOT_LOGGED_IN";
    case CKR_MECHANISM_INVALID: return "CKR_MECHANISM_INVALID";
    case CKR_MECHANISM_PARAM_INVALID: return "CKR_MECHANISM_PARAM_INVALID";
    case CKR_KEY_FUNCTION_NOT_PERMITTED: return "CKR_KEY_FUNCTION_NOT_PERMITTED";
    case CKR_KEY_TYPE_INCONSISTENT: return "CKR_KEY_TYPE_INCONSISTENT";
    case CKR_ENCRYPTED_DATA_INVALID: return "CKR_ENCRYPTED_DATA_INVALID";
    case CKR_ENCRYPTED_DATA_LEN_RANGE: return "CKR_ENCRYPTED_DATA_LEN_RANGE";
    case CKR_ATTRIBUTE_VALUE_INVALID: return "CKR_ATTRIBUTE_VALUE_INVALID";
    case CKR_TEMPLATE_INCONSISTENT: return "CKR_TEMPLATE_INCONSISTENT";
    case CKR_GENERAL_ERROR: return "CKR_GENERAL_ERROR";
    case CKR_FUNCTION_FAILED: return "CKR_FUNCTION_FAILED";
    case CKR_ARGUMENTS_BAD: return "CKR_ARGUMENTS_BAD";
    case CKR_TOKEN_WRITE_PROTECTED: return "CKR_TOKEN_WRITE_PROTECTED";
    default: {
      char buffer[32];
      std::snprintf(buffer, sizeof buffer, "CKR 0x%lx", static_cast<unsigned long>(rv));
      return buffer;
    }
  }
}

// The token, its session or its login is gone (HSM restart, network cut): not a property of the blob.
bool tokenUnavailable(CK_RV rv) {
  switch (rv) {
    case CKR_SESSION_HANDLE_INVALID:
    case CKR_SESSION_CLOSED:
    case CKR_DEVICE_ERROR:
    case CKR_DEVICE_REMOVED:
    case CKR_DEVICE_MEMORY:
    case CKR_TOKEN_NOT_PRESENT:
    case CKR_USER_NOT_LOGGED_IN:
    case CKR_KEY_HANDLE_INVALID:
    case CKR_CRYPTOKI_NOT_INITIALIZED:
    case CKR_HOST_MEMORY:
    case CKR_OPERATION_ACTIVE:
      return true;
    default:
      return false;
  }
}

// Token and key labels are space-padded fixed-size fields.
std::string paddedLabel(const unsigned char* field, std::size_t size) {
  std::string text(reinterpret_cast<const char*>(field), size);
  const auto end = text.find_last_not_of(' ');
  return end == std::string::npos ? std::string() : text.substr(0, end + 1);
}

void appendField(std::vector<unsigned char>& out, const std::string& field) {
  const auto length = static_cast<std::uint32_t>(field.size());
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<unsigned char>(length >> shift));
  out.insert(out.end(), field.begin(), field.end());
}

// The row binding, authenticated by GCM: length-prefixed so that no two rows share it.
std::vector<unsigned char> rowAad(const std::string& keyId, KeyScope scope, const std::string& scopeUid) {
  std::vector<unsigned char> aad(kAadLabel, kAadLabel + sizeof kAadLabel - 1);
  appendField(aad, keyId);
  appendField(aad, toString(scope));
  appendField(aad, scopeUid);
  return aad;
}

// One loaded and initialised module, shared by every provider of this process that names the same
// path (C_Initialize may run only once per process; C_Finalize when the last user goes away).
class Module {
 public:
  static std::shared_ptr<Module> load(const std::string& path) {
    static std::mutex registryMutex;
    static std::map<std::string, std::weak_ptr<Module>> registry;
    std::lock_guard<std::mutex> lock(registryMutex);
    if (auto existing = registry[path].lock()) return existing;
    auto module = std::shared_ptr<Module>(new Module(path));
    registry[path] = module;
    return module;
  }
  ~Module() {
    if (functions_ != nullptr && finalize_) functions_->C_Finalize(nullptr);
    if (handle_ != nullptr) ::dlclose(handle_);
  }
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  CK_FUNCTION_LIST* f() const { return functions_; }
  const std::string& path() const { return path_; }

 private:
  explicit Module(const std::string& path) : path_(path) {
    if (path.empty()) throw KeystoreError("no PKCS#11 module configured (keystore.master_key.module)");
    struct stat info {};
    if (::stat(path.c_str(), &info) != 0) {
      throw KeystoreError("PKCS#11 module " + path + " does not exist (install the HSM vendor's PKCS#11 library, or "
                          "softhsm2 for /usr/lib/softhsm/libsofthsm2.so)");
    }
    handle_ = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (handle_ == nullptr) {
      const char* why = ::dlerror();
      throw KeystoreError("PKCS#11 module " + path + " cannot be loaded: " + detail::printable(why ? why : "?", 300));
    }
    auto getList = reinterpret_cast<CK_C_GetFunctionList>(::dlsym(handle_, "C_GetFunctionList"));
    if (getList == nullptr || getList(&functions_) != CKR_OK || functions_ == nullptr) {
      ::dlclose(handle_);
      throw KeystoreError(path + " is not a PKCS#11 module (no usable C_GetFunctionList)");
    }
    CK_C_INITIALIZE_ARGS args{};
    args.flags = CKF_OS_LOCKING_OK;  // the gateway is multi-threaded; let the module use OS locks
    const CK_RV rv = functions_->C_Initialize(&args);
    if (rv != CKR_OK && rv != CKR_CRYPTOKI_ALREADY_INITIALIZED) {
      ::dlclose(handle_);
      throw KeystoreError("PKCS#11 module " + path + " failed to initialise (" + rvText(rv) +
                          "; for SoftHSM2 check SOFTHSM2_CONF and its tokendir)");
    }
    finalize_ = rv == CKR_OK;  // someone else in this process initialised it: leave it to them
  }

  std::string path_;
  void* handle_ = nullptr;
  CK_FUNCTION_LIST* functions_ = nullptr;
  bool finalize_ = false;
};

// A logged-in session on the token with the configured label.
class TokenSession {
 public:
  TokenSession(const Pkcs11Settings& settings, bool readWrite)
      : module_(Module::load(settings.modulePath)), tokenLabel_(settings.tokenLabel) {
    CK_FUNCTION_LIST* f = module_->f();
    const CK_SLOT_ID slot = findSlot();
    CK_FLAGS flags = CKF_SERIAL_SESSION | (readWrite ? CKF_RW_SESSION : 0);
    CK_RV rv = f->C_OpenSession(slot, flags, nullptr, nullptr, &session_);
    if (rv != CKR_OK) throw error("cannot open a session", rv);
    if (settings.pin.empty()) {
      close();
      throw KeystoreError("no PIN for PKCS#11 token '" + detail::printable(tokenLabel_) +
                          "' (set keystore.master_key.pin_file or pin_env)");
    }
    rv = f->C_Login(session_, CKU_USER, const_cast<unsigned char*>(settings.pin.data()), settings.pin.size());
    if (rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN) {
      close();
      if (rv == CKR_PIN_INCORRECT) {
        throw KeystoreError("wrong PIN for PKCS#11 token '" + detail::printable(tokenLabel_) + "' (module " +
                            module_->path() + "); refusing to start. Check the PIN file or variable; repeated "
                            "wrong PINs lock the token");
      }
      if (rv == CKR_PIN_LOCKED) {
        throw KeystoreError("the user PIN of PKCS#11 token '" + detail::printable(tokenLabel_) +
                            "' is locked; the token's security officer must unlock it");
      }
      throw error("cannot log in", rv);
    }
  }
  ~TokenSession() { close(); }
  TokenSession(const TokenSession&) = delete;
  TokenSession& operator=(const TokenSession&) = delete;

  CK_FUNCTION_LIST* f() const { return module_->f(); }
  CK_SESSION_HANDLE handle() const { return session_; }
  std::string where() const {
    return "PKCS#11 token '" + detail::printable(tokenLabel_) + "' (module " + module_->path() + ")";
  }
  KeystoreError error(const std::string& what, CK_RV rv) const {
    return KeystoreError(where() + ": " + what + " (" + rvText(rv) + ")");
  }

  // Secret key objects with this label (at most two looked for: one is expected).
  std::vector<CK_OBJECT_HANDLE> findSecretKeys(const std::string& label) {
    CK_OBJECT_CLASS secretKey = CKO_SECRET_KEY;
    CK_ATTRIBUTE query[] = {
        {CKA_CLASS, &secretKey, sizeof secretKey},
        {CKA_LABEL, const_cast<char*>(label.data()), label.size()},
    };
    CK_RV rv = f()->C_FindObjectsInit(session_, query, 2);
    if (rv != CKR_OK) throw error("cannot search for key '" + detail::printable(label) + "'", rv);
    CK_OBJECT_HANDLE found[2];
    CK_ULONG n = 0;
    rv = f()->C_FindObjects(session_, found, 2, &n);
    f()->C_FindObjectsFinal(session_);
    if (rv != CKR_OK) throw error("cannot search for key '" + detail::printable(label) + "'", rv);
    return std::vector<CK_OBJECT_HANDLE>(found, found + n);
  }

 private:
  CK_SLOT_ID findSlot() {
    CK_FUNCTION_LIST* f = module_->f();
    CK_ULONG n = 0;
    CK_RV rv = f->C_GetSlotList(CK_TRUE, nullptr, &n);
    if (rv != CKR_OK) throw KeystoreError("PKCS#11 module " + module_->path() + ": cannot list slots (" + rvText(rv) + ")");
    std::vector<CK_SLOT_ID> slots(n);
    if (n > 0) {
      rv = f->C_GetSlotList(CK_TRUE, slots.data(), &n);
      if (rv != CKR_OK) throw KeystoreError("PKCS#11 module " + module_->path() + ": cannot list slots (" + rvText(rv) + ")");
      slots.resize(n);
    }
    std::string seen;
    for (CK_SLOT_ID slot : slots) {
      CK_TOKEN_INFO info{};
      if (f->C_GetTokenInfo(slot, &info) != CKR_OK) continue;
      const std::string label = paddedLabel(info.label, sizeof info.label);
      if (label == tokenLabel_) {
        if ((info.flags & CKF_TOKEN_INITIALIZED) == 0) break;
        return slot;
      }
      seen += (seen.empty() ? "'" : ", '") + detail::printable(label) + "'";
    }
    throw KeystoreError("PKCS#11 token '" + detail::printable(tokenLabel_) + "' not found in module " +
                        module_->path() + " (tokens present: " + (seen.empty() ? std::string("none") : seen) +
                        "); check keystore.master_key.token_label and that the HSM is reachable");
  }

  void close() {
    if (session_ != CK_INVALID_HANDLE) f()->C_CloseSession(session_);
    session_ = CK_INVALID_HANDLE;
  }

  std::shared_ptr<Module> module_;
  std::string tokenLabel_;
  CK_SESSION_HANDLE session_ = CK_INVALID_HANDLE;
};

class Pkcs11MasterKey final : public MasterKeyProvider {
 public:
  explicit Pkcs11MasterKey(Pkcs11Settings settings)
      : session_(settings, /*readWrite=*/false), keyLabel_(settings.keyLabel) {
    OPENSSL_cleanse(settings.pin.data(), settings.pin.size());
    const auto keys = session_.findSecretKeys(keyLabel_);
    if (keys.empty()) {
      throw KeystoreError("no secret key labelled '" + detail::printable(keyLabel_) + "' in " + session_.where() +
                          "; create it with `pacsgw keys hsm-init --config FILE` (see docs/key-custody.md)");
    }
    if (keys.size() > 1) {
      throw KeystoreError("more than one secret key labelled '" + detail::printable(keyLabel_) + "' in " +
                          session_.where() + "; give the master key a unique label");
    }
    key_ = keys.front();
    checkAttributes();
    check_ = computeCheckValue();
  }

  std::string describe() const override {
    return "PKCS#11 key '" + detail::printable(keyLabel_) + "' in " + session_.where();
  }
  std::vector<std::uint8_t> checkValue() const override { return check_; }
  int wrapFormat() const override { return kTokenWrap; }

  std::vector<std::uint8_t> wrapForRow(const std::string& keyId, KeyScope scope, const std::string& scopeUid,
                                       const SecretBytes& key) const override {
    if (key.empty() || key.size() > kMaxDataKeyBytes) {
      throw KeystoreError("key to wrap must be 1.." + std::to_string(kMaxDataKeyBytes) + " bytes");
    }
    std::vector<std::uint8_t> out(kIvBytes + key.size() + kTagBytes);
    freshIv(out.data());
    std::vector<unsigned char> aad = rowAad(keyId, scope, scopeUid);
    CK_GCM_PARAMS gcm = gcmParams(out.data(), aad);
    CK_MECHANISM mechanism{CKM_AES_GCM, &gcm, sizeof gcm};
    std::lock_guard<std::mutex> lock(mutex_);
    CK_RV rv = session_.f()->C_EncryptInit(session_.handle(), &mechanism, key_);
    if (rv != CKR_OK) throw session_.error("AES-GCM wrap of a data key failed to start", rv);
    CK_ULONG length = out.size() - kIvBytes;
    rv = session_.f()->C_Encrypt(session_.handle(), const_cast<unsigned char*>(key.data()), key.size(),
                                 out.data() + kIvBytes, &length);
    if (rv != CKR_OK) throw session_.error("AES-GCM wrap of a data key failed", rv);
    if (length != key.size() + kTagBytes) throw session_.error("AES-GCM wrap produced an unexpected length", rv);
    return out;
  }

  SecretBytes unwrapForRow(const std::string& keyId, KeyScope scope, const std::string& scopeUid,
                           const std::vector<std::uint8_t>& wrapped) const override {
    if (wrapped.size() <= kIvBytes + kTagBytes || wrapped.size() > kIvBytes + kTagBytes + kMaxDataKeyBytes) {
      throw KeystoreError("wrapped key has an invalid length (" + std::to_string(wrapped.size()) + " bytes)");
    }
    std::vector<unsigned char> iv(wrapped.begin(), wrapped.begin() + kIvBytes);
    std::vector<unsigned char> aad = rowAad(keyId, scope, scopeUid);
    CK_GCM_PARAMS gcm = gcmParams(iv.data(), aad);
    CK_MECHANISM mechanism{CKM_AES_GCM, &gcm, sizeof gcm};
    SecretBytes plain(wrapped.size());  // generous; the module writes at most ciphertext length - tag
    CK_ULONG length = plain.size();
    CK_RV rv;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      rv = session_.f()->C_DecryptInit(session_.handle(), &mechanism, key_);
      if (rv != CKR_OK) throw session_.error("AES-GCM unwrap of a data key failed to start", rv);
      rv = session_.f()->C_Decrypt(session_.handle(), const_cast<unsigned char*>(wrapped.data()) + kIvBytes,
                                   wrapped.size() - kIvBytes, plain.data(), &length);
    }
    // A tag mismatch comes back as CKR_ENCRYPTED_DATA_INVALID, CKR_FUNCTION_FAILED or (SoftHSM2)
    // CKR_GENERAL_ERROR: anything but a token or session failure counts as a blob that does not verify.
    if (rv != CKR_OK && !tokenUnavailable(rv)) {
      throw KeystoreError("wrapped key failed its integrity check in the token (wrong master key, a blob moved to "
                          "another row, or corrupted data; " + rvText(rv) + ")");
    }
    if (rv != CKR_OK) throw session_.error("AES-GCM unwrap of a data key failed", rv);
    if (length != wrapped.size() - kIvBytes - kTagBytes) throw KeystoreError("token unwrap produced an unexpected length");
    return SecretBytes(plain.data(), length);
  }

 private:
  // Random per wrap: GCM must never see an IV twice under one key with different data.
  static void freshIv(unsigned char* iv) {
    do {
      detail::randomBytes(iv, kIvBytes);
    } while (std::memcmp(iv, kCheckIv, kIvBytes) == 0);
  }

  static CK_GCM_PARAMS gcmParams(unsigned char* iv, std::vector<unsigned char>& aad) {
    CK_GCM_PARAMS gcm{};
    gcm.pIv = iv;
    gcm.ulIvLen = kIvBytes;
    gcm.ulIvBits = kIvBytes * 8;
    gcm.pAAD = aad.data();
    gcm.ulAADLen = aad.size();
    gcm.ulTagBits = kTagBytes * 8;
    return gcm;
  }

  template <typename T>
  std::optional<T> attribute(CK_ATTRIBUTE_TYPE type) const {
    T out{};
    CK_ATTRIBUTE query{type, &out, sizeof out};
    if (session_.f()->C_GetAttributeValue(session_.handle(), key_, &query, 1) != CKR_OK ||
        query.ulValueLen != sizeof out) {
      return std::nullopt;
    }
    return out;
  }

  // A master key that could leave the token, or that cannot do what the keystore needs, is refused.
  void checkAttributes() const {
    const std::string name = "key '" + detail::printable(keyLabel_) + "' in " + session_.where();
    const auto type = attribute<CK_KEY_TYPE>(CKA_KEY_TYPE);
    const auto length = attribute<CK_ULONG>(CKA_VALUE_LEN);
    if (!type || *type != CKK_AES || !length || *length != 32) {
      throw KeystoreError(name + " is not an AES-256 key; the master key must be a 32-byte AES key");
    }
    const auto extractable = attribute<CK_BBOOL>(CKA_EXTRACTABLE);
    if (!extractable || *extractable != CK_FALSE) {
      throw KeystoreError(name + " is extractable (CKA_EXTRACTABLE is not false): its value could leave the token. "
                          "Refusing to use it; create a non-extractable key with `pacsgw keys hsm-init`");
    }
    const auto sensitive = attribute<CK_BBOOL>(CKA_SENSITIVE);
    if (!sensitive || *sensitive != CK_TRUE) {
      throw KeystoreError(name + " is not sensitive (CKA_SENSITIVE is not true). Refusing to use it; create a "
                          "sensitive key with `pacsgw keys hsm-init`");
    }
    const std::pair<CK_ATTRIBUTE_TYPE, const char*> needed[] = {{CKA_ENCRYPT, "CKA_ENCRYPT"},
                                                                {CKA_DECRYPT, "CKA_DECRYPT"}};
    for (const auto& [flag, label] : needed) {
      const auto allowed = attribute<CK_BBOOL>(flag);
      if (!allowed || *allowed != CK_TRUE) {
        throw KeystoreError(name + " does not allow " + label +
                            "; the master key must allow encrypt and decrypt (the data key wraps happen inside the "
                            "token)");
      }
    }
  }

  std::vector<std::uint8_t> computeCheckValue() const {
    unsigned char iv[kIvBytes];
    std::memcpy(iv, kCheckIv, sizeof iv);
    std::vector<unsigned char> aad(kCheckDomain, kCheckDomain + sizeof kCheckDomain - 1);
    CK_GCM_PARAMS gcm = gcmParams(iv, aad);
    CK_MECHANISM mechanism{CKM_AES_GCM, &gcm, sizeof gcm};
    CK_RV rv = session_.f()->C_EncryptInit(session_.handle(), &mechanism, key_);
    if (rv != CKR_OK) throw session_.error("cannot compute the master key check value (AES-GCM)", rv);
    unsigned char sealed[sizeof kCheckLabel - 1 + kTagBytes];
    CK_ULONG length = sizeof sealed;
    rv = session_.f()->C_Encrypt(session_.handle(), reinterpret_cast<unsigned char*>(const_cast<char*>(kCheckLabel)),
                                 sizeof kCheckLabel - 1, sealed, &length);
    if (rv != CKR_OK || length != sizeof sealed) {
      throw session_.error("cannot compute the master key check value (AES-GCM)", rv);
    }
    std::vector<unsigned char> input(kCheckDomain, kCheckDomain + sizeof kCheckDomain - 1);
    input.insert(input.end(), sealed, sealed + sizeof sealed);
    std::vector<std::uint8_t> out(SHA256_DIGEST_LENGTH);
    SHA256(input.data(), input.size(), out.data());
    return out;
  }

  mutable TokenSession session_;
  mutable std::mutex mutex_;  // one operation at a time on the session (PKCS#11 sessions are not shared)
  std::string keyLabel_;
  CK_OBJECT_HANDLE key_ = CK_INVALID_HANDLE;
  std::vector<std::uint8_t> check_;
};

std::string errnoText() { return std::strerror(errno); }

// Trims one trailing newline (and CR): PIN files are usually written with echo.
SecretBytes trimmedPin(const char* data, std::size_t length) {
  if (length > 0 && data[length - 1] == '\n') --length;
  if (length > 0 && data[length - 1] == '\r') --length;
  return SecretBytes(reinterpret_cast<const std::uint8_t*>(data), length);
}

}  // namespace

std::unique_ptr<MasterKeyProvider> pkcs11MasterKey(Pkcs11Settings settings) {
  auto provider = std::make_unique<Pkcs11MasterKey>(std::move(settings));
  return provider;
}

void generatePkcs11MasterKey(Pkcs11Settings settings) {
  TokenSession session(settings, /*readWrite=*/true);
  OPENSSL_cleanse(settings.pin.data(), settings.pin.size());
  if (settings.keyLabel.empty()) throw KeystoreError("no key label configured (keystore.master_key.key_label)");
  if (!session.findSecretKeys(settings.keyLabel).empty()) {
    throw KeystoreError("a secret key labelled '" + detail::printable(settings.keyLabel) + "' already exists in " +
                        session.where() + "; left unchanged (a second key would make the label ambiguous)");
  }
  CK_OBJECT_CLASS secretKey = CKO_SECRET_KEY;
  CK_KEY_TYPE aes = CKK_AES;
  CK_ULONG length = 32;
  CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
  std::string label = settings.keyLabel;
  CK_ATTRIBUTE attributes[] = {
      {CKA_CLASS, &secretKey, sizeof secretKey},
      {CKA_KEY_TYPE, &aes, sizeof aes},
      {CKA_VALUE_LEN, &length, sizeof length},
      {CKA_LABEL, label.data(), label.size()},
      {CKA_TOKEN, &yes, sizeof yes},        // persistent in the token
      {CKA_PRIVATE, &yes, sizeof yes},      // visible only after login
      {CKA_SENSITIVE, &yes, sizeof yes},    // the value is never revealed in plaintext
      {CKA_EXTRACTABLE, &no, sizeof no},    // ... nor wrapped out of the token
      {CKA_ENCRYPT, &yes, sizeof yes},
      {CKA_DECRYPT, &yes, sizeof yes},
      {CKA_SIGN, &no, sizeof no},
      {CKA_VERIFY, &no, sizeof no},
      {CKA_WRAP, &no, sizeof no},
      {CKA_UNWRAP, &no, sizeof no},
      {CKA_DERIVE, &no, sizeof no},
  };
  CK_MECHANISM mechanism{CKM_AES_KEY_GEN, nullptr, 0};
  CK_OBJECT_HANDLE key = CK_INVALID_HANDLE;
  const CK_RV rv = session.f()->C_GenerateKey(session.handle(), &mechanism, attributes,
                                              sizeof attributes / sizeof attributes[0], &key);
  if (rv != CKR_OK) throw session.error("cannot generate the master key '" + detail::printable(label) + "'", rv);
}

SecretBytes loadPinFromFile(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) {
    if (errno == ENOENT) throw KeystoreError("PKCS#11 PIN file " + path + " does not exist");
    throw KeystoreError("cannot open PKCS#11 PIN file " + path + ": " + errnoText());
  }
  struct stat info {};
  if (::fstat(fd, &info) != 0 || !S_ISREG(info.st_mode)) {
    ::close(fd);
    throw KeystoreError("PKCS#11 PIN file " + path + " is not a regular file");
  }
  if ((info.st_mode & 077) != 0) {
    ::close(fd);
    throw KeystoreError("PKCS#11 PIN file " + path + " has mode " + detail::octalMode(info.st_mode) +
                        ", which gives group or other users access; restrict it with: chmod 600 " + path);
  }
  char buffer[kMaxPinBytes + 2];
  std::size_t total = 0;
  while (total < sizeof buffer) {
    const ssize_t n = ::read(fd, buffer + total, sizeof buffer - total);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    total += static_cast<std::size_t>(n);
  }
  ::close(fd);
  SecretBytes pin = trimmedPin(buffer, total);
  OPENSSL_cleanse(buffer, sizeof buffer);
  if (total > kMaxPinBytes) throw KeystoreError("PKCS#11 PIN file " + path + " is too long for a PIN");
  if (pin.empty()) throw KeystoreError("PKCS#11 PIN file " + path + " is empty");
  return pin;
}

SecretBytes loadPinFromEnv(const std::string& variable) {
  const char* value = std::getenv(variable.c_str());
  if (value == nullptr) throw KeystoreError("environment variable " + variable + " (PKCS#11 PIN) is not set");
  const std::size_t length = std::strlen(value);
  if (length > kMaxPinBytes) throw KeystoreError("environment variable " + variable + " is too long for a PIN");
  SecretBytes pin = trimmedPin(value, length);
  if (pin.empty()) throw KeystoreError("environment variable " + variable + " (PKCS#11 PIN) is empty");
  return pin;
}

}  // namespace pacsgw::keystore
