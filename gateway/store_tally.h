#pragma once
// What one association stored: instances forwarded and refused, bytes, and per study the counts that
// go into one audit record each when the association ends.
#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdatset.h>

#include <cstdint>
#include <map>
#include <string>

namespace pacsgw::gateway {

class StoreTally {
 public:
  StoreTally(std::string peerAeTitle, std::string peerAddress);
  // Writes the per-study audit records and the association's summary line.
  ~StoreTally();
  StoreTally(const StoreTally&) = delete;
  StoreTally& operator=(const StoreTally&) = delete;

  // An instance the PACS (or the spool) kept; `bytes` is its encoded length.
  void stored(DcmDataset& dataset, std::uint64_t bytes);
  // An instance refused after its data set was read (counted in its study too).
  void refused(DcmDataset& dataset);
  // An instance refused before its study was known (not read, wrong context, wrong peer).
  void refused() { ++failed_; }

  std::uint64_t storedCount() const { return stored_; }
  std::uint64_t refusedCount() const { return failed_; }

 private:
  struct Study {
    std::string patientId;
    std::size_t stored = 0, failed = 0;
  };
  Study& studyOf(DcmDataset& dataset);

  std::string peerAeTitle_;
  std::string peerAddress_;
  std::uint64_t stored_ = 0, failed_ = 0, bytes_ = 0;
  std::map<std::string, Study> studies_;
};

}  // namespace pacsgw::gateway
