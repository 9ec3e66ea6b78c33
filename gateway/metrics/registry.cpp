#include "gateway/metrics/registry.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <stdexcept>

namespace pacsgw::metrics {

namespace {

struct Series {
  Labels labels;
  double value = 0;                    // counter / gauge
  std::function<double()> source;      // gauge read at scrape time
  std::vector<std::uint64_t> buckets;  // histogram: cumulative counts are computed when rendering
  double sum = 0;
  std::uint64_t count = 0;
};

struct FamilyState {
  const Family* family = nullptr;
  std::map<Labels, Series> series;  // ordered: stable output, easy to diff between scrapes
};

struct Registry {
  std::mutex mutex;
  std::map<std::string, FamilyState> families;

  Registry() {
    for (const Family& family : catalog()) families[family.name].family = &family;
  }

  Series& seriesFor(const std::string& name, const Labels& labels, Kind expected) {
    auto found = families.find(name);
    if (found == families.end()) throw std::invalid_argument("metric not in the catalogue: " + name);
    const Family& family = *found->second.family;
    if (family.kind != expected && !(expected == Kind::Counter && family.kind == Kind::Gauge)) {
      throw std::invalid_argument("metric " + name + " used with the wrong type");
    }
    Series& series = found->second.series[labels];
    if (series.labels.empty() && !labels.empty()) series.labels = labels;
    if (family.kind == Kind::Histogram && series.buckets.empty()) series.buckets.assign(family.buckets.size(), 0);
    return series;
  }
};

Registry& registry() {
  static Registry instance;
  return instance;
}

std::string formatNumber(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char text[32];
  if (v == std::floor(v) && std::fabs(v) < 1e15) {
    std::snprintf(text, sizeof text, "%.0f", v);
  } else {
    // The shortest form that reads back as the same double (0.1, not 0.10000000000000001).
    for (int precision = 15; precision <= 17; ++precision) {
      std::snprintf(text, sizeof text, "%.*g", precision, v);
      if (std::strtod(text, nullptr) == v) break;
    }
  }
  return text;
}

// Label values: backslash, double quote and line feed are escaped (exposition format rules).
std::string escapeLabelValue(const std::string& value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

std::string renderLabels(const Labels& labels, const std::string& extraName = {}, const std::string& extraValue = {}) {
  if (labels.empty() && extraName.empty()) return {};
  std::string out = "{";
  bool first = true;
  for (const auto& [name, value] : labels) {
    if (!first) out += ',';
    first = false;
    out += name + "=\"" + escapeLabelValue(value) + '"';
  }
  if (!extraName.empty()) {
    if (!first) out += ',';
    out += extraName + "=\"" + escapeLabelValue(extraValue) + '"';
  }
  return out + '}';
}

const char* typeName(Kind kind) {
  switch (kind) {
    case Kind::Counter: return "counter";
    case Kind::Gauge: return "gauge";
    case Kind::Histogram: return "histogram";
  }
  return "untyped";
}

}  // namespace

void increment(const std::string& name, const Labels& labels, double by) {
  Registry& r = registry();
  std::lock_guard lock(r.mutex);
  r.seriesFor(name, labels, Kind::Counter).value += by;
}

void set(const std::string& name, const Labels& labels, double value) {
  Registry& r = registry();
  std::lock_guard lock(r.mutex);
  r.seriesFor(name, labels, Kind::Gauge).value = value;
}

void observe(const std::string& name, const Labels& labels, double value) {
  Registry& r = registry();
  std::lock_guard lock(r.mutex);
  Series& series = r.seriesFor(name, labels, Kind::Histogram);
  const std::vector<double>& bounds = r.families[name].family->buckets;
  for (std::size_t i = 0; i < bounds.size(); ++i) {
    if (value <= bounds[i]) {
      ++series.buckets[i];
      break;
    }
  }
  series.sum += value;
  ++series.count;
}

void setGaugeSource(const std::string& name, const Labels& labels, std::function<double()> source) {
  Registry& r = registry();
  std::lock_guard lock(r.mutex);
  r.seriesFor(name, labels, Kind::Gauge).source = std::move(source);
}

void clearGaugeSource(const std::string& name, const Labels& labels) {
  Registry& r = registry();
  std::lock_guard lock(r.mutex);
  r.seriesFor(name, labels, Kind::Gauge).source = nullptr;
}

double value(const std::string& name, const Labels& labels) {
  Registry& r = registry();
  std::lock_guard lock(r.mutex);
  auto family = r.families.find(name);
  if (family == r.families.end()) throw std::invalid_argument("metric not in the catalogue: " + name);
  auto series = family->second.series.find(labels);
  if (series == family->second.series.end()) return 0;
  return series->second.source ? series->second.source() : series->second.value;
}

std::string renderPrometheus() {
  Registry& r = registry();
  std::lock_guard lock(r.mutex);
  std::string out;
  for (const Family& family : catalog()) {
    const FamilyState& state = r.families[family.name];
    out += "# HELP " + family.name + ' ' + family.help + '\n';
    out += "# TYPE " + family.name + ' ' + typeName(family.kind) + '\n';
    if (family.kind == Kind::Histogram) {
      for (const auto& [labels, series] : state.series) {
        std::uint64_t cumulative = 0;
        for (std::size_t i = 0; i < family.buckets.size(); ++i) {
          cumulative += series.buckets[i];
          out += family.name + "_bucket" + renderLabels(labels, "le", formatNumber(family.buckets[i])) + ' ' +
                 formatNumber(static_cast<double>(cumulative)) + '\n';
        }
        out += family.name + "_bucket" + renderLabels(labels, "le", "+Inf") + ' ' +
               formatNumber(static_cast<double>(series.count)) + '\n';
        out += family.name + "_sum" + renderLabels(labels) + ' ' + formatNumber(series.sum) + '\n';
        out += family.name + "_count" + renderLabels(labels) + ' ' + formatNumber(static_cast<double>(series.count)) +
               '\n';
      }
      continue;
    }
    for (const auto& [labels, series] : state.series) {
      double v = series.value;
      if (series.source) {
        try {
          v = series.source();
        } catch (const std::exception&) {
          v = std::nan("");  // a failing source must not break the whole scrape
        }
      }
      out += family.name + renderLabels(labels) + ' ' + formatNumber(v) + '\n';
    }
  }
  return out;
}

}  // namespace pacsgw::metrics
