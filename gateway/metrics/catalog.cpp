// Every metric the gateway exports. Names follow the Prometheus conventions: a unit suffix and
// `_total` for counters. Label values are closed sets (roles, results, DIMSE statuses, backends),
// never UIDs or AE titles from the wire, so the number of series stays bounded.
#include "gateway/metrics/registry.h"

namespace pacsgw::metrics {

namespace {
// Seconds; from 0.5 ms (AES on a small image) to 30 s (a research backend on a large multi-frame).
const std::vector<double> kCryptBuckets = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                           0.25,   0.5,   1,      2.5,   5,    10,   30};
}  // namespace

const std::vector<Family>& catalog() {
  static const std::vector<Family> families = {
      {"pacsgw_associations_total", Kind::Counter,
       "Inbound associations by peer role (modality, workstation, pacs, unknown) and result (accepted, rejected).",
       {}},
      {"pacsgw_associations_active", Kind::Gauge, "Inbound associations currently open.", {}},
      {"pacsgw_instances_total", Kind::Counter,
       "Instances by path (store: modality to PACS, retrieve: PACS to workstation) and outcome (stored, forwarded, "
       "refused) with the DIMSE status sent to the peer.",
       {}},
      {"pacsgw_bytes_total", Kind::Counter,
       "Data set bytes by direction (received from modalities, forwarded to the PACS, delivered to workstations).", {}},
      {"pacsgw_encrypt_seconds", Kind::Histogram, "Time to encrypt the pixel data of one instance, per backend.",
       kCryptBuckets},
      {"pacsgw_decrypt_seconds", Kind::Histogram, "Time to verify and decrypt the pixel data of one instance, per backend.",
       kCryptBuckets},
      {"pacsgw_key_cache_lookups_total", Kind::Counter,
       "Data key lookups by result (hit: served from memory, miss: read from the keystore or created).", {}},
      {"pacsgw_upstream_errors_total", Kind::Counter,
       "Failures talking to the PACS by kind (connect: association could not be opened, store: a C-STORE was "
       "not delivered, echo: the readiness C-ECHO failed).",
       {}},
      {"pacsgw_upstream_echo_last_success_timestamp_seconds", Kind::Gauge,
       "Unix time of the last C-ECHO the PACS answered with success (0: never).", {}},
      {"pacsgw_spool_depth", Kind::Gauge, "Instances waiting in the spool for the PACS.", {}},
      {"pacsgw_spool_oldest_age_seconds", Kind::Gauge, "Age of the oldest instance waiting in the spool.", {}},
      {"pacsgw_ready", Kind::Gauge, "1 when /health/ready answers 200 (keystore open, PACS answering, spool below quota).",
       {}},
      {"pacsgw_connections_refused_total", Kind::Counter,
       "TCP connections closed before any DICOM was read, by reason (not_allowed: address in no allow-list, "
       "per_address_limit, connection_limit: every slot held by an associated peer, evicted: an idle connection "
       "closed to make room, request_timeout: no complete association request in time).",
       {}},
      {"pacsgw_data_sets_refused_total", Kind::Counter,
       "C-STORE data sets refused while being received, by reason (too_large: over limits.max_object_mb, "
       "no_memory: association or in-flight limit reached, malformed: truncated or unparseable).",
       {}},
      {"pacsgw_relay_refused_total", Kind::Counter,
       "Objects relayed by a peer gateway and refused, by reason (RelayCapsuleNotAuthentic, "
       "RelayCapsuleDoesNotMatch, RelayKeyConflict, ...; see docs/relay.md).",
       {}},
      {"pacsgw_audit_syslog_backlog_records", Kind::Gauge,
       "Audit records written to the local audit log and not yet acknowledged by the syslog receiver "
       "(only with audit.syslog).",
       {}},
      {"pacsgw_build_info", Kind::Gauge, "Always 1; the version label names the running build.", {}},
  };
  return families;
}

}  // namespace pacsgw::metrics
