#pragma once
// A query/retrieve/store client for the PACS, used by `pacsgw migrate`: C-FIND (study root), C-GET
// of single instances into memory, C-STORE back. One association per client, negotiated for the SOP
// classes it will handle (C-GET needs them up front: the PACS sends each object on a storage context
// where we play the SCP role).
#include "config/config.h"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdatset.h>

#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <vector>

namespace pacsgw::gateway {

class PacsClient {
 public:
  enum class Purpose { Query, Retrieve, Store };
  // Opens an association from the gateway's AE title to the upstream PACS. `sopClasses` are the
  // storage SOP classes to retrieve or store (ignored for Query). Throws std::runtime_error.
  PacsClient(const config::Config& config, Purpose purpose, const std::set<std::string>& sopClasses = {});
  ~PacsClient();
  PacsClient(const PacsClient&) = delete;
  PacsClient& operator=(const PacsClient&) = delete;

  // Study-root C-FIND; returns the identifiers of the pending responses.
  std::vector<std::unique_ptr<DcmDataset>> find(DcmDataset& query);
  // C-GET of one instance; nullptr when the PACS sent nothing (the reason is in `problem`).
  std::unique_ptr<DcmDataset> getInstance(const std::string& studyUid, const std::string& seriesUid,
                                          const std::string& sopInstanceUid, std::string& problem);
  // C-STORE; returns the PACS's DIMSE status (throws when no response came back).
  std::uint16_t store(DcmDataset& dataset, E_TransferSyntax xfer, const std::string& sopClassUid);

 private:
  class Scu;
  std::unique_ptr<Scu> scu_;
};

}  // namespace pacsgw::gateway
