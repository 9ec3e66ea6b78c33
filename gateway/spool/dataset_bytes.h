#pragma once
// A DICOM data set to and from the bytes of a spool record's payload.
#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdatset.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace pacsgw::gateway::spool {

// The syntax a data set received in `xfer` is spooled in: the same, except that deflated data
// sets are spooled inflated (Explicit VR Little Endian).
E_TransferSyntax spoolTransferSyntax(E_TransferSyntax xfer);
// Encodes `dataset` in `xfer` (not deflated). Throws std::runtime_error.
std::string encodeDataset(DcmDataset& dataset, E_TransferSyntax xfer);
// Decodes a payload; throws std::runtime_error when the bytes are not a complete data set.
std::unique_ptr<DcmDataset> decodeDataset(const std::uint8_t* data, std::size_t size, E_TransferSyntax xfer);

}  // namespace pacsgw::gateway::spool
