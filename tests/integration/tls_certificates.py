"""Test PKI for the DICOM TLS tests, made with the openssl command line at test time: two CAs and leaf
certificates (the gateway's, valid clients, a client of the other CA, an expired one), each with its
own private key. Nothing is shipped: every run makes fresh keys in its temp dir."""

import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Leaf:
    key: Path
    cert: Path


def _openssl(*args, cwd: Path):
    result = subprocess.run(["openssl", *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(map(str, args))} failed:\n{result.stderr}")


class TestCA:
    """A CA that signs leaves with explicit validity dates via `openssl ca`. RSA 2048 / SHA-256 keys
    throughout: the BCP 195 suites of TLS 1.2 are RSA-authenticated."""

    def __init__(self, directory: Path, name: str):
        self.dir = Path(directory) / name
        (self.dir / "issued").mkdir(parents=True, exist_ok=True)
        (self.dir / "index.txt").write_text("")
        (self.dir / "serial").write_text("1000\n")
        self.key = self.dir / "ca.key"
        self.cert = self.dir / "ca.pem"
        self.conf = self.dir / "ca.cnf"
        self.conf.write_text(
            "[ ca ]\ndefault_ca = test_ca\n"
            "[ test_ca ]\n"
            f"database = {self.dir / 'index.txt'}\nnew_certs_dir = {self.dir / 'issued'}\n"
            f"serial = {self.dir / 'serial'}\n"
            "default_md = sha256\npolicy = any_name\nunique_subject = no\nemail_in_dn = no\n"
            "[ any_name ]\ncommonName = supplied\norganizationName = optional\n")
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", "30",
                 "-keyout", self.key, "-out", self.cert, "-subj", f"/O=pacsgw test/CN={name}",
                 "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
                 cwd=self.dir)

    def issue(self, name: str, common_name: str, alt_names=(), start: str = None, end: str = None,
              server: bool = False) -> Leaf:
        """A leaf for `common_name`; start/end as YYYYMMDDHHMMSSZ (default: yesterday .. +30 days)."""
        key, csr, cert = self.dir / f"{name}.key", self.dir / f"{name}.csr", self.dir / f"{name}.pem"
        ext = self.dir / f"{name}.ext"
        lines = ["[ leaf ]", "basicConstraints = CA:FALSE", "keyUsage = critical,digitalSignature,keyEncipherment",
                 "extendedKeyUsage = " + ("serverAuth,clientAuth" if server else "clientAuth,serverAuth")]
        if alt_names:
            lines.append("subjectAltName = " + ",".join(alt_names))
        ext.write_text("\n".join(lines) + "\n")
        _openssl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr,
                 "-subj", f"/O=pacsgw test/CN={common_name}", cwd=self.dir)
        dates = []
        if start:
            dates += ["-startdate", start]
        if end:
            dates += ["-enddate", end]
        else:
            dates += ["-days", "30"]
        _openssl("ca", "-batch", "-notext", "-config", self.conf, "-cert", self.cert, "-keyfile", self.key,
                 "-in", csr, "-out", cert, "-extfile", ext, "-extensions", "leaf", *dates, cwd=self.dir)
        key.chmod(0o600)
        return Leaf(key, cert)


class TlsClientProxy:
    """DCMTK 3.6.7's movescu and getscu have no TLS options (storescu, storescp, echoscu and findscu do).
    This stands in for their TLS stack: it accepts plain connections on a loopback port and relays each
    over its own TLS connection, with the given client certificate, to the TLS listener at
    `target_port` (Python's ssl module, i.e. OpenSSL). The gateway sees a TLS client at 127.0.0.1."""

    def __init__(self, target_port: int, leaf: Leaf, ca_cert: Path):
        import socket
        import ssl
        import threading
        self._socket, self._ssl, self._threading = socket, ssl, threading
        self.target_port = target_port
        self.context = ssl.create_default_context(cafile=str(ca_cert))
        self.context.load_cert_chain(str(leaf.cert), str(leaf.key))
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.port = self.listener.getsockname()[1]
        self.errors = []
        self._stop = False

    def __enter__(self):
        self._threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self._stop = True
        self.listener.close()

    def _accept(self):
        while not self._stop:
            try:
                plain, _ = self.listener.accept()
            except OSError:
                return
            self._threading.Thread(target=self._relay, args=(plain,), daemon=True).start()

    def _relay(self, plain):
        import select
        try:
            raw = self._socket.create_connection(("127.0.0.1", self.target_port), timeout=30)
            tls = self.context.wrap_socket(raw, server_hostname="localhost")
        except (OSError, self._ssl.SSLError) as e:
            self.errors.append(str(e))
            plain.close()
            return
        try:
            while True:
                if not tls.pending():
                    ready, _, _ = select.select([plain, tls], [], [], 120)
                    if not ready:
                        return
                else:
                    ready = [tls]
                if plain in ready:
                    data = plain.recv(65536)
                    if not data:
                        return
                    tls.sendall(data)
                if tls in ready:
                    # Readable may mean TLS records without application data (TLS 1.3 session tickets):
                    # read without blocking, or a wait here would hold up the other direction.
                    tls.settimeout(0)
                    try:
                        data = tls.recv(65536)
                    except self._ssl.SSLWantReadError:
                        continue
                    finally:
                        tls.settimeout(120)
                    if not data:
                        return
                    plain.sendall(data)
        except (OSError, self._ssl.SSLError) as e:
            self.errors.append(str(e))
        finally:
            plain.close()
            tls.close()
