#include "gateway/delivery_syntax.h"

#include "codecs/decoded_size.h"

#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcrledrg.h>
#include <dcmtk/dcmdata/dcrleerg.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmjpeg/djdecode.h>
#include <dcmtk/dcmjpeg/djencode.h>
#include <dcmtk/dcmjpls/djdecode.h>
#include <dcmtk/dcmjpls/djencode.h>

#include <mutex>

namespace pacsgw::gateway {

namespace {

void registerCodecs() {
  static std::once_flag once;
  std::call_once(once, [] {
    DcmRLEDecoderRegistration::registerCodecs();
    DcmRLEEncoderRegistration::registerCodecs();
    DJDecoderRegistration::registerCodecs();
    DJEncoderRegistration::registerCodecs();
    DJLSDecoderRegistration::registerCodecs();
    DJLSEncoderRegistration::registerCodecs();
  });
}

}  // namespace

bool isNativeTransferSyntax(E_TransferSyntax xfer) {
  return xfer == EXS_LittleEndianImplicit || xfer == EXS_LittleEndianExplicit || xfer == EXS_BigEndianExplicit ||
         xfer == EXS_DeflatedLittleEndianExplicit;
}

bool isLosslessCompression(E_TransferSyntax xfer) {
  return xfer == EXS_RLELossless || xfer == EXS_JPEGProcess14 || xfer == EXS_JPEGProcess14SV1 ||
         xfer == EXS_JPEGLSLossless;
}

bool canTranscode(E_TransferSyntax stored, E_TransferSyntax target, Transcoding mode) {
  if (stored == target) return true;
  if (isNativeTransferSyntax(stored) && isNativeTransferSyntax(target)) return true;
  if (mode != Transcoding::Lossless) return false;
  const bool fromOk = isNativeTransferSyntax(stored) || isLosslessCompression(stored);
  const bool toOk = isNativeTransferSyntax(target) || isLosslessCompression(target);
  return fromOk && toOk;
}

std::vector<DeliveryContext> acceptedContexts(T_ASC_Association* assoc, const std::string& sopClassUid) {
  std::vector<DeliveryContext> found;
  const int count = ASC_countPresentationContexts(assoc->params);
  for (int i = 0; i < count; ++i) {  // in the order the contexts were proposed
    T_ASC_PresentationContext pc;
    if (ASC_getPresentationContext(assoc->params, i, &pc).bad()) continue;
    if (pc.resultReason != ASC_P_ACCEPTANCE || sopClassUid != pc.abstractSyntax) continue;
    found.push_back({pc.presentationContextID, DcmXfer(pc.acceptedTransferSyntax).getXfer()});
  }
  return found;
}

DeliveryContext chooseDeliveryContext(T_ASC_Association* assoc, const std::string& sopClassUid,
                                      E_TransferSyntax stored, Transcoding mode) {
  // DCMTK's ASC_findAcceptedPresentationContextID (with or without a transfer syntax) falls back to
  // any context of the SOP class, whatever its transfer syntax: the choice is made here instead.
  const std::vector<DeliveryContext> accepted = acceptedContexts(assoc, sopClassUid);
  for (const auto& c : accepted) {
    if (c.xfer == stored) return c;
  }
  DeliveryContext nativeChoice, losslessChoice;
  for (const auto& c : accepted) {
    if (!canTranscode(stored, c.xfer, mode)) continue;
    // Between uncompressed syntaxes nothing is decoded: prefer that over any codec work.
    if (isNativeTransferSyntax(stored) == isNativeTransferSyntax(c.xfer)) {
      if (nativeChoice.id == 0) nativeChoice = c;
    } else if (losslessChoice.id == 0) {
      losslessChoice = c;
    }
  }
  return nativeChoice.id != 0 ? nativeChoice : losslessChoice;
}

std::vector<std::vector<std::string>> proposalsFor(E_TransferSyntax stored, Transcoding mode) {
  const std::string ts = DcmXfer(stored).getXferID();
  std::vector<std::string> uncompressed;
  for (const char* alt : {UID_LittleEndianExplicitTransferSyntax, UID_LittleEndianImplicitTransferSyntax}) {
    if (ts != alt) uncompressed.push_back(alt);
  }
  if (isNativeTransferSyntax(stored)) {
    std::vector<std::string> one{ts};
    one.insert(one.end(), uncompressed.begin(), uncompressed.end());
    return {one};
  }
  if (canTranscode(stored, EXS_LittleEndianExplicit, mode)) {
    return {{ts}, {UID_LittleEndianExplicitTransferSyntax, UID_LittleEndianImplicitTransferSyntax}};
  }
  return {{ts}};
}

bool transcode(DcmDataset& dataset, E_TransferSyntax from, E_TransferSyntax to, std::string& reason) {
  if (from == to) return true;
  const bool hasPixels = dataset.tagExists(DCM_PixelData);
  if (hasPixels && (DcmXfer(from).isEncapsulated() || DcmXfer(to).isEncapsulated())) {
    registerCodecs();
    const unsigned long long decoded = codecs::decodedPixelBytes(dataset);
    if (decoded == 0 || decoded > codecs::kMaxDecodedPixelBytes) {
      reason = "pixel data would decode to " + std::to_string(decoded) + " bytes (limit " +
               std::to_string(codecs::kMaxDecodedPixelBytes) + ")";
      return false;
    }
    if (DcmXfer(from).isEncapsulated() && dataset.chooseRepresentation(EXS_LittleEndianExplicit, nullptr).bad()) {
      reason = std::string("cannot decode ") + DcmXfer(from).getXferName();
      return false;
    }
    if (DcmXfer(to).isEncapsulated() && dataset.chooseRepresentation(to, nullptr).bad()) {
      reason = std::string("cannot encode ") + DcmXfer(to).getXferName();
      return false;
    }
  }
  if (!dataset.canWriteXfer(to, from)) {
    reason = std::string("cannot write the object in ") + DcmXfer(to).getXferName();
    return false;
  }
  dataset.removeAllButCurrentRepresentations();
  return true;
}

}  // namespace pacsgw::gateway
