#include "gateway/server.h"

#include "gateway/audit/audit_trail.h"

#include "gateway/gateway_metrics.h"

#include "gateway/net_util.h"
#include "gateway/metrics/registry.h"
#include "gateway/outgoing_connections.h"
#include "gateway/peer_endpoints.h"
#include "gateway/spool/dicom_sender.h"
#include "gateway/tls/certificate_identity.h"

#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmnet/dul.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <stdexcept>
#include <thread>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <vector>

namespace pacsgw::gateway {

namespace {

// Transfer syntaxes the gateway accepts, in order of preference when a peer offers several in one
// presentation context. Encapsulated syntaxes are protected fragment by fragment, as received.
// Non-const only because DCMTK's API takes `const char**`.
const char* kAcceptedTransferSyntaxes[] = {
    UID_LittleEndianExplicitTransferSyntax,
    UID_LittleEndianImplicitTransferSyntax,
    UID_BigEndianExplicitTransferSyntax,
    UID_DeflatedExplicitVRLittleEndianTransferSyntax,
    UID_RLELosslessTransferSyntax,
    UID_JPEGProcess14SV1TransferSyntax,
    UID_JPEGProcess14TransferSyntax,
    UID_JPEGLSLosslessTransferSyntax,
    UID_JPEGLSLossyTransferSyntax,
    UID_JPEG2000LosslessOnlyTransferSyntax,
    UID_JPEG2000TransferSyntax,
    UID_JPEGProcess1TransferSyntax,
    UID_JPEGProcess2_4TransferSyntax,
    UID_MPEG2MainProfileAtMainLevelTransferSyntax,
    UID_MPEG4HighProfileLevel4_1TransferSyntax,
};
constexpr int kAcceptedTransferSyntaxCount =
    static_cast<int>(sizeof(kAcceptedTransferSyntaxes) / sizeof(kAcceptedTransferSyntaxes[0]));

// Query / retrieve information models relayed to the PACS.
const char* kQueryRetrieveSopClasses[] = {
    UID_FINDPatientRootQueryRetrieveInformationModel, UID_FINDStudyRootQueryRetrieveInformationModel,
    UID_MOVEPatientRootQueryRetrieveInformationModel, UID_MOVEStudyRootQueryRetrieveInformationModel,
    UID_GETPatientRootQueryRetrieveInformationModel,  UID_GETStudyRootQueryRetrieveInformationModel,
};
constexpr int kQueryRetrieveSopClassCount =
    static_cast<int>(sizeof(kQueryRetrieveSopClasses) / sizeof(kQueryRetrieveSopClasses[0]));
const char* kQueryTransferSyntaxes[] = {UID_LittleEndianExplicitTransferSyntax, UID_LittleEndianImplicitTransferSyntax,
                                        UID_BigEndianExplicitTransferSyntax};
constexpr int kQueryTransferSyntaxCount = 3;

// Storage contexts proposed by a C-GET requester carry an SCP role selection; accept the role it
// proposes with the first transfer syntax, in the requester's own order of preference, that the
// gateway supports (it will be the receiving side, so its preference is the one that counts).
void acceptStorageWithProposedRole(T_ASC_Association* assoc) {
  const int count = ASC_countPresentationContexts(assoc->params);
  for (int i = 0; i < count; ++i) {
    T_ASC_PresentationContext pc;
    if (ASC_getPresentationContext(assoc->params, i, &pc).bad()) continue;
    if (pc.resultReason == ASC_P_ACCEPTANCE || !dcmIsaStorageSOPClassUID(pc.abstractSyntax)) continue;
    if (pc.proposedRole != ASC_SC_ROLE_SCP && pc.proposedRole != ASC_SC_ROLE_SCUSCP) continue;
    for (int k = 0; k < pc.transferSyntaxCount; ++k) {
      const std::string proposed = pc.proposedTransferSyntaxes[k];
      bool supported = false;
      for (int t = 0; t < kAcceptedTransferSyntaxCount; ++t) supported = supported || proposed == kAcceptedTransferSyntaxes[t];
      if (supported) {
        ASC_acceptPresentationContext(assoc->params, pc.presentationContextID, proposed.c_str(), pc.proposedRole);
        break;
      }
    }
  }
}

void rejectAssociation(T_ASC_Association* assoc, T_ASC_RejectParametersResult result,
                       T_ASC_RejectParametersSource source, T_ASC_RejectParametersReason reason) {
  T_ASC_RejectParameters rej{result, source, reason};
  ASC_rejectAssociation(assoc, &rej);
}

void dropAndDestroy(T_ASC_Association*& assoc) {
  if (assoc == nullptr) return;
  ASC_dropSCPAssociation(assoc, 2);  // do not wait long for a peer that will not close
  ASC_destroyAssociation(&assoc);
}

}  // namespace

GatewayServer::GatewayServer(const config::Config& config, keystore::Keystore& keys)
    : config_(config),
      policy_(config),
      memory_(std::uint64_t{config.limits.maxInFlightMb} << 20),
      context_{config, keys, policy_, stopping_,
               NetworkTimeouts{static_cast<int>(config.gateway.connectTimeoutSeconds),
                               static_cast<int>(config.gateway.acseTimeoutSeconds),
                               static_cast<int>(config.gateway.dimseTimeoutSeconds)},
               retrieves_, memory_},
      admission_(AdmissionLimits{config.limits.maxConnections != 0 ? config.limits.maxConnections
                                                                    : 2 * config.gateway.maxAssociations + 8,
                                 config.limits.maxConnectionsPerAddress}) {
  dcmConnectionTimeout.set(static_cast<Sint32>(config.gateway.connectTimeoutSeconds));
  dcmDisableGethostbyaddr.set(OFTrue);  // peer checks use numeric addresses; no reverse-DNS stalls
  // DCMTK would bind its own listen socket to every interface; we hand it accepted sockets instead
  // (see serveConnection), so it must see an external socket while the network is created.
  dcmExternalSocketHandle.set(1);
  OFCondition cond = ASC_initializeNetwork(NET_ACCEPTORREQUESTOR, config.gateway.port,
                                           static_cast<int>(config.gateway.acseTimeoutSeconds), &network_);
  dcmExternalSocketHandle.set(-1);
  if (cond.bad()) throw std::runtime_error("cannot initialise DICOM network: " + std::string(cond.text()));
  cond = ASC_setTransportLayer(network_, &transport_, 0);
  if (cond.bad()) throw std::runtime_error("cannot set the DICOM transport layer: " + std::string(cond.text()));
  if (config.gateway.tls.enabled) {
    tlsAcceptor_ = std::make_unique<tls::TlsAcceptor>(config.gateway.tls);
    tls::outgoingTls(config, true, "");  // loads the requestor side now: bad files fail the start, not a transfer
  } else {
    spdlog::warn("configuration: no gateway.tls section: every association, including decrypted pixels sent to "
                 "workstations, crosses the network in clear (see docs/security.md, DICOM TLS)");
  }
  if (config.upstream.forward == "queued") startSpool();
  if (config.relay) {
    relay_ = std::make_unique<relay::RelayService>(config);
    context_.relay = relay_.get();
  }
}

void GatewayServer::startSpool() {
  const config::SpoolSection& sc = config_.spool;
  spool::SpoolLimits limits{sc.maxBytes, sc.maxInstances};
  limits.streamAboveBytes = std::uint64_t{config_.limits.streamAboveMb} << 20;  // large records stay on disk
  spool_ = std::make_unique<spool::Spool>(config::spoolDirectory(config_), limits);
  spool::ForwarderOptions options;
  options.associations = sc.associations;
  options.retryInitial = std::chrono::seconds(sc.retryInitialSeconds);
  options.retryMax = std::chrono::seconds(sc.retryMaxSeconds);
  options.processingFailureAttempts = sc.processingFailureAttempts;
  options.brokenAssociationAttempts = sc.brokenAssociationAttempts;
  const PeerEndpoint pacs = upstreamEndpoint(config_);
  forwarder_ = std::make_unique<spool::Forwarder>(
      *spool_,
      [this, pacs] {
        return std::make_unique<spool::DicomUpstreamSender>(pacs, config_.gateway.aeTitle, context_.timeouts,
                                                            config_.gateway.maxPduBytes);
      },
      options);
  context_.spool = spool_.get();
  // Read at scrape time: Spool::stats() takes one lock and touches no file.
  const spool::Spool* queue = spool_.get();
  metrics::setGaugeSource("pacsgw_spool_depth", {}, [queue] {
    const spool::SpoolStats s = queue->stats();
    return static_cast<double>(s.queued + s.inFlight);
  });
  metrics::setGaugeSource("pacsgw_spool_oldest_age_seconds", {}, [queue] {
    const std::int64_t oldest = queue->stats().oldestReceivedUnixMs;
    if (oldest <= 0) return 0.0;
    const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::system_clock::now().time_since_epoch()).count();
    return static_cast<double>(std::max<std::int64_t>(0, now - oldest)) / 1000.0;
  });
}

GatewayServer::~GatewayServer() {
  if (spool_) {
    metrics::clearGaugeSource("pacsgw_spool_depth", {});
    metrics::clearGaugeSource("pacsgw_spool_oldest_age_seconds", {});
  }
  if (network_ != nullptr) ASC_dropNetwork(&network_);
}

void GatewayServer::run() {
  // The plain listener (gateway.port) and the TLS listener (gateway.tls.port); either may be absent.
  std::unique_ptr<ListenSocket> plain, secure;
  if (config_.gateway.port != 0) plain = std::make_unique<ListenSocket>(config_.gateway.bind, config_.gateway.port);
  if (tlsAcceptor_) secure = std::make_unique<ListenSocket>(config_.gateway.bind, config_.gateway.tls.port);
  if (forwarder_) forwarder_->start();
  std::string where;
  if (plain) where = config_.gateway.bind + ":" + std::to_string(config_.gateway.port);
  if (secure) {
    where += std::string(plain ? " and " : "") + "DICOM TLS " + config_.gateway.bind + ":" +
             std::to_string(config_.gateway.tls.port) + " (profile " + config_.gateway.tls.profile + ")";
  }
  spdlog::info("listening on {} as {} (upstream PACS {}@{}:{}{}, {} forwarding, cipher {}, key scope {})", where,
               config_.gateway.aeTitle, config_.upstream.aeTitle, config_.upstream.host, config_.upstream.port,
               upstreamEndpoint(config_).tls ? " over TLS" : "", config_.upstream.forward, config_.cipher.backend,
               config_.cipher.keyScope);
  while (!stopping_.load()) {
    pollfd fds[2];
    bool tlsAt[2];
    nfds_t count = 0;
    if (plain) fds[count] = {plain->fd(), POLLIN, 0}, tlsAt[count++] = false;
    if (secure) fds[count] = {secure->fd(), POLLIN, 0}, tlsAt[count++] = true;
    const int ready = ::poll(fds, count, 250);
    throttle_.flush();
    if (ready <= 0) continue;
    for (nfds_t i = 0; i < count; ++i) {
      if ((fds[i].revents & POLLIN) == 0) continue;
      const int fd = (tlsAt[i] ? secure : plain)->accept(0);
      if (fd < 0) continue;
      std::uint64_t admissionId = 0;
      if (!admitConnection(fd, admissionId)) continue;
      {
        std::lock_guard<std::mutex> lock(countMutex_);
        ++connections_;
      }
      const bool overTls = tlsAt[i];
      std::thread([this, fd, admissionId, overTls] {
        try {
          serveConnection(fd, admissionId, overTls);
        } catch (const std::exception& e) {
          spdlog::error("association handler failed: {}", e.what());
        }
        admission_.release(admissionId);
        std::lock_guard<std::mutex> lock(countMutex_);
        --connections_;
        countChanged_.notify_all();
      }).detach();
    }
  }
  std::unique_lock<std::mutex> lock(countMutex_);
  spdlog::info("stopping: no new associations; waiting for {} running", connections_);
  // Give running transfers a moment to finish, then cut their sockets so every DCMTK wait returns.
  // Sessions use the keystore and this object: nothing may outlive run(), so the final wait is unbounded
  // (each remaining DCMTK wait is itself bounded by a timeout).
  if (!countChanged_.wait_for(lock, std::chrono::seconds(10), [this] { return connections_ == 0; })) {
    spdlog::warn("{} associations still running; shutting their connections", connections_);
    admission_.shutdownAll();
    OutgoingConnections::instance().shutdownAll();  // retrieves waiting on the PACS or a destination
  }
  countChanged_.wait(lock, [this] { return connections_ == 0; });
  lock.unlock();
  if (forwarder_) {
    // Every acknowledged instance is on disk; deliveries in flight finish, the rest waits for restart.
    forwarder_->stop();
    const spool::SpoolStats s = spool_->stats();
    spdlog::info("spool: {} instances left queued, {} quarantined", s.queued + s.inFlight, s.quarantined);
  }
  throttle_.flush(std::chrono::steady_clock::time_point::max());
}

bool GatewayServer::admitConnection(int fd, std::uint64_t& admissionId) {
  const std::string address = peerAddress(fd);
  // Nobody outside the allow-lists can associate, so their connections are not worth a thread.
  if (!policy_.knowsAddress(address)) {
    metrics::increment("pacsgw_connections_refused_total", {{"reason", "not_allowed"}});
    if (throttle_.allow("connections refused from addresses in no allow-list")) {
      spdlog::warn("audit: connection from {} refused: address is not a configured modality, workstation or PACS",
                   address);
    }
    ::close(fd);
    return false;
  }
  // DCMTK may close (and the kernel reuse) `fd` before the connection thread is done with it; eviction
  // and shutdown at stop work on a private duplicate instead, owned by admission_.
  const ConnectionAdmission::Decision decision = admission_.admit(address, ::dup(fd));
  if (decision.evicted > 0) {
    metrics::increment("pacsgw_connections_refused_total", {{"reason", "evicted"}}, decision.evicted);
  }
  if (decision.evicted > 0 && throttle_.allow("pending connections closed to make room")) {
    spdlog::warn("closed {} connection(s) that sent no association request yet, to make room for {}",
                 decision.evicted, address);
  }
  if (!decision.admitted) {
    metrics::increment("pacsgw_connections_refused_total",
                       {{"reason", decision.refusal == std::string("connection limit") ? "connection_limit"
                                                                                         : "per_address_limit"}});
    if (throttle_.allow(std::string("connections refused: ") + decision.refusal)) {
      spdlog::warn("connection from {} refused: {} reached ({} open from this address, {} in all)", address,
                   decision.refusal, admission_.openFrom(address), admission_.openConnections());
    }
    ::close(fd);
    return false;
  }
  admissionId = decision.id;
  return true;
}

void GatewayServer::serveConnection(int fd, std::uint64_t admissionId, bool overTls) {
  const std::string address = peerAddress(fd);
  // The hand-over of a socket to DCMTK is a process global (held under receiveMutex_), so only do it
  // once the whole A-ASSOCIATE-RQ is buffered (over TLS: handshake done and the request decrypted):
  // a slow, silent or handshake-stalling client cannot block other peers.
  const int requestTimeoutMs = static_cast<int>(config_.limits.associationRequestTimeoutSeconds) * 1000;
  if (overTls) {
    tls::TlsAcceptor::Result prepared = tlsAcceptor_->accept(
        fd, std::chrono::steady_clock::now() + std::chrono::milliseconds(requestTimeoutMs),
        static_cast<std::uint32_t>(std::max<unsigned>(config_.gateway.maxPduBytes, 64 * 1024)));
    if (!prepared.connection) {
      if (prepared.peerClosed) {
        spdlog::debug("TLS connection from {} closed without a handshake (health check?)", address);
      } else {
        metrics::increment("pacsgw_connections_refused_total", {{"reason", "tls"}});
        const std::string who = prepared.peerCertificate.empty() ? "" : " (certificate " + prepared.peerCertificate + ")";
        if (throttle_.allow("TLS connections refused")) {
          spdlog::warn("audit: TLS connection from {}{} refused: {}", address, who, prepared.failure);
        }
        audit::securityAlert("TLS-AUTHENTICATION-FAILURE", prepared.failure + who, {"", address}, "");
        audit::associationRefused({"", address}, prepared.failure + who);
      }
      ::close(fd);
      return;
    }
    if (!admission_.associationRequested(admissionId)) return;  // evicted meanwhile: `prepared` closes it
    std::lock_guard<std::mutex> lock(receiveMutex_);
    transport_.prepare(fd, std::move(prepared.connection));
  } else if (!associateRequestBuffered(fd, requestTimeoutMs) || !admission_.associationRequested(admissionId)) {
    // A bare connect-and-close is what TCP health checks do: not worth a warning.
    char probe;
    const ssize_t peeked = ::recv(fd, &probe, 1, MSG_PEEK | MSG_DONTWAIT);
    if (peeked == 0) {
      spdlog::debug("connection from {} closed without a request (health check?)", address);
    } else {
      metrics::increment("pacsgw_connections_refused_total", {{"reason", "request_timeout"}});
      if (throttle_.allow("connections closed without a complete association request")) {
        spdlog::warn("connection from {} sent no complete association request in time; closed", address);
      }
    }
    ::close(fd);
    return;
  }
  T_ASC_Association* assoc = nullptr;
  OFCondition cond;
  {
    std::lock_guard<std::mutex> lock(receiveMutex_);
    dcmExternalSocketHandle.set(fd);
    cond = ASC_receiveAssociation(network_, &assoc, static_cast<long>(config_.gateway.maxPduBytes), nullptr,
                                  nullptr, overTls ? OFTrue : OFFalse, DUL_NOBLOCK,
                                  static_cast<int>(config_.gateway.acseTimeoutSeconds));
    dcmExternalSocketHandle.set(-1);
    // DCMTK took the prepared connection unless it failed before creating one; then it is closed here.
    if (overTls && transport_.discard(fd)) {
      if (assoc != nullptr) ASC_destroyAssociation(&assoc);
      spdlog::warn("TLS association request from {} unreadable: {}", address, cond.text());
      return;
    }
  }
  if (cond.bad()) {
    spdlog::warn("association request from {} unreadable: {}", address, cond.text());
    if (assoc != nullptr && assoc->DULassociation != nullptr) {
      dropAndDestroy(assoc);  // DCMTK owns (and closes) the socket
    } else {
      if (assoc != nullptr) ASC_destroyAssociation(&assoc);
      ::close(fd);
    }
    return;
  }
  const std::string calling = assoc->params->DULparams.callingAPTitle;
  std::optional<tls::CertificateIdentity> certificate;
  if (overTls) {
    // Verified against gateway.tls.ca_bundle during the handshake; here only who it names matters.
    std::vector<unsigned char> der(ASC_getPeerCertificateLength(assoc));
    const unsigned long length = der.empty() ? 0 : ASC_getPeerCertificate(assoc, der.data(), der.size());
    certificate = tls::CertificateIdentity::fromDer(der.data(), length);
  }
  PeerIdentity peer = policy_.identify(calling, address, certificate ? &*certificate : nullptr);
  bool counted = false;
  try {
    const bool accepted = negotiate(assoc, peer, counted);
    metrics::increment("pacsgw_associations_total",
                       {{"role", peerRole(peer)}, {"result", accepted ? "accepted" : "rejected"}});
    if (accepted) {
      ActiveAssociationGauge active;
      Session session(context_, assoc, peer);
      session.run();
    }
  } catch (const std::exception& e) {
    spdlog::error("association from {}@{} failed: {}", printable(calling), address, e.what());
    ASC_abortAssociation(assoc);
  }
  if (counted) {
    std::lock_guard<std::mutex> lock(countMutex_);
    --negotiated_;
  }
  dropAndDestroy(assoc);
}


bool GatewayServer::negotiate(T_ASC_Association* assoc, const PeerIdentity& peer, bool& counted) {
  const std::string called = assoc->params->DULparams.calledAPTitle;
  const std::string who = printable(peer.aeTitle) + "@" + peer.address;
  char contextName[BUFSIZ];
  ASC_getApplicationContextName(assoc->params, contextName, sizeof(contextName));
  if (std::string(contextName) != UID_StandardApplicationContext) {
    spdlog::warn("audit: association from {} rejected: unsupported application context", who);
    audit::associationRefused({peer.aeTitle, peer.address}, "unsupported application context");
    rejectAssociation(assoc, ASC_RESULT_REJECTEDPERMANENT, ASC_SOURCE_SERVICEUSER,
                      ASC_REASON_SU_APPCONTEXTNAMENOTSUPPORTED);
    return false;
  }
  if (called != config_.gateway.aeTitle) {
    spdlog::warn("audit: association from {} rejected: called AE title '{}' is not {}", who, printable(called),
                 config_.gateway.aeTitle);
    audit::associationRefused({peer.aeTitle, peer.address}, "called AE title '" + called + "' is not " + config_.gateway.aeTitle);
    rejectAssociation(assoc, ASC_RESULT_REJECTEDPERMANENT, ASC_SOURCE_SERVICEUSER,
                      ASC_REASON_SU_CALLEDAETITLENOTRECOGNIZED);
    return false;
  }
  if (!peer.transportRefusal.empty()) {
    spdlog::warn("audit: association from {} rejected: {}", who, printable(peer.transportRefusal));
    audit::securityAlert("PEER-IDENTITY-MISMATCH", peer.transportRefusal, {peer.aeTitle, peer.address}, "");
    audit::associationRefused({peer.aeTitle, peer.address}, peer.transportRefusal);
    rejectAssociation(assoc, ASC_RESULT_REJECTEDPERMANENT, ASC_SOURCE_SERVICEUSER,
                      ASC_REASON_SU_CALLINGAETITLENOTRECOGNIZED);
    return false;
  }
  if (!peer.isModality && peer.workstation == nullptr && !peer.isUpstream && peer.relayPeer == nullptr) {
    spdlog::warn("audit: association from {} rejected: calling AE title and host are not configured", who);
    audit::associationRefused({peer.aeTitle, peer.address}, "calling AE title and host are not configured");
    rejectAssociation(assoc, ASC_RESULT_REJECTEDPERMANENT, ASC_SOURCE_SERVICEUSER,
                      ASC_REASON_SU_CALLINGAETITLENOTRECOGNIZED);
    return false;
  }
  // The PACS's retrieve sub-operations are exempt: they serve retrieves that already hold a slot, and
  // refusing them would deadlock those retrieves.
  if (!peer.isUpstream) {
    std::lock_guard<std::mutex> lock(countMutex_);
    if (negotiated_ >= config_.gateway.maxAssociations) {
      spdlog::warn("association from {} rejected: {} associations already running", who, negotiated_);
      rejectAssociation(assoc, ASC_RESULT_REJECTEDTRANSIENT, ASC_SOURCE_SERVICEPROVIDER_PRESENTATION_RELATED,
                        ASC_REASON_SP_PRES_LOCALLIMITEXCEEDED);
      return false;
    }
    ++negotiated_;
    counted = true;
  }
  const char* verification[] = {UID_VerificationSOPClass};
  ASC_acceptContextsWithPreferredTransferSyntaxes(assoc->params, verification, 1, kAcceptedTransferSyntaxes,
                                                  kAcceptedTransferSyntaxCount);
  if (peer.isModality || peer.isUpstream || peer.relayPeer != nullptr) {
    ASC_acceptContextsWithPreferredTransferSyntaxes(assoc->params, const_cast<const char**>(dcmAllStorageSOPClassUIDs),
                                                    numberOfDcmAllStorageSOPClassUIDs, kAcceptedTransferSyntaxes,
                                                    kAcceptedTransferSyntaxCount);
  }
  if (peer.workstation != nullptr) {
    // A denied workstation still negotiates Q/R so each request is refused with 0x0124 and audited.
    ASC_acceptContextsWithPreferredTransferSyntaxes(assoc->params, kQueryRetrieveSopClasses,
                                                    kQueryRetrieveSopClassCount, kQueryTransferSyntaxes,
                                                    kQueryTransferSyntaxCount);
    if (peer.workstation->access != config::Access::Deny) {
      acceptStorageWithProposedRole(assoc);  // C-GET: the workstation is the Storage SCP
    }
  }
  if (ASC_countAcceptedPresentationContexts(assoc->params) == 0) {
    // E.g. a workstation proposing only C-STORE, or a modality proposing only C-FIND.
    spdlog::warn("audit: association from {} rejected: none of its proposed services is allowed for its role ({})",
                 who, peer.isModality && peer.workstation != nullptr ? "modality and workstation"
                      : peer.isModality                              ? "modality: storage"
                      : peer.workstation != nullptr                  ? "workstation: query/retrieve"
                                                                     : "PACS: retrieve sub-operations");
    audit::associationRefused({peer.aeTitle, peer.address}, "none of its proposed services is allowed for its role");
    rejectAssociation(assoc, ASC_RESULT_REJECTEDPERMANENT, ASC_SOURCE_SERVICEUSER,
                      ASC_REASON_SU_NOREASON);
    return false;
  }
  OFCondition cond = ASC_acknowledgeAssociation(assoc);
  if (cond.bad()) {
    spdlog::warn("association from {} failed during acknowledgement: {}", who, cond.text());
    return false;
  }
  setTcpNoDelay(associationSocket(assoc));
  spdlog::info("audit: association from {} accepted ({} presentation contexts{})", who,
               ASC_countAcceptedPresentationContexts(assoc->params),
               peer.certificate.empty() ? std::string(", plain DICOM") : ", DICOM TLS, certificate " + peer.certificate);
  audit::associationAccepted({peer.aeTitle, peer.address});
  return true;
}

}  // namespace pacsgw::gateway
