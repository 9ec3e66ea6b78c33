// Readiness and the spool quota: not ready from 95 % of either quota on, with the numbers in the reason.
#include "gateway/health.h"
#include "gateway/spool/spool.h"

#include <gtest/gtest.h>

namespace pacsgw::gateway {
namespace {

TEST(SpoolReadiness, ReadyBelowNinetyFivePercentOfBothQuotas) {
  config::SpoolSection quota;
  quota.maxBytes = 1000;
  quota.maxInstances = 100;
  spool::SpoolStats stats;
  EXPECT_EQ(spoolQuotaProblem(stats, quota), "");
  stats.bytes = 949;
  stats.queued = 90;
  stats.inFlight = 4;
  EXPECT_EQ(spoolQuotaProblem(stats, quota), "");
}

TEST(SpoolReadiness, NotReadyNearEitherQuota) {
  config::SpoolSection quota;
  quota.maxBytes = 1000;
  quota.maxInstances = 100;
  spool::SpoolStats stats;
  stats.bytes = 950;
  EXPECT_EQ(spoolQuotaProblem(stats, quota), "spool holds 950 of 1000 bytes");
  stats.bytes = 10;
  stats.queued = 80;
  stats.inFlight = 5;
  stats.quarantined = 10;  // quarantined records count against the quota too
  EXPECT_EQ(spoolQuotaProblem(stats, quota), "spool holds 95 of 100 instances");
}

TEST(SpoolReadiness, LargestQuotasDoNotOverflow) {
  config::SpoolSection quota;
  quota.maxBytes = 1ull << 50;
  quota.maxInstances = 100000000;
  spool::SpoolStats stats;
  stats.bytes = (1ull << 50) / 2;
  EXPECT_EQ(spoolQuotaProblem(stats, quota), "");
  stats.bytes = 1ull << 50;
  EXPECT_NE(spoolQuotaProblem(stats, quota), "");
}

}  // namespace
}  // namespace pacsgw::gateway
