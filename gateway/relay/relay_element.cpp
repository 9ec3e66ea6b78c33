#include "gateway/relay/relay_element.h"

#include "gateway/relay/relay_capsule.h"

#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcelem.h>
#include <dcmtk/dcmdata/dcvrlo.h>
#include <dcmtk/dcmdata/dcvrobow.h>

#include <stdexcept>
#include <string>

namespace pacsgw::gateway::relay {

namespace {

DcmTagKey creatorTag(std::uint8_t block) { return DcmTagKey(kRelayGroup, block); }
DcmTagKey capsuleTag(std::uint8_t block) {
  return DcmTagKey(kRelayGroup, static_cast<Uint16>(block << 8 | kRelayCapsuleElement));
}

// Blocks (0x10-0xFF) whose private creator reads "PACSGW RELAY 1" (trailing spaces ignored).
// One walk over the top-level elements, which DCMTK keeps in ascending tag order: every C-STORE is
// checked, and a look-up per possible block (240 searches of the whole data set) cost more than
// encrypting the pixel data.
std::vector<std::uint8_t> relayBlocks(DcmItem& dataset) {
  std::vector<std::uint8_t> out;
  for (DcmObject* obj = dataset.nextInContainer(nullptr); obj != nullptr; obj = dataset.nextInContainer(obj)) {
    const DcmTagKey key = obj->getTag();
    if (key.getGroup() < kRelayGroup) continue;
    if (key.getGroup() > kRelayGroup || key.getElement() > 0xFF) break;
    if (key.getElement() < 0x10) continue;
    auto* element = dynamic_cast<DcmElement*>(obj);
    OFString creator;
    if (element == nullptr || element->getOFString(creator, 0, OFTrue).bad()) continue;
    std::string text = creator.c_str();
    while (!text.empty() && text.back() == ' ') text.pop_back();
    if (text == kRelayCreator) out.push_back(static_cast<std::uint8_t>(key.getElement()));
  }
  return out;
}

}  // namespace

bool hasRelayCapsule(DcmItem& dataset) {
  for (const std::uint8_t block : relayBlocks(dataset)) {
    if (dataset.tagExists(capsuleTag(block))) return true;
  }
  return false;
}

std::optional<std::vector<std::uint8_t>> readRelayCapsule(DcmItem& dataset) {
  const std::vector<std::uint8_t> blocks = relayBlocks(dataset);
  if (blocks.empty()) return std::nullopt;
  if (blocks.size() > 1) throw std::runtime_error("the object carries more than one relay capsule block");
  DcmElement* element = nullptr;
  if (dataset.findAndGetElement(capsuleTag(blocks.front()), element).bad() || element == nullptr) return std::nullopt;
  const Uint32 length = element->getLength();
  if (length == 0 || length > kMaxCapsuleBytes) {
    throw std::runtime_error("relay capsule element of " + std::to_string(length) + " bytes (expected 1 to " +
                             std::to_string(kMaxCapsuleBytes) + ")");
  }
  Uint8* bytes = nullptr;
  if (element->getUint8Array(bytes).bad() || bytes == nullptr) {
    throw std::runtime_error("relay capsule element is not a byte string");
  }
  std::vector<std::uint8_t> out(bytes, bytes + length);
  // OB values are padded to even length; DER knows its own length, so drop one trailing pad byte.
  if (length % 2 == 0 && !out.empty() && out.back() == 0 && out.size() > 2) {
    // The DER length of the outer SEQUENCE tells whether the last byte belongs to it.
    std::size_t derLength = 0;
    if (out[1] < 0x80) {
      derLength = 2 + out[1];
    } else {
      const std::size_t count = out[1] & 0x7F;
      if (count >= 1 && count <= 3 && out.size() > 2 + count) {
        std::size_t value = 0;
        for (std::size_t i = 0; i < count; ++i) value = value << 8 | out[2 + i];
        derLength = 2 + count + value;
      }
    }
    if (derLength + 1 == out.size()) out.pop_back();
  }
  return out;
}

void writeRelayCapsule(DcmItem& dataset, const std::vector<std::uint8_t>& capsule) {
  removeRelayCapsule(dataset);
  unsigned block = 0x10;
  for (; block <= 0xFF; ++block) {
    if (!dataset.tagExists(creatorTag(static_cast<std::uint8_t>(block)))) break;
  }
  if (block > 0xFF) throw std::runtime_error("no free private block in group 0079 for the relay capsule");
  const auto b = static_cast<std::uint8_t>(block);
  if (dataset.putAndInsertString(creatorTag(b), kRelayCreator).bad()) {
    throw std::runtime_error("cannot write the relay capsule's private creator");
  }
  DcmTag tag(capsuleTag(b), EVR_OB);
  tag.setPrivateCreator(kRelayCreator);
  auto* element = new DcmOtherByteOtherWord(tag);
  if (element->putUint8Array(capsule.data(), static_cast<unsigned long>(capsule.size())).bad() ||
      dataset.insert(element, true).bad()) {
    throw std::runtime_error("cannot write the relay capsule element");
  }
}

void removeRelayCapsule(DcmItem& dataset) {
  for (const std::uint8_t block : relayBlocks(dataset)) {
    for (unsigned offset = 0; offset <= 0xFF; ++offset) {
      const DcmTagKey key(kRelayGroup, static_cast<Uint16>(block << 8 | offset));
      if (dataset.tagExists(key)) dataset.findAndDeleteElement(key);
    }
    dataset.findAndDeleteElement(creatorTag(block));
  }
}

}  // namespace pacsgw::gateway::relay
