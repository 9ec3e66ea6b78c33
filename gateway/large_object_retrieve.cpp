#include "gateway/large_object_retrieve.h"

#include "codecs/aes_gcm.h"
#include "gateway/pixel_data_header_reader.h"
#include "gateway/pixel_data_trailer_reader.h"

#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcistrma.h>
#include <dcmtk/dcmdata/dcpixel.h>
#include <dcmtk/dcmnet/dul.h>
#include <spdlog/spdlog.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <vector>

namespace pacsgw::gateway {

SpooledPixelData::SpooledPixelData(const std::string& directory, DcmEVR vr, std::uint32_t length)
    : vr_(vr), length_(length) {
  // Private when the gateway creates it; an existing directory's mode is the operator's (never widened or
  // narrowed here). The file itself is mkstemp's 0600 and unlinked at once.
  std::error_code ignored;
  if (std::filesystem::create_directories(directory, ignored)) ::chmod(directory.c_str(), 0700);
  std::string pattern = directory + "/retrieved-XXXXXX";
  fd_ = ::mkstemp(pattern.data());
  if (fd_ < 0) throw std::runtime_error("cannot create a file in " + directory + ": " + std::strerror(errno));
  ::unlink(pattern.c_str());  // nothing to clean up, nothing outlives the process
}

SpooledPixelData::~SpooledPixelData() {
  if (fd_ >= 0) ::close(fd_);
}

bool SpooledPixelData::reserve() {
  const int error = ::posix_fallocate(fd_, 0, static_cast<off_t>(length_));
  return error == 0 || error == EOPNOTSUPP || error == EINVAL;
}

void SpooledPixelData::append(const std::uint8_t* data, std::size_t size) {
  if (size > length_ - written_) throw std::runtime_error("more pixel data than announced");
  while (size > 0) {
    const ssize_t n = ::pwrite(fd_, data, size, static_cast<off_t>(written_));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw std::runtime_error(std::string("cannot write the pixel data: ") + std::strerror(errno));
    data += n;
    size -= static_cast<std::size_t>(n);
    written_ += static_cast<std::uint64_t>(n);
  }
}

std::size_t SpooledPixelData::readAt(std::uint64_t offset, std::uint8_t* data, std::size_t size) const {
  if (offset >= written_) return 0;
  size = static_cast<std::size_t>(std::min<std::uint64_t>(size, written_ - offset));
  std::size_t done = 0;
  while (done < size) {
    const ssize_t n = ::pread(fd_, data + done, size - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw std::runtime_error(std::string("cannot read the pixel data: ") + std::strerror(errno));
    if (n == 0) throw std::runtime_error("the pixel data file is shorter than written");
    done += static_cast<std::size_t>(n);
  }
  return done;
}

namespace {

using Outcome = ReceivedDataSet::Outcome;

// The piece read from the file at a time, in either pass.
constexpr std::size_t kPieceBytes = std::size_t{1} << 20;

// Hands DCMTK the spooled value, as it is (ciphertext) or decrypted after the tag verified. DCMTK
// reads it in order; a read from an earlier offset (a second attempt to send) starts a new pass.
class SpooledValueProducer : public DcmProducer {
 public:
  SpooledValueProducer(std::shared_ptr<SpooledPixelData> pixels, std::shared_ptr<const codecs::VerifiedGcmMessage> message)
      : pixels_(std::move(pixels)), message_(std::move(message)) {
    restart();
  }
  OFBool good() const override { return status_.good(); }
  OFCondition status() const override { return status_; }
  OFBool eos() override { return position_ >= pixels_->length(); }
  offile_off_t avail() override { return static_cast<offile_off_t>(pixels_->length() - position_); }

  offile_off_t read(void* buf, offile_off_t buflen) override {
    if (status_.bad() || buflen <= 0) return 0;
    auto* out = static_cast<std::uint8_t*>(buf);
    try {
      const std::size_t n = pixels_->readAt(position_, out, static_cast<std::size_t>(buflen));
      if (stream_) stream_->update(out, n, out);
      position_ += n;
      return static_cast<offile_off_t>(n);
    } catch (const std::exception& e) {
      spdlog::error("large object: {}", e.what());
      status_ = EC_InvalidStream;
      return 0;
    }
  }

  offile_off_t skip(offile_off_t skiplen) override {
    std::vector<std::uint8_t> discard(kPieceBytes);
    offile_off_t done = 0;
    while (done < skiplen && status_.good()) {
      const offile_off_t n = read(discard.data(), std::min<offile_off_t>(skiplen - done, kPieceBytes));
      if (n <= 0) break;
      done += n;
    }
    std::fill(discard.begin(), discard.end(), std::uint8_t{0});
    return done;
  }

  void putback(offile_off_t num) override {
    // GCM decrypts in order only: go back by starting over and skipping to the new position.
    const std::uint64_t target = position_ - std::min<std::uint64_t>(position_, static_cast<std::uint64_t>(num));
    restart();
    skip(static_cast<offile_off_t>(target));
  }

 private:
  void restart() {
    position_ = 0;
    if (!message_) return;
    try {
      stream_ = message_->stream();
    } catch (const std::exception& e) {
      spdlog::error("large object: {}", e.what());
      status_ = EC_InvalidStream;
    }
  }

  std::shared_ptr<SpooledPixelData> pixels_;
  std::shared_ptr<const codecs::VerifiedGcmMessage> message_;  // null: the value goes as it is
  std::unique_ptr<codecs::detail::AesGcmOpenStream> stream_;
  std::uint64_t position_ = 0;
  OFCondition status_ = EC_Normal;
};

// As DcmInputFileStream does: the base class keeps the producer's address and uses it only later.
class SpooledValueStream : public DcmInputStream {
 public:
  SpooledValueStream(std::shared_ptr<SpooledPixelData> pixels, std::shared_ptr<const codecs::VerifiedGcmMessage> message)
      : DcmInputStream(&producer_), pixels_(pixels), message_(message), producer_(std::move(pixels), std::move(message)) {}
  DcmInputStreamFactory* newFactory() const override;

 private:
  std::shared_ptr<SpooledPixelData> pixels_;
  std::shared_ptr<const codecs::VerifiedGcmMessage> message_;
  SpooledValueProducer producer_;
};

// What DCMTK keeps in the Pixel Data element to read its value when it is written; holds the file open.
class SpooledValueFactory : public DcmInputStreamFactory {
 public:
  SpooledValueFactory(std::shared_ptr<SpooledPixelData> pixels, std::shared_ptr<const codecs::VerifiedGcmMessage> message)
      : pixels_(std::move(pixels)), message_(std::move(message)) {}
  DcmInputStream* create() const override { return new SpooledValueStream(pixels_, message_); }
  DcmInputStreamFactory* clone() const override { return new SpooledValueFactory(*this); }
  DcmInputStreamFactoryType ident() const override { return DFT_DcmInputFileStreamFactory; }

 private:
  std::shared_ptr<SpooledPixelData> pixels_;
  std::shared_ptr<const codecs::VerifiedGcmMessage> message_;
};

DcmInputStreamFactory* SpooledValueStream::newFactory() const { return new SpooledValueFactory(pixels_, message_); }

// Replaces `dataset`'s Pixel Data by one whose value is read through `message` (null: as it is).
bool linkPixelData(DcmItem& dataset, std::shared_ptr<SpooledPixelData> pixels,
                   std::shared_ptr<const codecs::VerifiedGcmMessage> message) {
  auto* element = new DcmPixelData(DcmTag(DCM_PixelData, pixels->vr()));
  const std::uint32_t length = pixels->length();
  if (dataset.insert(element, OFTrue).bad()) {
    delete element;
    return false;
  }
  return element->createValueFromTempFile(new SpooledValueFactory(std::move(pixels), std::move(message)), length,
                                          EBO_LittleEndian).good();
}

// One sub-operation data set being read; see receiveRetrievedDataSet.
class RetrievedReader {
 public:
  RetrievedReader(E_TransferSyntax xfer, const LargeObjectSettings& settings, AssociationMemory& memory)
      : xfer_(xfer), settings_(settings), memory_(memory), headerMemory_(memory) {
    header_->transferInit();
  }

  void feed(const std::uint8_t* data, std::uint32_t length, bool last) {
    switch (phase_) {
      case Phase::Header: readHeader(data, length, last); break;
      case Phase::InMemory: parser_->feed(data, length, last); break;
      case Phase::Pixels: spoolPixels(data, length, last); break;
      case Phase::Trailer: readTrailer(data, length, last); break;
      case Phase::Refused: break;  // read to the end and dropped
    }
  }

  RetrievedDataSet finish() {
    if (phase_ == Phase::InMemory) out_.received = parser_->finish();
    if (phase_ == Phase::Header) refuse(Outcome::Malformed, "data set truncated");
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
    out_.spooled.reset();
    header_.reset();
    trailerReader_.reset();
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
    if (!pixelData || pixelData->length == DCM_UndefinedLength || pixelData->length <= settings_.streamAboveBytes) {
      return continueInMemory(last);
    }
    if (std::uint64_t{end} + pixelData->length > settings_.maxObjectBytes) return continueInMemory(last);
    header_->transferEnd();
    // Only what the streaming decryption can open; anything else gets decryptDataset's precise answer.
    if (!codecs::opensNativePixelDataStreaming(*header_, pixelData->length)) return continueInMemory(last);
    startSpooling(*pixelData, end, last);
  }

  void continueInMemory(bool last) {
    header_.reset();
    headerMemory_.reset();
    parser_ = std::make_unique<DataSetParser>(xfer_, settings_.maxObjectBytes, memory_);
    phase_ = Phase::InMemory;
    const std::string bytes = headerReader_.takeBytes();
    parser_->feed(bytes.data(), static_cast<std::uint32_t>(bytes.size()), last);
  }

  void startSpooling(const PixelDataHeader& pixelData, std::size_t end, bool last) {
    const std::string megabytes = std::to_string(pixelData.length >> 20) + " MiB";
    std::error_code ignored;
    std::filesystem::create_directories(settings_.directory, ignored);
    if (!enoughDiskFor(settings_.directory, pixelData.length)) {
      spdlog::error("not enough free space in {} for a retrieved {} object", settings_.directory, megabytes);
      return refuse(Outcome::NoMemory, "gateway has no room for this object");
    }
    try {
      out_.spooled = std::make_shared<SpooledPixelData>(settings_.directory, pixelData.vr, pixelData.length);
    } catch (const std::exception& e) {
      spdlog::error("large object: {}", e.what());
      return refuse(Outcome::NoMemory, "gateway has no room for this object");
    }
    if (!out_.spooled->reserve()) {
      spdlog::error("cannot reserve {} in {} for a retrieved object", megabytes, settings_.directory);
      return refuse(Outcome::NoMemory, "gateway has no room for this object");
    }
    spdlog::info("retrieved object: its {} of Pixel Data is kept in a file while it arrives; decrypted only after "
                 "its tag verified", megabytes);
    phase_ = Phase::Pixels;
    const std::string rest = headerReader_.takeBytes().substr(end);
    headerMemory_.reset();  // what stays in memory is the parsed header
    if (headerMemory_.grow(header_->getLength(xfer_)) != AssociationMemory::Refusal::None) {
      return refuse(Outcome::NoMemory, "gateway memory limit reached");
    }
    if (!rest.empty() || last) {
      spoolPixels(reinterpret_cast<const std::uint8_t*>(rest.data()), static_cast<std::uint32_t>(rest.size()), last);
    }
  }

  void spoolPixels(const std::uint8_t* data, std::uint32_t length, bool last) {
    SpooledPixelData& pixels = *out_.spooled;
    const std::uint32_t n =
        static_cast<std::uint32_t>(std::min<std::uint64_t>(pixels.length() - pixels.written(), length));
    if (n > 0) {
      try {
        pixels.append(data, n);
      } catch (const std::exception& e) {
        spdlog::error("large object: {}", e.what());
        return refuse(Outcome::NoMemory, "gateway cannot write this object");
      }
    }
    if (pixels.written() == pixels.length()) {
      phase_ = Phase::Trailer;
      trailerReader_.start();
      if (length > n || last) readTrailer(data + n, length - n, last);
      return;
    }
    if (last) {
      refuse(Outcome::Malformed, "data set truncated: Pixel Data ended after " + std::to_string(pixels.written()) +
                                     " of " + std::to_string(pixels.length()) + " bytes");
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
    if (!linkPixelData(*header_, out_.spooled, nullptr)) {
      return refuse(Outcome::NoMemory, "gateway cannot read back this object");
    }
    out_.received.outcome = Outcome::Received;
    out_.received.bytes = out_.spooled->length();
    out_.received.reservation = std::move(headerMemory_);
    out_.received.dataset = std::move(header_);
  }

  const E_TransferSyntax xfer_;
  const LargeObjectSettings& settings_;
  AssociationMemory& memory_;
  Phase phase_ = Phase::Header;
  RetrievedDataSet out_;

  PixelDataHeaderReader headerReader_{xfer_};
  MemoryReservation headerMemory_;
  std::unique_ptr<DcmDataset> header_ = std::make_unique<DcmDataset>();
  std::unique_ptr<DataSetParser> parser_;

  PixelDataTrailerReader trailerReader_{xfer_};
};

}  // namespace

bool streamsRetrievedObjects(const config::Config& config, E_TransferSyntax xfer) {
  return config.limits.streamAboveMb > 0 && streamableTransferSyntax(xfer);
}

RetrievedDataSet receiveRetrievedDataSet(T_ASC_Association* assoc, T_ASC_PresentationContextID presId,
                                         E_TransferSyntax xfer, const LargeObjectSettings& settings,
                                         AssociationMemory& memory) {
  RetrievedReader reader(xfer, settings, memory);
  for (bool last = false; !last;) {
    DUL_PDV pdv{};
    RetrievedDataSet failed;
    if (!nextDataSetFragment(assoc, presId, settings.timeoutSeconds, pdv, failed.received)) return failed;
    last = pdv.lastPDV;
    reader.feed(reinterpret_cast<const std::uint8_t*>(pdv.data), pdv.fragmentLength, last);
  }
  return reader.finish();
}

void checkSpooledPixelData(const SpooledPixelData& pixels, codecs::NativePixelDataOpener& opener) {
  std::vector<std::uint8_t> piece(kPieceBytes);
  for (std::uint64_t offset = 0; offset < pixels.length();) {
    std::size_t n = 0;
    try {
      n = pixels.readAt(offset, piece.data(), piece.size());
    } catch (const std::exception& e) {
      throw codecs::CryptError(codecs::CryptErrorKind::BackendFailure, e.what());
    }
    if (n == 0) break;  // verify() names the shortfall
    opener.check(piece.data(), n);
    offset += n;
  }
}

void readSpooledPixelDataDecrypted(DcmDataset& dataset, std::shared_ptr<SpooledPixelData> pixels,
                                   codecs::VerifiedGcmMessage message) {
  if (!linkPixelData(dataset, std::move(pixels),
                     std::make_shared<const codecs::VerifiedGcmMessage>(std::move(message)))) {
    throw codecs::CryptError(codecs::CryptErrorKind::BackendFailure, "cannot read back the decrypted object");
  }
}

}  // namespace pacsgw::gateway
