#pragma once
// Private to codecs/: layout of the key-reference private block (0077,xx01-xx0C) and its validation.
#include "codecs/dicom_crypt.h"

#include <cstdint>
#include <vector>

namespace pacsgw::codecs::detail {

// Element byte within the block: the full tag is (0077, block << 8 | offset).
enum KeyRefElement : std::uint8_t {
  kKeyRefBackendId = 0x01,         // LO
  kKeyRefBackendVersion = 0x02,    // LO
  kKeyRefKeyId = 0x03,             // LO, UUID
  kKeyRefKeyScope = 0x04,          // CS
  kKeyRefOriginalXfer = 0x05,      // UI
  kKeyRefProtectedElements = 0x06, // AT, 1-n
  kKeyRefProtectedLengths = 0x07,  // UL, 1-n
  kKeyRefNonce = 0x08,             // OB
  kKeyRefTag = 0x09,               // OB
  kKeyRefParams = 0x0A,            // OB, may be empty
  kKeyRefEncryptedAt = 0x0B,       // DT, UTC
  kKeyRefFormatVersionElement = 0x0C, // LO, "1" or "2"
  kKeyRefBoundDigest = 0x0D,       // OB, 32 bytes; formats 2 and 3
  kKeyRefPayload = 0x0E,           // OB, optional: the backend payload (CipherRecord::payload)
  kKeyRefEnvelope = 0x0F,          // OB, optional: the exact-retrieval envelope of a lossy backend
};

// Format written by this build; format 1 and 2 objects are still read and decrypted.
// Format 3: the backend receives its own subkey of the data key (codecs/backend_key.h).
constexpr int kKeyRefFormatVersion = 3;
constexpr std::size_t kBoundDigestBytes = 32;
constexpr std::size_t kMaxNonceBytes = 64;
constexpr std::size_t kMaxTagBytes = 64;
constexpr std::size_t kMaxParamsBytes = std::size_t{1} << 20;
// Backend payload and envelope: each at most twice the protected pixel bytes plus 1 MiB, and never more
// than 1 GiB, so a forged length cannot make a reader allocate without bound.
std::size_t maxSideDataBytes(const std::vector<std::uint32_t>& protectedLengths);

// Block bytes (0x10-0xFF) whose private creator (0077,00bb) reads "PACSGW KEYREF 1".
std::vector<std::uint8_t> findKeyReferenceBlocks(DcmItem& dataset);

inline DcmTagKey keyRefTag(std::uint8_t block, std::uint8_t offset) {
  return DcmTagKey(kKeyRefGroup, static_cast<Uint16>((block << 8) | offset));
}

bool isUuid(const std::string& text);
// Upper-cases a key scope; throws CryptError(MalformedKeyReference) unless STUDY, SERIES or INSTANCE.
std::string normaliseKeyScope(const std::string& scope);
// DICOM DT of the current time in UTC, with microseconds and an explicit +0000 offset.
std::string currentUtcDateTime();

}  // namespace pacsgw::codecs::detail
