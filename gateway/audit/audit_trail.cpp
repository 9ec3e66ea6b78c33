#include "gateway/audit/audit_trail.h"

#include "gateway/metrics/registry.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <mutex>
#include <stdexcept>

namespace pacsgw::audit {
namespace {

struct Trail {
  std::mutex mutex;
  int fd = -1;
  std::string path;
  std::string sourceId;
  std::unique_ptr<SyslogForwarder> forwarder;
};

Trail& trail() {
  static Trail t;
  return t;
}

const Code kApplicationActivity{"110100", "DCM", "Application Activity"};
const Code kApplicationStart{"110120", "DCM", "Application Start"};
const Code kApplicationStop{"110121", "DCM", "Application Stop"};
const Code kUserAuthentication{"110114", "DCM", "User Authentication"};
const Code kLogin{"110122", "DCM", "Login"};
const Code kInstancesTransferred{"110104", "DCM", "DICOM Instances Transferred"};
const Code kInstancesAccessed{"110103", "DCM", "DICOM Instances Accessed"};
const Code kQuery{"110112", "DCM", "Query"};
const Code kSecurityAlert{"110113", "DCM", "Security Alert"};
const Code kSecurityConfiguration{"110129", "DCM", "Security Configuration"};
const Code kSource{"110153", "DCM", "Source Role ID"};
const Code kDestination{"110152", "DCM", "Destination Role ID"};
const Code kApplication{"110150", "DCM", "Application"};
const Code kStudyUid{"110180", "DCM", "Study Instance UID"};
const Code kSopUid{"SOP-INSTANCE-UID", "99PACSGW", "SOP Instance UID"};
const Code kPatientId{"2", "RFC-3881", "Patient Number"};

Participant self(bool requestor, const Code& role = kApplication) {
  return {trail().sourceId.empty() ? "pacsgw" : trail().sourceId, "", requestor, role};
}

Participant remote(const Peer& p, bool requestor, const Code& role) { return {p.aeTitle, p.address, requestor, role}; }

AuditMessage message(const Code& id, char action, Outcome outcome) {
  AuditMessage m;
  m.eventId = id;
  m.action = action;
  m.outcome = outcome;
  return m;
}

ParticipantObject studyObject(const std::string& studyUid, const std::string& detail) {
  ParticipantObject o;
  o.id = studyUid;
  o.typeCode = 2;
  o.typeCodeRole = 3;
  o.idType = kStudyUid;
  o.detail = detail;
  return o;
}

}  // namespace

void open(const std::string& path, const std::string& gatewayAeTitle) {
  Trail& t = trail();
  std::lock_guard<std::mutex> lock(t.mutex);
  if (t.fd >= 0) ::close(t.fd);
  t.fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
  if (t.fd < 0) throw std::runtime_error("cannot open audit log " + path + ": " + std::strerror(errno));
  t.path = path;
  t.sourceId = gatewayAeTitle;
}

void forwardToSyslog(const SyslogSettings& settings) {
  Trail& t = trail();
  std::lock_guard<std::mutex> lock(t.mutex);
  if (t.fd < 0) throw std::runtime_error("the audit log is not open");
  if (t.forwarder) t.forwarder->stop(std::chrono::milliseconds(0));
  t.forwarder = std::make_unique<SyslogForwarder>(t.path, settings);
  metrics::setGaugeSource("pacsgw_audit_syslog_backlog_records", {},
                          [backlog = t.forwarder->backlog()] { return static_cast<double>(backlog->records()); });
  t.forwarder->start();
}

void close() {
  Trail& t = trail();
  std::unique_ptr<SyslogForwarder> forwarder;
  {
    std::lock_guard<std::mutex> lock(t.mutex);
    forwarder = std::move(t.forwarder);
  }
  if (forwarder) {
    forwarder->stop(std::chrono::seconds(3));  // the last records, if the receiver is there
    metrics::clearGaugeSource("pacsgw_audit_syslog_backlog_records", {});
  }
  std::lock_guard<std::mutex> lock(t.mutex);
  if (t.fd >= 0) ::close(t.fd);
  t.fd = -1;
}

bool isOpen() {
  std::lock_guard<std::mutex> lock(trail().mutex);
  return trail().fd >= 0;
}

std::string path() {
  std::lock_guard<std::mutex> lock(trail().mutex);
  return trail().path;
}

bool record(const AuditMessage& input) {
  Trail& t = trail();
  std::lock_guard<std::mutex> lock(t.mutex);
  if (t.fd < 0) return true;
  AuditMessage m = input;
  if (m.sourceId.empty()) m.sourceId = t.sourceId;
  const std::string line = toXml(m, auditTimestamp()) + "\n";
  // One write of the whole line: O_APPEND keeps it contiguous even with other writers.
  std::size_t done = 0;
  while (done < line.size()) {
    const ssize_t n = ::write(t.fd, line.data() + done, line.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      spdlog::error("audit log {}: write failed: {}", t.path, std::strerror(errno));
      return false;
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fdatasync(t.fd) != 0) {
    spdlog::error("audit log {}: fdatasync failed: {}", t.path, std::strerror(errno));
    return false;
  }
  if (t.forwarder) t.forwarder->notify();
  return true;
}

void applicationStarted(const std::string& detail) {
  AuditMessage m = message(kApplicationActivity, 'E', Outcome::Success);
  m.eventTypes = {kApplicationStart};
  m.participants = {self(false)};
  m.outcomeDescription = detail;
  record(m);
}

void applicationStopped(const std::string& detail) {
  AuditMessage m = message(kApplicationActivity, 'E', Outcome::Success);
  m.eventTypes = {kApplicationStop};
  m.participants = {self(false)};
  m.outcomeDescription = detail;
  record(m);
}

void associationAccepted(const Peer& peer) {
  AuditMessage m = message(kUserAuthentication, 'E', Outcome::Success);
  m.eventTypes = {kLogin};
  m.participants = {remote(peer, true, kSource), self(false, kDestination)};
  record(m);
}

void associationRefused(const Peer& peer, const std::string& reason) {
  AuditMessage m = message(kUserAuthentication, 'E', Outcome::MinorFailure);
  m.eventTypes = {kLogin};
  m.outcomeDescription = reason;
  m.participants = {remote(peer, true, kSource), self(false, kDestination)};
  record(m);
}

void instancesStored(const Peer& modality, const std::string& studyUid, const std::string& patientId,
                     std::size_t instances, std::size_t failed) {
  AuditMessage m = message(kInstancesTransferred, 'C', failed == 0 ? Outcome::Success : Outcome::MinorFailure);
  m.participants = {remote(modality, true, kSource), self(false, kDestination)};
  m.objects.push_back(studyObject(studyUid, std::to_string(instances) + " instances encrypted and stored, " +
                                                std::to_string(failed) + " refused"));
  if (!patientId.empty()) m.objects.push_back({patientId, 1, 1, kPatientId, ""});
  record(m);
}

void query(const Peer& requester, const std::string& level, bool allowed, const std::string& reason) {
  AuditMessage m = message(kQuery, 'E', allowed ? Outcome::Success : Outcome::MinorFailure);
  m.outcomeDescription = reason;
  m.participants = {remote(requester, true, kSource), self(false, kDestination)};
  ParticipantObject o;
  o.id = level;
  o.typeCode = 2;
  o.typeCodeRole = 3;
  o.idType = {"QR-LEVEL", "99PACSGW", "Query/Retrieve Level"};
  m.objects.push_back(o);
  record(m);
}

void instancesTransferred(const Peer& requester, const Peer& destination, const std::string& studyUid,
                          std::size_t delivered, std::size_t failed, bool decrypted) {
  AuditMessage m = message(kInstancesTransferred, 'R', failed == 0 ? Outcome::Success : Outcome::MinorFailure);
  m.eventTypes = {{decrypted ? "DECRYPTED" : "CIPHERTEXT", "99PACSGW",
                   decrypted ? "pixel data decrypted for the destination" : "pixel data delivered as stored"}};
  m.participants = {remote(requester, true, {"110154", "DCM", "Requester"}), self(false, kSource),
                    remote(destination, false, kDestination)};
  m.objects.push_back(studyObject(studyUid, std::to_string(delivered) + " instances delivered, " +
                                                std::to_string(failed) + " failed"));
  record(m);
}

void passthroughDelivered(const Peer& requester, const Peer& destination, const std::string& studyUid,
                          std::size_t instances) {
  AuditMessage m = message(kInstancesTransferred, 'R', Outcome::Success);
  m.eventTypes = {{"PASSTHROUGH", "99PACSGW", "delivered unencrypted: not encrypted by the gateway"}};
  m.participants = {remote(requester, true, {"110154", "DCM", "Requester"}), self(false, kSource),
                    remote(destination, false, kDestination)};
  m.objects.push_back(studyObject(studyUid, std::to_string(instances) +
                                                " instances delivered unencrypted (cipher.passthrough_unencrypted)"));
  record(m);
}

void securityAlert(const std::string& reasonCode, const std::string& description, const Peer& peer,
                   const std::string& sopInstanceUid) {
  AuditMessage m = message(kSecurityAlert, 'E', Outcome::SeriousFailure);
  m.eventTypes = {{reasonCode, "99PACSGW", reasonCode}};
  m.outcomeDescription = description;
  m.participants = {self(false), remote(peer, false, kSource)};
  if (!sopInstanceUid.empty()) m.objects.push_back({sopInstanceUid, 2, 3, kSopUid, ""});
  record(m);
}

void cliDecrypt(const std::string& user, const std::string& file, const std::string& studyUid, bool ok,
                const std::string& reason) {
  AuditMessage m = message(kInstancesAccessed, 'R', ok ? Outcome::Success : Outcome::SeriousFailure);
  m.eventTypes = {{"CLI-DECRYPT", "99PACSGW", "pacsgw decrypt"}};
  m.outcomeDescription = reason;
  m.participants = {{user, "", true, {"110154", "DCM", "Requester"}}, self(false)};
  m.objects.push_back(studyObject(studyUid, "file " + file));
  record(m);
}

void keyEvent(const std::string& action, const std::string& keyId, const std::string& scopeUid, bool ok,
              const std::string& reason) {
  AuditMessage m = message(kSecurityAlert, 'E', ok ? Outcome::Success : Outcome::MinorFailure);
  m.eventTypes = {kSecurityConfiguration, {"KEY-" + action, "99PACSGW", "data key " + action}};
  m.outcomeDescription = reason;
  m.participants = {self(false)};
  m.objects.push_back({keyId, 2, 13, {"KEY-ID", "99PACSGW", "Data Key ID"}, "scope " + scopeUid});
  record(m);
}

}  // namespace pacsgw::audit

namespace pacsgw::audit {

void keyUsedForRelease(const std::string& keyId, const std::string& scopeUid, const Peer& requester,
                       const Peer& destination, std::size_t instances) {
  AuditMessage m = message(kSecurityAlert, 'E', Outcome::Success);
  m.eventTypes = {kSecurityConfiguration, {"KEY-released", "99PACSGW", "data key released"}};
  m.participants = {remote(requester, true, {"110154", "DCM", "Requester"}), self(false, kSource),
                    remote(destination, false, kDestination)};
  m.objects.push_back({keyId, 2, 13, {"KEY-ID", "99PACSGW", "Data Key ID"},
                       "scope " + scopeUid + ", " + std::to_string(instances) + " instances decrypted"});
  record(m);
}

void KeyReleases::add(const std::string& keyId, const std::string& scopeUid) {
  std::lock_guard<std::mutex> lock(mutex_);
  for (std::size_t i = 0; i < keys_.size(); ++i) {
    if (keys_[i].first == keyId) {
      ++counts_[i];
      return;
    }
  }
  keys_.emplace_back(keyId, scopeUid);
  counts_.push_back(1);
}

void KeyReleases::record(const Peer& requester, const Peer& destination) {
  std::vector<std::pair<std::string, std::string>> keys;
  std::vector<std::size_t> counts;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    keys.swap(keys_);
    counts.swap(counts_);
  }
  for (std::size_t i = 0; i < keys.size(); ++i)
    keyUsedForRelease(keys[i].first, keys[i].second, requester, destination, counts[i]);
}

}  // namespace pacsgw::audit
