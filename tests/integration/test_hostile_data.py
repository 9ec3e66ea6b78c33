#!/usr/bin/env python3
"""Hostile and broken data sets: a deflate bomb, a lying 4 GB element length, a truncated object, an
object that already carries a key-reference block, garbage PDUs. Each gets a precise DIMSE status (or
an abort for a broken PDU stream), nothing reaches the PACS, the gateway's memory stays bounded, and a
real modality storing at the same time is not affected.

Run alone:  PACSGW_BIN=build/pacsgw python3 tests/integration/test_hostile_data.py -v
"""

import secrets
import struct
import sys
import threading
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import dicom_wire as wire  # noqa: E402
import pacsgw_harness as h  # noqa: E402

MAX_OBJECT_MB = 128
OUT_OF_RESOURCES = 0xA700
CANNOT_UNDERSTAND = 0xC000


def new_uid() -> str:
    return "2.25." + str(int.from_bytes(secrets.token_bytes(15), "big"))


def memory_kib(pid: int) -> dict:
    """VmRSS and VmHWM (peak RSS) of a process, in KiB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


def reset_peak(pid: int):
    """Restarts VmHWM at the current RSS (Linux: writing 5 to clear_refs), so each test sees its own peak."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


class LimitedGateway(h.Gateway):
    def config_yaml(self) -> str:
        return super().config_yaml() + (f"limits:\n  max_object_mb: {MAX_OBJECT_MB}\n"
                                        f"  max_association_mb: {MAX_OBJECT_MB}\n  max_in_flight_mb: 512\n")


class HostileData(h.PacsAndGatewayTestCase):
    gateway_class = LimitedGateway
    gateway_options = {"log_level": "info"}

    def associate(self, transfer_syntax=wire.EXPLICIT_LE) -> wire.Association:
        assoc = wire.Association(self.gateway.port, "GATEWAY", "CT1", transfer_syntax=transfer_syntax)
        self.assertTrue(assoc.accepted, f"association not accepted (PDU type {assoc.reply_type})")
        return assoc

    def store_real_object(self, name):
        """A real modality store through the gateway; asserts ciphertext reached the PACS."""
        original = h.test_file("ct_le.dcm")
        copy = h.fresh_copy(original, self.workdir, name)
        result = h.storescu(self.gateway.port, [copy], timeout=60)
        self.assertTrue(result.all_succeeded(1), result.describe())
        stored = h.read(self.pacs.download_by_uid(h.sop_instance_uid(copy), self.workdir / f"{name}.pacs"))
        self.assertTrue(h.key_reference(stored))
        self.assertNotEqual(h.pixel_element_bytes(stored), h.pixel_element_bytes(h.read(original)))

    def assert_not_in_pacs(self, uid):
        self.assertIsNone(self.pacs.find_instance(uid), "a refused object reached the PACS")

    def test_deflate_bomb_is_refused_with_bounded_memory(self):
        uid = new_uid()
        rows = columns = 32768  # 2 GiB of 16-bit zeros once inflated
        header = wire.image_header(uid, new_uid(), rows, columns)
        reset_peak(self.gateway.proc.pid)
        before = memory_kib(self.gateway.proc.pid)
        # A real modality stores while the bomb is being received.
        concurrent_errors = []
        concurrent = threading.Thread(target=lambda: concurrent_errors.append(self._try_store("during-bomb")))
        assoc = self.associate(wire.DEFLATED_LE)
        assoc.send_store_command(uid)
        sent = [0]

        def pieces():
            for piece in wire.deflate_bomb_chunks(header, rows * columns * 2):
                sent[0] += len(piece)
                yield piece

        concurrent.start()
        assoc.send_dataset(pieces())
        status = assoc.read_store_status()
        assoc.release()
        concurrent.join(120)
        after = memory_kib(self.gateway.proc.pid)
        growth_mib = (after["VmHWM"] - before["VmRSS"]) / 1024
        print(f"\ndeflate bomb: {sent[0] / 1e6:.2f} MB on the wire for {rows * columns * 2 / 2**30:.0f} GiB inflated; "
              f"status 0x{status or 0:04X}; gateway RSS before {before['VmRSS'] / 1024:.0f} MiB, "
              f"peak {after['VmHWM'] / 1024:.0f} MiB (+{growth_mib:.0f} MiB), now {after['VmRSS'] / 1024:.0f} MiB; "
              f"limit {MAX_OBJECT_MB} MiB per object")
        self.assertEqual(status, OUT_OF_RESOURCES)
        self.assertLess(sent[0], 10_000_000)
        # The bomb was cut off at the object limit (plus one PDV's inflation and the parser's copy).
        self.assertLess(growth_mib, MAX_OBJECT_MB + 192)
        self.assertEqual(concurrent_errors, [None], "a real store during the bomb failed")
        self.assert_not_in_pacs(uid)
        self.assertIn("larger than the limit", self.gateway.log())

    def _try_store(self, name):
        try:
            self.store_real_object(name)
        except AssertionError as e:
            return e
        return None

    def test_lying_4gb_length_is_refused(self):
        uid = new_uid()
        header = wire.image_header(uid, new_uid(), 512, 512, pixel_length=0xFFFFFFF0)
        reset_peak(self.gateway.proc.pid)
        before = memory_kib(self.gateway.proc.pid)
        assoc = self.associate()
        assoc.send_store_command(uid)
        assoc.send_dataset([header, bytes(100_000)])
        status = assoc.read_store_status()
        assoc.release()
        after = memory_kib(self.gateway.proc.pid)
        print(f"\nlying length: status 0x{status or 0:04X}; RSS before {before['VmRSS'] / 1024:.0f} MiB, "
              f"now {after['VmRSS'] / 1024:.0f} MiB, peak {after['VmHWM'] / 1024:.0f} MiB")
        self.assertEqual(status, CANNOT_UNDERSTAND)
        self.assertLess((after["VmHWM"] - before["VmRSS"]) / 1024, 64, "the declared 4 GB were allocated")
        self.assert_not_in_pacs(uid)
        self.store_real_object("after-lying-length.dcm")

    def test_truncated_object_is_refused_and_the_association_goes_on(self):
        uid = new_uid()
        header = wire.image_header(uid, new_uid(), 256, 256)
        assoc = self.associate()
        assoc.send_store_command(uid, message_id=1)
        assoc.send_dataset([header, bytes(256 * 256)])  # half of the pixel data
        self.assertEqual(assoc.read_store_status(), CANNOT_UNDERSTAND)
        # The same association still works for a complete object.
        good = new_uid()
        assoc.send_store_command(good, message_id=2)
        assoc.send_dataset([wire.image_header(good, new_uid(), 64, 64), bytes(64 * 64 * 2)])
        self.assertEqual(assoc.read_store_status(), 0x0000)
        assoc.release()
        self.assert_not_in_pacs(uid)
        self.assertIsNotNone(self.pacs.find_instance(good))
        self.assertIn("truncated", self.gateway.log())

    def test_object_with_key_reference_block_is_refused(self):
        # An object the gateway encrypted earlier, re-sent under a new SOP Instance UID.
        self.store_real_object("keyref-source.dcm")
        source = sorted(self.workdir.glob("keyref-source.dcm.pacs"))[0]
        again = h.fresh_copy(source, self.workdir, "keyref-again.dcm", new_study=False)
        result = h.storescu(self.gateway.port, [again], timeout=60)
        self.assertEqual(result.statuses, ["Error: CannotUnderstand"], result.describe())
        self.assert_not_in_pacs(h.sop_instance_uid(again))

    def test_garbage_pdus_after_association_abort_only_that_association(self):
        cases = {
            "unknown PDU type": struct.pack(">BBI", 0x09, 0, 4) + bytes(4),
            "PDV longer than its PDU": struct.pack(">BBI", 0x04, 0, 8) + struct.pack(">IBB", 4000, 1, 3) + bytes(2),
            "PDV on an unknown context": struct.pack(">BBI", 0x04, 0, 8) + struct.pack(">IBB", 4, 77, 3) + bytes(2),
            "P-DATA announcing 2 GB": struct.pack(">BBI", 0x04, 0, 0x7FFFFFF0) + bytes(64),
        }
        for name, pdu in cases.items():
            with self.subTest(name):
                assoc = self.associate()
                assoc.send_raw(pdu)
                self.assertTrue(assoc.closed_by_peer(30), f"{name}: association neither aborted nor closed")
                assoc.close()
        # A command followed by garbage instead of a data set.
        uid = new_uid()
        assoc = self.associate()
        assoc.send_store_command(uid)
        assoc.send_pdv(b"\xff" * 64, command=False, last=True)
        status = assoc.read_store_status()
        assoc.release()
        self.assertEqual(status, CANNOT_UNDERSTAND)
        self.assert_not_in_pacs(uid)
        self.assertTrue(self.gateway.alive())
        self.store_real_object("after-garbage-pdus.dcm")


if __name__ == "__main__":
    unittest.main(verbosity=2)
