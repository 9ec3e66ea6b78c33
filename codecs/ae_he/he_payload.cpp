// Serialising and strictly parsing the ae-he payload (see he_payload.h).
#include "codecs/ae_he/he_payload.h"

#include "codecs/he/slot_packing.h"

#include <string>

namespace pacsgw::codecs::ae_he {
namespace {

constexpr std::uint8_t kMagic[4] = {'P', 'G', 'H', 'E'};
constexpr std::uint8_t kPayloadFormat = 1;
constexpr int kMaxModulusBits = 8192;
constexpr std::size_t kMaxCiphertexts = 1u << 20;

using he::HeError;

void put(std::vector<std::uint8_t>& out, std::uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) out.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}

void putNumber(std::vector<std::uint8_t>& out, const he::BigNum& v, std::size_t bytes) {
  const std::size_t at = out.size();
  out.resize(at + bytes);
  if (BN_bn2binpad(v.get(), out.data() + at, static_cast<int>(bytes)) != static_cast<int>(bytes))
    throw HeError("ae-he payload: a number does not fit its field");
}

class Reader {
 public:
  explicit Reader(const std::vector<std::uint8_t>& b) : b_(b) {}
  std::uint64_t get(int bytes) {
    need(static_cast<std::size_t>(bytes));
    std::uint64_t v = 0;
    for (int i = 0; i < bytes; ++i) v = (v << 8) | b_[at_++];
    return v;
  }
  he::BigNum number(std::size_t bytes) {
    need(bytes);
    he::BigNum v;
    if (BN_bin2bn(b_.data() + at_, static_cast<int>(bytes), v.get()) == nullptr) throw HeError("ae-he payload: BN_bin2bn");
    at_ += bytes;
    return v;
  }
  std::size_t remaining() const { return b_.size() - at_; }

 private:
  void need(std::size_t n) const {
    if (b_.size() - at_ < n) throw HeError("ae-he payload: truncated");
  }
  const std::vector<std::uint8_t>& b_;
  std::size_t at_ = 0;
};

std::size_t chunkWidth(int modulusBits) { return ((static_cast<std::size_t>(modulusBits) - 1) / kGridSlotBits + 1) / 2; }

}  // namespace

he::BlockGrid HePayload::blockLayout() const {
  he::BlockGrid g;
  g.imageRows = imageRows;
  g.imageColumns = imageColumns;
  g.block = tile;
  g.rows = gridRows;
  g.columns = gridColumns;
  g.offset = offset;
  g.maxSample = maxSample;
  return g;
}

he::EncryptedImage HePayload::frameGrid(const he::PackedPaillier& he, std::uint32_t frame) const {
  if (frame >= frames) throw HeError("ae-he payload: no frame " + std::to_string(frame));
  if (he.key().n() != n) throw HeError("ae-he payload: another public key");
  he::EncryptedImage img;
  img.rows = gridRows;
  img.columns = gridColumns;
  img.chunkWidth = (he.packing().slots() + 1) / 2;
  img.chunksPerRow = (gridColumns + img.chunkWidth - 1) / img.chunkWidth;
  if (img.rows * img.chunksPerRow != gridCiphertextsPerFrame) throw HeError("ae-he payload: grid layout");
  const std::uint64_t bound = blockLayout().bound();
  for (std::uint32_t i = 0; i < gridCiphertextsPerFrame; ++i)
    img.chunks.push_back(he::PackedCiphertext{grid[static_cast<std::size_t>(frame) * gridCiphertextsPerFrame + i], bound});
  return img;
}

he::PackedCiphertext encryptedRegionSum(const HePayload& payload, std::uint32_t frame, const he::Region& tiles) {
  const he::PaillierPublicKey pub(payload.n);
  const he::PackedPaillier he(pub, kGridSlotBits);
  return he::encryptedRegionSum(he, payload.frameGrid(he, frame), tiles);
}

double decryptRegionMean(const HePayload& payload, const he::PaillierPrivateKey& key, std::uint32_t frame,
                         const he::Region& tiles, const he::PackedCiphertext& sum) {
  const he::PackedPaillier he(key.publicKey(), kGridSlotBits);
  return he::decryptBlockRegionMean(key, he, payload.frameGrid(he, frame), payload.blockLayout(), sum, tiles);
}

he::Region tilesCovering(const HePayload& payload, const he::Region& pixels) {
  if (pixels.rows == 0 || pixels.columns == 0 || pixels.row + pixels.rows > payload.imageRows ||
      pixels.column + pixels.columns > payload.imageColumns)
    throw HeError("ae-he payload: the region lies outside the image");
  const std::size_t t = payload.tile;
  he::Region r;
  r.row = pixels.row / t;
  r.column = pixels.column / t;
  r.rows = (pixels.row + pixels.rows + t - 1) / t - r.row;
  r.columns = (pixels.column + pixels.columns + t - 1) / t - r.column;
  return r;
}

std::vector<std::uint8_t> serialisePayload(const HePayload& p) {
  const std::size_t nBytes = static_cast<std::size_t>(p.modulusBits) / 8, ct = p.ciphertextBytes();
  std::vector<std::uint8_t> out(kMagic, kMagic + 4);
  out.reserve(64 + nBytes + ct * (p.latent.size() + p.grid.size()));
  put(out, kPayloadFormat, 1);
  put(out, 0, 1);
  put(out, static_cast<std::uint64_t>(p.modulusBits), 2);
  putNumber(out, p.n, nBytes);
  put(out, p.frames, 4);
  put(out, p.codesPerFrame, 4);
  put(out, p.codeSlotBits, 1);
  put(out, 0, 1);
  put(out, p.latent.size(), 4);
  put(out, p.imageRows, 2);
  put(out, p.imageColumns, 2);
  put(out, p.tile, 2);
  put(out, p.gridRows, 2);
  put(out, p.gridColumns, 2);
  put(out, static_cast<std::uint32_t>(p.offset), 4);
  put(out, p.maxSample, 4);
  put(out, p.gridCiphertextsPerFrame, 4);
  for (const auto& c : p.latent) putNumber(out, c, ct);
  for (const auto& c : p.grid) putNumber(out, c, ct);
  return out;  // even length: every field above has an even total size
}

HePayload parsePayload(const std::vector<std::uint8_t>& bytes) {
  Reader r(bytes);
  for (std::uint8_t m : kMagic)
    if (r.get(1) != m) throw HeError("ae-he payload: not an ae-he payload");
  if (r.get(1) != kPayloadFormat) throw HeError("ae-he payload: unsupported format");
  if (r.get(1) != 0) throw HeError("ae-he payload: reserved byte set");
  HePayload p;
  p.modulusBits = static_cast<int>(r.get(2));
  if (p.modulusBits < he::kMinModulusBits || p.modulusBits > kMaxModulusBits || p.modulusBits % 32 != 0)
    throw HeError("ae-he payload: unsupported modulus size");
  p.n = r.number(static_cast<std::size_t>(p.modulusBits) / 8);
  if (p.n.bits() != p.modulusBits || !BN_is_odd(p.n.get())) throw HeError("ae-he payload: invalid modulus");
  p.frames = static_cast<std::uint32_t>(r.get(4));
  p.codesPerFrame = static_cast<std::uint32_t>(r.get(4));
  p.codeSlotBits = static_cast<unsigned>(r.get(1));
  if (r.get(1) != 0) throw HeError("ae-he payload: reserved byte set");
  const std::uint64_t latentCount = r.get(4);
  p.imageRows = static_cast<std::uint16_t>(r.get(2));
  p.imageColumns = static_cast<std::uint16_t>(r.get(2));
  p.tile = static_cast<std::uint16_t>(r.get(2));
  p.gridRows = static_cast<std::uint16_t>(r.get(2));
  p.gridColumns = static_cast<std::uint16_t>(r.get(2));
  p.offset = static_cast<std::int32_t>(static_cast<std::uint32_t>(r.get(4)));
  p.maxSample = static_cast<std::uint32_t>(r.get(4));
  p.gridCiphertextsPerFrame = static_cast<std::uint32_t>(r.get(4));

  if (p.frames == 0 || p.codesPerFrame == 0) throw HeError("ae-he payload: empty");
  if (p.codeSlotBits < 8 || p.codeSlotBits > 63) throw HeError("ae-he payload: unsupported code slot width");
  const std::size_t codeSlots = (static_cast<std::size_t>(p.modulusBits) - 1) / p.codeSlotBits;
  const std::uint64_t codes = std::uint64_t{p.frames} * p.codesPerFrame;
  if (latentCount != (codes + codeSlots - 1) / codeSlots) throw HeError("ae-he payload: latent ciphertext count");
  if (p.imageRows == 0 || p.imageColumns == 0 || p.tile == 0) throw HeError("ae-he payload: empty image");
  if (p.gridRows != (p.imageRows + p.tile - 1) / p.tile || p.gridColumns != (p.imageColumns + p.tile - 1) / p.tile)
    throw HeError("ae-he payload: grid does not match the image");
  if (static_cast<std::uint64_t>(p.maxSample) * p.tile * p.tile >= (std::uint64_t{1} << kGridSlotBits))
    throw HeError("ae-he payload: tile sums would not fit their slots");
  const std::size_t k = chunkWidth(p.modulusBits);
  if (p.gridCiphertextsPerFrame != p.gridRows * ((p.gridColumns + k - 1) / k))
    throw HeError("ae-he payload: grid ciphertext count");
  const std::uint64_t gridCount = std::uint64_t{p.frames} * p.gridCiphertextsPerFrame;
  if (latentCount + gridCount > kMaxCiphertexts) throw HeError("ae-he payload: too many ciphertexts");
  const std::size_t ct = p.ciphertextBytes();
  if (r.remaining() != (latentCount + gridCount) * ct) throw HeError("ae-he payload: length does not match its counts");
  p.latent.reserve(latentCount);
  for (std::uint64_t i = 0; i < latentCount; ++i) p.latent.push_back(r.number(ct));
  p.grid.reserve(gridCount);
  for (std::uint64_t i = 0; i < gridCount; ++i) p.grid.push_back(r.number(ct));
  return p;
}

}  // namespace pacsgw::codecs::ae_he
