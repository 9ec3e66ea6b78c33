#pragma once
// A small thread-safe metrics registry rendered in the Prometheus text exposition format.
//
// Code that has something to count does it in one line:
//   metrics::increment("pacsgw_instances_total", {{"path", "store"}, {"status", "0000"}});
//   metrics::observe("pacsgw_encrypt_seconds", {{"backend", "aes-256-gcm"}}, seconds);
// Every metric name must be declared in the catalogue (catalog.cpp) with its type and help text, so a
// scrape always shows every family (at zero before the first event) and a typo fails loudly in tests.
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace pacsgw::metrics {

using Labels = std::vector<std::pair<std::string, std::string>>;

enum class Kind { Counter, Gauge, Histogram };

struct Family {
  std::string name;
  Kind kind;
  std::string help;
  std::vector<double> buckets;  // histograms only: upper bounds, ascending
};

// Adds `by` to a counter (or a gauge).
void increment(const std::string& name, const Labels& labels = {}, double by = 1);
// Sets a gauge.
void set(const std::string& name, const Labels& labels, double value);
// Records one observation in a histogram.
void observe(const std::string& name, const Labels& labels, double value);
// A gauge whose value is read at scrape time (e.g. the spool depth). Replaces an earlier source of
// the same name and labels; `source` must stay callable until unregistered or the process ends.
void setGaugeSource(const std::string& name, const Labels& labels, std::function<double()> source);
void clearGaugeSource(const std::string& name, const Labels& labels);

// The whole registry in the text exposition format (version 0.0.4).
std::string renderPrometheus();
// Current value of a counter or gauge (0 when never touched); for tests and health checks.
double value(const std::string& name, const Labels& labels = {});

// The declared families, in the order they are rendered.
const std::vector<Family>& catalog();

}  // namespace pacsgw::metrics
