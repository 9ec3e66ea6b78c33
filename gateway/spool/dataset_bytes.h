#pragma once
// A DICOM data set to and from the bytes of a spool record's payload.
#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdatset.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace pacsgw::gateway::spool {

// The syntax a data set received in `xfer` is spooled in: the same, except that deflated data
// sets are spooled inflated (Explicit VR Little Endian).
E_TransferSyntax spoolTransferSyntax(E_TransferSyntax xfer);
// Encodes `dataset` in `xfer` (not deflated). Throws std::runtime_error.
std::string encodeDataset(DcmDataset& dataset, E_TransferSyntax xfer);
// The number of bytes encodeDataset / writeDataset produce for `dataset` in `xfer`.
std::uint64_t encodedLength(DcmDataset& dataset, E_TransferSyntax xfer);
// Encodes `dataset` in `xfer` in pieces of at most 1 MiB handed to `sink` in order: a large data set,
// whose Pixel Data DCMTK reads from its file while it writes, is never whole in memory. Throws
// std::runtime_error (and passes on what `sink` throws).
void writeDataset(DcmDataset& dataset, E_TransferSyntax xfer, const std::function<void(const void*, std::size_t)>& sink);
// A payload of `size` bytes at `offset` in the file `path` (a spool record file), for sending. A
// native Pixel Data value with an explicit length, in a little-endian syntax, stays in the file and
// DCMTK reads it in pieces while it sends; the other elements are read into memory. Anything else
// (no such Pixel Data, encapsulated pixels, a header above 16 MiB) is read whole, as decodeDataset
// does. `pixelsInFile` says which it was. Throws std::runtime_error.
std::unique_ptr<DcmDataset> openDatasetInFile(const std::string& path, std::uint64_t offset, std::uint64_t size,
                                              E_TransferSyntax xfer, bool& pixelsInFile);
// Decodes a payload; throws std::runtime_error when the bytes are not a complete data set.
std::unique_ptr<DcmDataset> decodeDataset(const std::uint8_t* data, std::size_t size, E_TransferSyntax xfer);

}  // namespace pacsgw::gateway::spool
