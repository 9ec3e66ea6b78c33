#include "codecs/eval/metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

namespace pacsgw::eval {
namespace {
constexpr double kPi = 3.14159265358979323846;
}  // namespace

const char* toString(ViewKind kind) { return kind == ViewKind::Msb8 ? "msb8" : "full"; }

const char* toString(Direction d) {
  switch (d) {
    case Direction::Horizontal: return "horizontal";
    case Direction::Vertical: return "vertical";
    case Direction::Diagonal: return "diagonal";
  }
  return "?";
}

ImageView makeView(const codecs::PixelLayout& layout, const std::uint8_t* bytes, std::size_t size, ViewKind kind) {
  const unsigned bits = layout.bitsAllocated;
  if (bits != 8 && bits != 16) throw std::invalid_argument("eval: only 8 or 16 bits allocated are measured");
  const std::size_t bytesPerSample = bits / 8;
  const std::size_t spp = std::max<std::size_t>(1, layout.samplesPerPixel);
  const std::size_t frames = std::max<std::size_t>(1, layout.numberOfFrames);
  ImageView v;
  v.rows = layout.rows;
  v.cols = layout.columns;
  v.planes = frames * spp;
  const std::size_t perPlane = v.rows * v.cols;
  const std::size_t count = perPlane * v.planes;
  if (size < count * bytesPerSample) throw std::invalid_argument("eval: pixel data shorter than the pixel module says");
  const bool isSigned = layout.pixelRepresentation == 1;
  if (kind == ViewKind::Msb8) {
    v.minValue = 0;
    v.peak = 255;
  } else {
    v.minValue = isSigned ? -(std::int64_t{1} << (bits - 1)) : 0;
    v.peak = (std::int64_t{1} << bits) - 1;
  }
  v.values.resize(count);
  for (std::size_t f = 0; f < frames; ++f) {
    for (std::size_t s = 0; s < spp; ++s) {
      std::int32_t* dst = v.values.data() + (f * spp + s) * perPlane;
      for (std::size_t i = 0; i < perPlane; ++i) {
        // Sample index in storage order: interleaved (R G B R G B ...) or planar (R... G... B...).
        const std::size_t idx =
            layout.planarConfiguration == 1 ? (f * spp + s) * perPlane + i : (f * perPlane + i) * spp + s;
        const std::uint8_t* p = bytes + idx * bytesPerSample;
        const std::uint32_t raw = bytesPerSample == 1 ? p[0] : static_cast<std::uint32_t>(p[0] | (p[1] << 8));
        if (kind == ViewKind::Msb8) {
          dst[i] = static_cast<std::int32_t>(raw >> (bits - 8));
        } else if (isSigned) {
          dst[i] = bits == 8 ? static_cast<std::int8_t>(raw) : static_cast<std::int16_t>(raw);
        } else {
          dst[i] = static_cast<std::int32_t>(raw);
        }
      }
    }
  }
  return v;
}

ImageView storedView(const codecs::PixelLayout& layout, const std::uint8_t* bytes, std::size_t size) {
  ImageView v = makeView(layout, bytes, size, ViewKind::Full);
  const unsigned stored = std::clamp<unsigned>(layout.bitsStored, 1, layout.bitsAllocated);
  const std::uint32_t mask = stored >= 32 ? 0xFFFFFFFFu : (std::uint32_t{1} << stored) - 1;
  const bool isSigned = layout.pixelRepresentation == 1;
  for (std::int32_t& x : v.values) {
    std::uint32_t w = static_cast<std::uint32_t>(x) & mask;
    if (isSigned && (w >> (stored - 1)) & 1u) w |= ~mask;  // sign-extend from the stored high bit
    x = static_cast<std::int32_t>(w);
  }
  v.minValue = isSigned ? -(std::int64_t{1} << (stored - 1)) : 0;
  v.peak = (std::int64_t{1} << stored) - 1;
  return v;
}

std::vector<DisplayWindow> frameMinMaxWindows(const codecs::PixelLayout& layout, const std::uint8_t* bytes,
                                              std::size_t size) {
  const ImageView v = storedView(layout, bytes, size);
  const std::size_t frames = std::max<std::size_t>(1, layout.numberOfFrames);
  const std::size_t perFrame = v.values.size() / frames;
  std::vector<DisplayWindow> windows(frames);
  for (std::size_t f = 0; f < frames; ++f) {
    const auto [lo, hi] = std::minmax_element(v.values.begin() + f * perFrame, v.values.begin() + (f + 1) * perFrame);
    windows[f].lo = *lo;
    windows[f].hi = *hi > *lo ? *hi : *lo + 1;
  }
  return windows;
}

ImageView windowedView(const codecs::PixelLayout& layout, const std::uint8_t* bytes, std::size_t size,
                       const std::vector<DisplayWindow>& windows) {
  ImageView v = storedView(layout, bytes, size);
  const std::size_t frames = std::max<std::size_t>(1, layout.numberOfFrames);
  if (windows.size() != frames && windows.size() != 1)
    throw std::invalid_argument("eval: one display window per frame (or one for all) expected");
  const std::size_t perFrame = v.values.size() / frames;
  for (std::size_t i = 0; i < v.values.size(); ++i) {
    const DisplayWindow& w = windows.size() == 1 ? windows[0] : windows[i / perFrame];
    const double span = w.hi > w.lo ? w.hi - w.lo : 1.0;
    const double unit = std::clamp((v.values[i] - w.lo) / span, 0.0, 1.0);
    v.values[i] = static_cast<std::int32_t>(std::lround(255.0 * unit));
  }
  v.minValue = 0;
  v.peak = 255;
  return v;
}

std::vector<std::uint64_t> histogram(const ImageView& v) {
  std::vector<std::uint64_t> h(static_cast<std::size_t>(v.peak) + 1, 0);
  for (std::int32_t x : v.values) ++h[static_cast<std::size_t>(x - v.minValue)];
  return h;
}

double entropy(const ImageView& v) {
  if (v.values.empty()) return 0.0;
  const auto h = histogram(v);
  const double n = static_cast<double>(v.values.size());
  double e = 0.0;
  for (std::uint64_t c : h)
    if (c) {
      const double p = static_cast<double>(c) / n;
      e -= p * std::log2(p);
    }
  return e;
}

std::vector<PixelPair> samplePairs(const ImageView& shape, Direction d, std::size_t count, std::mt19937_64& rng) {
  const std::size_t dr = d == Direction::Horizontal ? 0 : 1;
  const std::size_t dc = d == Direction::Vertical ? 0 : 1;
  std::vector<PixelPair> pairs;
  if (shape.planes == 0 || shape.rows <= dr || shape.cols <= dc) return pairs;
  std::uniform_int_distribution<std::size_t> plane(0, shape.planes - 1), row(0, shape.rows - 1 - dr),
      col(0, shape.cols - 1 - dc);
  pairs.reserve(count);
  for (std::size_t i = 0; i < count; ++i) {
    const std::size_t p = plane(rng);
    const std::size_t r = row(rng);
    pairs.push_back({p, r, col(rng)});
  }
  return pairs;
}

std::vector<std::pair<double, double>> pairValues(const ImageView& v, const std::vector<PixelPair>& pairs,
                                                  Direction d) {
  const std::size_t dr = d == Direction::Horizontal ? 0 : 1;
  const std::size_t dc = d == Direction::Vertical ? 0 : 1;
  std::vector<std::pair<double, double>> out;
  out.reserve(pairs.size());
  for (const auto& p : pairs) out.emplace_back(v.at(p.plane, p.row, p.col), v.at(p.plane, p.row + dr, p.col + dc));
  return out;
}

double correlation(const std::vector<std::pair<double, double>>& xy) {
  if (xy.size() < 2) return 0.0;
  const double n = static_cast<double>(xy.size());
  double mx = 0, my = 0;
  for (const auto& [x, y] : xy) {
    mx += x;
    my += y;
  }
  mx /= n;
  my /= n;
  double sxx = 0, syy = 0, sxy = 0;
  for (const auto& [x, y] : xy) {
    sxx += (x - mx) * (x - mx);
    syy += (y - my) * (y - my);
    sxy += (x - mx) * (y - my);
  }
  if (sxx <= 0 || syy <= 0) return 0.0;
  return sxy / std::sqrt(sxx * syy);
}

double correlationAllPairs(const ImageView& v, Direction d) {
  const std::size_t dr = d == Direction::Horizontal ? 0 : 1;
  const std::size_t dc = d == Direction::Vertical ? 0 : 1;
  if (v.rows <= dr || v.cols <= dc) return 0.0;
  // Two passes (means, then centred sums) for accuracy over millions of pairs.
  double n = 0, mx = 0, my = 0;
  for (std::size_t p = 0; p < v.planes; ++p)
    for (std::size_t r = 0; r + dr < v.rows; ++r)
      for (std::size_t c = 0; c + dc < v.cols; ++c) {
        mx += v.at(p, r, c);
        my += v.at(p, r + dr, c + dc);
        n += 1;
      }
  mx /= n;
  my /= n;
  double sxx = 0, syy = 0, sxy = 0;
  for (std::size_t p = 0; p < v.planes; ++p)
    for (std::size_t r = 0; r + dr < v.rows; ++r)
      for (std::size_t c = 0; c + dc < v.cols; ++c) {
        const double x = v.at(p, r, c) - mx, y = v.at(p, r + dr, c + dc) - my;
        sxx += x * x;
        syy += y * y;
        sxy += x * y;
      }
  if (sxx <= 0 || syy <= 0) return 0.0;
  return sxy / std::sqrt(sxx * syy);
}

Differential npcrUaci(const ImageView& a, const ImageView& b) {
  if (a.values.size() != b.values.size() || a.values.empty())
    throw std::invalid_argument("eval: NPCR/UACI need two images of the same size");
  std::size_t differ = 0;
  double absSum = 0;
  for (std::size_t i = 0; i < a.values.size(); ++i) {
    const std::int64_t d = static_cast<std::int64_t>(a.values[i]) - b.values[i];
    differ += d != 0;
    absSum += static_cast<double>(d < 0 ? -d : d);
  }
  const double n = static_cast<double>(a.values.size());
  return {100.0 * static_cast<double>(differ) / n, 100.0 * absSum / (n * static_cast<double>(a.peak))};
}

double normalUpperQuantile(double p) {
  if (!(p > 0.0 && p < 1.0)) throw std::invalid_argument("normalUpperQuantile: p must lie in (0, 1)");
  // Lower-tail quantile of q = 1 - p by Acklam's rational approximation, then one Halley step on erfc.
  const double q = 1.0 - p;
  static const double a[] = {-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02,
                             1.383577518672690e+02, -3.066479806614716e+01, 2.506628277459239e+00};
  static const double b[] = {-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02,
                             6.680131188771972e+01, -1.328068155288572e+01};
  static const double c[] = {-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00,
                             -2.549732539343734e+00, 4.374664141464968e+00, 2.938163982698783e+00};
  static const double d[] = {7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00,
                             3.754408661907416e+00};
  const double lowTail = 0.02425;
  double x;
  if (q < lowTail) {
    const double t = std::sqrt(-2 * std::log(q));
    x = (((((c[0] * t + c[1]) * t + c[2]) * t + c[3]) * t + c[4]) * t + c[5]) /
        ((((d[0] * t + d[1]) * t + d[2]) * t + d[3]) * t + 1);
  } else if (q <= 1 - lowTail) {
    const double t = q - 0.5, r = t * t;
    x = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * t /
        (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
  } else {
    const double t = std::sqrt(-2 * std::log(1 - q));
    x = -(((((c[0] * t + c[1]) * t + c[2]) * t + c[3]) * t + c[4]) * t + c[5]) /
        ((((d[0] * t + d[1]) * t + d[2]) * t + d[3]) * t + 1);
  }
  const double e = 0.5 * std::erfc(-x / std::sqrt(2.0)) - q;
  const double u = e * std::sqrt(2 * kPi) * std::exp(x * x / 2);
  x = x - u / (1 + x * u / 2);
  return x;
}

double npcrMean(double f) { return f / (f + 1); }
double npcrSigma(double mn, double f) { return std::sqrt(f / ((f + 1) * (f + 1) * mn)); }
double uaciMean(double f) { return (f + 2) / (3 * f + 3); }
double uaciSigma(double mn, double f) {
  return std::sqrt((f + 2) * (f * f + 2 * f + 3) / (18 * (f + 1) * (f + 1) * mn * f));
}

double wuNpcrCritical(double mn, double f, double alpha) {
  return (f - normalUpperQuantile(alpha) * std::sqrt(f / mn)) / (f + 1);
}

std::pair<double, double> wuUaciInterval(double mn, double f, double alpha) {
  const double half = normalUpperQuantile(alpha / 2) * uaciSigma(mn, f);
  return {uaciMean(f) - half, uaciMean(f) + half};
}

double mse(const ImageView& a, const ImageView& b) {
  if (a.values.size() != b.values.size() || a.values.empty())
    throw std::invalid_argument("eval: MSE needs two images of the same size");
  double s = 0;
  for (std::size_t i = 0; i < a.values.size(); ++i) {
    const double d = static_cast<double>(a.values[i]) - b.values[i];
    s += d * d;
  }
  return s / static_cast<double>(a.values.size());
}

double psnr(const ImageView& a, const ImageView& b) {
  const double m = mse(a, b);
  if (m == 0) return std::numeric_limits<double>::infinity();
  const double f = static_cast<double>(a.peak);
  return 10.0 * std::log10(f * f / m);
}

namespace {

constexpr int kWindow = 11;
constexpr double kSigma = 1.5;

std::vector<double> gaussianKernel() {
  std::vector<double> k(kWindow);
  double sum = 0;
  for (int i = 0; i < kWindow; ++i) {
    const double x = i - kWindow / 2;
    k[i] = std::exp(-x * x / (2 * kSigma * kSigma));
    sum += k[i];
  }
  for (double& v : k) v /= sum;
  return k;
}

// "Valid" separable filtering of one plane: output (rows - 10) x (cols - 10).
std::vector<double> filterValid(const std::vector<double>& in, std::size_t rows, std::size_t cols,
                                const std::vector<double>& k) {
  const std::size_t oc = cols - kWindow + 1, orows = rows - kWindow + 1;
  std::vector<double> tmp(rows * oc);
  for (std::size_t r = 0; r < rows; ++r)
    for (std::size_t c = 0; c < oc; ++c) {
      double s = 0;
      for (int i = 0; i < kWindow; ++i) s += k[i] * in[r * cols + c + i];
      tmp[r * oc + c] = s;
    }
  std::vector<double> out(orows * oc);
  for (std::size_t r = 0; r < orows; ++r)
    for (std::size_t c = 0; c < oc; ++c) {
      double s = 0;
      for (int i = 0; i < kWindow; ++i) s += k[i] * tmp[(r + i) * oc + c];
      out[r * oc + c] = s;
    }
  return out;
}

}  // namespace

double ssimGlobal(const std::vector<double>& x, const std::vector<double>& y, double peak) {
  if (x.size() != y.size() || x.empty()) throw std::invalid_argument("ssimGlobal: size mismatch");
  const double n = static_cast<double>(x.size());
  double mx = 0, my = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    mx += x[i];
    my += y[i];
  }
  mx /= n;
  my /= n;
  double vx = 0, vy = 0, cxy = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    vx += (x[i] - mx) * (x[i] - mx);
    vy += (y[i] - my) * (y[i] - my);
    cxy += (x[i] - mx) * (y[i] - my);
  }
  vx /= n;
  vy /= n;
  cxy /= n;
  const double c1 = (0.01 * peak) * (0.01 * peak), c2 = (0.03 * peak) * (0.03 * peak);
  return ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2));
}

double ssim(const ImageView& a, const ImageView& b) {
  if (a.values.size() != b.values.size() || a.rows != b.rows || a.cols != b.cols || a.values.empty())
    throw std::invalid_argument("eval: SSIM needs two images of the same shape");
  const double peak = static_cast<double>(a.peak);
  const std::size_t perPlane = a.rows * a.cols;
  if (a.rows < static_cast<std::size_t>(kWindow) || a.cols < static_cast<std::size_t>(kWindow)) {
    double sum = 0;
    for (std::size_t p = 0; p < a.planes; ++p) {
      std::vector<double> x(a.values.begin() + p * perPlane, a.values.begin() + (p + 1) * perPlane);
      std::vector<double> y(b.values.begin() + p * perPlane, b.values.begin() + (p + 1) * perPlane);
      sum += ssimGlobal(x, y, peak);
    }
    return sum / static_cast<double>(a.planes);
  }
  const auto k = gaussianKernel();
  const double c1 = (0.01 * peak) * (0.01 * peak), c2 = (0.03 * peak) * (0.03 * peak);
  double total = 0;
  std::size_t windows = 0;
  std::vector<double> x(perPlane), y(perPlane), xx(perPlane), yy(perPlane), xy(perPlane);
  for (std::size_t p = 0; p < a.planes; ++p) {
    for (std::size_t i = 0; i < perPlane; ++i) {
      x[i] = a.values[p * perPlane + i];
      y[i] = b.values[p * perPlane + i];
      xx[i] = x[i] * x[i];
      yy[i] = y[i] * y[i];
      xy[i] = x[i] * y[i];
    }
    const auto mx = filterValid(x, a.rows, a.cols, k), my = filterValid(y, a.rows, a.cols, k);
    const auto sxx = filterValid(xx, a.rows, a.cols, k), syy = filterValid(yy, a.rows, a.cols, k),
               sxy = filterValid(xy, a.rows, a.cols, k);
    for (std::size_t i = 0; i < mx.size(); ++i) {
      const double vx = sxx[i] - mx[i] * mx[i], vy = syy[i] - my[i] * my[i], cxy = sxy[i] - mx[i] * my[i];
      total += ((2 * mx[i] * my[i] + c1) * (2 * cxy + c2)) / ((mx[i] * mx[i] + my[i] * my[i] + c1) * (vx + vy + c2));
    }
    windows += mx.size();
  }
  return total / static_cast<double>(windows);
}

}  // namespace pacsgw::eval
