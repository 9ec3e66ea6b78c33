#include "gateway/pixel_data_header_reader.h"

#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcxfer.h>

#include <sys/statvfs.h>

namespace pacsgw::gateway {
namespace {

std::uint32_t littleEndian32(const std::uint8_t* p) {
  return std::uint32_t{p[0]} | std::uint32_t{p[1]} << 8 | std::uint32_t{p[2]} << 16 | std::uint32_t{p[3]} << 24;
}

// The top-level Pixel Data header that ends at `end` of the bytes read so far, if that is where the
// parser stopped: tag (7FE0,0010), in explicit VR "OB"/"OW" with a 32-bit length.
std::optional<PixelDataHeader> pixelDataHeaderBefore(const std::string& bytes, std::size_t end, bool explicitVr) {
  const std::size_t size = explicitVr ? 12 : 8;
  if (end < size || end > bytes.size()) return std::nullopt;
  const auto* p = reinterpret_cast<const std::uint8_t*>(bytes.data()) + (end - size);
  if (!(p[0] == 0xE0 && p[1] == 0x7F && p[2] == 0x10 && p[3] == 0x00)) return std::nullopt;
  PixelDataHeader header;
  if (explicitVr) {
    if (p[6] != 0 || p[7] != 0 || p[4] != 'O' || (p[5] != 'B' && p[5] != 'W')) return std::nullopt;
    header.vr = p[5] == 'B' ? EVR_OB : EVR_OW;
  }
  header.length = littleEndian32(p + size - 4);
  return header;
}

}  // namespace

bool enoughDiskFor(const std::string& directory, std::uint64_t bytes) {
  struct statvfs fs {};
  if (::statvfs(directory.c_str(), &fs) != 0) return true;  // let the write itself fail precisely
  return std::uint64_t{fs.f_bavail} * fs.f_frsize > bytes + (std::uint64_t{64} << 20);
}

PixelDataHeaderReader::Step PixelDataHeaderReader::read(DcmDataset& header, MemoryReservation& memory,
                                                        const std::uint8_t* data, std::uint32_t length, bool last) {
  bytes_.append(reinterpret_cast<const char*>(data), length);
  if (memory.grow(2 * std::uint64_t{length}) != AssociationMemory::Refusal::None) return Step::NoMemory;
  stream_.setBuffer(data, static_cast<offile_off_t>(length));
  if (last) stream_.setEos();
  const OFCondition cond = header.readUntilTag(stream_, xfer_, EGL_noChange, DCM_MaxReadLength, DCM_PixelData);
  stream_.releaseBuffer();
  if (cond == EC_StreamNotifyClient && !last) {
    return bytes_.size() > kDecisionWindowBytes ? Step::WindowExceeded : Step::More;
  }
  end_ = static_cast<std::size_t>(stream_.tell());
  // EC_Normal: the parser stopped at a tag from (7FE0,0010) on, or the data set ended.
  const bool stopped = cond == EC_Normal && end_ < bytes_.size() + (last ? 0 : 1);
  pixelData_ = stopped ? pixelDataHeaderBefore(bytes_, end_, DcmXfer(xfer_).isExplicitVR()) : std::nullopt;
  return Step::Stopped;
}

std::string PixelDataHeaderReader::takeBytes() {
  std::string bytes;
  bytes.swap(bytes_);
  return bytes;
}

}  // namespace pacsgw::gateway
