#pragma once
// The gateway's audit trail: where audit messages go, and one function per kind of event so call
// sites stay one line. The trail is process-wide; until open() is called (unit tests, commands that
// audit nothing) events are discarded.
//
// Durability: each record is appended as one line to the local log with a single write() on a file
// opened O_APPEND, followed by fdatasync(), before the call returns — a record the gateway reports
// is on disk, and concurrent writers never interleave within a line. A failed write is logged as an
// error (and retried with the next record); the gateway keeps serving. Forwarding to syslog reads
// the records back from this file, so it never holds up the caller either.
#include "gateway/audit/audit_message.h"
#include "gateway/audit/syslog_forwarder.h"

#include <cstddef>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace pacsgw::audit {

struct Peer {
  std::string aeTitle;
  std::string address;
};

// Opens (creating with mode 0640) the local audit log. Throws std::runtime_error if it cannot.
void open(const std::string& path, const std::string& gatewayAeTitle);
// Also sends every record to a syslog receiver over TLS (syslog_forwarder.h), on its own thread, from
// the local log as journal. Call after open(); throws std::runtime_error if a TLS file cannot be loaded.
void forwardToSyslog(const SyslogSettings& settings);
// Stops forwarding (after trying to send what is left for a moment) and closes the log.
void close();
bool isOpen();
std::string path();

// Appends one message (no-op when the trail is not open). Returns false if the write failed.
bool record(const AuditMessage& message);

// ---- the events -------------------------------------------------------------------------------------
void applicationStarted(const std::string& detail);
void applicationStopped(const std::string& detail);
void associationAccepted(const Peer& peer);
void associationRefused(const Peer& peer, const std::string& reason);
// One record per study and inbound association: `instances` stored (encrypted) into the PACS.
void instancesStored(const Peer& modality, const std::string& studyUid, const std::string& patientId,
                     std::size_t instances, std::size_t failed);
void query(const Peer& requester, const std::string& level, bool allowed, const std::string& reason);
// A C-MOVE / C-GET: what reached the destination, and whether its pixels were decrypted.
void instancesTransferred(const Peer& requester, const Peer& destination, const std::string& studyUid,
                          std::size_t delivered, std::size_t failed, bool decrypted);
// Instances of a C-MOVE / C-GET delivered without decryption because the gateway cannot have encrypted
// them (cipher.passthrough_unencrypted): one record per retrieve, besides instancesTransferred.
void passthroughDelivered(const Peer& requester, const Peer& destination, const std::string& studyUid,
                          std::size_t instances);
// An object refused because it was tampered with / relabelled / stripped, or access that was refused.
void securityAlert(const std::string& reasonCode, const std::string& description, const Peer& peer,
                   const std::string& sopInstanceUid);
void cliDecrypt(const std::string& user, const std::string& file, const std::string& studyUid, bool ok,
                const std::string& reason);
// action: "created", "used for release", "denied", "destroyed". Never carries key material.
void keyEvent(const std::string& action, const std::string& keyId, const std::string& scopeUid, bool ok,
              const std::string& reason);
// A data key used to decrypt instances released to `destination` at the request of `requester`.
void keyUsedForRelease(const std::string& keyId, const std::string& scopeUid, const Peer& requester,
                       const Peer& destination, std::size_t instances);

// The data keys one retrieve decrypted with (filled from the sub-operation threads), so that each
// key is recorded once per retrieve rather than once per instance.
class KeyReleases {
 public:
  void add(const std::string& keyId, const std::string& scopeUid);
  // One keyUsedForRelease record per key; empties the ledger.
  void record(const Peer& requester, const Peer& destination);

 private:
  std::mutex mutex_;
  std::vector<std::pair<std::string, std::string>> keys_;  // (key id, scope UID), first use order
  std::vector<std::size_t> counts_;
};

}  // namespace pacsgw::audit
