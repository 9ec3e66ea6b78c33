#include "gateway/spool/dataset_bytes.h"

#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcistrmb.h>
#include <dcmtk/dcmdata/dcistrmf.h>
#include <dcmtk/dcmdata/dcostrmb.h>
#include <dcmtk/dcmdata/dcpixel.h>
#include <dcmtk/dcmdata/dcxfer.h>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <vector>

namespace pacsgw::gateway::spool {

E_TransferSyntax spoolTransferSyntax(E_TransferSyntax xfer) {
  return xfer == EXS_DeflatedLittleEndianExplicit ? EXS_LittleEndianExplicit : xfer;
}

std::string encodeDataset(DcmDataset& dataset, E_TransferSyntax xfer) {
  if (xfer == EXS_DeflatedLittleEndianExplicit || xfer == EXS_Unknown) {
    throw std::runtime_error("cannot spool a data set in transfer syntax " + std::string(DcmXfer(xfer).getXferName()));
  }
  // The data set is written straight into the result, sized from DCMTK's own length calculation:
  // no intermediate buffer, so the pixel data is copied once. Should the calculation fall short, the
  // rest goes through a chunk.
  const Uint32 expected = dataset.calcElementLength(xfer, EET_ExplicitLength);
  std::string out(expected > 0 && expected < (1u << 30) ? expected : 0, '\0');
  dataset.transferInit();
  OFCondition cond = EC_StreamNotifyClient;
  std::size_t used = 0;
  if (!out.empty()) {
    DcmOutputBufferStream direct(out.data(), static_cast<offile_off_t>(out.size()));
    cond = dataset.write(direct, xfer, EET_ExplicitLength, nullptr);
    void* buffer = nullptr;
    offile_off_t length = 0;
    direct.flushBuffer(buffer, length);
    used = static_cast<std::size_t>(length);
  }
  out.resize(used);
  if (cond == EC_StreamNotifyClient) {
    std::vector<char> chunk(1 << 20);
    DcmOutputBufferStream stream(chunk.data(), static_cast<offile_off_t>(chunk.size()));
    while (cond == EC_StreamNotifyClient) {
      cond = dataset.write(stream, xfer, EET_ExplicitLength, nullptr);
      void* buffer = nullptr;
      offile_off_t length = 0;
      stream.flushBuffer(buffer, length);
      out.append(static_cast<const char*>(buffer), static_cast<std::size_t>(length));
    }
  }
  dataset.transferEnd();
  if (cond.bad()) throw std::runtime_error("cannot encode the data set: " + std::string(cond.text()));
  return out;
}

std::uint64_t encodedLength(DcmDataset& dataset, E_TransferSyntax xfer) {
  return dataset.calcElementLength(xfer, EET_ExplicitLength);
}

void writeDataset(DcmDataset& dataset, E_TransferSyntax xfer, const std::function<void(const void*, std::size_t)>& sink) {
  if (xfer == EXS_DeflatedLittleEndianExplicit || xfer == EXS_Unknown) {
    throw std::runtime_error("cannot spool a data set in transfer syntax " + std::string(DcmXfer(xfer).getXferName()));
  }
  std::vector<char> chunk(std::size_t{1} << 20);
  DcmOutputBufferStream stream(chunk.data(), static_cast<offile_off_t>(chunk.size()));
  dataset.transferInit();
  OFCondition cond = EC_StreamNotifyClient;
  try {
    while (cond == EC_StreamNotifyClient) {
      cond = dataset.write(stream, xfer, EET_ExplicitLength, nullptr);
      void* buffer = nullptr;
      offile_off_t length = 0;
      stream.flushBuffer(buffer, length);
      if (length > 0) sink(buffer, static_cast<std::size_t>(length));
    }
  } catch (...) {
    dataset.transferEnd();
    throw;
  }
  dataset.transferEnd();
  if (cond.bad()) throw std::runtime_error("cannot encode the data set: " + std::string(cond.text()));
}

namespace {

// Larger headers (or elements after Pixel Data) are not expected in a large native object.
constexpr std::size_t kInMemoryPartLimit = std::size_t{16} << 20;

class FileReader {
 public:
  explicit FileReader(const std::string& path) : path_(path), fd_(::open(path.c_str(), O_RDONLY | O_CLOEXEC)) {
    if (fd_ < 0) throw std::runtime_error("cannot open " + path + ": " + std::strerror(errno));
  }
  ~FileReader() { ::close(fd_); }
  FileReader(const FileReader&) = delete;
  FileReader& operator=(const FileReader&) = delete;

  std::vector<std::uint8_t> read(std::uint64_t offset, std::size_t length) const {
    std::vector<std::uint8_t> out(length);
    std::size_t done = 0;
    while (done < length) {
      const ssize_t n = ::pread(fd_, out.data() + done, length - done, static_cast<off_t>(offset + done));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) throw std::runtime_error("cannot read " + path_ + ": " + (n == 0 ? "file too short" : std::strerror(errno)));
      done += static_cast<std::size_t>(n);
    }
    return out;
  }

 private:
  std::string path_;
  int fd_;
};

struct NativePixelData {
  DcmEVR vr = EVR_OW;
  std::uint32_t length = 0;
};

// The top-level Pixel Data element header that ends at `end` of `bytes`, when that is where the
// parser stopped: tag (7FE0,0010), explicit VR "OB"/"OW" with a 32-bit length, or implicit VR.
std::optional<NativePixelData> pixelDataHeaderBefore(const std::vector<std::uint8_t>& bytes, std::size_t end,
                                                     bool explicitVr) {
  const std::size_t size = explicitVr ? 12 : 8;
  if (end < size || end > bytes.size()) return std::nullopt;
  const std::uint8_t* p = bytes.data() + (end - size);
  if (!(p[0] == 0xE0 && p[1] == 0x7F && p[2] == 0x10 && p[3] == 0x00)) return std::nullopt;
  NativePixelData header;
  if (explicitVr) {
    if (p[6] != 0 || p[7] != 0 || p[4] != 'O' || (p[5] != 'B' && p[5] != 'W')) return std::nullopt;
    header.vr = p[5] == 'B' ? EVR_OB : EVR_OW;
  }
  const std::uint8_t* l = p + size - 4;
  header.length = std::uint32_t{l[0]} | std::uint32_t{l[1]} << 8 | std::uint32_t{l[2]} << 16 | std::uint32_t{l[3]} << 24;
  if (header.length == DCM_UndefinedLength) return std::nullopt;
  return header;
}

}  // namespace

std::unique_ptr<DcmDataset> openDatasetInFile(const std::string& path, std::uint64_t offset, std::uint64_t size,
                                              E_TransferSyntax xfer, bool& pixelsInFile) {
  pixelsInFile = false;
  const FileReader file(path);
  const bool littleEndian = xfer == EXS_LittleEndianExplicit || xfer == EXS_LittleEndianImplicit;
  const std::size_t limit = static_cast<std::size_t>(std::min<std::uint64_t>(size, kInMemoryPartLimit));
  // The header is usually a few KiB: read a small window first, more only when the parser asks for it.
  for (std::size_t window = std::min<std::size_t>(limit, 256 << 10); littleEndian && window < size;
       window = std::min(window * 4, limit)) {
    const std::vector<std::uint8_t> head = file.read(offset, window);
    auto dataset = std::make_unique<DcmDataset>();
    DcmInputBufferStream stream;
    stream.setBuffer(head.data(), static_cast<offile_off_t>(head.size()));
    dataset->transferInit();
    const OFCondition cond = dataset->readUntilTag(stream, xfer, EGL_noChange, DCM_MaxReadLength, DCM_PixelData);
    const auto end = static_cast<std::size_t>(stream.tell());
    stream.releaseBuffer();
    dataset->transferEnd();
    if (cond == EC_StreamNotifyClient && window < limit) continue;  // the header goes on: a larger window
    const auto pixels = cond == EC_Normal ? pixelDataHeaderBefore(head, end, DcmXfer(xfer).isExplicitVR()) : std::nullopt;
    const std::uint64_t trailerOffset = pixels ? std::uint64_t{end} + pixels->length : 0;
    if (!pixels || trailerOffset > size || size - trailerOffset > kInMemoryPartLimit) break;
    // Elements after Pixel Data (private groups above 7FE0, padding): small, read into memory.
    if (trailerOffset < size) {
      const std::vector<std::uint8_t> tail =
          file.read(offset + trailerOffset, static_cast<std::size_t>(size - trailerOffset));
      std::unique_ptr<DcmDataset> trailer = decodeDataset(tail.data(), tail.size(), xfer);
      while (DcmElement* element = trailer->remove(0UL)) {
        if (element->getTag() <= DCM_PixelData || dataset->tagExists(element->getTag())) {
          delete element;
          throw std::runtime_error("spooled data set has elements out of order after Pixel Data");
        }
        dataset->insert(element);
      }
    }
    auto* pixelData = new DcmPixelData(DcmTag(DCM_PixelData, pixels->vr));
    dataset->insert(pixelData);
    const OFCondition linked = pixelData->createValueFromTempFile(
        new DcmInputFileStreamFactory(path.c_str(), static_cast<offile_off_t>(offset + end)), pixels->length,
        EBO_LittleEndian);
    if (linked.bad()) throw std::runtime_error("cannot read Pixel Data from " + path + ": " + linked.text());
    pixelsInFile = true;
    return dataset;
  }
  // Not a large native object: as decodeDataset, from the whole payload.
  if (size > (std::uint64_t{1} << 32)) throw std::runtime_error("spooled data set too large to decode");
  const std::vector<std::uint8_t> whole = file.read(offset, static_cast<std::size_t>(size));
  return decodeDataset(whole.data(), whole.size(), xfer);
}

std::unique_ptr<DcmDataset> decodeDataset(const std::uint8_t* data, std::size_t size, E_TransferSyntax xfer) {
  DcmInputBufferStream stream;
  stream.setBuffer(data, static_cast<offile_off_t>(size));
  stream.setEos();
  auto dataset = std::make_unique<DcmDataset>();
  dataset->transferInit();
  OFCondition cond = dataset->read(stream, xfer, EGL_noChange, DCM_MaxReadLength);
  dataset->transferEnd();
  if (cond.bad()) throw std::runtime_error("spooled data set cannot be decoded: " + std::string(cond.text()));
  return dataset;
}

}  // namespace pacsgw::gateway::spool
