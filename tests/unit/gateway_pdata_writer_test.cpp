// C-STOREs the gateway sends on with its own P-DATA writer, against a real DCMTK SCP on loopback that
// keeps the raw data set bytes it receives: what reaches the peer is exactly the encoded instance (a
// spool record's payload unchanged when the peer accepts its transfer syntax, re-encoded by DCMTK
// when it accepts only another one), and the peer's status comes back as it was sent.
#include "gateway/dataset_receiver.h"
#include "gateway/peer_association.h"
#include "gateway/pdata_writer.h"
#include "gateway/spool/dataset_bytes.h"
#include "gateway/spool/dicom_sender.h"
#include "gateway/spool/spool_record.h"

#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcistrmb.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmnet/diutil.h>
#include <gtest/gtest.h>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <random>
#include <thread>

namespace pacsgw::gateway {
namespace {

std::uint16_t freePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

struct ReceivedStore {
  std::string sopClass;
  std::string sopInstance;
  std::uint16_t messageId = 0;
  std::string transferSyntax;  // of the presentation context the data set came on
  std::vector<std::uint8_t> bytes;  // the data set's PDV fragments, concatenated
  std::size_t fragments = 0;
};

// A storage SCP serving one association in a thread: accepts CT Image Storage in `syntaxes` only,
// answers every C-STORE with `status` (and `comment` as Error Comment when not empty).
class RawStoreScp {
 public:
  RawStoreScp(std::vector<const char*> syntaxes, std::uint16_t status = 0x0000, std::string comment = "",
              long maxPdu = 16384)
      : syntaxes_(std::move(syntaxes)), status_(status), comment_(std::move(comment)), port_(freePort()) {
    if (ASC_initializeNetwork(NET_ACCEPTOR, port_, 10, &network_).bad()) throw std::runtime_error("no network");
    thread_ = std::thread([this, maxPdu] { serve(maxPdu); });
  }
  ~RawStoreScp() {
    if (thread_.joinable()) thread_.join();
    ASC_dropNetwork(&network_);
  }
  std::uint16_t port() const { return port_; }
  // Waits for the association to end; what arrived.
  const std::vector<ReceivedStore>& received() {
    if (thread_.joinable()) thread_.join();
    return received_;
  }

 private:
  void serve(long maxPdu) {
    T_ASC_Association* assoc = nullptr;
    if (ASC_receiveAssociation(network_, &assoc, maxPdu, nullptr, nullptr, OFFalse, DUL_NOBLOCK, 10).bad()) {
      if (assoc != nullptr) ASC_destroyAssociation(&assoc);
      return;
    }
    const char* classes[] = {UID_CTImageStorage};
    ASC_acceptContextsWithPreferredTransferSyntaxes(assoc->params, classes, 1, syntaxes_.data(),
                                                    static_cast<int>(syntaxes_.size()));
    if (ASC_acknowledgeAssociation(assoc).good()) {
      for (;;) {
        T_DIMSE_Message msg{};
        T_ASC_PresentationContextID presId = 0;
        const OFCondition cond = DIMSE_receiveCommand(assoc, DIMSE_NONBLOCKING, 10, &presId, &msg, nullptr);
        if (cond == DUL_PEERREQUESTEDRELEASE) {
          ASC_acknowledgeRelease(assoc);
          break;
        }
        if (cond.bad() || msg.CommandField != DIMSE_C_STORE_RQ) {
          ASC_abortAssociation(assoc);
          break;
        }
        if (!receiveStore(assoc, presId, msg.msg.CStoreRQ)) {
          ASC_abortAssociation(assoc);
          break;
        }
      }
    }
    ASC_dropSCPAssociation(assoc);
    ASC_destroyAssociation(&assoc);
  }

  bool receiveStore(T_ASC_Association* assoc, T_ASC_PresentationContextID presId, T_DIMSE_C_StoreRQ& request) {
    ReceivedStore store;
    store.sopClass = request.AffectedSOPClassUID;
    store.sopInstance = request.AffectedSOPInstanceUID;
    store.messageId = request.MessageID;
    T_ASC_PresentationContext pc;
    ASC_findAcceptedPresentationContext(assoc->params, presId, &pc);
    store.transferSyntax = pc.acceptedTransferSyntax;
    for (bool last = false; !last;) {
      DUL_PDV pdv{};
      ReceivedDataSet failure;
      if (!nextDataSetFragment(assoc, presId, 10, pdv, failure)) return false;
      const auto* data = static_cast<const std::uint8_t*>(pdv.data);
      store.bytes.insert(store.bytes.end(), data, data + pdv.fragmentLength);
      ++store.fragments;
      last = pdv.lastPDV;
    }
    received_.push_back(std::move(store));
    T_DIMSE_C_StoreRSP response{};
    response.MessageIDBeingRespondedTo = request.MessageID;
    response.DimseStatus = status_;
    response.DataSetType = DIMSE_DATASET_NULL;
    OFStandard::strlcpy(response.AffectedSOPClassUID, request.AffectedSOPClassUID, sizeof response.AffectedSOPClassUID);
    OFStandard::strlcpy(response.AffectedSOPInstanceUID, request.AffectedSOPInstanceUID,
                        sizeof response.AffectedSOPInstanceUID);
    response.opts = O_STORE_AFFECTEDSOPCLASSUID | O_STORE_AFFECTEDSOPINSTANCEUID;
    DcmDataset detail;
    if (!comment_.empty()) detail.putAndInsertString(DCM_ErrorComment, comment_.c_str());
    return DIMSE_sendStoreResponse(assoc, presId, &request, &response, comment_.empty() ? nullptr : &detail).good();
  }

  std::vector<const char*> syntaxes_;
  std::uint16_t status_;
  std::string comment_;
  std::uint16_t port_;
  T_ASC_Network* network_ = nullptr;
  std::thread thread_;
  std::vector<ReceivedStore> received_;
};

// A CT-like instance whose Pixel Data spans several 16 KiB PDVs, with a private element and an odd
// number of attribute bytes here and there.
std::unique_ptr<DcmDataset> ctInstance(const std::string& uid, std::size_t pixels = 200 * 200) {
  auto dataset = std::make_unique<DcmDataset>();
  dataset->putAndInsertString(DCM_SOPClassUID, UID_CTImageStorage);
  dataset->putAndInsertString(DCM_SOPInstanceUID, uid.c_str());
  dataset->putAndInsertString(DCM_StudyInstanceUID, "1.2.826.0.1.3680043.2.1125.1");
  dataset->putAndInsertString(DCM_PatientName, "Doe^Jane");
  dataset->putAndInsertString(DCM_Modality, "CT");
  dataset->putAndInsertUint16(DCM_Rows, 200);
  dataset->putAndInsertUint16(DCM_Columns, static_cast<Uint16>(pixels / 200));
  dataset->putAndInsertUint16(DCM_BitsAllocated, 16);
  dataset->putAndInsertUint16(DCM_BitsStored, 12);
  dataset->putAndInsertUint16(DCM_HighBit, 11);
  dataset->putAndInsertUint16(DCM_PixelRepresentation, 0);
  dataset->putAndInsertUint16(DCM_SamplesPerPixel, 1);
  dataset->putAndInsertString(DCM_PhotometricInterpretation, "MONOCHROME2");
  dataset->putAndInsertString(DcmTag(0x0009, 0x0010, EVR_LO), "SITE PRIVATE");
  {
    DcmTag privateTag(0x0009, 0x1001, EVR_LO);
    privateTag.setPrivateCreator("SITE PRIVATE");
    dataset->putAndInsertString(privateTag, "odd");
  }
  std::vector<Uint16> values(pixels);
  std::mt19937 random(7);
  for (auto& v : values) v = static_cast<Uint16>(random() & 0x0FFF);
  dataset->putAndInsertUint16Array(DCM_PixelData, values.data(), static_cast<unsigned long>(values.size()));
  return dataset;
}

std::vector<std::uint8_t> bytesOf(DcmDataset& dataset, E_TransferSyntax xfer) {
  const std::string encoded = spool::encodeDataset(dataset, xfer);
  return std::vector<std::uint8_t>(encoded.begin(), encoded.end());
}

PeerEndpoint endpoint(std::uint16_t port) { return PeerEndpoint{"RAWSCP", "127.0.0.1", port, nullptr}; }

std::unique_ptr<PeerAssociation> openTo(std::uint16_t port) {
  const std::vector<ProposedContext> contexts = {
      {UID_CTImageStorage, {UID_LittleEndianExplicitTransferSyntax, UID_LittleEndianImplicitTransferSyntax}}};
  return PeerAssociation::open(endpoint(port), "GATEWAY", contexts, NetworkTimeouts{5, 10, 10}, 65536);
}

TEST(StoreCommandTest, EncodesTheCStoreRequestAsDcmtkReadsIt) {
  T_DIMSE_C_StoreRQ request{};
  request.MessageID = 4242;
  OFStandard::strlcpy(request.AffectedSOPClassUID, UID_CTImageStorage, sizeof request.AffectedSOPClassUID);
  OFStandard::strlcpy(request.AffectedSOPInstanceUID, "1.2.3.45", sizeof request.AffectedSOPInstanceUID);
  request.Priority = DIMSE_PRIORITY_MEDIUM;
  request.DataSetType = DIMSE_DATASET_PRESENT;
  OFStandard::strlcpy(request.MoveOriginatorApplicationEntityTitle, "WS1",
                      sizeof request.MoveOriginatorApplicationEntityTitle);
  request.MoveOriginatorID = 17;
  request.opts = O_STORE_MOVEORIGINATORAETITLE | O_STORE_MOVEORIGINATORID;
  const std::vector<std::uint8_t> bytes = encodeStoreCommand(request);

  DcmInputBufferStream stream;
  stream.setBuffer(bytes.data(), static_cast<offile_off_t>(bytes.size()));
  stream.setEos();
  DcmDataset command;
  command.transferInit();
  ASSERT_TRUE(command.read(stream, EXS_LittleEndianImplicit).good());
  command.transferEnd();
  Uint32 groupLength = 0;
  ASSERT_TRUE(command.findAndGetUint32(DCM_CommandGroupLength, groupLength).good());
  EXPECT_EQ(groupLength, bytes.size() - 12);  // everything after the group length element itself
  Uint16 value = 0;
  command.findAndGetUint16(DCM_CommandField, value);
  EXPECT_EQ(value, 0x0001);
  command.findAndGetUint16(DCM_MessageID, value);
  EXPECT_EQ(value, 4242);
  command.findAndGetUint16(DCM_CommandDataSetType, value);
  EXPECT_NE(value, 0x0101);  // a data set follows
  command.findAndGetUint16(DCM_MoveOriginatorMessageID, value);
  EXPECT_EQ(value, 17);
  OFString text;
  command.findAndGetOFString(DCM_AffectedSOPInstanceUID, text);
  EXPECT_EQ(text, "1.2.3.45");
  command.findAndGetOFString(DCM_MoveOriginatorApplicationEntityTitle, text);
  EXPECT_EQ(text, "WS1");
}

TEST(PDataWriterTest, EncodedInstanceReachesThePeerByteForByte) {
  RawStoreScp scp({UID_LittleEndianExplicitTransferSyntax, UID_LittleEndianImplicitTransferSyntax});
  auto dataset = ctInstance("1.2.826.0.1.3680043.2.1125.11");
  const std::vector<std::uint8_t> encoded = bytesOf(*dataset, EXS_LittleEndianExplicit);
  {
    auto association = openTo(scp.port());
    const StoreOutcome outcome = association->storeEncoded(encoded.data(), encoded.size(), EXS_LittleEndianExplicit,
                                                           UID_CTImageStorage, "1.2.826.0.1.3680043.2.1125.11");
    EXPECT_FALSE(outcome.needsEncoding);
    EXPECT_TRUE(outcome.delivered);
    EXPECT_EQ(outcome.status, 0x0000);
    EXPECT_TRUE(association->usable());
  }
  const auto& received = scp.received();
  ASSERT_EQ(received.size(), 1u);
  EXPECT_EQ(received[0].transferSyntax, UID_LittleEndianExplicitTransferSyntax);
  EXPECT_EQ(received[0].sopInstance, "1.2.826.0.1.3680043.2.1125.11");
  EXPECT_EQ(received[0].sopClass, UID_CTImageStorage);
  EXPECT_GT(received[0].fragments, 4u);  // 80 KB in PDVs of at most 16 KiB
  EXPECT_TRUE(received[0].bytes == encoded) << received[0].bytes.size() << " bytes received, " << encoded.size()
                                            << " sent";
}

TEST(PDataWriterTest, DataSetIsSentAsDcmtkEncodesItForTheAcceptedSyntax) {
  // A peer that takes Implicit VR only: the explicit instance goes out re-encoded, and what arrives is
  // DCMTK's own encoding of the same data set in that syntax.
  RawStoreScp scp({UID_LittleEndianImplicitTransferSyntax});
  auto dataset = ctInstance("1.2.826.0.1.3680043.2.1125.12");
  const std::vector<std::uint8_t> explicitBytes = bytesOf(*dataset, EXS_LittleEndianExplicit);
  const std::vector<std::uint8_t> implicitBytes = bytesOf(*dataset, EXS_LittleEndianImplicit);
  {
    auto association = openTo(scp.port());
    const StoreOutcome refused = association->storeEncoded(explicitBytes.data(), explicitBytes.size(),
                                                           EXS_LittleEndianExplicit, UID_CTImageStorage,
                                                           "1.2.826.0.1.3680043.2.1125.12");
    EXPECT_TRUE(refused.needsEncoding);  // nothing sent
    EXPECT_FALSE(refused.delivered);
    const StoreOutcome outcome =
        association->store(*dataset, EXS_LittleEndianExplicit, UID_CTImageStorage, "1.2.826.0.1.3680043.2.1125.12");
    EXPECT_TRUE(outcome.delivered);
    EXPECT_EQ(outcome.status, 0x0000);
  }
  const auto& received = scp.received();
  ASSERT_EQ(received.size(), 1u);  // the refused raw attempt sent nothing
  EXPECT_EQ(received[0].transferSyntax, UID_LittleEndianImplicitTransferSyntax);
  EXPECT_TRUE(received[0].bytes == implicitBytes);
}

TEST(PDataWriterTest, PeerStatusAndErrorCommentComeBackOnEveryMessage) {
  RawStoreScp scp({UID_LittleEndianExplicitTransferSyntax}, 0xA700, "disk full at the PACS");
  auto first = ctInstance("1.2.826.0.1.3680043.2.1125.21");
  auto second = ctInstance("1.2.826.0.1.3680043.2.1125.22", 200 * 3);
  {
    auto association = openTo(scp.port());
    for (auto* dataset : {first.get(), second.get()}) {
      OFString uid;
      dataset->findAndGetOFString(DCM_SOPInstanceUID, uid);
      const StoreOutcome outcome = association->store(*dataset, EXS_LittleEndianExplicit, UID_CTImageStorage, uid.c_str());
      EXPECT_TRUE(outcome.delivered);
      EXPECT_EQ(outcome.status, 0xA700);
      EXPECT_EQ(outcome.errorComment, "disk full at the PACS");
      EXPECT_TRUE(association->usable());
    }
  }
  const auto& received = scp.received();
  ASSERT_EQ(received.size(), 2u);
  EXPECT_NE(received[0].messageId, received[1].messageId);
  EXPECT_TRUE(received[1].bytes == bytesOf(*second, EXS_LittleEndianExplicit));
}

TEST(PDataWriterTest, SpooledRecordGoesOutUnchangedOrReEncodedForAnImplicitOnlyPacs) {
  auto dataset = ctInstance("1.2.826.0.1.3680043.2.1125.31");
  const std::string payload = spool::encodeDataset(*dataset, EXS_LittleEndianExplicit);
  spool::SpoolRecordMeta meta;
  meta.receivedUnixMs = 1700000000000;
  meta.sopClassUid = UID_CTImageStorage;
  meta.sopInstanceUid = "1.2.826.0.1.3680043.2.1125.31";
  meta.transferSyntaxUid = UID_LittleEndianExplicitTransferSyntax;
  meta.callingAeTitle = "CT1";
  const std::string record = spool::encodeSpoolRecord(meta, payload);
  const spool::SpoolRecordView view =
      spool::parseSpoolRecord(reinterpret_cast<const std::uint8_t*>(record.data()), record.size());

  for (const bool implicitOnly : {false, true}) {
    SCOPED_TRACE(implicitOnly ? "PACS accepts Implicit VR only" : "PACS accepts Explicit VR");
    RawStoreScp scp(implicitOnly ? std::vector<const char*>{UID_LittleEndianImplicitTransferSyntax}
                                 : std::vector<const char*>{UID_LittleEndianExplicitTransferSyntax});
    {
      spool::DicomUpstreamSender sender(endpoint(scp.port()), "GATEWAY", NetworkTimeouts{5, 10, 10}, 65536);
      const spool::SendResult result = sender.send(view);
      EXPECT_EQ(result.kind, spool::SendKind::Answered) << result.detail;
      EXPECT_EQ(result.status, 0x0000);
      sender.idle();
    }
    const auto& received = scp.received();
    ASSERT_EQ(received.size(), 1u);
    const std::vector<std::uint8_t> expected =
        implicitOnly ? bytesOf(*dataset, EXS_LittleEndianImplicit)
                     : std::vector<std::uint8_t>(payload.begin(), payload.end());
    EXPECT_TRUE(received[0].bytes == expected);
  }
}

}  // namespace
}  // namespace pacsgw::gateway
