"""Retrieval when things go wrong around it: a move destination nobody listens on, and the gateway
told to stop while a retrieve is still delivering. Real Orthanc, real DCMTK tools; assertions on
the DIMSE responses, the gateway's log and its exit status.
"""

import sys
import threading
import time
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pacsgw_harness as h  # noqa: E402
import retrieve_helpers as rh  # noqa: E402
import test_retrieve_path as rp  # noqa: E402  (the shared fixture; its test classes are not re-run here)


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class UnreachableDestinationTest(rp.RetrieveTestBase):

    def test_unreachable_destination_costs_one_connection_attempt(self):
        # WS3 is configured but nothing listens on its port.
        study = self.make_study("UNREACHABLE", [("ct_le.dcm", "s1")] * 5)
        offset = self.gateway.log_size()
        result = self.move("WS3", self.study_keys(study))
        self.assert_final(result, rh.STATUS_UNABLE_TO_PERFORM_SUBOPS, completed=0, failed=len(study.originals))
        self.assertEqual(set(result.failed_uids), set(study.originals), result.describe())
        log = self.gateway.log_since(offset)
        self.assertEqual(log.count("cannot associate with WS3"), 1,
                         f"the gateway tried the unreachable destination more than once:\n{log}")
        self.assertEqual(log.count("destination WS3 unreachable"), len(study.originals) - 1, log)
        self.assert_gateway_serving()


class ShutdownDuringRetrieveTest(rp.RetrieveTestBase):

    def test_sigterm_while_a_move_is_delivering_exits_cleanly(self):
        study = self.make_study("SHUTDOWN", [("ct_le.dcm", "s1")] * 6)
        # Each store takes 3 s at the destination, so the move is still running when the stop comes.
        scp = self.destination("WS1", extra=["--sleep-during", "3"])
        scp.start()
        outcome = {}
        try:
            offset = self.gateway.log_size()
            mover = threading.Thread(target=lambda: outcome.update(result=self.move("WS1", self.study_keys(study))))
            mover.start()
            wait_for(lambda: "accepted: decrypt access, destination WS1" in self.gateway.log_since(offset), 30,
                     "the C-MOVE to start")
            wait_for(lambda: len(scp.files()) >= 1 or "Received Store Request" in scp.log(), 30,
                     "the first delivery")
            stopped_at = time.monotonic()
            status = self.gateway.stop(timeout=60)
            took = time.monotonic() - stopped_at
            self.assertEqual(status, 0, f"pacsgw did not exit cleanly on SIGTERM ({took:.1f} s)\n"
                                        f"{h.tail(self.gateway.log_path)}")
            mover.join(timeout=120)
            self.assertFalse(mover.is_alive(), "movescu still waiting after the gateway stopped")
        finally:
            scp.stop()
        log = self.gateway.log_since(offset)
        self.assertIn("stopping", log)
        result = outcome.get("result")
        if result is not None and any(r.status not in rh.STATUS_PENDING for r in result.responses):
            # If a final response made it out, it must not claim the whole study.
            final = result.final
            self.assertFalse(final.status == rh.STATUS_SUCCESS and final.completed == len(study.originals)
                             and len(scp.files()) < len(study.originals), result.describe())
        # The class teardown checks the gateway again: bring it back.
        self.gateway.start()
        self.assert_gateway_serving()


if __name__ == "__main__":
    h.main()
