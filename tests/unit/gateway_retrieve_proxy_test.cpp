// RetrieveProxy without sockets: the requester, the PACS and the destination are in-memory parties.
// The PACS double hands its sub-operations to the real SubOperationIntake (as the gateway's session
// does when the PACS's C-STOREs arrive) while its C-MOVE runs, so the real RetrieveJob, intake and
// delivery thread carry every instance; only the key side is a small double.
#include "gateway/retrieve_proxy.h"

#include "codecs/dicom_crypt.h"
#include "gateway/dimse_status.h"
#include "gateway/sub_operation_intake.h"

#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcelem.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

namespace pacsgw::gateway {
namespace {

constexpr const char* kStudy = "1.2.3.4";
constexpr const char* kCtImage = "1.2.840.10008.5.1.4.1.1.2";
constexpr const char* kBasicTextSr = "1.2.840.10008.5.1.4.1.1.88.11";

enum class Kind { Encrypted, Tampered, KeyDenied, Report };

struct StoredInstance {
  std::string uid;
  Kind kind = Kind::Encrypted;
};

std::unique_ptr<DcmDataset> datasetOf(const StoredInstance& stored) {
  auto ds = std::make_unique<DcmDataset>();
  ds->putAndInsertString(DCM_StudyInstanceUID, kStudy);
  ds->putAndInsertString(DCM_SOPInstanceUID, stored.uid.c_str());
  if (stored.kind == Kind::Report) {
    ds->putAndInsertString(DCM_SOPClassUID, kBasicTextSr);
    ds->putAndInsertString(DCM_ValueType, "CONTAINER");
    ds->putAndInsertString(DCM_ContentDate, "20260101");
    return ds;
  }
  ds->putAndInsertString(DCM_SOPClassUID, kCtImage);
  ds->putAndInsertUint16(DCM_Rows, 2);
  ds->putAndInsertUint16(DCM_Columns, 2);
  Uint16 pixels[4] = {1, 2, 3, 4};
  ds->putAndInsertUint16Array(DCM_PixelData, pixels, 4);
  ds->putAndInsertString(DcmTag(codecs::kKeyRefGroup, 0x0010, EVR_LO), "PACSGW KEYREF 1");
  // Which failure the key side will see for it (the double reads this, nothing else does).
  ds->putAndInsertString(DCM_ImageComments, stored.kind == Kind::Tampered    ? "tampered"
                                            : stored.kind == Kind::KeyDenied ? "key denied"
                                                                             : "intact");
  return ds;
}

// The key side: a tampered object fails authentication, a denied key is unknown, the rest decrypts
// (the key reference leaves, the pixels stay: the test only follows which instance goes where).
class KeyDouble : public SubOperationVerifier {
 public:
  E_TransferSyntax restore(DcmDataset& dataset, E_TransferSyntax, audit::KeyReleases&) override {
    std::lock_guard<std::mutex> lock(mutex_);
    ++restored;
    OFString mark;
    dataset.findAndGetOFString(DCM_ImageComments, mark);
    if (mark == "tampered") throw codecs::CryptError(codecs::CryptErrorKind::AuthenticationFailed, "tag mismatch");
    if (mark == "key denied") throw codecs::CryptError(codecs::CryptErrorKind::UnknownKey, "no such key");
    dataset.findAndDeleteElement(DcmTagKey(codecs::kKeyRefGroup, 0x0010));
    return EXS_LittleEndianExplicit;
  }
  E_TransferSyntax restoreSpooled(DcmDataset&, E_TransferSyntax, std::shared_ptr<SpooledPixelData>,
                                  audit::KeyReleases&) override {
    throw codecs::CryptError(codecs::CryptErrorKind::BackendFailure, "no spooled objects in this test");
  }
  PassthroughDecision passthrough(DcmDataset&) override { return {false, "NotEncrypted", "passthrough off"}; }
  void attachRelayCapsule(DcmDataset&, const config::RelayPeer&) override {}

  int restoredCount() {
    std::lock_guard<std::mutex> lock(mutex_);
    return restored;
  }

 private:
  std::mutex mutex_;
  int restored = 0;
};

// A destination (or the C-GET requester's storage side) that keeps what it receives.
class DestinationDouble : public InstanceDelivery {
 public:
  DeliveryResult deliver(const OutgoingInstance& instance) override {
    std::lock_guard<std::mutex> lock(mutex_);
    ++attempts;
    DeliveryResult result;
    if (unreachable) {
      result.destinationUnreachable = true;
      result.outcome.status = status::kUnableToPerformSubOperations;
      result.outcome.errorComment = "connection refused";
      return result;
    }
    if (refuses.count(instance.sopInstance) != 0) {
      result.outcome.delivered = true;
      result.outcome.status = status::kOutOfResources;  // the destination's own C-STORE refusal
      return result;
    }
    if (cancelsDuring == instance.sopInstance) result.requesterCancelled = true;
    if (breaksOn == instance.sopInstance) {
      result.requesterBroken = true;
      result.outcome.errorComment = "C-STORE to requester failed";
      return result;
    }
    result.outcome.delivered = true;
    result.outcome.status = status::kSuccess;
    received[instance.sopInstance] = std::unique_ptr<DcmDataset>(new DcmDataset(instance.dataset));
    receivedXfer[instance.sopInstance] = instance.xfer;
    return result;
  }

  std::vector<std::string> receivedUids() {
    std::lock_guard<std::mutex> lock(mutex_);
    std::vector<std::string> uids;
    for (const auto& [uid, ds] : received) uids.push_back(uid);
    return uids;
  }

  std::mutex mutex_;
  bool unreachable = false;
  std::set<std::string> refuses;
  std::string cancelsDuring, breaksOn;
  int attempts = 0;
  std::map<std::string, std::unique_ptr<DcmDataset>> received;
  std::map<std::string, E_TransferSyntax> receivedXfer;
};

// The workstation that asked: keeps every response; may send C-CANCEL after a number of pending ones.
class RequesterDouble : public RetrieveRequester {
 public:
  explicit RequesterDouble(bool isGet) : isGet_(isGet) {}
  bool respond(const RetrieveResponse& response) override {
    responses.push_back(response);
    return !broken;
  }
  bool cancelRequested() override {
    ++cancelPolls;
    const auto pending = std::count_if(responses.begin(), responses.end(),
                                       [](const RetrieveResponse& r) { return status::isPending(r.status); });
    return cancelAfterPending >= 0 && pending >= cancelAfterPending;
  }
  InstanceDelivery* ownAssociation() override { return isGet_ ? &storage : nullptr; }

  const RetrieveResponse& last() const { return responses.back(); }
  std::vector<RetrieveResponse> pending() const {
    std::vector<RetrieveResponse> out;
    for (const auto& r : responses)
      if (status::isPending(r.status)) out.push_back(r);
    return out;
  }

  DestinationDouble storage;  // C-GET: its own Storage SCP role
  int cancelAfterPending = -1;
  int cancelPolls = 0;
  bool broken = false;
  std::vector<RetrieveResponse> responses;

 private:
  bool isGet_;
};

// The PACS: answers the gateway's C-MOVE by handing each named instance to the intake as a C-STORE
// sub-operation, with a pending response after each. Like Orthanc, it stops the C-MOVE with a failure
// after a sub-operation the gateway refused.
class PacsDouble : public PacsRetrieve {
 public:
  PacsDouble(std::vector<StoredInstance> study, SubOperationIntake& intake) : study_(std::move(study)), intake_(intake) {}

  PacsRetrieveEnd move(const PacsMoveCommand& command, DcmDataset& query,
                       const std::function<void(const PacsProgress&)>& onPending) override {
    ++moves;
    moveDestinations.push_back(command.moveDestination);
    PacsRetrieveEnd end;
    if (breakOff) {
      end.associationFailed = true;
      end.error = "connection reset";
      return end;
    }
    if (refuseWith) {
      end.status = *refuseWith;
      return end;
    }
    std::vector<std::string> asked = namedBy(query);
    askedPerMove.push_back(asked);
    unsigned remaining = static_cast<unsigned>(asked.size()), completed = 0, failed = 0;
    for (const auto& uid : asked) {
      if (cancelled) {
        end.status = status::kCancel;
        end.remaining = remaining;
        end.failed = failed;
        return end;
      }
      const auto stored = std::find_if(study_.begin(), study_.end(), [&](const StoredInstance& s) { return s.uid == uid; });
      SubOperation op;
      op.sopClass = stored->kind == Kind::Report ? kBasicTextSr : kCtImage;
      op.sopInstance = uid;
      op.originatorMessageId = command.messageId;
      op.dataset = datasetOf(*stored);
      op.xfer = EXS_LittleEndianExplicit;
      const IntakeAnswer answer = intake_.accept(std::move(op));
      answers[uid] = answer.status;
      --remaining;
      status::isStored(answer.status) ? ++completed : ++failed;
      onPending(PacsProgress{status::kPending, remaining, completed, failed, 0});
      if (!status::isStored(answer.status) && remaining > 0) {
        end.status = status::kUnableToPerformSubOperations;  // stops early, the rest never offered
        end.failed = failed;
        end.remaining = remaining;
        return end;
      }
    }
    end.status = failed > 0 ? status::kSubOperationsCompleteWithFailures : status::kSuccess;
    end.failed = failed;
    return end;
  }

  void cancel(std::uint16_t) override { cancelled = true; }

  std::vector<std::string> instancesOf(DcmDataset&) override {
    ++listings;
    std::vector<std::string> uids;
    for (const auto& s : study_) uids.push_back(s.uid);
    return uids;
  }

  int moves = 0, listings = 0;
  bool cancelled = false, breakOff = false;
  std::optional<std::uint16_t> refuseWith;
  std::map<std::string, std::uint16_t> answers;
  std::vector<std::vector<std::string>> askedPerMove;
  std::vector<std::string> moveDestinations;

 private:
  std::vector<std::string> namedBy(DcmDataset& query) {
    OFString list;
    std::vector<std::string> uids;
    if (query.findAndGetOFStringArray(DCM_SOPInstanceUID, list).good() && !list.empty()) {
      std::string all = list.c_str();
      for (std::size_t start = 0; start <= all.size();) {
        std::size_t end = all.find('\\', start);
        if (end == std::string::npos) end = all.size();
        uids.push_back(all.substr(start, end - start));
        start = end + 1;
      }
      return uids;
    }
    for (const auto& s : study_) uids.push_back(s.uid);
    return uids;
  }

  std::vector<StoredInstance> study_;
  SubOperationIntake& intake_;
};

// The proxy owns what it opens; these hand it the fixture's doubles.
struct PacsHandle : PacsRetrieve {
  explicit PacsHandle(PacsDouble& d) : d(d) {}
  PacsRetrieveEnd move(const PacsMoveCommand& c, DcmDataset& q, const std::function<void(const PacsProgress&)>& p) override {
    return d.move(c, q, p);
  }
  void cancel(std::uint16_t id) override { d.cancel(id); }
  std::vector<std::string> instancesOf(DcmDataset& i) override { return d.instancesOf(i); }
  PacsDouble& d;
};

struct DestinationHandle : InstanceDelivery {
  explicit DestinationHandle(DestinationDouble& d) : d(d) {}
  DeliveryResult deliver(const OutgoingInstance& i) override { return d.deliver(i); }
  DestinationDouble& d;
};

class ConnectionsDouble : public RetrieveConnections {
 public:
  std::unique_ptr<PacsRetrieve> openPacs(const std::string& moveModel) override {
    openedModels.push_back(moveModel);
    if (pacsDown) throw PeerUnavailable("PACS: connection refused");
    if (noContext) return nullptr;
    return std::make_unique<PacsHandle>(*pacs);
  }
  std::unique_ptr<InstanceDelivery> destination(const RetrieveRequest& request) override {
    destinationAeTitle = request.destination ? request.destination->aeTitle : "";
    return std::make_unique<DestinationHandle>(*target);
  }

  PacsDouble* pacs = nullptr;
  DestinationDouble* target = nullptr;
  bool pacsDown = false, noContext = false;
  std::vector<std::string> openedModels;
  std::string destinationAeTitle;
};

config::Workstation workstation(const std::string& ae, config::Access access,
                                std::optional<std::vector<std::string>> moveDestinations = std::nullopt) {
  config::Workstation w;
  w.aeTitle = ae;
  w.host = "127.0.0.1";
  w.port = 11112;
  w.access = access;
  w.moveDestinations = std::move(moveDestinations);
  return w;
}

config::Config gatewayConfig() {
  config::Config c;
  c.gateway.aeTitle = "PACSGW";
  c.upstream.aeTitle = "PACS";
  c.upstream.host = "127.0.0.1";
  c.workstations = {workstation("VIEWER", config::Access::Decrypt), workstation("READER", config::Access::Ciphertext),
                    workstation("LOCKED", config::Access::Deny),
                    workstation("NARROW", config::Access::Decrypt, std::vector<std::string>{"VIEWER"})};
  return c;
}

struct RetrieveProxyTest : ::testing::Test {
  config::Config config = gatewayConfig();
  AccessPolicy policy{config};
  RetrieveRegistry registry;
  KeyDouble keys;
  SubOperationIntake intake{registry, keys, std::chrono::seconds(10), "PACS", "127.0.0.1"};
  DestinationDouble destination;
  ConnectionsDouble connections;
  std::unique_ptr<PacsDouble> pacs;

  void study(std::vector<StoredInstance> instances) {
    pacs = std::make_unique<PacsDouble>(std::move(instances), intake);
    connections.pacs = pacs.get();
    connections.target = &destination;
  }
  void SetUp() override { study({{"9.1"}, {"9.2"}, {"9.3"}}); }

  PeerIdentity caller(const std::string& ae) {
    return policy.identify(ae, "127.0.0.1");
  }
  // Serves one C-MOVE (to `moveDestination`) or C-GET from `callerAe`; returns whether the
  // requester's association is still usable.
  bool serve(RequesterDouble& requester, const std::string& callerAe, bool isGet,
             const std::string& moveDestination = "") {
    const PeerIdentity who = caller(callerAe);
    RetrieveProxy proxy({config, policy, nullptr, registry, connections}, who, requester);
    RetrieveCall call;
    call.isGet = isGet;
    call.messageId = 7;
    call.sopClass = isGet ? UID_GETStudyRootQueryRetrieveInformationModel : UID_MOVEStudyRootQueryRetrieveInformationModel;
    call.moveDestination = moveDestination;
    DcmDataset identifier;
    identifier.putAndInsertString(DCM_QueryRetrieveLevel, "STUDY");
    identifier.putAndInsertString(DCM_StudyInstanceUID, kStudy);
    return proxy.serve(call, identifier);
  }
};

void expectCountsAddUp(const std::vector<RetrieveResponse>& pending, unsigned total) {
  for (const auto& r : pending) {
    EXPECT_EQ(r.completed + r.failed + r.warning + r.remaining, total)
        << "pending: " << r.completed << " completed, " << r.failed << " failed, " << r.warning << " warning, "
        << r.remaining << " remaining";
  }
}

// ---- progress and final counts ----

TEST_F(RetrieveProxyTest, MoveRelaysEveryPendingResponseWithCountsThatAddUpAndEndsInSuccess) {
  RequesterDouble requester(false);
  EXPECT_TRUE(serve(requester, "VIEWER", false, "VIEWER"));
  EXPECT_EQ(connections.destinationAeTitle, "VIEWER");
  EXPECT_EQ(pacs->moveDestinations, std::vector<std::string>{"PACSGW"}) << "the PACS moves to the gateway";
  EXPECT_EQ(connections.openedModels, std::vector<std::string>{UID_MOVEStudyRootQueryRetrieveInformationModel});
  ASSERT_EQ(requester.pending().size(), 3u);
  expectCountsAddUp(requester.pending(), 3);
  const RetrieveResponse& last = requester.last();
  EXPECT_EQ(last.status, status::kSuccess);
  EXPECT_EQ(last.completed, 3u);
  EXPECT_EQ(last.failed + last.warning, 0u);
  EXPECT_TRUE(last.failedSopInstanceUids.empty());
  EXPECT_EQ(destination.receivedUids(), (std::vector<std::string>{"9.1", "9.2", "9.3"}));
  EXPECT_EQ(keys.restoredCount(), 3) << "a decrypt destination gets the pixels in the clear";
  EXPECT_FALSE(destination.received["9.1"]->tagExists(DcmTagKey(codecs::kKeyRefGroup, 0x0010)));
}

TEST_F(RetrieveProxyTest, CiphertextDestinationGetsTheObjectsAsTheyAreStored) {
  RequesterDouble requester(false);
  EXPECT_TRUE(serve(requester, "VIEWER", false, "READER"));
  EXPECT_EQ(requester.last().status, status::kSuccess);
  EXPECT_EQ(keys.restoredCount(), 0);
  EXPECT_TRUE(destination.received["9.2"]->tagExists(DcmTagKey(codecs::kKeyRefGroup, 0x0010)));
}

// ---- one bad instance fails alone ----

TEST_F(RetrieveProxyTest, TamperedObjectFailsItsSubOperationAloneAndThePacsIsAskedForTheRest) {
  study({{"9.1"}, {"9.2", Kind::Tampered}, {"9.3"}, {"9.4"}});
  RequesterDouble requester(false);
  EXPECT_TRUE(serve(requester, "VIEWER", false, "VIEWER"));
  EXPECT_EQ(pacs->answers["9.2"], status::kRefusedAuthenticationFailed) << "the PACS hears why";
  ASSERT_EQ(pacs->moves, 2) << "the PACS stopped after the refusal and was asked again";
  EXPECT_EQ(pacs->askedPerMove[1], (std::vector<std::string>{"9.3", "9.4"})) << "only what it never offered";
  EXPECT_EQ(destination.receivedUids(), (std::vector<std::string>{"9.1", "9.3", "9.4"}));
  const RetrieveResponse& last = requester.last();
  EXPECT_EQ(last.status, status::kSubOperationsCompleteWithFailures);
  EXPECT_EQ(last.completed, 3u);
  EXPECT_EQ(last.failed, 1u);
  EXPECT_EQ(last.failedSopInstanceUids, std::vector<std::string>{"9.2"});
  // Within the first C-MOVE (the PACS counts the second one on its own).
  const std::vector<RetrieveResponse> pending = requester.pending();
  ASSERT_GE(pending.size(), 2u);
  expectCountsAddUp({pending[0], pending[1]}, 4);
}

TEST_F(RetrieveProxyTest, DeniedKeyFailsThatObjectAloneOnACGet) {
  study({{"9.1", Kind::KeyDenied}, {"9.2"}, {"9.3"}});
  RequesterDouble requester(true);
  EXPECT_TRUE(serve(requester, "VIEWER", true));
  EXPECT_EQ(pacs->answers["9.1"], status::kRefusedUnknownKey);
  EXPECT_EQ(requester.storage.receivedUids(), (std::vector<std::string>{"9.2", "9.3"}));
  EXPECT_EQ(requester.last().status, status::kSubOperationsCompleteWithFailures);
  EXPECT_EQ(requester.last().completed, 2u);
  EXPECT_EQ(requester.last().failedSopInstanceUids, std::vector<std::string>{"9.1"});
}

TEST_F(RetrieveProxyTest, ObjectWithoutPixelDataIsDeliveredAsIsWithoutAKey) {
  study({{"9.1"}, {"9.7", Kind::Report}});
  RequesterDouble requester(false);
  EXPECT_TRUE(serve(requester, "VIEWER", false, "VIEWER"));
  EXPECT_EQ(requester.last().status, status::kSuccess);
  EXPECT_EQ(keys.restoredCount(), 1) << "only the image needed its key";
  ASSERT_EQ(destination.received.count("9.7"), 1u);
  DcmDataset& got = *destination.received["9.7"];
  std::unique_ptr<DcmDataset> sent = datasetOf({"9.7", Kind::Report});
  EXPECT_EQ(got.card(), sent->card());
  for (unsigned long i = 0; i < sent->card(); ++i) {
    OFString a, b;
    sent->getElement(i)->getOFStringArray(a);
    got.findAndGetOFStringArray(sent->getElement(i)->getTag(), b);
    EXPECT_EQ(a, b) << sent->getElement(i)->getTag().toString();
  }
}

TEST_F(RetrieveProxyTest, DestinationRefusingOneInstanceFailsThatOneAlone) {
  destination.refuses = {"9.2"};
  RequesterDouble requester(false);
  EXPECT_TRUE(serve(requester, "VIEWER", false, "VIEWER"));
  EXPECT_EQ(pacs->moves, 1) << "the PACS was told success: the gateway took the instance";
  EXPECT_EQ(requester.last().status, status::kSubOperationsCompleteWithFailures);
  EXPECT_EQ(requester.last().completed, 2u);
  EXPECT_EQ(requester.last().failedSopInstanceUids, std::vector<std::string>{"9.2"});
}

// ---- unreachable destination ----

TEST_F(RetrieveProxyTest, UnreachableDestinationIsTriedOnceAndEveryInstanceFails) {
  destination.unreachable = true;
  RequesterDouble requester(false);
  EXPECT_TRUE(serve(requester, "VIEWER", false, "VIEWER"));
  EXPECT_EQ(destination.attempts, 1) << "one timeout, not one per instance";
  const RetrieveResponse& last = requester.last();
  EXPECT_EQ(last.status, status::kUnableToPerformSubOperations) << "nothing delivered is a failure";
  EXPECT_EQ(last.completed, 0u);
  EXPECT_EQ(last.failed, 3u);
  EXPECT_NE(last.status, status::kCancel);
}

// ---- cancel ----

TEST_F(RetrieveProxyTest, CancelFromTheRequesterIsRelayedToThePacsAndReportedWithTheRemaining) {
  study({{"9.1"}, {"9.2"}, {"9.3"}, {"9.4"}});
  RequesterDouble requester(false);
  requester.cancelAfterPending = 1;
  EXPECT_TRUE(serve(requester, "VIEWER", false, "VIEWER"));
  EXPECT_TRUE(pacs->cancelled) << "C-CANCEL relayed to the PACS";
  const RetrieveResponse& last = requester.last();
  EXPECT_EQ(last.status, status::kCancel);
  EXPECT_EQ(last.remaining, 2u) << "what the PACS never sent stays remaining";
  EXPECT_LE(last.completed, 2u);
}

TEST_F(RetrieveProxyTest, CancelFromACGetRequesterIsRelayedLikeAMoves) {
  study({{"9.1"}, {"9.2"}, {"9.3"}, {"9.4"}});
  RequesterDouble requester(true);
  requester.cancelAfterPending = 1;
  EXPECT_TRUE(serve(requester, "VIEWER", true));
  EXPECT_TRUE(pacs->cancelled);
  EXPECT_EQ(requester.last().status, status::kCancel);
  EXPECT_EQ(requester.last().remaining, 2u);
}

TEST_F(RetrieveProxyTest, CancelSeenDuringACGetStoreIsHonoured) {
  study({{"9.1"}, {"9.2"}, {"9.3"}, {"9.4"}});
  RequesterDouble requester(true);
  requester.storage.cancelsDuring = "9.1";
  EXPECT_TRUE(serve(requester, "VIEWER", true));
  EXPECT_EQ(requester.last().status, status::kCancel);
}

TEST_F(RetrieveProxyTest, CancelIsNeverReportedWithoutACCancel) {
  study({{"9.1", Kind::Tampered}, {"9.2", Kind::KeyDenied}});
  destination.refuses = {"9.2"};
  RequesterDouble requester(false);
  EXPECT_TRUE(serve(requester, "VIEWER", false, "VIEWER"));
  EXPECT_FALSE(pacs->cancelled);
  for (const auto& r : requester.responses) EXPECT_NE(r.status, status::kCancel);
  EXPECT_EQ(requester.last().status, status::kUnableToPerformSubOperations);
  EXPECT_EQ(requester.last().failed, 2u);
}

TEST_F(RetrieveProxyTest, CGetRequesterThatBreaksGetsNoFinalResponseAndThePacsIsStopped) {
  study({{"9.1"}, {"9.2"}, {"9.3"}, {"9.4"}});
  RequesterDouble requester(true);
  requester.storage.breaksOn = "9.1";
  // The delivery thread may still be busy with 9.1 when the PACS's pending responses arrive: the
  // PACS is stopped at the first one after the break.
  EXPECT_FALSE(serve(requester, "VIEWER", true)) << "the association can carry nothing more";
  for (const auto& r : requester.responses) EXPECT_TRUE(status::isPending(r.status)) << "no final response";
  for (const auto& r : requester.responses) EXPECT_NE(r.status, status::kCancel);
}

// ---- C-GET final status mapping ----

TEST_F(RetrieveProxyTest, CGetEverythingDeliveredIsSuccess) {
  RequesterDouble requester(true);
  EXPECT_TRUE(serve(requester, "VIEWER", true));
  EXPECT_EQ(requester.last().status, status::kSuccess);
  EXPECT_EQ(requester.storage.receivedUids(), (std::vector<std::string>{"9.1", "9.2", "9.3"}));
  EXPECT_EQ(connections.openedModels, std::vector<std::string>{UID_MOVEStudyRootQueryRetrieveInformationModel})
      << "a C-GET is re-issued to the PACS as a C-MOVE";
}

TEST_F(RetrieveProxyTest, CGetSomeFailedIsB000NothingDeliveredIsA702) {
  RequesterDouble some(true);
  some.storage.refuses = {"9.3"};
  EXPECT_TRUE(serve(some, "VIEWER", true));
  EXPECT_EQ(some.last().status, status::kSubOperationsCompleteWithFailures);
  EXPECT_EQ(some.last().failedSopInstanceUids, std::vector<std::string>{"9.3"});

  study({{"9.1"}, {"9.2"}, {"9.3"}});
  RequesterDouble none(true);
  none.storage.refuses = {"9.1", "9.2", "9.3"};
  EXPECT_TRUE(serve(none, "VIEWER", true));
  EXPECT_EQ(none.last().status, status::kUnableToPerformSubOperations);
  EXPECT_EQ(none.last().failed, 3u);
}

TEST_F(RetrieveProxyTest, PacsRefusalIsRelayedButAMoveOnlyStatusNeverReachesACGet) {
  pacs->refuseWith = status::kDataSetDoesNotMatchSopClass;
  RequesterDouble get(true);
  EXPECT_TRUE(serve(get, "VIEWER", true));
  EXPECT_EQ(get.last().status, status::kDataSetDoesNotMatchSopClass) << "A900 relayed";
  EXPECT_EQ(pacs->moves, 1);
  EXPECT_EQ(pacs->listings, 0) << "a PACS that refuses for its own reasons is not asked again";

  pacs->refuseWith = status::kMoveDestinationUnknown;  // the PACS does not know the gateway's AE title
  RequesterDouble get2(true);
  EXPECT_TRUE(serve(get2, "VIEWER", true));
  EXPECT_EQ(get2.last().status, status::kUnableToProcess) << "A801 means nothing to a C-GET requester";

  RequesterDouble move(false);
  EXPECT_TRUE(serve(move, "VIEWER", false, "VIEWER"));
  EXPECT_EQ(move.last().status, status::kMoveDestinationUnknown);
}

TEST_F(RetrieveProxyTest, BrokenPacsAssociationIsAFailureNotACancel) {
  pacs->breakOff = true;
  RequesterDouble requester(true);
  EXPECT_TRUE(serve(requester, "VIEWER", true));
  EXPECT_EQ(requester.last().status, status::kUnableToProcess);
}

// ---- before anything is asked of the PACS ----

TEST_F(RetrieveProxyTest, UnavailablePacsIsA702AndNoJobIsLeftBehind) {
  connections.pacsDown = true;
  RequesterDouble requester(false);
  EXPECT_TRUE(serve(requester, "VIEWER", false, "VIEWER"));
  ASSERT_EQ(requester.responses.size(), 1u);
  EXPECT_EQ(requester.last().status, status::kUnableToPerformSubOperations);
  EXPECT_EQ(registry.find(std::nullopt), nullptr);
}

TEST_F(RetrieveProxyTest, PacsWithoutTheModelIsRefusedSopClassNotSupported) {
  connections.noContext = true;
  RequesterDouble requester(true);
  EXPECT_TRUE(serve(requester, "VIEWER", true));
  EXPECT_EQ(requester.last().status, status::kSopClassNotSupported);
}

TEST_F(RetrieveProxyTest, RefusedCallerOrDestinationNeverReachesThePacs) {
  RequesterDouble denied(true);
  EXPECT_TRUE(serve(denied, "LOCKED", true));
  EXPECT_EQ(denied.last().status, status::kNotAuthorised);
  RequesterDouble elsewhere(false);
  EXPECT_TRUE(serve(elsewhere, "NARROW", false, "READER"));
  EXPECT_EQ(elsewhere.last().status, status::kMoveDestinationUnknown);
  RequesterDouble unknown(false);
  EXPECT_TRUE(serve(unknown, "VIEWER", false, "NOWHERE"));
  EXPECT_EQ(unknown.last().status, status::kMoveDestinationUnknown);
  EXPECT_TRUE(connections.openedModels.empty());
  EXPECT_EQ(pacs->moves, 0);
}

TEST_F(RetrieveProxyTest, RequesterGoneBeforeTheRefusalMakesTheAssociationUnusable) {
  RequesterDouble gone(false);
  gone.broken = true;
  EXPECT_FALSE(serve(gone, "VIEWER", false, "NOWHERE"));
}

}  // namespace
}  // namespace pacsgw::gateway
