#include "codecs/eval/report.h"

#include "codecs/eval/metrics.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

namespace pacsgw::eval {
namespace {

std::string fmt(double v, int decimals) {
  if (!std::isfinite(v)) return v > 0 ? "&infin;" : "&ndash;";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

// Formats a member of a Json object: numbers with `decimals`, booleans as pass/fail-ish words.
std::string cell(const Json& obj, const std::string& key, int decimals = 4) {
  const Json* v = obj.find(key);
  if (v == nullptr) return "&ndash;";
  if (v->isBool()) return v->boolean() ? "<span class=ok>yes</span>" : "<span class=bad>no</span>";
  if (v->isNumber()) return fmt(v->number(), decimals);
  if (v->isNull()) return key.find("psnr") != std::string::npos ? "&infin; (bit-exact)" : "&ndash;";
  return htmlEscape(v->string());
}

const Json* path(const Json& j, std::initializer_list<const char*> keys) {
  const Json* cur = &j;
  for (const char* k : keys) {
    if (cur == nullptr) return nullptr;
    cur = cur->find(k);
  }
  return cur;
}

std::uint32_t crc32(const std::uint8_t* data, std::size_t n, std::uint32_t crc = 0) {
  crc = ~crc;
  for (std::size_t i = 0; i < n; ++i) {
    crc ^= data[i];
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
  }
  return ~crc;
}

void putBe32(std::vector<std::uint8_t>& out, std::uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<std::uint8_t>(v >> s));
}

void chunk(std::vector<std::uint8_t>& png, const char* type, const std::vector<std::uint8_t>& data) {
  putBe32(png, static_cast<std::uint32_t>(data.size()));
  std::vector<std::uint8_t> typed(type, type + 4);
  typed.insert(typed.end(), data.begin(), data.end());
  png.insert(png.end(), typed.begin(), typed.end());
  putBe32(png, crc32(typed.data(), typed.size()));
}

std::string pngImg(const Thumbnail& t, const std::string& caption) {
  if (t.pixels.empty()) return "";
  return "<figure><img alt=\"" + htmlEscape(caption) + "\" src=\"data:image/png;base64," + base64(encodePngGray(t)) +
         "\"><figcaption>" + htmlEscape(caption) + "</figcaption></figure>";
}

}  // namespace

std::string htmlEscape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string base64(const std::vector<std::uint8_t>& data) {
  static const char* table = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((data.size() + 2) / 3 * 4);
  for (std::size_t i = 0; i < data.size(); i += 3) {
    const std::uint32_t v = (static_cast<std::uint32_t>(data[i]) << 16) |
                            (i + 1 < data.size() ? static_cast<std::uint32_t>(data[i + 1]) << 8 : 0) |
                            (i + 2 < data.size() ? data[i + 2] : 0);
    out += table[(v >> 18) & 63];
    out += table[(v >> 12) & 63];
    out += i + 1 < data.size() ? table[(v >> 6) & 63] : '=';
    out += i + 2 < data.size() ? table[v & 63] : '=';
  }
  return out;
}

std::vector<std::uint8_t> encodePngGray(const Thumbnail& t) {
  std::vector<std::uint8_t> png = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  std::vector<std::uint8_t> ihdr;
  putBe32(ihdr, static_cast<std::uint32_t>(t.width));
  putBe32(ihdr, static_cast<std::uint32_t>(t.height));
  ihdr.insert(ihdr.end(), {8, 0, 0, 0, 0});  // 8-bit grey, deflate, adaptive filtering, no interlace
  chunk(png, "IHDR", ihdr);
  // Raw scanlines with filter type 0, wrapped in zlib "stored" blocks (no compression needed here).
  std::vector<std::uint8_t> raw;
  raw.reserve((t.width + 1) * t.height);
  for (std::size_t y = 0; y < t.height; ++y) {
    raw.push_back(0);
    raw.insert(raw.end(), t.pixels.begin() + static_cast<long>(y * t.width),
               t.pixels.begin() + static_cast<long>((y + 1) * t.width));
  }
  std::vector<std::uint8_t> z = {0x78, 0x01};
  for (std::size_t off = 0; off < raw.size() || off == 0;) {
    const std::size_t len = std::min<std::size_t>(65535, raw.size() - off);
    const bool last = off + len >= raw.size();
    z.push_back(last ? 1 : 0);
    z.push_back(static_cast<std::uint8_t>(len));
    z.push_back(static_cast<std::uint8_t>(len >> 8));
    z.push_back(static_cast<std::uint8_t>(~len));
    z.push_back(static_cast<std::uint8_t>(~len >> 8));
    z.insert(z.end(), raw.begin() + static_cast<long>(off), raw.begin() + static_cast<long>(off + len));
    off += len;
    if (last) break;
  }
  std::uint32_t a = 1, b = 0;
  for (std::uint8_t v : raw) {
    a = (a + v) % 65521;
    b = (b + a) % 65521;
  }
  putBe32(z, (b << 16) | a);
  chunk(png, "IDAT", z);
  chunk(png, "IEND", {});
  return png;
}

std::string svgHistogram(const std::vector<std::uint64_t>& bins, const std::string& title) {
  const double w = 300, h = 160, left = 4, top = 18;
  std::uint64_t peak = 1;
  for (auto v : bins) peak = std::max(peak, v);
  std::ostringstream s;
  s << "<svg xmlns='http://www.w3.org/2000/svg' width='" << w + 8 << "' height='" << h + top + 18
    << "' role='img'><title>" << htmlEscape(title) << "</title><text x='4' y='13' font-size='12'>"
    << htmlEscape(title) << "</text><rect x='" << left << "' y='" << top << "' width='" << w << "' height='" << h
    << "' fill='none' stroke='#999'/><path fill='#3465a4' d='";
  const double bw = w / static_cast<double>(std::max<std::size_t>(1, bins.size()));
  for (std::size_t i = 0; i < bins.size(); ++i) {
    const double bh = h * static_cast<double>(bins[i]) / static_cast<double>(peak);
    if (bh <= 0) continue;
    s << 'M' << fmt(left + i * bw, 2) << ' ' << fmt(top + h, 1) << "v-" << fmt(bh, 2) << 'h' << fmt(bw, 2) << "v"
      << fmt(bh, 2) << 'z';
  }
  s << "'/><text x='4' y='" << top + h + 14 << "' font-size='10'>0</text><text x='" << w - 14 << "' y='"
    << top + h + 14 << "' font-size='10'>" << bins.size() - 1 << "</text></svg>";
  return s.str();
}

std::string svgScatter(const std::vector<std::pair<double, double>>& xy, double maxValue, const std::string& title) {
  // One pixel per value step for 8-bit data; duplicate points are drawn once.
  const int size = 256, top = 18;
  const double scale = size / (std::max(1.0, maxValue) + 1);
  std::vector<std::uint8_t> seen(static_cast<std::size_t>(size) * size, 0);
  std::ostringstream s;
  s << "<svg xmlns='http://www.w3.org/2000/svg' width='" << size + 8 << "' height='" << size + top + 6
    << "' role='img'><title>" << htmlEscape(title) << "</title><text x='4' y='13' font-size='12'>"
    << htmlEscape(title) << "</text><rect x='4' y='" << top << "' width='" << size << "' height='" << size
    << "' fill='none' stroke='#999'/><path stroke='#a40000' stroke-width='1' d='";
  for (const auto& [x, y] : xy) {
    const int px = std::clamp(static_cast<int>(x * scale), 0, size - 1);
    const int py = std::clamp(static_cast<int>(y * scale), 0, size - 1);
    std::uint8_t& mark = seen[static_cast<std::size_t>(py) * size + px];
    if (mark) continue;
    mark = 1;
    s << 'M' << 4 + px << ' ' << top + size - py - 0.5 << "h1";
  }
  s << "'/></svg>";
  return s.str();
}

std::string renderHtmlReport(const EvalReport& report) {
  const Json& root = report.json;
  std::ostringstream h;
  h << "<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>pacsgw eval report</title><style>"
       "body{font-family:sans-serif;max-width:1400px;margin:1em auto;padding:0 1em;color:#222}"
       "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}"
       "th:first-child,td:first-child{text-align:left}.ok{color:#2e7d32}.bad{color:#c62828}"
       "figure{display:inline-block;margin:4px;text-align:center}figure img{width:200px;image-rendering:pixelated}"
       "figcaption{font-size:11px}.figs svg{margin:4px;vertical-align:top}small{color:#555}</style></head><body>";
  h << "<h1>Cipher evaluation</h1><p>Generated " << htmlEscape(root.find("generated")->string()) << " by "
    << "<code>pacsgw eval</code>; device " << htmlEscape(root.find("device")->string()) << ", tensor threads "
    << cell(root, "tensor_threads", 0) << ", " << cell(root, "pairs_per_direction", 0)
    << " adjacent pairs per direction, seed " << cell(root, "seed", 0) << ".</p><p>Inputs:</p><ul>";
  for (const auto& in : root.find("inputs")->items()) h << "<li><code>" << htmlEscape(in.string()) << "</code></li>";
  h << "</ul><p><small>" << htmlEscape(path(root, {"definitions", "views"})->string()) << "<br>"
    << htmlEscape(path(root, {"definitions", "correlation"})->string()) << "<br>"
    << htmlEscape(path(root, {"definitions", "npcr_uaci"})->string()) << "<br>"
    << htmlEscape(path(root, {"definitions", "throughput"})->string()) << "</small></p>";

  // ---- Summary table beside the paper's published numbers ----
  const auto& backends = root.find("backends")->items();
  const Json& paper = *root.find("paper");
  struct Row {
    const char* label;
    const char* key;
    int decimals;
    std::string reference;
  };
  const std::vector<Row> rows = {
      {"Entropy, 8-bit view (bits)", "entropy", 5, "7.9992&ndash;7.9994; ideal 8"},
      {"Entropy, full range (bits)", "entropy_full", 4, "&ndash; (ideal = bits allocated)"},
      {"Correlation horizontal", "corr_h", 4, "|r| up to 0.0375 (Table 9)"},
      {"Correlation vertical", "corr_v", 4, "|r| up to 0.0197"},
      {"Correlation diagonal", "corr_d", 4, "|r| up to 0.1031"},
      {"Correlation h, all pairs", "corr_h_all", 4, "&ndash;"},
      {"Correlation v, all pairs", "corr_v_all", 4, "&ndash;"},
      {"Correlation d, all pairs", "corr_d_all", 4, "&ndash;"},
      {"NPCR %, same key and nonce", "npcr", 4, "99.6253 / 99.6354 / 99.6507 (avg. R/G/B)"},
      {"NPCR passes Wu &alpha;=0.05 (all images)", "npcr_pass", 0, "critical 99.5893 (512&sup2;)"},
      {"NPCR Wu pass rate over images", "npcr_pass_rate", 2, "all pass (Table 12)"},
      {"UACI %, same key and nonce", "uaci", 4, "33.4511 / 33.4622 / 33.4563"},
      {"UACI passes Wu &alpha;=0.05 (all images)", "uaci_pass", 0, "33.3730&ndash;33.5541 (512&sup2;)"},
      {"UACI Wu pass rate over images", "uaci_pass_rate", 2, "all pass (Table 13)"},
      {"NPCR %, mean of repeated runs", "npcr_mean", 4, "ideal 99.6094"},
      {"UACI %, mean of repeated runs", "uaci_mean", 4, "ideal 33.4635"},
      {"NPCR Wu pass rate, repeated runs", "npcr_runs_pass_rate", 2, "ideal cipher: 0.95"},
      {"UACI Wu pass rate, repeated runs", "uaci_runs_pass_rate", 2, "ideal cipher: 0.95"},
      {"NPCR %, fresh nonce (deployed)", "npcr_fresh_nonce", 4, ""},
      {"UACI %, fresh nonce (deployed)", "uaci_fresh_nonce", 4, ""},
      {"NPCR %, full range (F = 2^bits&minus;1)", "npcr_full", 4, ""},
      {"UACI %, full range", "uaci_full", 4, ""},
      {"Key sensitivity NPCR % (1 key bit)", "key_sensitivity_npcr", 4,
       "&ldquo;fails to decrypt&rdquo; (Figs. 15&ndash;16)"},
      {"Key sensitivity UACI %", "key_sensitivity_uaci", 4, ""},
      {"PSNR plain vs cipher (dB)", "psnr_plain_cipher", 2, "10.56&ndash;14.12 (Table 10)"},
      {"Bit-exact through the gateway (envelope)", "bit_exact", 0, "lossless (visual, Fig. 10)"},
      {"Backend's own decryption lossless", "lossless", 0, "&ndash;"},
      {"Decryption PSNR (dB), 8-bit, frame min&ndash;max window", "decrypt_psnr", 2, "&ndash;"},
      {"Decryption SSIM, 8-bit", "decrypt_ssim", 4, "&ndash;"},
      {"Decryption PSNR (dB), full range (bits stored)", "decrypt_psnr_full_range", 2, "&ndash;"},
      {"Decryption SSIM, full range", "decrypt_ssim_full_range", 4, "&ndash;"},
      {"Decryption PSNR (dB), DICOM window", "decrypt_psnr_dicom_window", 2, "&ndash;"},
      {"Unverified decryption PSNR (dB) after crop", "crop_psnr", 2, "&ndash;"},
      {"Unverified decryption PSNR (dB) after salt &amp; pepper", "salt_pepper_psnr", 2, "&ndash;"},
      {"Unverified decryption PSNR (dB) after Gaussian noise", "gaussian_psnr", 2, "&ndash;"},
      {"Model file (bytes)", "model_size_bytes", 0, "&ndash;"},
      {"Exact-retrieval envelope (bytes per image)", "envelope_bytes_mean", 0, "&ndash;"},
      {"Wrong key rejected", "wrong_key_rejected", 0, "no (garbage image)"},
      {"Tampering detected (crop, noise)", "tamper_detected", 0, "no integrity check"},
      {"NIST SP 800-22 tests passed", "nist_tests_passed", 0, "all (Tables 4, 14)"},
      {"NIST SP 800-22 tests run", "nist_tests_total", 0, "14 tests &times; 8 keys; 14 on cipher"},
      {"Encryption MB/s (1 thread)", "encrypt_mb_s", 1, "&ndash;"},
      {"Decryption MB/s (1 thread)", "decrypt_mb_s", 1, "&ndash;"},
      {"Encryption images/s (1 thread)", "encrypt_images_per_s", 2, "&ndash;"},
      {"Decryption images/s (1 thread)", "decrypt_images_per_s", 2, "&ndash;"},
      {"Encryption ms per image", "encrypt_ms_per_image", 2, "290&ndash;1770 (Python, Table 5)"},
      {"Decoy generator ms per object", "generator_ms", 3, "&ndash;"},
      {"Encryption MB/s without generator", "encrypt_mb_s_without_generator", 1, "&ndash;"},
  };
  h << "<h2>Summary (mean over images; throughput pooled)</h2><table><tr><th>Metric</th>";
  for (const auto& b : backends) h << "<th>" << htmlEscape(b.find("backend")->string()) << "</th>";
  h << "<th>Kumar et al. 2025 (published)</th></tr>";
  for (const Row& r : rows) {
    h << "<tr><td>" << r.label << "</td>";
    for (const auto& b : backends) h << "<td>" << cell(b, r.key, r.decimals) << "</td>";
    h << "<td>" << r.reference << "</td></tr>";
  }
  h << "</table><p><small>Published figures: " << htmlEscape(paper.find("citation")->string()) << ". "
    << htmlEscape(paper.find("images")->string()) << ". The paper reports per RGB channel of 8-bit images; "
    << "here the 8-bit view of each sample is pooled over all planes.</small></p>";

  // ---- Per backend, per image ----
  for (std::size_t bi = 0; bi < backends.size(); ++bi) {
    const Json& b = backends[bi];
    h << "<h2>" << htmlEscape(b.find("backend")->string()) << " v" << htmlEscape(b.find("version")->string())
      << "</h2><p>" << htmlEscape(b.find("summary")->string()) << "</p>";
    for (const auto& s : b.find("skipped")->items())
      h << "<p>Skipped <code>" << htmlEscape(s.find("path")->string()) << "</code>: "
        << htmlEscape(s.find("reason")->string()) << "</p>";
    for (const auto& img : b.find("images")->items()) {
      h << "<h3><code>" << htmlEscape(img.find("path")->string()) << "</code></h3><p>" << cell(img, "rows", 0)
        << "&times;" << cell(img, "columns", 0) << "&times;" << cell(img, "frames", 0) << " frames, "
        << cell(img, "samples_per_pixel", 0) << " sample(s), " << cell(img, "bits_allocated", 0) << " bits allocated / "
        << cell(img, "bits_stored", 0) << " stored, pixel representation " << cell(img, "pixel_representation", 0)
        << ", modality " << cell(img, "modality") << "; deterministic core verified: "
        << cell(img, "deterministic_core_verified") << "</p>";
      h << "<table><tr><th>View</th><th>Entropy plain / cipher</th><th>Corr. plain h/v/d</th>"
           "<th>Corr. cipher h/v/d</th><th>NPCR %</th><th>NPCR* 0.05 / 0.01 / 0.001</th><th>UACI %</th>"
           "<th>UACI* 0.05</th><th>Key sens. NPCR / UACI</th>"
           "<th>PSNR plain-cipher</th></tr>";
      for (const char* view : {"msb8", "full"}) {
        const Json* v = path(img, {"views", view});
        if (!v) continue;
        const Json& d = *v->find("differential");
        const Json& k = *v->find("key_sensitivity");
        const Json& cp = *v->find("corr_plain");
        const Json& cc = *v->find("corr_cipher");
        const Json& crit = *d.find("npcr_critical");
        const Json& iv = *path(d, {"uaci_interval", "0.05"});
        h << "<tr><td>" << view << " (F=" << cell(*v, "F", 0) << ")</td><td>" << cell(*v, "entropy_plain") << " / "
          << cell(*v, "entropy_cipher", 5) << "</td><td>" << cell(cp, "h") << " / " << cell(cp, "v") << " / "
          << cell(cp, "d") << "</td><td>" << cell(cc, "h") << " / " << cell(cc, "v") << " / " << cell(cc, "d")
          << "</td><td>" << cell(d, "npcr") << " " << cell(*d.find("npcr_pass"), "0.05") << "</td><td>"
          << cell(crit, "0.05") << " / " << cell(crit, "0.01") << " / " << cell(crit, "0.001") << "</td><td>"
          << cell(d, "uaci") << " " << cell(*d.find("uaci_pass"), "0.05") << "</td><td>"
          << fmt(iv.items()[0].number(), 4) << "&ndash;" << fmt(iv.items()[1].number(), 4) << "</td><td>"
          << cell(k, "npcr") << " / " << cell(k, "uaci") << "</td><td>" << cell(*v, "psnr_plain_cipher", 2)
          << "</td></tr>";
      }
      h << "</table>";
      if (const Json* layers = img.find("differential_layers_only")) {
        h << "<p>The paper's layers alone (synthetic IV held fixed, so the key streams do not depend on the pixels): "
             "NPCR / UACI (8-bit view) for a change at ";
        for (const auto& e : layers->items())
          h << htmlEscape(e.find("position")->string()) << ": " << cell(*e.find("msb8"), "npcr", 2) << " / "
            << cell(*e.find("msb8"), "uaci", 2) << "; ";
        h << "(VPD's chained XOR only diffuses forward).</p>";
      }
      if (const Json* auth = img.find("authenticated_decryption")) {
        h << "<p>Authenticated decryption: wrong key &rarr; "
          << htmlEscape(path(*auth, {"wrong_key", "outcome"})->string()) << "; cropped &rarr; "
          << htmlEscape(path(*auth, {"crop", "outcome"})->string()) << "; salt &amp; pepper &rarr; "
          << htmlEscape(path(*auth, {"salt_pepper", "outcome"})->string()) << "; Gaussian noise &rarr; "
          << htmlEscape(path(*auth, {"gaussian", "outcome"})->string()) << ".</p>";
      }
      if (const Json* u = img.find("unverified_decryption")) {
        h << "<p>Decryption without verification (the paper's robustness figures), PSNR 8-bit view / exact samples: "
             "wrong key "
          << cell(*path(*u, {"wrong_key", "msb8"}), "psnr", 2) << " dB / "
          << cell(*u->find("wrong_key"), "exact_samples_percent", 2)
          << " %; crop " << cell(*path(*u, {"crop", "msb8"}), "psnr", 2) << " dB / "
          << cell(*u->find("crop"), "exact_samples_percent", 2) << " %; salt &amp; pepper "
          << cell(*path(*u, {"salt_pepper", "msb8"}), "psnr", 2) << " dB / "
          << cell(*u->find("salt_pepper"), "exact_samples_percent", 2) << " %; Gaussian "
          << cell(*path(*u, {"gaussian", "msb8"}), "psnr", 2) << " dB / "
          << cell(*u->find("gaussian"), "exact_samples_percent", 2) << " %.</p>";
      }
      if (const Json* n = img.find("nist")) {
        h << "<table><tr><th>NIST SP 800-22 sequence</th><th>bits</th>";
        const Json& first = *n->find("ciphertext");
        for (const auto& t : first.find("tests")->members()) h << "<th>" << htmlEscape(t.first) << "</th>";
        h << "</tr>";
        std::vector<const Json*> seqs;
        for (const auto& s : n->find("key_streams")->items()) seqs.push_back(&s);
        seqs.push_back(&first);
        for (const Json* s : seqs) {
          h << "<tr><td>" << htmlEscape(s->find("name")->string()) << "</td><td>" << cell(*s, "bits", 0) << "</td>";
          for (const auto& t : s->find("tests")->members())
            h << "<td class=" << (t.second.find("pass")->boolean() ? "ok" : "bad") << ">"
              << fmt(t.second.find("p_value")->number(), 4) << "</td>";
          h << "</tr>";
        }
        h << "</table><p><small>P-values; a sequence passes a test when P &ge; 0.01.</small></p>";
      }
      const Json& t = *img.find("throughput");
      h << "<p>Throughput (median of " << cell(t, "runs", 0) << " runs, one thread): encryption "
        << cell(t, "encrypt_mb_s", 1) << " MB/s (" << cell(t, "encrypt_ms", 2) << " ms), decryption "
        << cell(t, "decrypt_mb_s", 1) << " MB/s (" << cell(t, "decrypt_ms", 2) << " ms)";
      if (t.find("generator_ms"))
        h << "; decoy generator " << cell(t, "generator_ms", 3) << " ms per object, encryption without it "
          << cell(t, "encrypt_mb_s_without_generator", 1) << " MB/s";
      h << ".</p>";
    }
    // Figures
    for (const Figures& f : report.backends[bi].figures) {
      h << "<h3>Figures: " << htmlEscape(f.image) << " (" << htmlEscape(b.find("backend")->string())
        << ")</h3><div class=figs>";
      h << pngImg(f.plain, "plain (windowed)") << pngImg(f.cipher, "cipher (8-bit view)")
        << pngImg(f.decrypted, "decrypted") << pngImg(f.wrongKey, "wrong key, unverified")
        << pngImg(f.cropped, "cropped cipher, unverified") << pngImg(f.noisy, "salt & pepper cipher, unverified");
      h << "<br>" << svgHistogram(f.histPlain, "Histogram, plain (8-bit view)")
        << svgHistogram(f.histCipher, "Histogram, cipher (8-bit view)") << "<br>";
      static const char* dirs[] = {"horizontal", "vertical", "diagonal"};
      for (int d = 0; d < 3; ++d) h << svgScatter(f.pairsPlain[d], 255, std::string("plain, ") + dirs[d]);
      h << "<br>";
      for (int d = 0; d < 3; ++d) h << svgScatter(f.pairsCipher[d], 255, std::string("cipher, ") + dirs[d]);
      h << "</div>";
    }
  }
  h << "</body></html>\n";
  return h.str();
}

}  // namespace pacsgw::eval
