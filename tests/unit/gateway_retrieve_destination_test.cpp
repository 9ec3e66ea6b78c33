// Delivery to a C-MOVE destination without sockets: what is proposed, when the association is
// re-opened, what a destination that takes none of the proposed contexts costs (that kind only), what
// an unreachable one reports, and the single retry after a broken association.
#include "gateway/retrieve_destination.h"

#include "gateway/dimse_status.h"

#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <gtest/gtest.h>

#include <deque>
#include <memory>
#include <string>
#include <vector>

namespace pacsgw::gateway {
namespace {

constexpr const char* kCt = UID_CTImageStorage;
constexpr const char* kSr = UID_BasicTextSRStorage;

// What the destination does with each C-STORE on one association.
struct Behaviour {
  bool breaks = false;        // the association fails during the exchange
  std::uint16_t status = status::kSuccess;
};

struct Recorder {
  std::vector<std::vector<ProposedContext>> opened;  // the contexts of each association opened
  std::deque<std::string> openFailures;              // "unreachable" / "no context", one per open, then success
  std::deque<Behaviour> stores;                      // one per C-STORE, then success
  std::vector<std::string> storedUids;
  std::vector<MoveOriginator> originators;
};

class FakeAssociation : public DestinationAssociation {
 public:
  explicit FakeAssociation(Recorder& r) : r_(r) {}
  StoreOutcome store(DcmDataset&, E_TransferSyntax, const std::string&, const std::string& sopInstance,
                     const MoveOriginator& originator, Transcoding) override {
    Behaviour b;
    if (!r_.stores.empty()) {
      b = r_.stores.front();
      r_.stores.pop_front();
    }
    StoreOutcome outcome;
    if (b.breaks) {
      usable_ = false;
      outcome.errorComment = "connection reset";
      return outcome;
    }
    r_.storedUids.push_back(sopInstance);
    r_.originators.push_back(originator);
    outcome.delivered = true;
    outcome.status = b.status;
    return outcome;
  }
  bool usable() const override { return usable_; }

 private:
  Recorder& r_;
  bool usable_ = true;
};

DestinationOpener opener(Recorder& r) {
  return [&r](const std::vector<ProposedContext>& contexts) -> std::unique_ptr<DestinationAssociation> {
    r.opened.push_back(contexts);
    if (!r.openFailures.empty()) {
      const std::string failure = r.openFailures.front();
      r.openFailures.pop_front();
      if (failure == "unreachable") throw PeerUnavailable("VIEWER: connection refused");
      throw NoAcceptedContext("VIEWER accepted none of the proposed presentation contexts");
    }
    return std::make_unique<FakeAssociation>(r);
  };
}

RetrieveRequest moveTo(const std::string& ae) {
  RetrieveRequest request;
  request.requesterAeTitle = "CALLER";
  request.requesterMessageId = 42;
  request.access = config::Access::Decrypt;
  request.destination = PeerEndpoint{ae, "127.0.0.1", 11112, nullptr};
  return request;
}

DeliveryResult deliver(DestinationDelivery& d, const std::string& uid, const char* sopClass = kCt,
                       E_TransferSyntax xfer = EXS_LittleEndianExplicit,
                       Transcoding transcoding = Transcoding::Lossless) {
  DcmDataset ds;
  ds.putAndInsertString(DCM_SOPInstanceUID, uid.c_str());
  const std::string cls = sopClass;
  return d.deliver(OutgoingInstance{ds, xfer, transcoding, cls, uid});
}

bool proposes(const std::vector<ProposedContext>& contexts, const std::string& sopClass, const char* xferUid) {
  for (const auto& c : contexts) {
    if (c.abstractSyntax == sopClass &&
        std::find(c.transferSyntaxes.begin(), c.transferSyntaxes.end(), xferUid) != c.transferSyntaxes.end())
      return true;
  }
  return false;
}

TEST(RetrieveDestination, OneAssociationForOneKindReopenedForANewKindWithEverythingProposedSoFar) {
  Recorder r;
  const RetrieveRequest request = moveTo("VIEWER");
  DestinationDelivery d(request, opener(r));
  EXPECT_TRUE(deliver(d, "1").outcome.delivered);
  EXPECT_TRUE(deliver(d, "2").outcome.delivered);
  ASSERT_EQ(r.opened.size(), 1u) << "same kind of object: same association";
  EXPECT_TRUE(proposes(r.opened[0], kCt, UID_LittleEndianExplicitTransferSyntax));
  EXPECT_TRUE(deliver(d, "3", kSr).outcome.delivered);
  ASSERT_EQ(r.opened.size(), 2u) << "a new SOP class needs a new association";
  EXPECT_TRUE(proposes(r.opened[1], kCt, UID_LittleEndianExplicitTransferSyntax)) << "earlier kinds stay proposed";
  EXPECT_TRUE(proposes(r.opened[1], kSr, UID_LittleEndianExplicitTransferSyntax));
  EXPECT_EQ(r.storedUids, (std::vector<std::string>{"1", "2", "3"}));
}

TEST(RetrieveDestination, CompressedObjectIsProposedAsStoredAndUncompressedWhenItMayBeDecoded) {
  Recorder r;
  const RetrieveRequest request = moveTo("VIEWER");
  DestinationDelivery d(request, opener(r));
  EXPECT_TRUE(deliver(d, "1", kCt, EXS_RLELossless, Transcoding::Lossless).outcome.delivered);
  ASSERT_EQ(r.opened.size(), 1u);
  EXPECT_TRUE(proposes(r.opened[0], kCt, UID_RLELosslessTransferSyntax));
  EXPECT_TRUE(proposes(r.opened[0], kCt, UID_LittleEndianExplicitTransferSyntax));

  Recorder cipher;
  DestinationDelivery c(request, opener(cipher));
  EXPECT_TRUE(deliver(c, "2", kCt, EXS_RLELossless, Transcoding::NativeOnly).outcome.delivered);
  EXPECT_TRUE(proposes(cipher.opened[0], kCt, UID_RLELosslessTransferSyntax));
  EXPECT_FALSE(proposes(cipher.opened[0], kCt, UID_LittleEndianExplicitTransferSyntax))
      << "ciphertext is never re-encoded, so nothing else is proposed";
}

TEST(RetrieveDestination, DestinationTakingNoneOfTheContextsFailsThatKindAloneAndStaysReachable) {
  Recorder r;
  r.openFailures = {"no context"};
  const RetrieveRequest request = moveTo("VIEWER");
  DestinationDelivery d(request, opener(r));
  const DeliveryResult refused = deliver(d, "1", kCt, EXS_RLELossless, Transcoding::NativeOnly);
  EXPECT_FALSE(refused.outcome.delivered);
  EXPECT_EQ(refused.outcome.status, status::kNoAcceptableTransferSyntax);
  EXPECT_FALSE(refused.destinationUnreachable) << "the destination answered: the rest must still be tried";
  const DeliveryResult next = deliver(d, "2", kSr);
  EXPECT_TRUE(next.outcome.delivered);
  EXPECT_EQ(r.storedUids, std::vector<std::string>{"2"});
}

TEST(RetrieveDestination, UnreachableDestinationIsReportedAsSuch) {
  Recorder r;
  r.openFailures = {"unreachable"};
  const RetrieveRequest request = moveTo("VIEWER");
  DestinationDelivery d(request, opener(r));
  const DeliveryResult result = deliver(d, "1");
  EXPECT_TRUE(result.destinationUnreachable);
  EXPECT_EQ(result.outcome.status, status::kUnableToPerformSubOperations);
  EXPECT_NE(result.outcome.errorComment.find("connection refused"), std::string::npos);
}

TEST(RetrieveDestination, BrokenAssociationIsRetriedOnceOnAFreshOneButARefusalIsNot) {
  Recorder r;
  r.stores = {Behaviour{true, 0}};  // the first exchange breaks, the retry goes through
  const RetrieveRequest request = moveTo("VIEWER");
  DestinationDelivery d(request, opener(r));
  EXPECT_TRUE(deliver(d, "1").outcome.delivered);
  EXPECT_EQ(r.opened.size(), 2u);

  r.stores = {Behaviour{false, status::kOutOfResources}};
  const DeliveryResult refused = deliver(d, "2");
  EXPECT_TRUE(refused.outcome.delivered);
  EXPECT_EQ(refused.outcome.status, status::kOutOfResources);
  EXPECT_EQ(r.opened.size(), 2u) << "a refusal would just repeat";

  r.stores = {Behaviour{true, 0}, Behaviour{true, 0}};
  const DeliveryResult broken = deliver(d, "3");
  EXPECT_FALSE(broken.outcome.delivered) << "one retry, not more";
  EXPECT_EQ(r.opened.size(), 3u);
}

TEST(RetrieveDestination, EachInstanceNamesTheRequesterAsMoveOriginator) {
  Recorder r;
  const RetrieveRequest request = moveTo("VIEWER");
  DestinationDelivery d(request, opener(r));
  ASSERT_TRUE(deliver(d, "1").outcome.delivered);
  ASSERT_EQ(r.originators.size(), 1u);
  EXPECT_EQ(r.originators[0].aeTitle, "CALLER");
  EXPECT_EQ(r.originators[0].messageId, 42);
}

TEST(RetrieveDestination, NoDestinationDeliversNothing) {
  Recorder r;
  RetrieveRequest request = moveTo("VIEWER");
  request.destination.reset();
  DestinationDelivery d(request, opener(r));
  EXPECT_FALSE(deliver(d, "1").outcome.delivered);
  EXPECT_TRUE(r.opened.empty());
}

}  // namespace
}  // namespace pacsgw::gateway
