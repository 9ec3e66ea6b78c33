#pragma once
// Data keys bound to the backend that uses them. Every backend of an object written with key-reference
// format 3 encrypts under its own subkey of the data key, so no two backends ever hold the same key:
// a weakness of one backend (a research cipher, say) cannot expose what another encrypted under the
// same study key, and an object relabelled to another backend meets a different key.
#include "keystore/secret_bytes.h"

#include <string>

namespace pacsgw::codecs {

// HKDF-SHA-256 (RFC 5869): IKM = the 32-byte data key, no salt,
// info = "pacsgw backend subkey v1" || 0x00 || backend id; 32 bytes out.
SecretBytes backendSubkey(const SecretBytes& dataKey, const std::string& backendId);

// The same construction with another label: HKDF-SHA-256(IKM = 32-byte key, no salt,
// info = label || 0x00 || context), 32 bytes. For keys a backend's key owns (e.g. the exact-retrieval
// envelope key, codecs/exact_retrieval.h); every label is unique to its use.
SecretBytes deriveSubkey(const SecretBytes& key, const std::string& label, const std::string& context);

}  // namespace pacsgw::codecs
