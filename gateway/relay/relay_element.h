#pragma once
// Where the relay capsule travels inside a DICOM object: private element (0079,xx01) OB in the block
// reserved by private creator "PACSGW RELAY 1" (see docs/conformance.md). Present only on the way
// between two gateways; the receiving gateway removes it before the object reaches its PACS.
#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcitem.h>

#include <cstdint>
#include <optional>
#include <vector>

namespace pacsgw::gateway::relay {

constexpr std::uint16_t kRelayGroup = 0x0079;
constexpr const char* kRelayCreator = "PACSGW RELAY 1";
constexpr std::uint8_t kRelayCapsuleElement = 0x01;

bool hasRelayCapsule(DcmItem& dataset);
// The capsule bytes; nullopt when there is none. Throws std::runtime_error when there are several
// blocks or the element is not a byte string of acceptable size.
std::optional<std::vector<std::uint8_t>> readRelayCapsule(DcmItem& dataset);
// Replaces any capsule with this one.
void writeRelayCapsule(DcmItem& dataset, const std::vector<std::uint8_t>& capsule);
// Removes the capsule elements and their private creators.
void removeRelayCapsule(DcmItem& dataset);

}  // namespace pacsgw::gateway::relay
