#include "gateway/access_policy.h"
#include "gateway/net_util.h"
#include "gateway/retrieve_jobs.h"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdatset.h>
#include <dcmtk/dcmdata/dcdeftag.h>

#include <gtest/gtest.h>

#include <set>
#include <thread>
#include <vector>

using namespace pacsgw;

namespace {
config::Config sampleConfig() {
  config::Config c;
  c.gateway.aeTitle = "GATEWAY";
  c.upstream = {"TESTPACS", "127.0.0.1", 14242};
  c.modalities = {{"CT1", "127.0.0.1"}, {"MR1", "10.1.2.3"}};
  config::Workstation ws1{"WS1", "127.0.0.1", 11120, config::Access::Decrypt};
  config::Workstation ws2{"WS2", "127.0.0.1", 11121, config::Access::Ciphertext};
  config::Workstation ws3{"WS3", "127.0.0.1", 11122, config::Access::Deny};
  c.workstations = {ws1, ws2, ws3};
  return c;
}
}  // namespace

TEST(AccessPolicy, ModalityNeedsMatchingAeTitleAndHost) {
  config::Config c = sampleConfig();
  gateway::AccessPolicy policy(c);
  EXPECT_TRUE(policy.identify("CT1", "127.0.0.1").isModality);
  EXPECT_FALSE(policy.identify("CT1", "10.9.9.9").isModality);  // right AE, wrong host
  EXPECT_FALSE(policy.identify("MR1", "127.0.0.1").isModality);  // right host, AE of another host
  EXPECT_FALSE(policy.identify("ct1", "127.0.0.1").isModality);  // AE titles are case-sensitive
  EXPECT_TRUE(policy.identify("MR1", "10.1.2.3").isModality);
}

TEST(AccessPolicy, WorkstationsAndUpstreamAreIdentified) {
  config::Config c = sampleConfig();
  gateway::AccessPolicy policy(c);
  gateway::PeerIdentity ws2 = policy.identify("WS2", "127.0.0.1");
  ASSERT_NE(ws2.workstation, nullptr);
  EXPECT_EQ(ws2.workstation->access, config::Access::Ciphertext);
  EXPECT_FALSE(ws2.isModality);
  EXPECT_TRUE(policy.identify("TESTPACS", "127.0.0.1").isUpstream);
  EXPECT_FALSE(policy.identify("TESTPACS", "10.0.0.1").isUpstream);
  gateway::PeerIdentity stranger = policy.identify("EVIL", "127.0.0.1");
  EXPECT_FALSE(stranger.isModality || stranger.isUpstream || stranger.workstation != nullptr);
  ASSERT_NE(policy.workstationByAeTitle("WS3"), nullptr);
  EXPECT_EQ(policy.workstationByAeTitle("WS3")->access, config::Access::Deny);
  EXPECT_EQ(policy.workstationByAeTitle("NOPE"), nullptr);
}

TEST(RetrieveRegistry, ConcurrentJobsGetDistinctMessageIds) {
  gateway::RetrieveRegistry registry;
  std::vector<std::shared_ptr<gateway::RetrieveJob>> jobs(400);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = t; i < 400; i += 4) {
        jobs[i] = std::make_shared<gateway::RetrieveJob>();
        registry.add(jobs[i]);
      }
    });
  }
  for (auto& th : threads) th.join();
  std::set<std::uint16_t> ids;
  for (const auto& j : jobs) {
    EXPECT_NE(j->upstreamMessageId(), 0);
    ids.insert(j->upstreamMessageId());
  }
  EXPECT_EQ(ids.size(), jobs.size());
  EXPECT_EQ(registry.find(jobs[17]->upstreamMessageId()), jobs[17]);
}

TEST(RetrieveRegistry, FallbackWithoutOriginatorOnlyWhenUnambiguous) {
  gateway::RetrieveRegistry registry;
  EXPECT_EQ(registry.find(std::nullopt), nullptr);
  auto a = std::make_shared<gateway::RetrieveJob>();
  registry.add(a);
  EXPECT_EQ(registry.find(std::nullopt), a);  // exactly one outstanding: safe to attribute
  auto b = std::make_shared<gateway::RetrieveJob>();
  registry.add(b);
  EXPECT_EQ(registry.find(std::nullopt), nullptr);  // two outstanding: refuse rather than guess
  EXPECT_EQ(registry.find(b->upstreamMessageId()), b);
  registry.remove(a->upstreamMessageId());
  EXPECT_EQ(registry.find(a->upstreamMessageId()), nullptr);
  EXPECT_EQ(registry.find(std::nullopt), b);
}

TEST(RetrieveRegistry, MessageIdsWrapAroundSkippingZeroAndBusyIds) {
  gateway::RetrieveRegistry registry;
  auto held = std::make_shared<gateway::RetrieveJob>();
  registry.add(held);  // keeps ID 1 busy
  for (int i = 0; i < 70000; ++i) {
    auto j = std::make_shared<gateway::RetrieveJob>();
    registry.add(j);
    ASSERT_NE(j->upstreamMessageId(), 0);
    ASSERT_NE(j->upstreamMessageId(), held->upstreamMessageId());
    registry.remove(j->upstreamMessageId());
  }
}

TEST(RetrieveJob, SubOperationsMustMatchWhatWasRequested) {
  gateway::RetrieveRequest request;
  request.studyUids = {"1.2.3"};
  DcmDataset inStudy;
  inStudy.putAndInsertString(DCM_StudyInstanceUID, "1.2.3");
  inStudy.putAndInsertString(DCM_SOPInstanceUID, "1.2.3.4");
  DcmDataset otherStudy;
  otherStudy.putAndInsertString(DCM_StudyInstanceUID, "9.9.9");
  DcmDataset noStudy;
  EXPECT_TRUE(request.matches(inStudy));
  EXPECT_FALSE(request.matches(otherStudy));
  EXPECT_FALSE(request.matches(noStudy));
  request.instanceUids = {"1.2.3.5", "1.2.3.6"};
  EXPECT_FALSE(request.matches(inStudy));  // right study, instance not asked for
  request.instanceUids.push_back("1.2.3.4");
  EXPECT_TRUE(request.matches(inStudy));
}

TEST(NetUtil, PrintableNeutralisesControlCharactersAndLength) {
  EXPECT_EQ(gateway::printable("CT1"), "CT1");
  EXPECT_EQ(gateway::printable("A\nB\x1b[31m\\"), "A?B?[31m?");
  EXPECT_EQ(gateway::printable(std::string(200, 'x')).size(), 64u);
}

TEST(AccessPolicy, MoveDestinationsOfTheCaller) {
  config::Workstation open{"WS1", "10.0.0.1", 104, config::Access::Decrypt};
  EXPECT_TRUE(gateway::AccessPolicy::mayMoveTo(open, "WS9"));  // no list: any configured destination
  config::Workstation limited{"WS2", "10.0.0.2", 104, config::Access::Ciphertext};
  limited.moveDestinations = std::vector<std::string>{"WS3"};
  EXPECT_TRUE(gateway::AccessPolicy::mayMoveTo(limited, "WS2"));  // itself, always
  EXPECT_TRUE(gateway::AccessPolicy::mayMoveTo(limited, "WS3"));
  EXPECT_FALSE(gateway::AccessPolicy::mayMoveTo(limited, "WS1"));
  EXPECT_FALSE(gateway::AccessPolicy::mayMoveTo(limited, "ws3"));  // AE titles are case-sensitive
  limited.moveDestinations = std::vector<std::string>{};
  EXPECT_TRUE(gateway::AccessPolicy::mayMoveTo(limited, "WS2"));
  EXPECT_FALSE(gateway::AccessPolicy::mayMoveTo(limited, "WS3"));
}
