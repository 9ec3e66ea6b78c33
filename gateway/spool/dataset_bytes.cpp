#include "gateway/spool/dataset_bytes.h"

#include <dcmtk/dcmdata/dcistrmb.h>
#include <dcmtk/dcmdata/dcostrmb.h>
#include <dcmtk/dcmdata/dcxfer.h>

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
