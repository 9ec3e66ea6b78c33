#pragma once
// Outstanding C-MOVE / C-GET operations the gateway has re-issued to the PACS, and the
// correlation of the PACS's C-STORE sub-operations back to them.
#include "config/config.h"
#include "gateway/audit/audit_trail.h"
#include "gateway/memory_budget.h"
#include "gateway/peer_association.h"

#include <atomic>
#include <chrono>
#include <deque>
#include <functional>
#include <thread>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace pacsgw::gateway {

class RetrieveRegistry;

// One outstanding C-MOVE / C-GET: what was asked, where it goes, the sub-operations admitted, the
// queue the delivery thread empties, and the counts. The methods below own the locking and the
// close sequence; services call them instead of touching the state under `mutex` themselves.
struct RetrieveJob {
  std::uint16_t upstreamMessageId = 0;  // the Message ID of our C-MOVE to the PACS
  std::string requesterAeTitle;
  std::uint16_t requesterMessageId = 0;  // Message ID of the requester's C-MOVE / C-GET
  config::Access access = config::Access::Deny;  // what the receiving side may see
  audit::KeyReleases keyReleases;  // data keys this retrieve decrypted with, audited once each
  std::atomic<std::size_t> passthroughInstances{0};  // delivered unencrypted (passthrough), audited at the end

  // C-MOVE: the configured workstation the instances go to. C-GET: the requester's association.
  std::optional<PeerEndpoint> destination;
  // C-MOVE to a relay peer (a gateway at another site): ciphertext, each object with a key capsule.
  const config::RelayPeer* relayPeer = nullptr;
  T_ASC_Association* requesterAssociation = nullptr;

  // What the requester asked for (values of the identifier's unique keys; empty = not restricted).
  // Every sub-operation must match, so a stray C-STORE from the PACS is never handed to this requester.
  std::vector<std::string> requestedPatientIds;
  std::vector<std::string> requestedStudyUids;
  std::vector<std::string> requestedSeriesUids;
  std::vector<std::string> requestedInstanceUids;
  bool matchesRequest(DcmDataset& dataset) const;

  // Held for each delivery: the destination association (C-MOVE) or the requester's association
  // (C-GET) is used by one thread at a time. Never taken while holding `mutex`.
  std::mutex deliveryMutex;
  std::unique_ptr<PeerAssociation> destinationAssociation;
  std::vector<ProposedContext> destinationContexts;
  std::uint16_t nextStoreMessageId = 0;  // C-GET: sub-operations on the requester's association

  // Guards the state below; held only briefly and never during network I/O.
  std::mutex mutex;
  std::condition_variable drained;
  bool closed = false;        // the retrieve has ended: late sub-operations are refused
  bool stopDelivery = false;  // set once everything accepted has drained: the delivery thread exits
  std::atomic<bool> requesterBroken{false};  // C-GET: a delivery failed mid-exchange; stop using the association
  bool destinationDown = false;    // C-MOVE: the destination could not be reached; fail the rest fast
  unsigned refusedByGateway = 0;   // sub-operations the gateway answered to the PACS with a failure

  // Verified instances waiting for delivery. Bounded, so a slow destination slows the PACS down
  // instead of filling memory; one thread (`deliverer`) empties it in order.
  struct PendingDelivery {
    std::unique_ptr<DcmDataset> dataset;
    E_TransferSyntax xfer = EXS_Unknown;
    Transcoding transcoding = Transcoding::NativeOnly;  // Lossless once the pixel values are in the clear
    std::string sopClass;
    std::string sopInstance;
    BudgetHold memory;  // the received bytes keep counting against limits.max_in_flight_mb while queued
  };
  static constexpr std::size_t kMaxQueued = 4;
  std::deque<PendingDelivery> queue;
  std::condition_variable queueChanged;
  std::thread deliverer;
  unsigned completed = 0;
  unsigned failed = 0;
  unsigned warning = 0;
  unsigned inFlight = 0;
  std::vector<std::string> failedSopInstanceUids;
  std::set<std::string> offeredSopInstanceUids;  // every sub-operation the PACS sent us, any outcome
  unsigned announcedByPacs = 0;  // largest sub-operation total the PACS's pending responses announced
  std::atomic<bool> cancelled{false};
  // ---- sub-operation intake (the PACS's C-STOREs) ----
  // Admits one sub-operation the PACS offered; false once the job is closed (a late one).
  bool admit(const std::string& sopInstance);
  // Queues a verified instance for the delivery thread, waiting at most `room` for space.
  bool enqueue(PendingDelivery item, std::chrono::seconds room);
  // Counts a sub-operation the gateway refused itself (the PACS may stop the C-MOVE because of it).
  void recordRefusal(const std::string& sopInstance, const StoreOutcome& outcome);
  unsigned refusedByGatewayCount();
  bool wasOffered(const std::string& sopInstance);

  // ---- delivery thread ----
  void startDeliveries(std::function<void()> loop);
  // Next instance to deliver; false when the thread should exit (closed and drained).
  bool nextDelivery(PendingDelivery& item);

  // ---- close sequence ----
  // Leaves the registry (no new sub-operation finds the job), refuses late ones, and waits until every
  // admitted instance has been delivered or counted. Idempotent.
  void close(RetrieveRegistry& registry);
  // After close(): lets the delivery thread exit, joins it, and drops the associations. Idempotent.
  void stopDeliveries();

  // Counts one sub-operation's outcome and releases its in-flight slot.
  void record(const std::string& sopInstance, const StoreOutcome& outcome);
  // Releases the in-flight slot of a queued instance dropped because the retrieve was cancelled
  // (it stays among the "remaining" sub-operations).
  void discard();
  // For log lines: where the instances go.
  std::string destinationAeTitle() const { return destination ? destination->aeTitle : requesterAeTitle; }
};

class RetrieveRegistry {
 public:
  // Gives the job a Message ID no outstanding job uses (whole 16-bit space) and registers it, in
  // one step under the lock so two concurrent retrieves can never share an ID.
  void add(const std::shared_ptr<RetrieveJob>& job);
  void remove(std::uint16_t messageId);
  // The job a sub-operation belongs to: by Move Originator Message ID when the PACS sent one,
  // otherwise the only outstanding job (PACS that omit the originator cannot be correlated safely
  // while two retrieves run; such sub-operations are refused).
  std::shared_ptr<RetrieveJob> find(std::optional<std::uint16_t> originatorMessageId) const;

 private:
  mutable std::mutex mutex_;
  std::map<std::uint16_t, std::shared_ptr<RetrieveJob>> jobs_;
  std::uint16_t next_ = 0;
};

}  // namespace pacsgw::gateway
