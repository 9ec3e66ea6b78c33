// Fuzzes the key-reference block reader: every field of the (0077,xx01-xx0D) block present or not, with
// its VR or another one, and values of any length and content. A malformed block must end in a
// CryptError, never in a crash, a hang or an out-of-bounds read.
#include "codecs/dicom_crypt.h"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdatset.h>
#include <fuzzer/FuzzedDataProvider.h>

#include <cstdint>
#include <vector>

using namespace pacsgw::codecs;

namespace {

DcmEVR vrOf(std::uint8_t offset) {
  switch (offset) {
    case 0x04: return EVR_CS;
    case 0x05: return EVR_UI;
    case 0x06: return EVR_AT;
    case 0x07: return EVR_UL;
    case 0x08: case 0x09: case 0x0A: case 0x0D: return EVR_OB;
    case 0x0B: return EVR_DT;
    default: return EVR_LO;
  }
}

void putFuzzedElement(DcmDataset& ds, FuzzedDataProvider& in, std::uint8_t block, std::uint8_t offset) {
  // Sometimes the wrong VR, as a foreign or tampered object would carry.
  const DcmEVR vr = in.ConsumeBool() ? vrOf(offset) : vrOf(in.ConsumeIntegralInRange<std::uint8_t>(1, 13));
  const DcmTag tag(kKeyRefGroup, static_cast<Uint16>((block << 8) | offset), vr);
  switch (vr) {
    case EVR_AT: case EVR_UL: {
      std::vector<std::uint32_t> values(in.ConsumeIntegralInRange<std::size_t>(0, 8));
      for (auto& v : values) v = in.ConsumeIntegral<std::uint32_t>();
      if (vr == EVR_UL) {
        ds.putAndInsertUint32Array(tag, values.data(), static_cast<unsigned long>(values.size()));
      } else {
        std::vector<Uint16> pairs;
        for (auto v : values) {
          pairs.push_back(static_cast<Uint16>(v >> 16));
          pairs.push_back(static_cast<Uint16>(v & 0xFFFF));
        }
        // DCMTK counts AT values as tags (pairs of Uint16).
        ds.putAndInsertUint16Array(tag, pairs.data(), static_cast<unsigned long>(values.size()));
      }
      break;
    }
    case EVR_OB: {
      const auto bytes = in.ConsumeBytes<Uint8>(in.ConsumeIntegralInRange<std::size_t>(0, 128));
      ds.putAndInsertUint8Array(tag, bytes.data(), static_cast<unsigned long>(bytes.size()));
      break;
    }
    default:
      ds.putAndInsertString(tag, in.ConsumeRandomLengthString(96).c_str());
  }
}

void readBlock(DcmDataset& ds) {
  try {
    if (hasKeyReference(ds)) readKeyReference(ds);
  } catch (const CryptError&) {
    // the expected outcome for a malformed block
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const bool dictionary = (registerKeyReferenceDictionary(), true);
  (void)dictionary;
  FuzzedDataProvider in(data, size);
  DcmDataset ds;
  // A block at a fuzzed position with fuzzed elements, as a foreign or tampered object would carry it.
  // (Raw wire bytes are DCMTK's to parse; the integration tests cover truncated and lying data sets.)
  const std::uint8_t block = in.ConsumeIntegral<std::uint8_t>();
  const DcmTag creator(kKeyRefGroup, block, EVR_LO);
  ds.putAndInsertString(creator, in.ConsumeBool() ? kKeyRefCreator : in.ConsumeRandomLengthString(20).c_str());
  // The format version decides which fields are required: favour the real ones.
  const char* const versions[] = {"1", "2"};
  for (std::uint8_t offset = 0x01; offset <= 0x0D; ++offset) {
    if (!in.ConsumeBool()) continue;
    if (offset == 0x0C && in.ConsumeBool()) {
      ds.putAndInsertString(DcmTag(kKeyRefGroup, static_cast<Uint16>((block << 8) | offset), EVR_LO),
                            versions[in.ConsumeBool() ? 1 : 0]);
    } else {
      putFuzzedElement(ds, in, block, offset);
    }
  }
  readBlock(ds);
  return 0;
}
