#include "codecs/eval/dicom_input.h"

#include "codecs/dicom_crypt.h"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcpixel.h>
#include <dcmtk/dcmdata/dcrledrg.h>
#include <dcmtk/dcmdata/dcxfer.h>
#include <dcmtk/dcmjpeg/djdecode.h>
#include <dcmtk/dcmjpls/djdecode.h>

#include <algorithm>
#include <filesystem>
#include <mutex>
#include <stdexcept>

namespace pacsgw::eval {
namespace {

std::mutex registrationMutex;
int registrationCount = 0;

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw std::runtime_error(path + ": " + what);
}

std::string text(DcmItem& ds, const DcmTagKey& tag) {
  OFString v;
  return ds.findAndGetOFString(tag, v).good() ? std::string(v.c_str()) : std::string();
}

// Window Center / Width (first values) in stored units, when both are present and usable.
std::optional<std::pair<double, double>> dicomWindowOf(DcmItem& ds) {
  Float64 centre = 0, width = 0, slope = 1, intercept = 0;
  if (ds.findAndGetFloat64(DCM_WindowCenter, centre).bad() || ds.findAndGetFloat64(DCM_WindowWidth, width).bad() ||
      !(width >= 1))
    return std::nullopt;
  if (ds.findAndGetFloat64(DCM_RescaleSlope, slope).bad() || slope == 0) slope = 1;
  if (ds.findAndGetFloat64(DCM_RescaleIntercept, intercept).bad()) intercept = 0;
  const double lo = centre - 0.5 - (width - 1) / 2, hi = centre - 0.5 + (width - 1) / 2;
  double a = (lo - intercept) / slope, b = (hi - intercept) / slope;
  if (a > b) std::swap(a, b);
  if (!(b > a)) b = a + 1;
  return std::make_pair(a, b);
}

}  // namespace

DecoderRegistration::DecoderRegistration() {
  std::lock_guard<std::mutex> lock(registrationMutex);
  if (registrationCount++ == 0) {
    DcmRLEDecoderRegistration::registerCodecs();
    DJDecoderRegistration::registerCodecs();
    DJLSDecoderRegistration::registerCodecs();
  }
}

DecoderRegistration::~DecoderRegistration() {
  std::lock_guard<std::mutex> lock(registrationMutex);
  if (--registrationCount == 0) {
    DJLSDecoderRegistration::cleanup();
    DJDecoderRegistration::cleanup();
    DcmRLEDecoderRegistration::cleanup();
  }
}

EvalImage loadDicomImage(const std::string& path) {
  if (gLocalByteOrder != EBO_LittleEndian) fail(path, "the evaluation needs a little-endian host");
  DcmFileFormat file;
  const OFCondition loaded = file.loadFile(path.c_str());
  if (loaded.bad()) fail(path, std::string("cannot read as DICOM: ") + loaded.text());
  DcmDataset& ds = *file.getDataset();
  EvalImage img;
  img.path = path;
  img.sopClassUid = text(ds, DCM_SOPClassUID);
  img.modality = text(ds, DCM_Modality);
  const E_TransferSyntax original = ds.getOriginalXfer();
  img.originalTransferSyntax = DcmXfer(original).getXferID();
  img.dicomWindow = dicomWindowOf(ds);

  if (DcmXfer(original).isEncapsulated()) {
    if (ds.chooseRepresentation(EXS_LittleEndianExplicit, nullptr).bad() || !ds.canWriteXfer(EXS_LittleEndianExplicit))
      fail(path, std::string("cannot decode ") + DcmXfer(original).getXferName() + " pixel data with DCMTK");
  }
  try {
    img.layout = codecs::readPixelLayout(ds, EXS_LittleEndianExplicit);
  } catch (const std::exception& e) {
    fail(path, e.what());
  }
  img.layout.encapsulated = false;
  if (img.layout.floatingPoint) fail(path, "Float / Double Float Pixel Data is not evaluated");
  if (img.layout.bitsAllocated != 8 && img.layout.bitsAllocated != 16)
    fail(path, "only 8 or 16 bits allocated are evaluated, got " + std::to_string(img.layout.bitsAllocated));

  DcmElement* element = nullptr;
  if (ds.findAndGetElement(DCM_PixelData, element).bad() || element == nullptr) fail(path, "no Pixel Data");
  auto* pixelData = dynamic_cast<DcmPixelData*>(element);
  if (pixelData == nullptr) fail(path, "Pixel Data has an unexpected type");
  DcmStack unused;
  if (pixelData->chooseRepresentation(EXS_LittleEndianExplicit, nullptr, unused).bad())
    fail(path, "native Pixel Data is not accessible");
  Uint8* data = nullptr;
  if (pixelData->getUint8Array(data).bad() || data == nullptr) fail(path, "native Pixel Data is not accessible");
  const std::size_t expected = static_cast<std::size_t>(img.layout.rows) * img.layout.columns *
                               img.layout.samplesPerPixel * std::max<std::uint32_t>(1, img.layout.numberOfFrames) *
                               (img.layout.bitsAllocated / 8);
  if (pixelData->getLength() < expected) fail(path, "Pixel Data is shorter than the pixel module describes");
  img.bytes.assign(data, data + expected);
  return img;
}

std::vector<std::string> expandInputs(const std::vector<std::string>& inputs) {
  namespace fs = std::filesystem;
  std::vector<std::string> out;
  for (const auto& in : inputs) {
    std::error_code ec;
    if (fs::is_directory(in, ec)) {
      std::vector<std::string> found;
      for (const auto& entry : fs::recursive_directory_iterator(in, ec))
        if (entry.is_regular_file()) found.push_back(entry.path().string());
      std::sort(found.begin(), found.end());
      out.insert(out.end(), found.begin(), found.end());
    } else {
      out.push_back(in);
    }
  }
  return out;
}

}  // namespace pacsgw::eval
