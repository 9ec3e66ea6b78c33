#pragma once
// Which transfer syntax an instance goes out in, when the receiving peer (a C-MOVE destination, a
// C-GET requester) did not accept the one it is stored in, and the lossless re-encoding to get there.
//
// Pixel values are never changed: the gateway only moves between uncompressed syntaxes, decodes
// the lossless compressions DCMTK can decode (RLE, JPEG lossless process 14, JPEG-LS lossless) and
// encodes to them. Lossy syntaxes are delivered as stored or not at all.
#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdatset.h>
#include <dcmtk/dcmnet/assoc.h>

#include <string>
#include <vector>

namespace pacsgw::gateway {

enum class Transcoding {
  // Pixel data is ciphertext: only re-encodings that keep every pixel byte (uncompressed to
  // uncompressed) are possible.
  NativeOnly,
  // Pixel values are in the clear: lossless decoding and encoding are possible too.
  Lossless,
};

struct DeliveryContext {
  T_ASC_PresentationContextID id = 0;  // 0: the peer accepted nothing this instance can go out in
  E_TransferSyntax xfer = EXS_Unknown;
};

// True for the uncompressed transfer syntaxes whose pixel values survive re-encoding.
bool isNativeTransferSyntax(E_TransferSyntax xfer);
// RLE, JPEG lossless (process 14, and its selection value 1), JPEG-LS lossless.
bool isLosslessCompression(E_TransferSyntax xfer);
// True when an instance stored in `stored` can be re-encoded to `target` under `mode`. Objects
// without pixel data can go out in any syntax (pass Lossless for them).
bool canTranscode(E_TransferSyntax stored, E_TransferSyntax target, Transcoding mode);

// Every accepted presentation context for the SOP class, in the order they were proposed.
std::vector<DeliveryContext> acceptedContexts(T_ASC_Association* assoc, const std::string& sopClassUid);

// The accepted presentation context to send an instance on: its stored syntax if the peer accepted
// it, else the first accepted context (in the peer's order) it can be re-encoded for.
DeliveryContext chooseDeliveryContext(T_ASC_Association* assoc, const std::string& sopClassUid,
                                      E_TransferSyntax stored, Transcoding mode);

// Transfer-syntax lists to propose, one per presentation context, for an instance stored in
// `stored`: the stored syntax, and uncompressed ones in a context of their own when it can be
// decoded (so a peer that takes the stored syntax gets it unchanged).
std::vector<std::vector<std::string>> proposalsFor(E_TransferSyntax stored, Transcoding mode);

// Re-encodes `dataset` from `from` to `to` in memory (nothing to do when equal). Returns false with
// the reason when DCMTK cannot, or the decoded pixel data would exceed the decode limit.
bool transcode(DcmDataset& dataset, E_TransferSyntax from, E_TransferSyntax to, std::string& reason);

}  // namespace pacsgw::gateway
