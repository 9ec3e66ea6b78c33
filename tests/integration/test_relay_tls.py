#!/usr/bin/env python3
"""The site-to-site relay over DICOM TLS: two gateways, each with a TLS listener and its own
certificate from the sites' CA, relay peers configured with `tls: true` and the certificate identity
they must present; the local devices (modality, workstations, Orthanc) stay on each gateway's plain
port. Asserted: a study relayed from site A reaches PACS B and decrypts bit-exact for B's workstation,
the relay connection really is TLS (gateway B has no plain port its peer may use), and a sender
presenting a CA-valid certificate of another identity is refused and audited at site B, with nothing
stored there."""

import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pacsgw_harness as h  # noqa: E402
import retrieve_helpers as rh  # noqa: E402
import test_relay as relay  # noqa: E402
from test_dicom_tls import TlsGateway  # noqa: E402
from tls_certificates import TestCA  # noqa: E402

numpy = h.numpy
LOOPBACK = h.LOOPBACK


class TlsRelayGateway(TlsGateway):
    """A TLS gateway (listener + plain port for its local devices) with a relay: section."""

    def __init__(self, workdir, relay_yaml: str, **kwargs):
        super().__init__(workdir, **kwargs)
        self.relay_yaml = relay_yaml

    def config_yaml(self) -> str:
        return super().config_yaml() + self.relay_yaml


def relay_yaml(certificate, private_key, peer: dict) -> str:
    q = h._yaml_scalar
    return ("relay:\n"
            f"  certificate: {q(certificate)}\n"
            f"  private_key: {q(private_key)}\n"
            "  peers:\n"
            f"    - {{ name: {q(peer['name'])}, ae_title: {q(peer['ae_title'])}, host: {q(LOOPBACK)}, "
            f"port: {peer['port']}, certificate: {q(peer['certificate'])}, tls: true, "
            f"certificate_identity: {q(peer['identity'])} }}\n")


class RelayOverTlsTest(h.LogDumpingTestCase):

    @classmethod
    def setUpClass(cls):
        cls.failed = False
        cls.workdir = h.make_workdir(cls.__name__)
        ca = TestCA(cls.workdir / "pki", "sites-ca")
        cls.tls_a = ca.issue("gateway-a", "gateway-a", ["DNS:localhost", "IP:127.0.0.1"], server=True)
        tls_b = ca.issue("gateway-b", "gateway-b", ["DNS:localhost", "IP:127.0.0.1"], server=True)
        cls.impostor = ca.issue("gateway-x", "gateway-x", ["DNS:localhost", "IP:127.0.0.1"], server=True)
        relay_certs = cls.workdir / "relay-certs"
        relay_certs.mkdir()
        relay_a, relay_key_a = relay.make_certificate(relay_certs, "site-a", "ec")
        relay_b, relay_key_b = relay.make_certificate(relay_certs, "site-b", "rsa")

        plain_a, plain_b = h.free_port(), h.free_port()
        tls_port_a, tls_port_b = h.free_port(), h.free_port()
        cls.wsb_port = h.free_port()
        cls.pacs_a = h.Orthanc(cls.workdir / "pacs-a", aet="PACSA", gateway_aet="GATEWAY_A", gateway_port=plain_a)
        cls.pacs_b = h.Orthanc(cls.workdir / "pacs-b", aet="PACSB", gateway_aet="GATEWAY_B", gateway_port=plain_b)

        def tls_section(port, leaf):
            return {"port": port, "certificate": leaf.cert, "private_key": leaf.key, "ca_bundle": ca.cert,
                    "profile": "bcp195-nd"}

        cls.gateway_a = TlsRelayGateway(
            cls.workdir / "gateway-a", ae_title="GATEWAY_A", port=plain_a, upstream_port=cls.pacs_a.dicom_port,
            upstream_aet="PACSA", tls=tls_section(tls_port_a, cls.tls_a),
            peers_yaml=("modalities:\n"
                        f'  - {{ ae_title: "CT1", host: "{LOOPBACK}", tls: false }}\n'
                        "workstations:\n"
                        f'  - {{ ae_title: "WSA", host: "{LOOPBACK}", port: {h.free_port()}, '
                        'access: "ciphertext", tls: false }\n'),
            relay_yaml=relay_yaml(relay_a, relay_key_a, {"name": "site-b", "ae_title": "GATEWAY_B",
                                                         "port": tls_port_b, "certificate": relay_b,
                                                         "identity": "CN=gateway-b"}))
        # Gateway B's plain port serves only its PACS and workstation (tls: false); the peer gateway is
        # configured for TLS, so a relay that arrived there in clear would be refused.
        cls.gateway_b = TlsRelayGateway(
            cls.workdir / "gateway-b", ae_title="GATEWAY_B", port=plain_b, upstream_port=cls.pacs_b.dicom_port,
            upstream_aet="PACSB", tls=tls_section(tls_port_b, tls_b),
            peers_yaml=("workstations:\n"
                        f'  - {{ ae_title: "WSB", host: "{LOOPBACK}", port: {cls.wsb_port}, '
                        'access: "decrypt", tls: false }\n'),
            relay_yaml=relay_yaml(relay_b, relay_key_b, {"name": "site-a", "ae_title": "GATEWAY_A",
                                                         "port": tls_port_a, "certificate": relay_a,
                                                         "identity": "CN=gateway-a"}))
        cls.logs = {"gateway A": cls.gateway_a.log_path, "gateway B": cls.gateway_b.log_path,
                    "Orthanc A": cls.pacs_a.log_path, "Orthanc B": cls.pacs_b.log_path}
        cls.processes = [cls.gateway_a, cls.gateway_b, cls.pacs_a, cls.pacs_b]
        try:
            for p in (cls.pacs_a, cls.pacs_b, cls.gateway_b, cls.gateway_a):
                p.start()
        except Exception:
            cls.stop_all()
            raise

    @classmethod
    def stop_all(cls):
        return [p.stop() for p in cls.processes]

    @classmethod
    def tearDownClass(cls):
        alive = cls.gateway_a.alive() and cls.gateway_b.alive()
        statuses = cls.stop_all()
        if cls.failed or not alive or h.keep_temp_dirs():
            sys.stderr.write(f"\n[{cls.__name__}] test files kept in {cls.workdir}\n")
        else:
            shutil.rmtree(cls.workdir, ignore_errors=True)
        if not alive:
            raise AssertionError("a gateway died during the relay-over-TLS tests")
        if statuses[0] != 0 or statuses[1] != 0:
            raise AssertionError(f"a gateway did not exit cleanly on SIGTERM: {statuses[:2]}")

    def store_at_a(self, name: str, count: int) -> dict:
        study_uid, originals = relay.new_ct_study(self.workdir / "originals" / name, name, count)
        result = h.storescu(self.gateway_a.port, list(originals.values()), called="GATEWAY_A", calling="CT1")
        self.assertTrue(result.all_succeeded(count), result.describe())
        return {"uid": study_uid, "originals": originals}

    def relay_to_b(self, study: dict) -> rh.QRResult:
        return rh.movescu(self.gateway_a.port, "GATEWAY_B",
                          {"QueryRetrieveLevel": "STUDY", "StudyInstanceUID": study["uid"]},
                          calling="WSA", called="GATEWAY_A")

    def test_study_relayed_over_tls_decrypts_at_site_b(self):
        study = self.store_at_a("TLS", 2)
        result = self.relay_to_b(study)
        self.assertEqual(result.final.status, rh.STATUS_SUCCESS, result.describe())
        self.assertEqual(result.final.completed, 2, result.describe())
        for sop in study["originals"]:
            self.assertIsNotNone(self.pacs_b.find_instance(sop), f"{sop} did not reach PACS B")
        accepted = [line for line in self.gateway_b.log().splitlines()
                    if "association from GATEWAY_A@" in line and " accepted (" in line]
        self.assertTrue(accepted, "gateway B logged no association from its peer")
        self.assertTrue(all("DICOM TLS, certificate" in line and "CN=gateway-a" in line for line in accepted),
                        "the relay association was not TLS with the peer's certificate:\n" + "\n".join(accepted))

        directory = self.workdir / "received" / "wsb"
        with rh.StoreSCP("WSB", self.wsb_port, directory) as scp:
            moved = rh.movescu(self.gateway_b.port, "WSB",
                               {"QueryRetrieveLevel": "STUDY", "StudyInstanceUID": study["uid"]},
                               calling="WSB", called="GATEWAY_B")
            files = scp.files()
        self.assertEqual(moved.final.status, rh.STATUS_SUCCESS, moved.describe())
        by_uid = {h.sop_instance_uid(p): p for p in files}
        self.assertEqual(set(by_uid), set(study["originals"]))
        for sop, path in by_uid.items():
            got, want = h.read(path), h.read(study["originals"][sop])
            self.assertTrue(numpy.array_equal(h.native_pixel_values(got), h.native_pixel_values(want)),
                            f"{sop}: pixel values differ from the original")

    def test_sender_with_another_identity_is_refused_at_site_b(self):
        study = self.store_at_a("IMPOSTOR", 1)
        audit_before = len((self.gateway_b.data_dir / "audit.log").read_text(errors="replace"))
        # Gateway A restarted with a certificate the CA signed for another name: valid TLS, wrong identity.
        self.gateway_a.stop()
        genuine = dict(self.gateway_a.tls)
        self.gateway_a.tls.update(certificate=self.impostor.cert, private_key=self.impostor.key)
        try:
            self.gateway_a.start()
            result = self.relay_to_b(study)
        finally:
            self.gateway_a.stop()
            self.gateway_a.tls = genuine
            self.gateway_a.start()
        self.assertNotEqual(result.final.status, rh.STATUS_SUCCESS, result.describe())
        self.assertEqual(result.final.completed, 0, result.describe())
        self.assertIsNone(self.pacs_b.find_instance(next(iter(study["originals"]))),
                          "an instance relayed by the impostor reached PACS B")
        audit = (self.gateway_b.data_dir / "audit.log").read_text(errors="replace")[audit_before:]
        self.assertIn("PEER-IDENTITY-MISMATCH", audit, "no audit record of the refused peer")


if __name__ == "__main__":
    h.main()
