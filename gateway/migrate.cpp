// Archive migration. For every instance of the selected studies:
//   C-GET it from the PACS -> already carries a key reference? count it, leave it
//   -> encrypt (InstanceProtector, as the store service does) -> C-STORE it back (same UIDs)
//   -> C-GET it again, check it is the encrypted copy and that it decrypts to exactly the pixels
//      read at first -> only then journal it as done.
// The journal (one fsync'd line per finished instance) makes an interrupted run resumable: a rerun
// skips what is journalled and re-checks everything else (an instance replaced but not yet
// journalled is found encrypted and counted as such).
#include "gateway/migrate.h"

#include "codecs/dicom_crypt.h"
#include "config/config.h"
#include "gateway/dimse_status.h"
#include "gateway/instance_protector.h"
#include "gateway/logging.h"
#include "gateway/pacs_client.h"
#include "keystore/keystore.h"
#include "terminal/progress_line.h"

#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcelem.h>
#include <dcmtk/dcmdata/dcostrmb.h>

#include <spdlog/spdlog.h>

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <stdexcept>

namespace pacsgw::gateway {

namespace {

constexpr const char* kUsage = R"(usage: pacsgw migrate --config FILE (--study UID | --since DATE | --all)
                      [--dry-run] [--journal FILE]

Encrypts studies already stored in the PACS in clear and stores them back under the same UIDs (the
PACS must accept replacing an instance, e.g. Orthanc's OverwriteInstances). Each replaced instance is
read back and decrypted before it counts as done. Interrupted runs resume from the journal
(default: <gateway.data_dir>/migration-journal.tsv). --dry-run reads but changes nothing.
  --since DATE   studies with Study Date on or after DATE (YYYYMMDD or YYYY-MM-DD)
)";

struct Selection {
  std::string studyUid;
  std::string sinceDate;
  bool all = false;
};

struct Options {
  std::string configPath;
  Selection selection;
  bool dryRun = false;
  std::string journalPath;
};

bool isUid(const std::string& text) {
  if (text.empty() || text.size() > 64) return false;
  for (char c : text) {
    if (!(c == '.' || (c >= '0' && c <= '9'))) return false;
  }
  return true;
}

std::string normaliseDate(std::string text) {
  if (text.size() == 10 && text[4] == '-' && text[7] == '-') text = text.substr(0, 4) + text.substr(5, 2) + text.substr(8, 2);
  bool digits = text.size() == 8;
  for (char c : text) digits = digits && c >= '0' && c <= '9';
  if (!digits) throw std::invalid_argument("--since expects a date as YYYYMMDD or YYYY-MM-DD, got '" + text + "'");
  return text;
}

Options parse(const std::vector<std::string>& args) {
  Options o;
  int selectors = 0;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= args.size()) throw std::invalid_argument(a + " needs a value");
      return args[++i];
    };
    if (a == "--config") {
      o.configPath = value();
    } else if (a == "--study") {
      o.selection.studyUid = value();
      if (!isUid(o.selection.studyUid)) throw std::invalid_argument("--study expects a Study Instance UID");
      ++selectors;
    } else if (a == "--since") {
      o.selection.sinceDate = normaliseDate(value());
      ++selectors;
    } else if (a == "--all") {
      o.selection.all = true;
      ++selectors;
    } else if (a == "--dry-run") {
      o.dryRun = true;
    } else if (a == "--journal") {
      o.journalPath = value();
    } else {
      throw std::invalid_argument("unknown option " + a);
    }
  }
  if (o.configPath.empty()) throw std::invalid_argument("--config FILE is required");
  if (selectors != 1) throw std::invalid_argument("give exactly one of --study UID, --since DATE, --all");
  return o;
}

std::string text(DcmItem& item, const DcmTagKey& tag) {
  OFString value;
  item.findAndGetOFString(tag, value);
  return value.c_str();
}

// The pixel data elements serialised in `xfer`: equal bytes <=> bit-exact pixels.
std::string pixelBytes(DcmDataset& dataset, E_TransferSyntax xfer) {
  std::string out;
  for (const DcmTagKey& tag : {DCM_PixelData, DCM_FloatPixelData, DCM_DoubleFloatPixelData}) {
    DcmElement* element = nullptr;
    if (dataset.findAndGetElement(tag, element).bad() || element == nullptr) continue;
    DcmDataset only;
    only.insert(static_cast<DcmElement*>(element->clone()));
    only.transferInit();
    const Uint32 length = only.calcElementLength(xfer, EET_ExplicitLength) + 64;
    std::string buffer(length, '\0');
    DcmOutputBufferStream stream(buffer.data(), length);
    only.write(stream, xfer, EET_ExplicitLength, nullptr);
    only.transferEnd();
    void* written = nullptr;
    offile_off_t size = 0;
    stream.flushBuffer(written, size);
    out.append(static_cast<const char*>(written), static_cast<std::size_t>(size));
  }
  return out;
}

class Journal {
 public:
  explicit Journal(const std::string& path) : path_(path) {
    std::ifstream in(path);
    std::string line;
    while (std::getline(in, line)) {
      const auto tab = line.find('\t');
      if (tab != std::string::npos && isUid(line.substr(tab + 1))) done_.insert(line.substr(tab + 1));
    }
  }
  ~Journal() {
    if (fd_ >= 0) ::close(fd_);
  }
  bool contains(const std::string& uid) const { return done_.count(uid) != 0; }
  void record(const std::string& outcome, const std::string& uid) {
    if (fd_ < 0) {
      fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
      if (fd_ < 0) throw std::runtime_error("cannot open the journal " + path_);
    }
    const std::string line = outcome + "\t" + uid + "\n";
    if (::write(fd_, line.data(), line.size()) != static_cast<ssize_t>(line.size()) || ::fsync(fd_) != 0) {
      throw std::runtime_error("cannot write the journal " + path_);
    }
    done_.insert(uid);
  }

 private:
  std::string path_;
  std::set<std::string> done_;
  int fd_ = -1;
};

struct InstanceRef {
  std::string study, series, sop, sopClass;
};

struct Totals {
  std::size_t studies = 0, instances = 0, migrated = 0, alreadyEncrypted = 0, journalled = 0, noPixels = 0;
  std::vector<std::string> failures;  // "<uid>: <reason>"
  double bytes = 0;
};

std::vector<std::string> selectStudies(const config::Config& cfg, const Selection& s) {
  PacsClient pacs(cfg, PacsClient::Purpose::Query);
  DcmDataset query;
  query.putAndInsertString(DCM_QueryRetrieveLevel, "STUDY");
  query.putAndInsertString(DCM_StudyInstanceUID, s.studyUid.c_str());
  query.putAndInsertString(DCM_StudyDate, s.sinceDate.empty() ? "" : (s.sinceDate + "-").c_str());
  std::vector<std::string> studies;
  for (auto& r : pacs.find(query)) {
    const std::string uid = text(*r, DCM_StudyInstanceUID);
    if (isUid(uid)) studies.push_back(uid);
  }
  return studies;
}

std::vector<InstanceRef> listInstances(const config::Config& cfg, const std::string& study) {
  PacsClient pacs(cfg, PacsClient::Purpose::Query);
  std::vector<InstanceRef> instances;
  DcmDataset seriesQuery;
  seriesQuery.putAndInsertString(DCM_QueryRetrieveLevel, "SERIES");
  seriesQuery.putAndInsertString(DCM_StudyInstanceUID, study.c_str());
  seriesQuery.putAndInsertString(DCM_SeriesInstanceUID, "");
  for (auto& series : pacs.find(seriesQuery)) {
    const std::string seriesUid = text(*series, DCM_SeriesInstanceUID);
    if (!isUid(seriesUid)) continue;
    DcmDataset imageQuery;
    imageQuery.putAndInsertString(DCM_QueryRetrieveLevel, "IMAGE");
    imageQuery.putAndInsertString(DCM_StudyInstanceUID, study.c_str());
    imageQuery.putAndInsertString(DCM_SeriesInstanceUID, seriesUid.c_str());
    imageQuery.putAndInsertString(DCM_SOPInstanceUID, "");
    imageQuery.putAndInsertString(DCM_SOPClassUID, "");
    for (auto& image : pacs.find(imageQuery)) {
      InstanceRef ref{study, seriesUid, text(*image, DCM_SOPInstanceUID), text(*image, DCM_SOPClassUID)};
      if (isUid(ref.sop) && isUid(ref.sopClass)) instances.push_back(ref);
    }
  }
  return instances;
}

// One instance; returns the outcome word for the journal, or throws with the reason it failed.
std::string migrateInstance(const InstanceRef& ref, PacsClient& reader, PacsClient* writer, InstanceProtector& protector,
                            bool dryRun, double& bytes) {
  std::string problem;
  std::unique_ptr<DcmDataset> dataset = reader.getInstance(ref.study, ref.series, ref.sop, problem);
  if (!dataset) throw std::runtime_error(problem);
  if (codecs::hasKeyReference(*dataset)) return "already-encrypted";
  E_TransferSyntax xfer = dataset->getOriginalXfer();
  const std::string clearPixels = pixelBytes(*dataset, xfer);
  bytes += static_cast<double>(dataset->getLength(xfer));
  if (dryRun) return "would-migrate";
  ProtectResult result = protector.protect(*dataset, xfer);
  if (!result.encrypted) return "no-pixel-data";
  const std::uint16_t status = writer->store(*dataset, result.transferSyntax, ref.sopClass);
  if (!status::isStored(status)) {
    char text[64];
    std::snprintf(text, sizeof text, "the PACS refused the encrypted copy (status 0x%04x)", status);
    throw std::runtime_error(text);
  }
  // Read back what the PACS now serves and prove it decrypts to the pixels we started from.
  std::unique_ptr<DcmDataset> stored = reader.getInstance(ref.study, ref.series, ref.sop, problem);
  if (!stored) throw std::runtime_error("read-back failed: " + problem);
  if (!codecs::hasKeyReference(*stored)) {
    throw std::runtime_error("the PACS still serves the clear copy (does it allow replacing instances?)");
  }
  const E_TransferSyntax storedXfer = stored->getOriginalXfer();
  E_TransferSyntax original = protector.restore(*stored, storedXfer);
  if (original != storedXfer && stored->chooseRepresentation(original, nullptr).bad()) original = storedXfer;
  if (pixelBytes(*stored, xfer) != clearPixels) {
    throw std::runtime_error("read-back copy does not decrypt to the original pixels");
  }
  return "migrated";
}

void printReport(const Options& o, const Totals& t, double seconds) {
  std::printf("migration report%s\n", o.dryRun ? " (dry run: nothing was changed)" : "");
  std::printf("  studies                      %zu\n", t.studies);
  std::printf("  instances                    %zu\n", t.instances);
  std::printf("  %-28s %zu\n", o.dryRun ? "to migrate" : "migrated and verified", t.migrated);
  std::printf("  already encrypted            %zu\n", t.alreadyEncrypted);
  std::printf("  done in an earlier run       %zu\n", t.journalled);
  std::printf("  without pixel data (kept)    %zu\n", t.noPixels);
  std::printf("  failed                       %zu\n", t.failures.size());
  std::printf("  read                         %.1f MB in %.1f s (%.1f MB/s)\n", t.bytes / 1e6, seconds,
              seconds > 0 ? t.bytes / 1e6 / seconds : 0.0);
  for (const std::string& f : t.failures) std::printf("  FAILED %s\n", f.c_str());
}

}  // namespace

int runMigrateCommand(const std::vector<std::string>& args) {
  Options o;
  try {
    o = parse(args);
  } catch (const std::invalid_argument& e) {
    std::cerr << "pacsgw migrate: " << e.what() << "\n\n" << kUsage;
    return 2;
  }
  config::Config cfg = config::loadConfig(o.configPath);
  setupLogging(cfg.gateway.logLevel == "info" ? "warn" : cfg.gateway.logLevel, cfg.gateway.logFormat);
  std::vector<config::ConfigIssue> problems = config::checkFiles(cfg);
  if (!problems.empty()) throw config::ConfigError::inFile(problems, cfg.sourcePath);
  if (o.journalPath.empty()) o.journalPath = (std::filesystem::path(cfg.gateway.dataDir) / "migration-journal.tsv").string();
  auto keys = openKeystore(cfg);
  InstanceProtector protector(*keys, cfg.cipher);
  Journal journal(o.journalPath);
  const auto started = std::chrono::steady_clock::now();

  Totals totals;
  const std::vector<std::string> studies = selectStudies(cfg, o.selection);
  std::map<std::string, std::vector<InstanceRef>> byStudy;
  for (const std::string& study : studies) {
    byStudy[study] = listInstances(cfg, study);
    totals.instances += byStudy[study].size();
  }
  totals.studies = studies.size();
  // On a terminal only: `pacsgw migrate ... | tee` or cron stays quiet.
  terminal::ProgressLine progress("migrate", "instances", totals.instances);
  std::size_t processed = 0, studyIndex = 0;
  for (const std::string& study : studies) {
    ++studyIndex;
    std::vector<InstanceRef> todo;
    std::set<std::string> sopClasses;
    for (const InstanceRef& ref : byStudy[study]) {
      if (journal.contains(ref.sop)) {
        ++totals.journalled;
        ++processed;
        continue;
      }
      todo.push_back(ref);
      sopClasses.insert(ref.sopClass);
    }
    if (todo.empty()) continue;
    std::unique_ptr<PacsClient> reader, writer;
    try {
      reader = std::make_unique<PacsClient>(cfg, PacsClient::Purpose::Retrieve, sopClasses);
      if (!o.dryRun) writer = std::make_unique<PacsClient>(cfg, PacsClient::Purpose::Store, sopClasses);
    } catch (const std::exception& e) {
      for (const InstanceRef& ref : todo) totals.failures.push_back(ref.sop + ": " + e.what());
      processed += todo.size();
      continue;
    }
    for (const InstanceRef& ref : todo) {
      try {
        const std::string outcome = migrateInstance(ref, *reader, writer.get(), protector, o.dryRun, totals.bytes);
        if (outcome == "migrated" || outcome == "would-migrate") ++totals.migrated;
        if (outcome == "already-encrypted") ++totals.alreadyEncrypted;
        if (outcome == "no-pixel-data") ++totals.noPixels;
        if (!o.dryRun) journal.record(outcome, ref.sop);
      } catch (const std::exception& e) {
        totals.failures.push_back(ref.sop + ": " + e.what());
        spdlog::warn("migrate: instance {} of study {} failed: {}", ref.sop, study, e.what());
      }
      progress.update(++processed, totals.bytes,
                      "study " + std::to_string(studyIndex) + "/" + std::to_string(studies.size()) + ", ");
    }
  }
  progress.finish();
  printReport(o, totals, std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  return totals.failures.empty() ? 0 : 1;
}

}  // namespace pacsgw::gateway
