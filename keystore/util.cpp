#include "keystore/keystore.h"
#include "keystore/keystore_internal.h"

#include <openssl/rand.h>

#include <climits>
#include <cstdio>
#include <ctime>

namespace pacsgw::keystore::detail {

namespace {

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::optional<SecretBytes> decodeHex(const char* text, std::size_t length) {
  if (length % 2 != 0) return std::nullopt;
  SecretBytes out(length / 2);
  for (std::size_t i = 0; i < out.size(); ++i) {
    const int hi = hexValue(text[2 * i]);
    const int lo = hexValue(text[2 * i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;  // `out` wipes itself
    out.data()[i] = static_cast<std::uint8_t>((hi << 4) | lo);
  }
  return out;
}

std::string encodeHex(const std::uint8_t* data, std::size_t length) {
  static const char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * length);
  for (std::size_t i = 0; i < length; ++i) {
    out.push_back(digits[data[i] >> 4]);
    out.push_back(digits[data[i] & 0x0f]);
  }
  return out;
}

void randomBytes(std::uint8_t* out, std::size_t length) {
  if (length > static_cast<std::size_t>(INT_MAX) || RAND_bytes(out, static_cast<int>(length)) != 1) {
    throw KeystoreError("the OpenSSL random generator failed; cannot create key material");
  }
}

std::string newUuidV4() {
  std::uint8_t b[16];
  randomBytes(b, sizeof b);
  b[6] = static_cast<std::uint8_t>((b[6] & 0x0f) | 0x40);  // version 4
  b[8] = static_cast<std::uint8_t>((b[8] & 0x3f) | 0x80);  // RFC 4122 variant
  const std::string hex = encodeHex(b, sizeof b);
  return hex.substr(0, 8) + '-' + hex.substr(8, 4) + '-' + hex.substr(12, 4) + '-' + hex.substr(16, 4) + '-' +
         hex.substr(20, 12);
}

bool looksLikeUuid(const std::string& text) {
  if (text.size() != 36) return false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const bool dash = (i == 8 || i == 13 || i == 18 || i == 23);
    if (dash ? text[i] != '-' : hexValue(text[i]) < 0) return false;
  }
  return true;
}

std::string utcNowIso8601() {
  const std::time_t now = std::time(nullptr);
  std::tm parts{};
  gmtime_r(&now, &parts);
  char buffer[32];
  std::strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%SZ", &parts);
  return buffer;
}

std::string printable(const std::string& text, std::size_t maxLength) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (out.size() >= maxLength) {
      out += "...";
      break;
    }
    const auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x20 || c == 0x7f) {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\x%02x", c);
      out += escaped;
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  return out;
}

std::string octalMode(unsigned mode) {
  char buffer[16];
  std::snprintf(buffer, sizeof buffer, "%04o", mode & 07777u);
  return buffer;
}

}  // namespace pacsgw::keystore::detail
