// Connection admission: caps, eviction of silent connections, and the log-line rate limit.
#include "gateway/connection_admission.h"
#include "gateway/log_throttle.h"
#include "gateway/memory_budget.h"

#include <gtest/gtest.h>

#include <vector>

namespace pacsgw::gateway {
namespace {

struct Recorder {
  std::vector<int> evicted;
  ConnectionAdmission::Hooks fn() {
    return {[](int) { return false; }, [this](int handle) { evicted.push_back(handle); }};
  }
};

// Handles are -1 so the admission object closes nothing real; eviction order is checked via ids.
TEST(ConnectionAdmission, PerAddressCapEvictsOldestPendingFromThatAddress) {
  Recorder rec;
  ConnectionAdmission admission(AdmissionLimits{100, 3}, rec.fn());
  auto a1 = admission.admit("10.0.0.1", -1);
  auto b1 = admission.admit("10.0.0.2", -1);
  auto a2 = admission.admit("10.0.0.1", -1);
  auto a3 = admission.admit("10.0.0.1", -1);
  ASSERT_TRUE(a1.admitted && a2.admitted && a3.admitted && b1.admitted);
  EXPECT_TRUE(admission.associationRequested(a1.id));  // a1 identified itself: never evicted
  auto a4 = admission.admit("10.0.0.1", -1);
  ASSERT_TRUE(a4.admitted);
  EXPECT_EQ(a4.evicted, 1u);
  EXPECT_EQ(rec.evicted.size(), 1u);
  EXPECT_FALSE(admission.associationRequested(a2.id)) << "a2 was the oldest pending connection";
  EXPECT_TRUE(admission.associationRequested(a3.id));
  EXPECT_TRUE(admission.associationRequested(b1.id)) << "another address is never evicted for a per-address cap";
  EXPECT_EQ(admission.openFrom("10.0.0.1"), 3u);
}

TEST(ConnectionAdmission, RefusesWhenEveryConnectionHasAssociated) {
  Recorder rec;
  ConnectionAdmission admission(AdmissionLimits{100, 2}, rec.fn());
  auto a = admission.admit("10.0.0.1", -1);
  auto b = admission.admit("10.0.0.1", -1);
  admission.associationRequested(a.id);
  admission.associationRequested(b.id);
  auto c = admission.admit("10.0.0.1", -1);
  EXPECT_FALSE(c.admitted);
  EXPECT_STREQ(c.refusal, "per-address connection limit");
  EXPECT_TRUE(rec.evicted.empty());
  admission.release(a.id);
  EXPECT_TRUE(admission.admit("10.0.0.1", -1).admitted);
}

TEST(ConnectionAdmission, TotalCapEvictsOldestPendingOfAnyAddress) {
  Recorder rec;
  ConnectionAdmission admission(AdmissionLimits{3, 10}, rec.fn());
  auto x = admission.admit("10.0.0.9", -1);
  auto a = admission.admit("10.0.0.1", -1);
  auto b = admission.admit("10.0.0.2", -1);
  admission.associationRequested(a.id);
  auto c = admission.admit("10.0.0.3", -1);
  ASSERT_TRUE(c.admitted);
  EXPECT_EQ(c.evicted, 1u);
  EXPECT_FALSE(admission.associationRequested(x.id));
  EXPECT_TRUE(admission.associationRequested(b.id));
  EXPECT_EQ(admission.openConnections(), 3u);
  auto d = admission.admit("10.0.0.4", -1);  // c is the only pending one left
  EXPECT_TRUE(d.admitted);
  EXPECT_FALSE(admission.associationRequested(c.id));
}

TEST(ConnectionAdmission, FloodOfSilentConnectionsLeavesRoomForNewcomers) {
  Recorder rec;
  ConnectionAdmission admission(AdmissionLimits{72, 16}, rec.fn());
  for (int i = 0; i < 300; ++i) ASSERT_TRUE(admission.admit("127.0.0.1", -1).admitted);
  EXPECT_EQ(admission.openFrom("127.0.0.1"), 16u);
  EXPECT_EQ(rec.evicted.size(), 284u);
  auto modality = admission.admit("127.0.0.1", -1);
  ASSERT_TRUE(modality.admitted);
  EXPECT_TRUE(admission.associationRequested(modality.id));
}

TEST(ConnectionAdmission, ReleaseAfterEvictionIsHarmless) {
  Recorder rec;
  ConnectionAdmission admission(AdmissionLimits{1, 1}, rec.fn());
  auto a = admission.admit("10.0.0.1", -1);
  auto b = admission.admit("10.0.0.1", -1);
  ASSERT_TRUE(b.admitted);
  admission.release(a.id);
  EXPECT_EQ(admission.openConnections(), 1u);
  admission.release(b.id);
  EXPECT_EQ(admission.openConnections(), 0u);
}

TEST(ConnectionAdmission, ConnectionWithBufferedRequestIsNeverEvicted) {
  std::vector<int> evicted;
  // Handle 99999 (no real descriptor) stands for a connection whose request is already buffered.
  ConnectionAdmission admission(AdmissionLimits{100, 2},
                                {[](int handle) { return handle == 99999; }, [&](int h) { evicted.push_back(h); }});
  auto modality = admission.admit("127.0.0.1", 99999);
  auto silent = admission.admit("127.0.0.1", -1);
  auto next = admission.admit("127.0.0.1", -1);
  ASSERT_TRUE(next.admitted);
  EXPECT_EQ(evicted, std::vector<int>{-1});
  EXPECT_FALSE(admission.associationRequested(silent.id));
  EXPECT_TRUE(admission.associationRequested(modality.id));

}

TEST(LogThrottle, WritesFirstLinesThenCountsAndSummarises) {
  LogThrottle throttle(3, std::chrono::seconds(10));
  const auto t0 = LogThrottle::Clock::now();
  int written = 0;
  for (int i = 0; i < 1000; ++i) written += throttle.allow("flood", t0 + std::chrono::milliseconds(i)) ? 1 : 0;
  EXPECT_EQ(written, 3);
  EXPECT_EQ(throttle.suppressedTotal(), 997u);
  EXPECT_TRUE(throttle.allow("other kind", t0));
  throttle.flush(t0 + std::chrono::seconds(11));  // summary line; the window starts afresh
  EXPECT_TRUE(throttle.allow("flood", t0 + std::chrono::seconds(12)));
}

TEST(MemoryBudget, AssociationAndTotalLimitsAreBothEnforced) {
  MemoryBudget total(100);
  AssociationMemory first(total, 60);
  AssociationMemory second(total, 60);
  {
    MemoryReservation a(first);
    EXPECT_EQ(a.grow(50), AssociationMemory::Refusal::None);
    EXPECT_EQ(a.grow(20), AssociationMemory::Refusal::Association) << "60 per association";
    MemoryReservation b(second);
    EXPECT_EQ(b.grow(51), AssociationMemory::Refusal::Total) << "100 in all, 50 already held";
    EXPECT_EQ(b.grow(40), AssociationMemory::Refusal::None);
    EXPECT_EQ(total.inUse(), 90u);
  }
  EXPECT_EQ(total.inUse(), 0u) << "reservations give their bytes back";
  EXPECT_EQ(total.peak(), 90u);
  EXPECT_EQ(first.held(), 0u);
}

}  // namespace
}  // namespace pacsgw::gateway
