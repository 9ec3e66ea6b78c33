#include "gateway/large_object_store.h"

#include "codecs/dicom_crypt.h"
#include "gateway/pixel_data_header_reader.h"
#include "gateway/pixel_data_trailer_reader.h"
#include "keystore/keystore.h"

#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcistrmb.h>
#include <dcmtk/dcmdata/dcistrmf.h>
#include <dcmtk/dcmdata/dcpixel.h>
#include <dcmtk/dcmnet/dul.h>
#include <spdlog/spdlog.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <vector>

namespace pacsgw::gateway {

// Created with mkstemp (mode 0600) and unlinked at once: DCMTK reads it back through /proc/self/fd,
// so it needs no name, no clean-up and cannot outlive the process.
class CiphertextFile {
 public:
  explicit CiphertextFile(const std::string& directory) {
    std::error_code ignored;  // private when created here; an existing directory keeps the operator's mode
    if (std::filesystem::create_directories(directory, ignored)) ::chmod(directory.c_str(), 0700);
    std::string pattern = directory + "/object-XXXXXX";
    fd_ = ::mkstemp(pattern.data());
    if (fd_ < 0) throw std::runtime_error("cannot create a file in " + directory + ": " + std::strerror(errno));
    ::unlink(pattern.c_str());
    path_ = "/proc/self/fd/" + std::to_string(fd_);
  }
  ~CiphertextFile() {
    if (fd_ >= 0) ::close(fd_);
  }
  CiphertextFile(const CiphertextFile&) = delete;
  CiphertextFile& operator=(const CiphertextFile&) = delete;

  // Takes the space for the whole ciphertext now, so that objects stored at the same time cannot
  // count the same free space twice and a full disk refuses the object before any byte is read.
  // False when the disk cannot hold it; a file system without fallocate is trusted to the writes.
  bool reserve(std::uint64_t bytes) {
    const int error = ::posix_fallocate(fd_, 0, static_cast<off_t>(bytes));
    return error == 0 || error == EOPNOTSUPP || error == EINVAL;
  }

  void append(const std::uint8_t* data, std::size_t size) {
    while (size > 0) {
      const ssize_t n = ::write(fd_, data, size);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) throw std::runtime_error(std::string("cannot write the ciphertext: ") + std::strerror(errno));
      data += n;
      size -= static_cast<std::size_t>(n);
    }
  }
  const std::string& path() const { return path_; }

 private:
  int fd_ = -1;
  std::string path_;
};

namespace {

using Outcome = ReceivedDataSet::Outcome;

std::string megabytes(std::uint64_t bytes) { return std::to_string(bytes / (1024 * 1024)) + " MiB"; }

// One C-STORE data set being read; see receiveStoreDataSet.
class StoreReader {
 public:
  StoreReader(E_TransferSyntax xfer, const LargeObjectSettings& settings, AssociationMemory& memory,
              InstanceProtector& protector)
      : xfer_(xfer), settings_(settings), memory_(memory), protector_(protector), headerMemory_(memory) {
    header_->transferInit();
  }

  void feed(const std::uint8_t* data, std::uint32_t length, bool last) {
    switch (phase_) {
      case Phase::Header: readHeader(data, length, last); break;
      case Phase::InMemory: parser_->feed(data, length, last); break;
      case Phase::Pixels: sealPixels(data, length, last); break;
      case Phase::Trailer: readTrailer(data, length, last); break;
      case Phase::Refused: break;  // read to the end and dropped
    }
  }

  StoreDataSet finish() {
    if (phase_ == Phase::InMemory) {
      out_.received = parser_->finish();
      if (header_ && out_.received.outcome == Outcome::Received) appendToHeader();
    }
    if (phase_ == Phase::Header) {  // cannot happen after a last fragment; kept for safety
      refuse(Outcome::Malformed, "data set truncated");
    }
    return std::move(out_);
  }

 private:
  enum class Phase { Header, InMemory, Pixels, Trailer, Refused };

  void refuse(Outcome outcome, const std::string& reason) {
    phase_ = Phase::Refused;
    out_.received.outcome = outcome;
    out_.received.reason = reason;
    out_.received.dataset.reset();
    out_.received.reservation.reset();
    out_.ciphertext.reset();
    header_.reset();
    trailerReader_.reset();
    sealer_.reset();
    headerMemory_.reset();
    headerReader_.takeBytes();
  }

  void readHeader(const std::uint8_t* data, std::uint32_t length, bool last) {
    switch (headerReader_.read(*header_, headerMemory_, data, length, last)) {
      case PixelDataHeaderReader::Step::More: return;
      case PixelDataHeaderReader::Step::WindowExceeded: return continueInMemory(last);
      case PixelDataHeaderReader::Step::NoMemory: return refuse(Outcome::NoMemory, "gateway memory limit reached");
      case PixelDataHeaderReader::Step::Stopped: break;
    }
    const std::size_t end = headerReader_.end();
    const auto& pixelData = headerReader_.pixelData();
    if (!pixelData || pixelData->length == DCM_UndefinedLength) return continueInMemory(last);
    const std::size_t pixelDataStart = end - (DcmXfer(xfer_).isExplicitVR() ? 12 : 8);
    if (pixelData->length <= settings_.streamAboveBytes) {
      // Explicit VR carries Pixel Data's VR in the stream; in implicit VR it depends on the header.
      if (xfer_ == EXS_LittleEndianExplicit && std::uint64_t{end} + pixelData->length <= settings_.maxObjectBytes) {
        return continueAfterHeader(pixelDataStart, last);
      }
      return continueInMemory(last);
    }
    // Over the object limit: the in-memory parser refuses it from the bytes that actually arrive (too
    // large, or truncated when the length lies), holding at most the limit, as for any other object.
    if (std::uint64_t{end} + pixelData->length > settings_.maxObjectBytes) return continueInMemory(last);
    startSealing(*pixelData, end, last);
  }

  // Hands everything read so far to the in-memory parser, which takes it from here.
  void continueInMemory(bool last) {
    header_.reset();
    headerMemory_.reset();
    parser_ = std::make_unique<DataSetParser>(xfer_, settings_.maxObjectBytes, memory_);
    phase_ = Phase::InMemory;
    const std::string bytes = headerReader_.takeBytes();
    parser_->feed(bytes.data(), static_cast<std::uint32_t>(bytes.size()), last);
  }

  // The usual small object: the header parsed so far is kept, and Pixel Data with whatever follows is
  // parsed in memory from the Pixel Data element on, then appended (complete()), so the header is
  // parsed once, not a second time from its raw bytes.
  void continueAfterHeader(std::size_t pixelDataStart, bool last) {
    header_->transferEnd();
    headerBytes_ = pixelDataStart;
    // What stays held is the parsed header; the raw bytes are given back once handed on.
    const std::string bytes = headerReader_.takeBytes();
    headerMemory_.reset();
    if (headerMemory_.grow(headerBytes_) != AssociationMemory::Refusal::None) {
      return refuse(Outcome::NoMemory, "gateway memory limit reached");
    }
    parser_ = std::make_unique<DataSetParser>(xfer_, settings_.maxObjectBytes - headerBytes_, memory_);
    phase_ = Phase::InMemory;
    parser_->feed(bytes.data() + pixelDataStart, static_cast<std::uint32_t>(bytes.size() - pixelDataStart), last);
  }

  // Appends the elements parsed from Pixel Data on to the header read before it.
  void appendToHeader() {
    std::unique_ptr<DcmDataset> rest = std::move(out_.received.dataset);
    while (DcmElement* element = rest->remove(0UL)) {
      if (element->getTag() < DCM_PixelData || header_->insert(element).bad()) {
        delete element;
        return refuse(Outcome::Malformed, "elements out of order after Pixel Data");
      }
    }
    headerMemory_.reset();
    if (out_.received.reservation.grow(headerBytes_) != AssociationMemory::Refusal::None) {
      return refuse(Outcome::NoMemory, "gateway memory limit reached");
    }
    out_.received.bytes += headerBytes_;
    out_.received.dataset = std::move(header_);
  }

  void startSealing(const PixelDataHeader& pixelData, std::size_t end, bool last) {
    header_->transferEnd();
    try {
      sealer_ = protector_.sealerFor(*header_, xfer_, pixelData.length);
    } catch (const codecs::CryptError& e) {
      out_.cryptError = e.kind();
      return refuse(Outcome::Malformed, e.what());
    } catch (const std::exception& e) {  // keystore
      out_.cryptError = codecs::CryptErrorKind::BackendFailure;
      spdlog::error("cannot prepare the encryption of a large object: {}", e.what());
      return refuse(Outcome::Malformed, "gateway cannot encrypt this object");
    }
    if (!enoughDiskFor(settings_.directory, pixelData.length)) {
      spdlog::error("not enough free space in {} for a {} object", settings_.directory, megabytes(pixelData.length));
      return refuse(Outcome::NoMemory, "gateway has no room for this object");
    }
    try {
      out_.ciphertext = std::make_shared<CiphertextFile>(settings_.directory);
    } catch (const std::exception& e) {
      spdlog::error("large object: {}", e.what());
      return refuse(Outcome::NoMemory, "gateway has no room for this object");
    }
    if (!out_.ciphertext->reserve(pixelData.length)) {
      spdlog::error("cannot reserve {} in {} for a large object", megabytes(pixelData.length), settings_.directory);
      return refuse(Outcome::NoMemory, "gateway has no room for this object");
    }
    pixelData_ = pixelData;
    phase_ = Phase::Pixels;
    const std::string rest = headerReader_.takeBytes().substr(end);
    // What stays in memory is the parsed header; the raw bytes are given back.
    headerMemory_.reset();
    if (headerMemory_.grow(header_->getLength(xfer_)) != AssociationMemory::Refusal::None) {
      return refuse(Outcome::NoMemory, "gateway memory limit reached");
    }
    if (!rest.empty() || last) {
      sealPixels(reinterpret_cast<const std::uint8_t*>(rest.data()), static_cast<std::uint32_t>(rest.size()), last);
    }
  }

  void sealPixels(const std::uint8_t* data, std::uint32_t length, bool last) {
    const std::uint64_t left = pixelData_.length - sealer_->sealed();
    const std::uint32_t n = static_cast<std::uint32_t>(std::min<std::uint64_t>(left, length));
    if (n > 0) {
      buffer_.resize(n);
      try {
        sealer_->seal(data, n, buffer_.data());
        out_.ciphertext->append(buffer_.data(), n);
      } catch (const codecs::CryptError& e) {
        out_.cryptError = e.kind();
        return refuse(Outcome::Malformed, e.what());
      } catch (const std::exception& e) {
        spdlog::error("large object: {}", e.what());
        return refuse(Outcome::NoMemory, "gateway cannot write this object");
      }
    }
    if (sealer_->sealed() == pixelData_.length) {
      phase_ = Phase::Trailer;
      trailerReader_.start();
      if (length > n || last) readTrailer(data + n, length - n, last);
      return;
    }
    if (last) {
      refuse(Outcome::Malformed, "data set truncated: Pixel Data ended after " + std::to_string(sealer_->sealed()) +
                                     " of " + std::to_string(pixelData_.length) + " bytes");
    }
  }

  void readTrailer(const std::uint8_t* data, std::uint32_t length, bool last) {
    switch (trailerReader_.read(data, length, last)) {
      case PixelDataTrailerReader::Step::More: return;
      case PixelDataTrailerReader::Step::Complete: return complete();
      case PixelDataTrailerReader::Step::TooLarge: return refuse(Outcome::TooLarge, trailerReader_.error());
      case PixelDataTrailerReader::Step::Malformed: return refuse(Outcome::Malformed, trailerReader_.error());
    }
  }

  void complete() {
    if (!trailerReader_.moveInto(*header_)) return refuse(Outcome::Malformed, "elements out of order after Pixel Data");
    auto* pixels = new DcmPixelData(DcmTag(DCM_PixelData, pixelData_.vr));
    header_->insert(pixels);
    const OFCondition linked = pixels->createValueFromTempFile(
        new DcmInputFileStreamFactory(out_.ciphertext->path().c_str(), 0), pixelData_.length, EBO_LittleEndian);
    if (linked.bad()) return refuse(Outcome::NoMemory, "gateway cannot read back this object");
    try {
      sealer_->finish(*header_);
    } catch (const codecs::CryptError& e) {
      out_.cryptError = e.kind();
      return refuse(Outcome::Malformed, e.what());
    }
    out_.sealed = true;
    out_.received.outcome = Outcome::Received;
    out_.received.bytes = pixelData_.length;
    out_.received.reservation = std::move(headerMemory_);
    out_.received.dataset = std::move(header_);
  }

  const E_TransferSyntax xfer_;
  const LargeObjectSettings& settings_;
  AssociationMemory& memory_;
  InstanceProtector& protector_;
  Phase phase_ = Phase::Header;
  StoreDataSet out_;

  PixelDataHeaderReader headerReader_{xfer_};
  MemoryReservation headerMemory_;
  std::unique_ptr<DcmDataset> header_ = std::make_unique<DcmDataset>();
  std::unique_ptr<DataSetParser> parser_;
  std::size_t headerBytes_ = 0;  // bytes before Pixel Data, when the header is kept (continueAfterHeader)

  PixelDataHeader pixelData_;
  std::unique_ptr<codecs::NativePixelDataSealer> sealer_;
  std::vector<std::uint8_t> buffer_;

  PixelDataTrailerReader trailerReader_{xfer_};
};

}  // namespace

bool streamableTransferSyntax(E_TransferSyntax xfer) {
  return xfer == EXS_LittleEndianExplicit || xfer == EXS_LittleEndianImplicit;
}

LargeObjectSettings largeObjectSettings(const config::Config& config) {
  LargeObjectSettings settings;
  settings.streamAboveBytes = std::uint64_t{config.limits.streamAboveMb} << 20;
  settings.maxObjectBytes = std::uint64_t{config.limits.maxObjectMb} << 20;
  settings.directory = config.gateway.dataDir + "/large-objects";
  settings.timeoutSeconds = static_cast<int>(config.gateway.dimseTimeoutSeconds);
  return settings;
}

bool streamsLargeObjects(const config::Config& config, E_TransferSyntax xfer, const InstanceProtector& protector) {
  return config.limits.streamAboveMb > 0 && streamableTransferSyntax(xfer) && protector.sealsPixelDataStreaming();
}

StoreDataSet receiveStoreDataSet(T_ASC_Association* assoc, T_ASC_PresentationContextID presId, E_TransferSyntax xfer,
                                 const LargeObjectSettings& settings, AssociationMemory& memory,
                                 InstanceProtector& protector) {
  StoreReader reader(xfer, settings, memory, protector);
  for (bool last = false; !last;) {
    DUL_PDV pdv{};
    StoreDataSet failed;
    if (!nextDataSetFragment(assoc, presId, settings.timeoutSeconds, pdv, failed.received)) return failed;
    last = pdv.lastPDV;
    reader.feed(reinterpret_cast<const std::uint8_t*>(pdv.data), pdv.fragmentLength, last);
  }
  return reader.finish();
}

}  // namespace pacsgw::gateway
