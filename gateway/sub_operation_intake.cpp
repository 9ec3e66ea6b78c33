#include "gateway/sub_operation_intake.h"

#include "codecs/dicom_crypt.h"
#include "gateway/audit/audit_trail.h"
#include "gateway/dimse_status.h"
#include "gateway/net_util.h"

#include <dcmtk/dcmdata/dcdeftag.h>
#include <spdlog/spdlog.h>

#include <utility>

namespace pacsgw::gateway {

namespace {

// True unless the object has neither pixel data nor an image pixel module (which the store path
// refuses without pixel data, so such an object did not come through the gateway that way).
bool mayCarryPixels(DcmDataset& dataset) {
  return dataset.tagExists(DCM_PixelData) || dataset.tagExists(DCM_FloatPixelData) ||
         dataset.tagExists(DCM_DoubleFloatPixelData) || dataset.tagExists(DCM_Rows) || dataset.tagExists(DCM_Columns);
}

}  // namespace

SubOperationIntake::SubOperationIntake(RetrieveRegistry& retrieves, SubOperationVerifier& verifier,
                                       std::chrono::seconds queueRoom, std::string pacsAeTitle,
                                       std::string pacsAddress)
    : retrieves_(retrieves),
      verifier_(verifier),
      queueRoom_(queueRoom),
      pacsAeTitle_(std::move(pacsAeTitle)),
      pacsAddress_(std::move(pacsAddress)) {}

std::shared_ptr<RetrieveJob> SubOperationIntake::admit(const std::string& sopInstance,
                                                       std::optional<std::uint16_t> originator) {
  std::shared_ptr<RetrieveJob> job = retrieves_.find(originator);
  if (job && !job->admit(sopInstance)) job.reset();  // closed meanwhile: a late one
  if (!job) {
    spdlog::warn("C-STORE {} from PACS {}: matches no outstanding retrieve (originator id {}); refused",
                 printable(sopInstance), printable(pacsAeTitle_),
                 originator ? std::to_string(*originator) : std::string("absent"));
  }
  return job;
}

IntakeAnswer SubOperationIntake::refuse(const std::string& sopInstance, std::optional<std::uint16_t> originator,
                                        std::uint16_t statusCode, const std::string& reason) {
  if (std::shared_ptr<RetrieveJob> job = admit(sopInstance, originator)) {
    StoreOutcome failed;
    failed.status = statusCode;
    failed.errorComment = reason;
    job->recordRefusal(sopInstance, failed);
  }
  return {statusCode, reason};
}

IntakeAnswer SubOperationIntake::accept(SubOperation op) {
  std::shared_ptr<RetrieveJob> job = admit(op.sopInstance, op.originatorMessageId);
  if (!job) return {status::kProcessingFailure, "no outstanding retrieve for this instance"};
  bool counted = false;
  auto fail = [&](const std::string& reason) {
    StoreOutcome failed;
    failed.errorComment = reason;
    counted = true;
    job->recordRefusal(op.sopInstance, failed);
    return IntakeAnswer{refusalStatus(reason), reason};  // one status per reason the object is not trusted
  };
  try {
    DcmDataset& dataset = *op.dataset;
    if (!job->request().matches(dataset)) {
      spdlog::warn("audit: retrieve {}: instance {} from PACS {} is not part of what {} asked for; refused",
                   job->upstreamMessageId(), printable(op.sopInstance), printable(pacsAeTitle_), job->request().requesterAeTitle);
      return fail("not part of this retrieve");
    }
    E_TransferSyntax xfer = op.xfer;
    // Pixel values in the clear may be re-encoded losslessly for the destination; ciphertext not.
    Transcoding transcoding = Transcoding::NativeOnly;
    try {
      if (!codecs::hasKeyReference(dataset)) {
        if (!mayCarryPixels(dataset)) {
          // Structured reports, key objects, presentation states, encapsulated documents: the
          // gateway forwarded them unchanged on the way in; there is nothing to decrypt.
          transcoding = Transcoding::Lossless;
        } else {
          // Pixels in the clear are handed out only when the gateway cannot have encrypted them
          // (passthrough_policy.h): a stripped key reference must not pass as a legacy object.
          const PassthroughDecision pass = verifier_.passthrough(dataset);
          if (!pass.allowed) {
            spdlog::warn("audit: security alert: retrieve {}: instance {} from PACS {} not delivered to {} ({}): {}",
                         job->upstreamMessageId(), printable(op.sopInstance), printable(pacsAeTitle_),
                         job->request().destinationAeTitle(), pass.code, pass.reason);
            audit::securityAlert(pass.code, pass.reason, {pacsAeTitle_, pacsAddress_}, op.sopInstance);
            return fail(pass.code);
          }
          spdlog::info("audit: passthrough: retrieve {}: instance {} delivered unencrypted to {}: {}",
                       job->upstreamMessageId(), printable(op.sopInstance), job->request().destinationAeTitle(), pass.reason);
          job->countPassthrough();
          transcoding = Transcoding::Lossless;
        }
      } else if (job->request().relayPeer != nullptr) {
        verifier_.attachRelayCapsule(dataset, *job->request().relayPeer);
      } else if (job->request().access == config::Access::Decrypt) {
        if (op.spooled) {
          xfer = verifier_.restoreSpooled(dataset, xfer, op.spooled, job->keyReleases());
          // Its Pixel Data is decrypted from the file as it is sent: native syntaxes only, never re-encoded.
          transcoding = Transcoding::NativeOnly;
        } else {
          xfer = verifier_.restore(dataset, xfer, job->keyReleases());
          transcoding = Transcoding::Lossless;
        }
      }
    } catch (const codecs::CryptError& e) {
      spdlog::warn("audit: security alert: retrieve {}: instance {} not delivered to {} ({}): {}",
                   job->upstreamMessageId(), printable(op.sopInstance), job->request().destinationAeTitle(),
                   codecs::toString(e.kind()), e.what());
      audit::securityAlert(codecs::toString(e.kind()), e.what(), {pacsAeTitle_, pacsAddress_}, op.sopInstance);
      return fail(codecs::toString(e.kind()));
    }
    // Verified: hand it to the delivery thread and let the PACS send the next one meanwhile. What
    // the destination makes of it reaches the requester in the counts and the failed-UID list.
    // The received bytes keep counting against the memory budget while the instance waits.
    if (!job->enqueue({std::move(op.dataset), xfer, transcoding, op.sopClass, op.sopInstance, op.memory.handOver()},
                      queueRoom_)) {
      return fail("destination too slow");
    }
    counted = true;
    return {status::kSuccess, ""};
  } catch (const std::exception& e) {
    spdlog::error("retrieve {}: instance {} failed: {}", job->upstreamMessageId(), printable(op.sopInstance), e.what());
    if (!counted) return fail("gateway error");
    return {status::kProcessingFailure, "gateway error"};
  }
}

}  // namespace pacsgw::gateway
