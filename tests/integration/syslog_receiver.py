"""A real syslog receiver for the audit trail tests: Debian's rsyslogd with imtcp over TLS (RFC 5425,
GnuTLS stream driver), with its own configuration, work directory, pid file and loopback port. Every
message it receives is written to one file, one per line, with the fields rsyslog parsed and the raw
message, so a test can check both what rsyslog understood and the exact bytes that were sent.

Certificates are generated per test with the openssl command line tool.
"""

import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pacsgw_harness as h

RSYSLOGD = "/usr/sbin/rsyslogd"
BOM = "\ufeff"


def available() -> str:
    """Empty when rsyslogd with the GnuTLS driver is installed, else why not."""
    if not Path(RSYSLOGD).exists():
        return "rsyslogd not installed (Debian package rsyslog)"
    if not any(Path(d).joinpath("lmnsd_gtls.so").exists() for d in ("/usr/lib/x86_64-linux-gnu/rsyslog",
                                                                      "/usr/lib/aarch64-linux-gnu/rsyslog",
                                                                      "/usr/lib/rsyslog")):
        return "rsyslog's TLS driver not installed (Debian package rsyslog-gnutls)"
    if shutil.which("openssl") is None:
        return "openssl command not installed"
    return ""


def _openssl(*args):
    result = subprocess.run(["openssl", *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, timeout=60)
    if result.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(map(str, args))} failed:\n{result.stdout}")


@dataclass
class Credentials:
    certificate: Path
    key: Path


class CertificateAuthority:
    """A throw-away CA that signs server and client certificates for localhost / 127.0.0.1."""

    def __init__(self, directory: Path, name: str):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.certificate = self.dir / f"{name}-ca.pem"
        self.key = self.dir / f"{name}-ca.key"
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", self.key, "-out", self.certificate,
                 "-days", "2", "-subj", f"/CN=pacsgw test CA {name}")

    def issue(self, common_name: str) -> Credentials:
        key = self.dir / f"{self.name}-{common_name}.key"
        csr = self.dir / f"{self.name}-{common_name}.csr"
        cert = self.dir / f"{self.name}-{common_name}.pem"
        ext = self.dir / f"{self.name}-{common_name}.ext"
        ext.write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
                       "keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\n")
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj", f"/CN={common_name}")
        _openssl("x509", "-req", "-in", csr, "-CA", self.certificate, "-CAkey", self.key, "-CAcreateserial",
                 "-out", cert, "-days", "2", "-extfile", ext)
        return Credentials(cert, key)


@dataclass
class Received:
    facility: str
    severity: str
    app_name: str
    procid: str
    msgid: str
    structured_data: str
    raw: str  # the RFC 5424 message as received (without the octet count)

    @property
    def record(self) -> str:
        """The audit record: what follows the header and the BOM."""
        return self.raw.split(BOM, 1)[1] if BOM in self.raw else ""


class RsyslogReceiver:
    """rsyslogd -n with an imtcp TLS listener on 127.0.0.1:`port`. `client_ca` set: clients must present
    a certificate signed by it (x509/certvalid), otherwise anonymous clients are accepted."""

    def __init__(self, workdir: Path, port: int, server: Credentials, server_ca: Path, client_ca: Path = None):
        self.dir = Path(workdir)
        self.port = port
        self.server = server
        self.server_ca = server_ca
        self.client_ca = client_ca
        self.output = self.dir / "received.log"
        self.log_path = self.dir / "rsyslogd.log"
        self.pid_file = self.dir / "rsyslogd.pid"
        self.proc = None

    def config(self) -> str:
        # A client CA bundle, when mutual authentication is wanted, is the CA file rsyslog verifies with.
        ca = self.client_ca or self.server_ca
        auth = "x509/certvalid" if self.client_ca else "anon"
        return f"""
global(workDirectory="{self.dir / 'work'}" maxMessageSize="64k"
       defaultNetstreamDriver="gtls"
       defaultNetstreamDriverCAFile="{ca}"
       defaultNetstreamDriverCertFile="{self.server.certificate}"
       defaultNetstreamDriverKeyFile="{self.server.key}")
module(load="imtcp" StreamDriver.Name="gtls" StreamDriver.Mode="1" StreamDriver.AuthMode="{auth}")
input(type="imtcp" port="{self.port}" address="127.0.0.1")
template(name="fields" type="string"
         string="%syslogfacility%|%syslogseverity%|%app-name%|%procid%|%msgid%|%structured-data%|%rawmsg%\\n")
action(type="omfile" file="{self.output}" template="fields")
"""

    def start(self, timeout: float = 20):
        (self.dir / "work").mkdir(parents=True, exist_ok=True)
        conf = self.dir / "rsyslog.conf"
        conf.write_text(self.config())
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([RSYSLOGD, "-n", "-f", str(conf), "-i", str(self.pid_file)],
                                     stdout=log, stderr=subprocess.STDOUT, cwd=self.dir)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"rsyslogd exited with {self.proc.returncode}\n{h.tail(self.log_path)}")
            if self._listening():
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"rsyslogd not listening on {self.port} after {timeout} s\n{h.tail(self.log_path)}")

    def _listening(self) -> bool:
        # /proc/net/tcp instead of a probe connection (which rsyslog would log as a failed TLS session).
        wanted = f"0100007F:{self.port:04X}"
        text = Path("/proc/net/tcp").read_text()
        return any(line.split()[1] == wanted and line.split()[3] == "0A" for line in text.splitlines()[1:])

    def stop(self, timeout: float = 20) -> int:
        if self.proc is None:
            return 0
        code = h._stop_process(self.proc, timeout)
        self.proc = None
        return code

    def messages(self) -> list:
        if not self.output.exists():
            return []
        out = []
        for line in self.output.read_text(encoding="utf-8", errors="replace").splitlines():
            fields = line.split("|", 6)
            out.append(Received(*fields))
        return out

    def wait_for(self, count: int, timeout: float = 30) -> list:
        """The received messages, once there are at least `count` (bounded wait)."""
        deadline = time.monotonic() + timeout
        while True:
            got = self.messages()
            if len(got) >= count or time.monotonic() > deadline:
                return got
            time.sleep(0.1)
