#pragma once
// Helpers shared by the keystore translation units. Not part of the public interface.
#include "keystore/secret_bytes.h"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

namespace pacsgw::keystore::detail {

constexpr std::size_t kMasterKeyBytes = 32;
constexpr std::size_t kDataKeyBytes = 32;

// Decodes exactly 2*N hex characters (either case) into N bytes; nullopt on any other input.
// The caller's text is not echoed anywhere, so it may hold key material.
std::optional<SecretBytes> decodeHex(const char* text, std::size_t length);

// Lower-case hex of the bytes; used only to write a new master key file.
std::string encodeHex(const std::uint8_t* data, std::size_t length);

// Fills the buffer from the OpenSSL CSPRNG; throws KeystoreError if it cannot.
void randomBytes(std::uint8_t* out, std::size_t length);

// RFC 4122 version 4 UUID in lower-case text form.
std::string newUuidV4();
bool looksLikeUuid(const std::string& text);

// Current time as ISO 8601 UTC, e.g. 2024-05-01T09:30:00Z.
std::string utcNowIso8601();

// Makes untrusted text safe to put in an error message: control bytes escaped, long text cut.
std::string printable(const std::string& text, std::size_t maxLength = 80);

// "0644"-style rendering of a permission mode.
std::string octalMode(unsigned mode);

}  // namespace pacsgw::keystore::detail
