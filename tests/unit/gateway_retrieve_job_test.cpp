// The retrieve job's intake, delivery queue and close sequence, without sockets: a sub-operation
// admitted before close is always delivered or counted, a late one is refused, a full queue makes
// the intake wait (bounded), and close waits for everything admitted.
#include "gateway/retrieve_jobs.h"

#include <dcmtk/dcmdata/dcdeftag.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>

namespace pacsgw::gateway {
namespace {

PendingDelivery item(const std::string& uid) {
  PendingDelivery d;
  d.dataset = std::make_unique<DcmDataset>();
  d.dataset->putAndInsertString(DCM_SOPInstanceUID, uid.c_str());
  d.sopInstance = uid;
  return d;
}

StoreOutcome delivered(std::uint16_t s) {
  StoreOutcome o;
  o.delivered = true;
  o.status = s;
  return o;
}

TEST(RetrieveJob, EverythingAdmittedIsCountedBeforeCloseReturnsAndLateOnesAreRefused) {
  RetrieveRegistry registry;
  auto job = std::make_shared<RetrieveJob>();
  registry.add(job);
  std::atomic<int> seen{0};
  job->startDeliveries([&] {
    PendingDelivery next;
    while (job->nextDelivery(next)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));  // a slow destination
      ++seen;
      job->record(next.sopInstance, delivered(seen == 2 ? 0xB007 : 0x0000));
    }
  });
  for (const char* uid : {"1.1", "1.2", "1.3"}) {
    ASSERT_TRUE(job->admit(uid));
    ASSERT_TRUE(job->enqueue(item(uid), std::chrono::seconds(5)));
  }
  ASSERT_TRUE(job->admit("1.4"));
  StoreOutcome refused;
  refused.errorComment = "AuthenticationFailed";
  job->recordRefusal("1.4", refused);

  job->close(registry);
  // close() returned: every admitted instance has been delivered or counted.
  {
    const DeliveredCounts counts = job->counts();
    EXPECT_EQ(counts.completed, 2u);
    EXPECT_EQ(counts.warning, 1u);
    EXPECT_EQ(counts.failed, 1u);
    EXPECT_EQ(counts.failedSopInstanceUids, std::vector<std::string>{"1.4"});
    EXPECT_FALSE(counts.cancelled);
  }
  EXPECT_EQ(job->refusedByGatewayCount(), 1u);
  EXPECT_TRUE(job->wasOffered("1.3"));
  EXPECT_FALSE(job->wasOffered("9.9"));
  EXPECT_FALSE(job->admit("1.5")) << "a sub-operation arriving after close was admitted";
  EXPECT_EQ(registry.find(job->upstreamMessageId()), nullptr) << "closed job still in the registry";
  job->stopDeliveries();
  job->stopDeliveries();  // idempotent
  EXPECT_EQ(seen.load(), 3);
}

TEST(RetrieveJob, FullQueueMakesTheIntakeWaitBoundedly) {
  RetrieveRegistry registry;
  auto job = std::make_shared<RetrieveJob>();
  registry.add(job);
  // No delivery thread yet: the queue fills up.
  for (std::size_t i = 0; i < RetrieveJob::kMaxQueued; ++i) {
    const std::string uid = "2." + std::to_string(i);
    ASSERT_TRUE(job->admit(uid));
    ASSERT_TRUE(job->enqueue(item(uid), std::chrono::seconds(1)));
  }
  ASSERT_TRUE(job->admit("2.x"));
  EXPECT_FALSE(job->enqueue(item("2.x"), std::chrono::seconds(1))) << "enqueued beyond the queue bound";
  job->recordRefusal("2.x", StoreOutcome{});
  // Draining frees the slots; close then returns.
  job->startDeliveries([&] {
    PendingDelivery next;
    while (job->nextDelivery(next)) job->record(next.sopInstance, delivered(0x0000));
  });
  job->close(registry);
  job->stopDeliveries();
  EXPECT_EQ(job->counts().completed, RetrieveJob::kMaxQueued);
  EXPECT_EQ(job->counts().failed, 1u);
}

TEST(RetrieveJob, RegistryCorrelatesByOriginatorIdAndRefusesGuessing) {
  RetrieveRegistry registry;
  auto a = std::make_shared<RetrieveJob>();
  auto b = std::make_shared<RetrieveJob>();
  registry.add(a);
  EXPECT_EQ(registry.find(std::nullopt), a) << "a single outstanding job is found without an originator id";
  registry.add(b);
  EXPECT_NE(a->upstreamMessageId(), b->upstreamMessageId());
  EXPECT_EQ(registry.find(b->upstreamMessageId()), b);
  EXPECT_EQ(registry.find(std::nullopt), nullptr) << "two jobs: a sub-operation without originator must not be guessed";
}

TEST(RetrieveJob, QueuedInstancesCountAgainstTheTotalMemoryUntilDelivered) {
  constexpr std::uint64_t kMiB = 1 << 20;
  MemoryBudget total(3 * kMiB);
  RetrieveJob job;
  {
    // The PACS's association receives two instances and hands them to the delivery queue.
    AssociationMemory pacsAssociation(total, 2 * kMiB);
    for (const char* uid : {"2.1", "2.2"}) {
      MemoryReservation received(pacsAssociation);
      ASSERT_EQ(received.grow(kMiB), AssociationMemory::Refusal::None);
      auto queued = item(uid);
      queued.memory = received.handOver();
      ASSERT_TRUE(job.admit(uid));
      ASSERT_TRUE(job.enqueue(std::move(queued), std::chrono::seconds(1)));
    }
    EXPECT_EQ(pacsAssociation.held(), 0u) << "the association's share is free for the next instance";
    EXPECT_EQ(total.inUse(), 2 * kMiB);
    // A third and a fourth instance while two wait: the total refuses the fourth.
    MemoryReservation third(pacsAssociation);
    EXPECT_EQ(third.grow(kMiB), AssociationMemory::Refusal::None);
    MemoryReservation fourth(pacsAssociation);
    EXPECT_EQ(fourth.grow(kMiB), AssociationMemory::Refusal::Total);
  }
  // The association is gone; the queued instances still hold their bytes until delivered.
  EXPECT_EQ(total.inUse(), 2 * kMiB);
  PendingDelivery next;
  ASSERT_TRUE(job.nextDelivery(next));
  next = PendingDelivery{};  // delivered and dropped
  EXPECT_EQ(total.inUse(), kMiB);
  ASSERT_TRUE(job.nextDelivery(next));
  next = PendingDelivery{};
  EXPECT_EQ(total.inUse(), 0u);
}


TEST(RetrieveJob, ProgressCountsQueuedInstancesAsRemainingSoTheCountsAddUp) {
  RetrieveJob job;
  for (const char* uid : {"3.1", "3.2", "3.3"}) {
    ASSERT_TRUE(job.admit(uid));
    ASSERT_TRUE(job.enqueue(item(uid), std::chrono::seconds(1)));
  }
  // The PACS already counts all three as completed (it handed them to the gateway); none reached the
  // destination yet, so the requester must still see three remaining.
  RetrieveJob::Progress p = job.noteProgress(0, 3, 0, 0);
  EXPECT_EQ(p.completed + p.failed + p.warning, 0u);
  EXPECT_EQ(p.remaining, 3u);
  PendingDelivery next;
  ASSERT_TRUE(job.nextDelivery(next));
  job.record(next.sopInstance, delivered(0x0000));
  ASSERT_TRUE(job.nextDelivery(next));
  job.record(next.sopInstance, StoreOutcome{});  // the destination refused it
  p = job.noteProgress(0, 3, 0, 0);
  EXPECT_EQ(p.completed, 1u);
  EXPECT_EQ(p.failed, 1u);
  EXPECT_EQ(p.remaining, 1u);
  EXPECT_EQ(p.completed + p.failed + p.warning + p.remaining, 3u);
  // A later, smaller announcement never shrinks the total.
  p = job.noteProgress(0, 1, 0, 0);
  EXPECT_EQ(p.remaining, 1u);
  EXPECT_EQ(job.counts().announcedByPacs, 3u);
}

TEST(RetrieveJob, CancelledOnlyWhenTheRequesterAsks) {
  RetrieveJob job;
  ASSERT_TRUE(job.admit("4.1"));
  job.recordRefusal("4.1", StoreOutcome{});
  job.markRequesterBroken();  // a failed exchange is not a cancel
  EXPECT_FALSE(job.cancelled());
  EXPECT_FALSE(job.counts().cancelled);
  job.cancel();
  EXPECT_TRUE(job.cancelled());
  EXPECT_TRUE(job.counts().cancelled);
}

TEST(RetrieveJob, ACancelledRetrieveLeavesDroppedInstancesRemainingAndStillCloses) {
  RetrieveRegistry registry;
  auto job = std::make_shared<RetrieveJob>();
  registry.add(job);
  for (const char* uid : {"5.1", "5.2"}) {
    ASSERT_TRUE(job->admit(uid));
    ASSERT_TRUE(job->enqueue(item(uid), std::chrono::seconds(1)));
  }
  job->cancel();
  job->startDeliveries([&] {
    PendingDelivery next;
    while (job->nextDelivery(next)) job->discard();  // what the delivery loop does once cancelled
  });
  job->close(registry);  // returns: discarded instances released their slots
  job->stopDeliveries();
  const DeliveredCounts counts = job->counts();
  EXPECT_EQ(counts.completed + counts.failed + counts.warning, 0u);
  EXPECT_TRUE(counts.cancelled);
}

TEST(RetrieveJob, DeliveryChannelIsUsedByOneExchangeAtATime) {
  RetrieveJob job;
  std::atomic<int> inside{0};
  std::atomic<int> overlaps{0};
  int exchanges = 0;  // guarded by the channel alone
  auto exchange = [&] {
    for (int i = 0; i < 200; ++i) {
      RetrieveJob::ChannelLock channel = job.channel();
      if (++inside > 1) ++overlaps;
      ++exchanges;
      --inside;
    }
  };
  std::thread a(exchange), b(exchange);
  a.join();
  b.join();
  EXPECT_EQ(overlaps.load(), 0);
  EXPECT_EQ(exchanges, 400);
}

TEST(RetrieveJob, DestroyingAJobStopsItsDeliveryThread) {
  auto job = std::make_shared<RetrieveJob>();
  RetrieveJob* raw = job.get();
  std::atomic<bool> exited{false};
  job->startDeliveries([raw, &exited] {
    PendingDelivery next;
    while (raw->nextDelivery(next)) {
    }
    exited = true;
  });
  job.reset();  // the owner never called close(): the destructor must not hang or leak the thread
  EXPECT_TRUE(exited.load());
}

}  // namespace
}  // namespace pacsgw::gateway
