"""Shared machinery for the integration tests: real Orthanc, real `pacsgw serve`, real DCMTK tools.

Everything listens on free loopback ports and lives in a temporary directory, so tests can run
side by side. Assertions are made on what the peers actually received, never on DCMTK exit codes
(several DCMTK tools return 0 after a failed negotiation or an abort).
"""

import json
import os
import secrets
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path


def _reexec_with_debian_python():
    # pydicom and numpy come from Debian (python3-pydicom, python3-numpy). A pyenv or venv
    # interpreter earlier in PATH does not see them, so fall back to the system interpreter once.
    system_python = "/usr/bin/python3"
    if os.environ.get("PACSGW_HARNESS_REEXEC") or not os.path.exists(system_python):
        return
    if os.path.realpath(sys.executable) == os.path.realpath(system_python):
        return
    os.environ["PACSGW_HARNESS_REEXEC"] = "1"
    os.execv(system_python, [system_python] + sys.argv)


try:
    import numpy
    import pydicom
except ImportError:
    _reexec_with_debian_python()
    raise

REPO_ROOT = Path(__file__).resolve().parents[2]
LOOPBACK = "127.0.0.1"
KEYREF_GROUP = 0x0077
KEYREF_CREATOR = "PACSGW KEYREF 1"
PIXEL_DATA_TAG = 0x7FE00010


# ---------------------------------------------------------------------------------------------
# Locations
# ---------------------------------------------------------------------------------------------

def cache_dir() -> Path:
    return Path(os.environ.get("PACSGW_TEST_CACHE", REPO_ROOT / "tests" / "data" / "cache"))


def test_file(name: str) -> Path:
    """A file prepared by scripts/fetch-test-data.sh. Missing data is an error, never a skip."""
    path = cache_dir() / name
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run scripts/fetch-test-data.sh first")
    return path


def pacsgw_bin() -> Path:
    # Absolute, because the peers run with their own working directories.
    path = Path(os.environ.get("PACSGW_BIN", REPO_ROOT / "build" / "pacsgw")).resolve()
    if not os.access(path, os.X_OK):
        raise FileNotFoundError(f"pacsgw executable not found at {path} (set PACSGW_BIN)")
    return path


def orthanc_bin() -> str:
    found = shutil.which("Orthanc") or ("/usr/sbin/Orthanc" if os.path.exists("/usr/sbin/Orthanc") else None)
    if not found:
        raise FileNotFoundError("Orthanc not installed (Debian package 'orthanc')")
    return found


def keep_temp_dirs() -> bool:
    return os.environ.get("PACSGW_KEEP_TEST_DIRS", "") not in ("", "0")


def make_workdir(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"pacsgw-{prefix}-"))


def tail(path: Path, lines: int = 80) -> str:
    try:
        text = Path(path).read_text(errors="replace")
    except FileNotFoundError:
        return f"(no {path})"
    return "\n".join(text.splitlines()[-lines:])


# ---------------------------------------------------------------------------------------------
# Ports and processes
# ---------------------------------------------------------------------------------------------

_ports_handed_out = set()
_ports_lock = threading.Lock()


def free_port() -> int:
    """A loopback TCP port nobody listens on now and that this process has not handed out yet."""
    with _ports_lock:
        for _ in range(100):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.bind((LOOPBACK, 0))
                port = s.getsockname()[1]
            if port not in _ports_handed_out:
                _ports_handed_out.add(port)
                return port
    raise RuntimeError("no free loopback port found")


def port_open(port: int, host: str = LOOPBACK) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def tool_env(extra: dict = None) -> dict:
    env = dict(os.environ)
    # Nagle plus delayed ACK costs ~40 ms per DIMSE round trip on loopback with DCMTK 3.6.7.
    env["TCP_NODELAY"] = "1"
    if extra:
        env.update(extra)
    return env


@dataclass
class ToolResult:
    args: list
    returncode: int
    output: str  # stdout and stderr interleaved
    seconds: float

    def describe(self) -> str:
        return f"$ {' '.join(map(str, self.args))}\n(exit {self.returncode}, {self.seconds:.2f} s)\n{self.output}"


def run_tool(args, timeout: float = 120, env: dict = None, cwd=None) -> ToolResult:
    """Runs a command with TCP_NODELAY=1 and returns its combined output. Never checks the exit code."""
    args = [str(a) for a in args]
    started = time.monotonic()
    try:
        proc = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=tool_env(env),
                              cwd=cwd, timeout=timeout, text=True, errors="replace")
    except subprocess.TimeoutExpired as e:
        partial = e.output if isinstance(e.output, str) else (e.output or b"").decode(errors="replace")
        raise AssertionError(f"timed out after {timeout} s: {' '.join(args)}\n{partial}") from None
    return ToolResult(args, proc.returncode, proc.stdout, time.monotonic() - started)


def _stop_process(proc: subprocess.Popen, grace: float) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    return proc.returncode


# ---------------------------------------------------------------------------------------------
# DICOM sending with DCMTK
# ---------------------------------------------------------------------------------------------

@dataclass
class StoreResult:
    """What a storescu / dcmsend run reported, parsed from its verbose output."""
    tool: ToolResult
    statuses: list = field(default_factory=list)  # one text per C-STORE response, e.g. "Success"

    @property
    def output(self) -> str:
        return self.tool.output

    @property
    def association_rejected(self) -> bool:
        return "Association Rejected" in self.output

    @property
    def association_accepted(self) -> bool:
        return "Association Accepted" in self.output

    @property
    def successes(self) -> int:
        return sum(1 for s in self.statuses if s.startswith("Success"))

    @property
    def failures(self) -> list:
        return [s for s in self.statuses if not (s.startswith("Success") or s.startswith("Warning"))]

    def all_succeeded(self, count: int) -> bool:
        return len(self.statuses) == count and self.successes == count

    def describe(self) -> str:
        return f"statuses={self.statuses}\n{self.tool.describe()}"


def _parse_store_statuses(output: str) -> list:
    statuses = []
    for line in output.splitlines():
        # storescu -v: "I: Received Store Response (Success)"; dcmsend -v: "I: Received C-STORE Response (Success)"
        for marker in ("Received Store Response (", "Received C-STORE Response ("):
            at = line.find(marker)
            if at >= 0:
                text = line[at + len(marker):]
                statuses.append(text[:text.rfind(")")] if ")" in text else text)
    return statuses


def storescu(port: int, files, called: str = "GATEWAY", calling: str = "CT1", extra=(), timeout: float = 180,
             host: str = LOOPBACK) -> StoreResult:
    """Uncompressed sends. storescu may convert between uncompressed transfer syntaxes."""
    args = ["storescu", "-v", "-ta", "30", "-td", "120", "-aec", called, "-aet", calling, *extra,
            host, port, *files]
    result = run_tool(args, timeout=timeout)
    return StoreResult(result, _parse_store_statuses(result.output))


def dcmsend(port: int, files, called: str = "GATEWAY", calling: str = "CT1", extra=(), timeout: float = 180,
            host: str = LOOPBACK) -> StoreResult:
    """Sends files in their own transfer syntax: compressed files stay compressed on the wire."""
    args = ["dcmsend", "-v", "--decompress-never", "-ta", "30", "-td", "120", "-aec", called, "-aet", calling,
            *extra, host, port, *files]
    result = run_tool(args, timeout=timeout)
    return StoreResult(result, _parse_store_statuses(result.output))


def write_storescu_profile(directory: Path, name: str, sop_classes, transfer_syntaxes) -> Path:
    """A storescu --config-file proposing exactly the given transfer syntaxes (DCMTK names or UIDs),
    e.g. to force Explicit VR Big Endian on the wire instead of letting storescu convert."""
    lines = ["[[TransferSyntaxes]]", f"[{name}TS]"]
    lines += [f"TransferSyntax{i + 1} = {ts}" for i, ts in enumerate(transfer_syntaxes)]
    lines += ["", "[[PresentationContexts]]", f"[{name}PC]"]
    lines += [f"PresentationContext{i + 1} = {sop}\\{name}TS" for i, sop in enumerate(sop_classes)]
    lines += ["", "[[Profiles]]", f"[{name}]", f"PresentationContexts = {name}PC", ""]
    path = Path(directory) / f"storescu-{name}.cfg"
    path.write_text("\n".join(lines))
    return path


def fresh_copy(source: Path, directory: Path, name: str = None, new_study: bool = True) -> Path:
    """Copies a test file with a new SOP Instance UID (and by default new Study / Series UIDs) so
    tests never collide in the PACS or in the keystore."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / (name or f"{Path(source).stem}-{secrets.token_hex(4)}.dcm")
    shutil.copyfile(source, target)
    args = ["dcmodify", "-nb", "-gin"] + (["-gst", "-gse"] if new_study else []) + [target]
    result = run_tool(args, timeout=60)
    if sop_instance_uid(target) == sop_instance_uid(source):
        raise AssertionError(f"dcmodify did not assign a new SOP Instance UID\n{result.describe()}")
    return target


# ---------------------------------------------------------------------------------------------
# Reading DICOM files (pydicom)
# ---------------------------------------------------------------------------------------------

def read(path) -> "pydicom.Dataset":
    return pydicom.dcmread(str(path))


def sop_instance_uid(path) -> str:
    return str(pydicom.dcmread(str(path), stop_before_pixels=True).SOPInstanceUID)


def transfer_syntax(ds) -> str:
    return str(ds.file_meta.TransferSyntaxUID)


def is_encapsulated(ds) -> bool:
    return ds.file_meta.TransferSyntaxUID.is_compressed


def pixel_element_bytes(ds) -> bytes:
    """The Pixel Data value exactly as stored (native: raw bytes in the file's byte order;
    encapsulated: the whole item sequence)."""
    return bytes(ds.PixelData)


def encapsulated_items(data: bytes) -> list:
    """Splits an encapsulated Pixel Data value into its items (Basic Offset Table first).
    Items are always little endian: tag (FFFE,E000), 32-bit length, value. The value pydicom
    returns may or may not still hold the (FFFE,E0DD) delimiter."""
    items, pos = [], 0
    while pos + 8 <= len(data):
        group, element, length = struct.unpack_from("<HHI", data, pos)
        pos += 8
        if (group, element) == (0xFFFE, 0xE0DD):
            return items
        if (group, element) != (0xFFFE, 0xE000) or pos + length > len(data):
            raise ValueError(f"malformed encapsulated pixel data at byte {pos - 8}")
        items.append(bytes(data[pos:pos + length]))
        pos += length
    if pos != len(data):
        raise ValueError(f"{len(data) - pos} stray bytes after the last pixel data item")
    return items


def pixel_fragments(ds) -> list:
    """Encapsulated Pixel Data: the fragments, Basic Offset Table excluded."""
    return encapsulated_items(bytes(ds.PixelData))[1:]


def pixel_payload(ds) -> list:
    """What a cipher protects: one chunk for native data, one per fragment for encapsulated data."""
    return pixel_fragments(ds) if is_encapsulated(ds) else [pixel_element_bytes(ds)]


def native_pixel_values(ds) -> "numpy.ndarray":
    """Native pixel samples as numbers, independent of the byte order they were encoded in."""
    if is_encapsulated(ds):
        raise ValueError("encapsulated pixel data")
    bits = int(ds.BitsAllocated)
    if bits == 8:
        dtype = numpy.dtype(numpy.uint8)
    else:
        signed = int(getattr(ds, "PixelRepresentation", 0)) == 1
        dtype = numpy.dtype(f"{'i' if signed else 'u'}{bits // 8}")
        dtype = dtype.newbyteorder(">" if not ds.is_little_endian else "<")
    return numpy.frombuffer(pixel_element_bytes(ds), dtype=dtype).astype(dtype.newbyteorder("="))


def key_reference(ds) -> dict:
    """The elements of the 'PACSGW KEYREF 1' private block as {element_low_byte: DataElement}.
    Empty when the object carries no key reference."""
    block = None
    for elem in ds:
        if elem.tag.group == KEYREF_GROUP and 0x10 <= elem.tag.element <= 0xFF:
            if str(elem.value).strip().rstrip("\x00") == KEYREF_CREATOR:
                block = elem.tag.element
                break
    if block is None:
        return {}
    return {elem.tag.element & 0xFF: elem for elem in ds
            if elem.tag.group == KEYREF_GROUP and (elem.tag.element >> 8) == block}


def element_as_bytes(elem) -> bytes:
    """Binary value of an OB (or UN) private element."""
    if not isinstance(elem.value, (bytes, bytearray)):
        raise AssertionError(f"{elem.tag} holds {type(elem.value).__name__}, expected binary (OB)")
    return bytes(elem.value)


def element_text(elem) -> str:
    value = elem.value
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("ascii", errors="replace").strip(" \x00")
    if isinstance(value, (list, tuple, pydicom.multival.MultiValue)):
        return "\\".join(str(v) for v in value)
    return str(value).strip(" \x00")


def pixel_data_span(path: Path) -> tuple:
    """(file offset, length) of the first protected pixel segment of a file: the whole native Pixel
    Data value, or the first fragment of encapsulated Pixel Data."""
    data = Path(path).read_bytes()
    ts = pydicom.dcmread(str(path), stop_before_pixels=True).file_meta.TransferSyntaxUID
    order = ">" if ts == pydicom.uid.ExplicitVRBigEndian else "<"
    at = data.rfind(struct.pack(order + "HH", 0x7FE0, 0x0010))  # the top-level element comes last
    if at < 0:
        raise ValueError(f"no Pixel Data in {path}")
    if ts.is_implicit_VR:
        (length,), value = struct.unpack_from(order + "I", data, at + 4), at + 8
    else:
        if data[at + 4:at + 6] not in (b"OB", b"OW"):
            raise ValueError(f"unexpected VR {data[at + 4:at + 6]!r} for Pixel Data in {path}")
        (length,), value = struct.unpack_from(order + "I", data, at + 8), at + 12
    if length != 0xFFFFFFFF:
        return value, length
    _, _, bot_length = struct.unpack_from("<HHI", data, value)
    fragment = value + 8 + bot_length
    group, element, fragment_length = struct.unpack_from("<HHI", data, fragment)
    if (group, element) != (0xFFFE, 0xE000):
        raise ValueError(f"no fragment after the Basic Offset Table in {path}")
    return fragment + 8, fragment_length


def flip_pixel_byte(source: Path, target: Path) -> int:
    """Copies `source` to `target` with one bit flipped in the middle of its first pixel segment
    (native value or first fragment); nothing else changes. Returns the file offset flipped."""
    data = bytearray(Path(source).read_bytes())
    offset, length = pixel_data_span(source)
    offset += length // 2
    data[offset] ^= 0x01
    Path(target).write_bytes(bytes(data))
    return offset


# ---------------------------------------------------------------------------------------------
# A real PACS: Orthanc
# ---------------------------------------------------------------------------------------------

class Orthanc:
    """One Orthanc on free loopback ports, its database in `workdir`."""

    def __init__(self, workdir: Path, aet: str = "TESTPACS", gateway_aet: str = "GATEWAY",
                 gateway_port: int = None):
        self.workdir = Path(workdir)
        self.aet = aet
        self.dicom_port = free_port()
        self.http_port = free_port()
        self.gateway_aet = gateway_aet
        self.gateway_port = gateway_port
        self.config_path = self.workdir / "orthanc.json"
        self.log_path = self.workdir / "orthanc.log"
        self.proc = None
        # Never route loopback REST calls through an HTTP proxy from the environment.
        self._http = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def config(self) -> dict:
        db = str(self.workdir / "db")
        modalities = {}
        if self.gateway_port:
            modalities["gateway"] = {"AET": self.gateway_aet, "Host": LOOPBACK, "Port": self.gateway_port,
                                     "AllowEcho": True, "AllowFind": True, "AllowMove": True,
                                     "AllowGet": True, "AllowStore": True}
        return {
            "Name": "pacsgw-test-pacs", "StorageDirectory": db, "IndexDirectory": db, "Plugins": [],
            "HttpServerEnabled": True, "HttpPort": self.http_port, "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "DicomServerEnabled": True, "DicomAet": self.aet, "DicomPort": self.dicom_port,
            "DicomCheckCalledAet": True, "AcceptedTransferSyntaxes": ["1.2.840.10008.1.*"],
            "DicomAlwaysAllowEcho": True, "DicomAlwaysAllowStore": True,
            "DicomAlwaysAllowFind": False, "DicomAlwaysAllowMove": False, "DicomCheckModalityHost": True,
            "DicomModalities": modalities,
            "SynchronousCMove": True, "OverwriteInstances": True, "SaveJobs": False,
        }

    def start(self, timeout: float = 60):
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(json.dumps(self.config(), indent=2))
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([orthanc_bin(), str(self.config_path)], stdout=log, stderr=subprocess.STDOUT,
                                     env=tool_env(), cwd=self.workdir)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"Orthanc exited with {self.proc.returncode}\n{tail(self.log_path)}")
            try:
                self.get_json("/system")
                if port_open(self.dicom_port):
                    return self
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"Orthanc not ready after {timeout} s\n{tail(self.log_path)}")

    def stop(self, timeout: float = 30) -> int:
        if self.proc is None:
            return 0
        return _stop_process(self.proc, timeout)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        return tail(self.log_path, 100000)

    # REST -------------------------------------------------------------------------------------
    def _request(self, path: str, data: bytes = None, method: str = None, timeout: float = 60) -> bytes:
        req = urllib.request.Request(f"http://{LOOPBACK}:{self.http_port}{path}", data=data, method=method)
        with self._http.open(req, timeout=timeout) as resp:
            return resp.read()

    def get_json(self, path: str):
        return json.loads(self._request(path, timeout=10))

    def post_json(self, path: str, body):
        payload = body if isinstance(body, (bytes, str)) else json.dumps(body)
        if isinstance(payload, str):
            payload = payload.encode()
        return json.loads(self._request(path, data=payload, method="POST"))

    def instance_ids(self) -> list:
        return self.get_json("/instances")

    def instance_count(self) -> int:
        return int(self.get_json("/statistics")["CountInstances"])

    def find_instance(self, sop_instance_uid: str):
        """Orthanc's id of the instance with this SOP Instance UID, or None."""
        hits = [h for h in self.post_json("/tools/lookup", sop_instance_uid) if h.get("Type") == "Instance"]
        return hits[0]["ID"] if hits else None

    def download(self, instance_id: str, target: Path) -> Path:
        Path(target).write_bytes(self._request(f"/instances/{instance_id}/file"))
        return Path(target)

    def download_by_uid(self, sop_instance_uid: str, target: Path) -> Path:
        instance_id = self.find_instance(sop_instance_uid)
        if instance_id is None:
            raise AssertionError(f"Orthanc holds no instance {sop_instance_uid}")
        return self.download(instance_id, target)

    def upload(self, path: Path) -> dict:
        return json.loads(self._request("/instances", data=Path(path).read_bytes(), method="POST"))


# ---------------------------------------------------------------------------------------------
# The product: pacsgw serve
# ---------------------------------------------------------------------------------------------

def _yaml_scalar(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return json.dumps(str(value))  # a JSON string is a valid double-quoted YAML scalar


class Gateway:
    """A `pacsgw serve` process with its own config, data dir and 0600 master key in `workdir`."""

    def __init__(self, workdir: Path, upstream_port: int, upstream_aet: str = "TESTPACS",
                 ae_title: str = "GATEWAY", modalities=(("CT1", LOOPBACK), ("STORESCU", LOOPBACK)),
                 workstations=(), backend: str = "aes-256-gcm", key_scope: str = "study",
                 log_level: str = "debug", port: int = None, forward: str = None, spool: dict = None,
                 binary: Path = None):
        self.workdir = Path(workdir)
        self.ae_title = ae_title
        self.port = port or free_port()
        self.upstream_port = upstream_port
        self.upstream_aet = upstream_aet
        self.modalities = list(modalities)
        self.workstations = list(workstations)  # (ae, host, port, access)
        self.backend = backend
        self.key_scope = key_scope
        self.log_level = log_level
        self.forward = forward  # None: the product's default (sync)
        self.binary = binary  # None: pacsgw_bin(); the benchmark also runs a reference build
        self.spool = dict(spool or {})  # keys of the `spool:` section
        self.data_dir = self.workdir / "gateway-data"
        self.config_path = self.workdir / "pacsgw.yaml"
        self.master_key_path = self.workdir / "master.key"
        self.keystore_path = self.data_dir / "keystore.db"
        self.log_path = self.workdir / "pacsgw.log"
        self.proc = None

    def config_yaml(self) -> str:
        q = _yaml_scalar
        lines = [
            "gateway:",
            f"  ae_title: {q(self.ae_title)}",
            f"  bind: {q(LOOPBACK)}",
            f"  port: {self.port}",
            f"  data_dir: {q(self.data_dir)}",
            f"  log_level: {q(self.log_level)}",
            "upstream:",
            f"  ae_title: {q(self.upstream_aet)}",
            f"  host: {q(LOOPBACK)}",
            f"  port: {self.upstream_port}",
        ]
        if self.forward:
            lines.append(f"  forward: {q(self.forward)}")
        if self.spool:
            lines.append("spool:")
            lines += [f"  {key}: {q(value)}" for key, value in self.spool.items()]
        lines += [
            "keystore:",
            f"  path: {q(self.keystore_path)}",
            f"  master_key_file: {q(self.master_key_path)}",
            "cipher:",
            f"  backend: {q(self.backend)}",
            f"  key_scope: {q(self.key_scope)}",
            "modalities:",
        ]
        lines += [f"  - {{ ae_title: {q(ae)}, host: {q(host)} }}" for ae, host in self.modalities]
        if self.workstations:
            lines.append("workstations:")
            lines += [f"  - {{ ae_title: {q(ae)}, host: {q(host)}, port: {port}, access: {q(access)} }}"
                      for ae, host, port, access in self.workstations]
        return "\n".join(lines) + "\n"

    def write_config(self) -> Path:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if not self.master_key_path.exists():
            # 64 hex characters, created 0600 from the start (never world-readable, not even briefly).
            fd = os.open(self.master_key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32) + "\n")
        self.config_path.write_text(self.config_yaml())
        return self.config_path

    def start(self, timeout: float = 60, extra_args=()):
        self.write_config()
        log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = open(self.log_path, "ab")
        binary = Path(self.binary).resolve() if self.binary else pacsgw_bin()
        self.proc = subprocess.Popen([str(binary), "serve", "--config", str(self.config_path), *extra_args],
                                     stdout=log, stderr=subprocess.STDOUT, env=tool_env(), cwd=self.workdir)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"pacsgw serve exited with {self.proc.returncode} during start-up\n"
                                   f"{tail(self.log_path)}")
            # The log line, not a probe connection: a bare TCP connect would show up in the
            # gateway's audit log as a rejected association. Only this run's part of the log counts.
            if "listening on" in self.log_path.read_bytes()[log_offset:].decode(errors="replace"):
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"pacsgw serve not listening on {self.port} after {timeout} s\n{tail(self.log_path)}")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        """SIGKILL: no shutdown, no flushing, as in a power cut of the process."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    @property
    def spool_dir(self) -> Path:
        return Path(self.spool.get("dir", self.data_dir / "spool"))

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM and wait; returns the exit status (0 expected for a clean stop)."""
        if self.proc is None:
            return 0
        return _stop_process(self.proc, timeout)

    def log(self) -> str:
        return tail(self.log_path, 100000)

    def cli(self, *args, timeout: float = 120) -> ToolResult:
        """`pacsgw <args>` with this gateway's config appended after the subcommand words."""
        return run_tool([pacsgw_bin(), *args], timeout=timeout)

    def decrypt(self, source: Path, target: Path) -> ToolResult:
        return self.cli("decrypt", "--config", self.config_path, source, target)

    def encrypt(self, source: Path, target: Path) -> ToolResult:
        return self.cli("encrypt", "--config", self.config_path, source, target)


# ---------------------------------------------------------------------------------------------
# unittest support
# ---------------------------------------------------------------------------------------------

class LogDumpingTestCase(unittest.TestCase):
    """Prints the tails of the peers' logs (and keeps the temp dir) when a test fails or errors."""

    logs = {}  # name -> path, filled by subclasses' setUpClass

    def run(self, result=None):
        result = result or self.defaultTestResult()
        before = len(result.failures) + len(result.errors)
        outcome = super().run(result)
        if len(result.failures) + len(result.errors) > before:
            type(self).failed = True
            for name, path in type(self).logs.items():
                sys.stderr.write(f"\n----- last lines of {name} ({path}) -----\n{tail(path, 60)}\n")
            sys.stderr.flush()
        return outcome


class PacsAndGatewayTestCase(LogDumpingTestCase):
    """One Orthanc and one `pacsgw serve` in front of it for the whole class. Subclasses choose the
    classes and the gateway's options; teardown fails the class if the gateway died meanwhile."""

    orthanc_class = Orthanc
    gateway_class = Gateway
    gateway_options = {}  # extra keyword arguments for gateway_class

    @classmethod
    def setUpClass(cls):
        cls.failed = False
        cls.workdir = make_workdir(cls.__name__)
        gateway_port = free_port()
        cls.pacs = cls.orthanc_class(cls.workdir / "pacs", gateway_port=gateway_port)
        cls.gateway = cls.gateway_class(cls.workdir / "gateway", upstream_port=cls.pacs.dicom_port,
                                        port=gateway_port, **cls.gateway_options)
        cls.logs = {"pacsgw serve": cls.gateway.log_path, "Orthanc": cls.pacs.log_path}
        try:
            cls.pacs.start()
            cls.gateway.start()
        except Exception:
            cls.gateway.stop()
            cls.pacs.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        was_alive = cls.gateway.alive()
        exit_code = cls.gateway.stop()
        cls.pacs.stop()
        if cls.failed or not was_alive or exit_code != 0 or keep_temp_dirs():
            sys.stderr.write(f"\nlogs and files kept in {cls.workdir}\n")
        else:
            shutil.rmtree(cls.workdir, ignore_errors=True)
        if not was_alive:
            raise AssertionError(f"pacsgw serve died during {cls.__name__}:\n{tail(cls.gateway.log_path)}")
        if exit_code != 0:
            raise AssertionError(f"pacsgw serve exited with {exit_code} on SIGTERM (expected 0):\n"
                                 f"{tail(cls.gateway.log_path)}")


# Exit status ctest reads as "skipped" (SKIP_RETURN_CODE in tests/CMakeLists.txt).
SKIPPED_EXIT_CODE = 77


def main():
    """unittest.main for the integration scripts, with one difference that matters to ctest: a script
    whose tests were ALL skipped (missing tool, backend not built) exits with SKIPPED_EXIT_CODE, so it
    shows as skipped instead of passed."""
    program = unittest.main(verbosity=2, exit=False)
    result = program.result
    if not result.wasSuccessful():
        sys.exit(1)
    if result.testsRun > 0 and len(result.skipped) == result.testsRun:
        sys.stderr.write(f"all {result.testsRun} tests skipped\n")
        sys.exit(SKIPPED_EXIT_CODE)
    if result.testsRun == 0:
        sys.stderr.write("no tests ran\n")
        sys.exit(1)
    sys.exit(0)

