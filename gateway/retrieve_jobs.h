#pragma once
// Outstanding C-MOVE / C-GET operations the gateway has re-issued to the PACS, and the
// correlation of the PACS's C-STORE sub-operations back to them.
#include "config/config.h"
#include "gateway/audit/audit_trail.h"
#include "gateway/memory_budget.h"
#include "gateway/peer_association.h"
#include "gateway/retrieve_outcome.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace pacsgw::gateway {

class RetrieveRegistry;

// What a C-MOVE / C-GET asked for and where its instances go. Filled in before the job is
// registered and never changed afterwards, so every thread reads it without a lock.
struct RetrieveRequest {
  std::string requesterAeTitle;
  std::uint16_t requesterMessageId = 0;          // Message ID of the requester's C-MOVE / C-GET
  config::Access access = config::Access::Deny;  // what the receiving side may see
  // C-MOVE: the configured workstation the instances go to. C-GET: none (the requester's association).
  std::optional<PeerEndpoint> destination;
  // C-MOVE to a relay peer (a gateway at another site): ciphertext, each object with a key capsule.
  const config::RelayPeer* relayPeer = nullptr;
  // Values of the identifier's unique keys (empty = not restricted). Every sub-operation must match,
  // so a stray C-STORE from the PACS is never handed to this requester.
  std::vector<std::string> patientIds, studyUids, seriesUids, instanceUids;

  bool matches(DcmDataset& dataset) const;
  // For log lines: where the instances go.
  std::string destinationAeTitle() const { return destination ? destination->aeTitle : requesterAeTitle; }
};

// A verified instance waiting for delivery; the received bytes keep counting against
// limits.max_in_flight_mb while it waits.
struct PendingDelivery {
  std::unique_ptr<DcmDataset> dataset;
  E_TransferSyntax xfer = EXS_Unknown;
  Transcoding transcoding = Transcoding::NativeOnly;  // Lossless once the pixel values are in the clear
  std::string sopClass;
  std::string sopInstance;
  BudgetHold memory;
};

// One outstanding C-MOVE / C-GET: the sub-operations admitted, the queue its delivery thread empties,
// the counts, and the close sequence. It owns all of its locking: callers never hold its mutexes
// except through ChannelLock.
class RetrieveJob {
 public:
  static constexpr std::size_t kMaxQueued = 4;  // a slow destination slows the PACS down, memory stays flat

  explicit RetrieveJob(RetrieveRequest request = {});
  ~RetrieveJob();  // stops the delivery thread if the owner did not
  RetrieveJob(const RetrieveJob&) = delete;
  RetrieveJob& operator=(const RetrieveJob&) = delete;

  const RetrieveRequest& request() const { return request_; }
  // The Message ID of the gateway's C-MOVE to the PACS (given by RetrieveRegistry::add).
  std::uint16_t upstreamMessageId() const { return upstreamMessageId_.load(); }
  // Data keys this retrieve decrypted with, audited once each (internally synchronised).
  audit::KeyReleases& keyReleases() { return keyReleases_; }
  // Instances delivered unencrypted (passthrough), audited once at the end of the retrieve.
  void countPassthrough() { ++passthroughInstances_; }
  std::size_t passthroughCount() const { return passthroughInstances_.load(); }

  // ---- sub-operation intake (the PACS's C-STOREs) ----
  // Admits one sub-operation the PACS offered; false once the job is closed (a late one).
  bool admit(const std::string& sopInstance);
  // Queues a verified instance for the delivery thread, waiting at most `room` for space.
  bool enqueue(PendingDelivery item, std::chrono::seconds room);
  // Counts a sub-operation the gateway refused itself (the PACS may stop the C-MOVE because of it).
  void recordRefusal(const std::string& sopInstance, const StoreOutcome& outcome);
  unsigned refusedByGatewayCount() const;
  bool wasOffered(const std::string& sopInstance) const;
  // Verified instances waiting for the delivery thread.
  std::size_t queued() const;

  // ---- delivery thread ----
  void startDeliveries(std::function<void()> loop);
  // Next instance to deliver; false when the thread should exit (closed and drained).
  bool nextDelivery(PendingDelivery& item);
  // Counts one sub-operation's outcome and releases its in-flight slot.
  void record(const std::string& sopInstance, const StoreOutcome& outcome);
  // Releases the in-flight slot of a queued instance dropped because the retrieve was cancelled
  // (it stays among the "remaining" sub-operations).
  void discard();

  // Exclusive use of the delivery channel for one exchange: a C-STORE to the destination, or any
  // message on a C-GET requester's association (deliveries and responses take turns).
  class [[nodiscard]] ChannelLock {
   private:
    friend class RetrieveJob;
    explicit ChannelLock(std::mutex& m) : lock_(m) {}
    std::unique_lock<std::mutex> lock_;
  };
  ChannelLock channel() { return ChannelLock(channelMutex_); }

  // ---- the requester's side ----
  void cancel() { cancelled_.store(true); }  // the requester sent C-CANCEL (only then)
  bool cancelled() const { return cancelled_.load(); }
  // C-GET: an exchange on the requester's association failed; nothing more may be sent on it.
  void markRequesterBroken() { requesterBroken_.store(true); }
  bool requesterBroken() const { return requesterBroken_.load(); }

  // A pending response of the PACS announced its counts: what to tell the requester. Instances
  // waiting for delivery are still "remaining", whatever the PACS already counts them as.
  struct Progress {
    unsigned completed = 0, failed = 0, warning = 0, remaining = 0;
  };
  Progress noteProgress(unsigned pacsRemaining, unsigned pacsCompleted, unsigned pacsFailed, unsigned pacsWarning);
  // What reached the destination so far (final once close() returned).
  DeliveredCounts counts() const;

  // ---- close sequence ----
  // Leaves the registry (no new sub-operation finds the job), refuses late ones, and waits until every
  // admitted instance has been delivered or counted. Idempotent.
  void close(RetrieveRegistry& registry);
  // After close(): lets the delivery thread exit and joins it. Idempotent.
  void stopDeliveries();

 private:
  friend class RetrieveRegistry;

  const RetrieveRequest request_;
  std::atomic<std::uint16_t> upstreamMessageId_{0};
  audit::KeyReleases keyReleases_;
  std::atomic<std::size_t> passthroughInstances_{0};
  std::atomic<bool> cancelled_{false};
  std::atomic<bool> requesterBroken_{false};

  // Held for each delivery exchange; never taken while holding mutex_.
  std::mutex channelMutex_;

  // Guards the state below; held only briefly and never during network I/O.
  mutable std::mutex mutex_;
  std::condition_variable drained_;
  std::condition_variable queueChanged_;
  bool closed_ = false;        // the retrieve has ended: late sub-operations are refused
  bool stopDelivery_ = false;  // set once everything accepted has drained: the delivery thread exits
  std::deque<PendingDelivery> queue_;
  unsigned inFlight_ = 0;  // admitted, not yet counted
  unsigned completed_ = 0, failed_ = 0, warning_ = 0;
  unsigned refusedByGateway_ = 0;  // sub-operations the gateway answered to the PACS with a failure
  unsigned announcedByPacs_ = 0;   // largest sub-operation total the PACS's pending responses announced
  std::vector<std::string> failedSopInstanceUids_;
  std::set<std::string> offeredSopInstanceUids_;  // every sub-operation the PACS sent us, any outcome

  std::thread deliverer_;
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
