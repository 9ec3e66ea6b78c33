"""Helpers for the retrieval-path tests and the retrieval benchmark, on top of pacsgw_harness.

Adds what the shared harness does not have: extra Orthanc modalities (query peers, move
destinations), a gateway config with cipher.passthrough_unencrypted, storescp destinations, and
parsing of the DIMSE responses DCMTK's query / retrieve tools print in debug mode.
"""

import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pacsgw_harness as h

# Q/R status codes (PS3.4 C.4) the tests look for.
STATUS_SUCCESS = 0x0000
STATUS_NOT_AUTHORISED = 0x0124
STATUS_MOVE_DESTINATION_UNKNOWN = 0xA801
STATUS_SUBOPS_WITH_FAILURES = 0xB000
STATUS_UNABLE_TO_PERFORM_SUBOPS = 0xA702  # every sub-operation failed
STATUS_CANCEL = 0xFE00
STATUS_PENDING = (0xFF00, 0xFF01)


# ---------------------------------------------------------------------------------------------
# Peers
# ---------------------------------------------------------------------------------------------

class RetrieveOrthanc(h.Orthanc):
    """Orthanc that also knows other peers besides the gateway: (AET, port) pairs on loopback that may
    query and retrieve directly (comparison queries) or receive C-MOVE sub-operations (benchmark)."""

    def __init__(self, workdir, extra_modalities=(), **kwargs):
        super().__init__(workdir, **kwargs)
        self.extra_modalities = list(extra_modalities)

    def config(self) -> dict:
        config = super().config()
        for aet, port in self.extra_modalities:
            config["DicomModalities"][aet.lower()] = {
                "AET": aet, "Host": h.LOOPBACK, "Port": port, "AllowEcho": True, "AllowFind": True,
                "AllowMove": True, "AllowGet": True, "AllowStore": True}
        return config


class RetrieveGateway(h.Gateway):
    """The harness gateway plus the retrieval-only settings."""

    def __init__(self, workdir, passthrough_unencrypted: bool = False, **kwargs):
        super().__init__(workdir, **kwargs)
        self.passthrough_unencrypted = passthrough_unencrypted

    def config_yaml(self) -> str:
        lines = super().config_yaml().splitlines()
        at = next(i for i, line in enumerate(lines) if line.startswith("  key_scope:"))
        lines.insert(at + 1, f"  passthrough_unencrypted: {'true' if self.passthrough_unencrypted else 'false'}")
        return "\n".join(lines) + "\n"

    def log_size(self) -> int:
        """Current length of the log, to read only what an operation added (log_since)."""
        try:
            return self.log_path.stat().st_size
        except FileNotFoundError:
            return 0

    def log_since(self, offset: int) -> str:
        with open(self.log_path, "rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")


class StoreSCP:
    """A storescp playing one workstation: `storescp -aet AET -od DIR PORT`, by default accepting every
    transfer syntax DCMTK knows so compressed objects arrive as they were sent; with
    accept_all=False a plain storescp (uncompressed syntaxes only), as a new user would start it."""

    def __init__(self, aet: str, port: int, directory: Path, extra=(), accept_all: bool = True):
        self.aet = aet
        self.port = port
        self.directory = Path(directory)
        self.extra = (["+xa"] if accept_all else []) + list(extra)
        self.log_path = self.directory.parent / f"storescp-{aet}-{self.directory.name}.log"
        self.proc = None

    def start(self, timeout: float = 20):
        self.directory.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(["storescp", "-v", *self.extra, "-aet", self.aet, "-od",
                                      str(self.directory), str(self.port)],
                                     stdout=log, stderr=subprocess.STDOUT, env=h.tool_env())
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"storescp {self.aet} exited with {self.proc.returncode}\n{h.tail(self.log_path)}")
            if h.port_open(self.port):
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"storescp {self.aet} not listening on {self.port}\n{h.tail(self.log_path)}")

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def files(self) -> list:
        """Received objects (storescp names them <modality>.<SOP Instance UID>)."""
        return sorted(p for p in self.directory.iterdir() if p.is_file())

    def sop_instance_uids(self) -> set:
        return {h.sop_instance_uid(p) for p in self.files()}

    def log(self) -> str:
        return h.tail(self.log_path, 200)


# ---------------------------------------------------------------------------------------------
# DCMTK query / retrieve tools
# ---------------------------------------------------------------------------------------------

@dataclass
class DimseResponse:
    """One C-FIND / C-MOVE / C-GET response as DCMTK dumped it (-d)."""
    kind: str                    # "C-MOVE RSP", ...
    status: int
    remaining: int = None        # None when the element was absent
    completed: int = None
    failed: int = None
    warning: int = None


@dataclass
class QRResult:
    tool: h.ToolResult
    responses: list = field(default_factory=list)   # DimseResponse, in order
    failed_uids: list = field(default_factory=list)  # Failed SOP Instance UID List of the final response

    @property
    def output(self) -> str:
        return self.tool.output

    @property
    def final(self) -> DimseResponse:
        finals = [r for r in self.responses if r.status not in STATUS_PENDING]
        if not finals:
            raise AssertionError(f"no final response\n{self.describe()}")
        return finals[-1]

    @property
    def pending(self) -> list:
        return [r for r in self.responses if r.status in STATUS_PENDING]

    @property
    def association_rejected(self) -> bool:
        return "Association Rejected" in self.output

    def describe(self) -> str:
        # Debug output is long: keep the lines that matter for a failure report.
        keep = [line for line in self.output.splitlines()
                if line.startswith(("I:", "W:", "E:", "F:")) or "Suboperations" in line or "DIMSE Status" in line
                or "Message Type" in line or "(0008,0058)" in line]
        return (f"responses={self.responses}\nfailed_uids={self.failed_uids}\n$ {' '.join(self.tool.args)}\n"
                f"(exit {self.tool.returncode}, {self.tool.seconds:.2f} s)\n" + "\n".join(keep[-120:]))


_FIELD = re.compile(r"^D: (Message Type|Remaining Suboperations|Completed Suboperations|Failed Suboperations|"
                    r"Warning Suboperations|DIMSE Status)\s*: (.*)$")


def parse_dimse_responses(output: str) -> list:
    responses, current = [], None
    for line in output.splitlines():
        m = _FIELD.match(line.rstrip())
        if not m:
            if "END DIMSE MESSAGE" in line and current is not None:
                if current.kind.endswith("RSP"):
                    responses.append(current)
                current = None
            continue
        name, value = m.group(1), m.group(2).strip()
        if name == "Message Type":
            current = DimseResponse(kind=value, status=-1)
        elif current is None:
            continue
        elif name == "DIMSE Status":
            current.status = int(value.split(":")[0], 16)
        else:
            number = None if value == "none" else int(value)
            attr = name.split()[0].lower()
            setattr(current, attr, number)
    return responses


def parse_failed_uids(output: str) -> list:
    uids = []
    for line in output.splitlines():
        m = re.search(r"\(0008,0058\) UI \[([^\]]*)\]", line)
        if m:
            uids += [u for u in m.group(1).split("\\") if u]
    return uids


def _qr(args, timeout) -> QRResult:
    result = h.run_tool(args, timeout=timeout)
    responses = parse_dimse_responses(result.output)
    # Only C-MOVE / C-GET / C-FIND responses; C-STORE responses of C-GET are not ours to count.
    responses = [r for r in responses if r.kind in ("C-MOVE RSP", "C-GET RSP", "C-FIND RSP")]
    return QRResult(result, responses, parse_failed_uids(result.output))


def _keys(keys: dict) -> list:
    args = []
    for name, value in keys.items():
        args += ["-k", name if value is None else f"{name}={value}"]
    return args


def movescu(port: int, destination: str, keys: dict, calling: str = "WS1", called: str = "GATEWAY",
            model: str = "-S", extra=(), timeout: float = 300) -> QRResult:
    args = ["movescu", "-d", model, "-ta", "30", "-td", "120", "-aet", calling, "-aec", called, "-aem", destination,
            *extra, *_keys(keys), h.LOOPBACK, port]
    return _qr(args, timeout)


def getscu(port: int, directory: Path, keys: dict, calling: str = "WS1", called: str = "GATEWAY",
           model: str = "-S", extra=(), timeout: float = 300) -> QRResult:
    Path(directory).mkdir(parents=True, exist_ok=True)
    args = ["getscu", "-d", model, "-ta", "30", "-td", "120", "-aet", calling, "-aec", called, "-od", directory,
            *extra, *_keys(keys), h.LOOPBACK, port]
    return _qr(args, timeout)


def findscu(port: int, directory: Path, keys: dict, calling: str = "WS1", called: str = "GATEWAY",
            model: str = "-S", extra=(), timeout: float = 120):
    """Runs findscu -X into an empty `directory`; returns (QRResult, identifiers as a sorted list of
    {tag: value} dicts, one per match)."""
    directory = Path(directory)
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    args = ["findscu", "-d", model, "-ta", "30", "-td", "120", "-aet", calling, "-aec", called, "-X", "-od",
            directory, *extra, *_keys(keys), h.LOOPBACK, port]
    result = _qr(args, timeout)
    matches = [identifier_values(p) for p in sorted(directory.glob("rsp*.dcm"))]
    return result, sorted(matches, key=lambda m: sorted(m.items()))


def identifier_values(path) -> dict:
    ds = h.read(path)
    return {tag_key(elem.tag): h.element_text(elem) for elem in ds}


def tag_key(tag) -> str:
    """'0020,000D' for (0020,000D), the key of identifier_values()."""
    return f"{tag.group:04X},{tag.element:04X}"


def echoscu(port: int, calling: str = "WS1", called: str = "GATEWAY") -> h.ToolResult:
    return h.run_tool(["echoscu", "-v", "-ta", "30", "-td", "30", "-aet", calling, "-aec", called, h.LOOPBACK, port],
                      timeout=60)


def echo_succeeded(result: h.ToolResult) -> bool:
    return "Association Accepted" in result.output and "Received Echo Response (Success)" in result.output


# ---------------------------------------------------------------------------------------------
# Test objects
# ---------------------------------------------------------------------------------------------

def derive(source: Path, target: Path, study_uid: str, series_uid: str, instance_number: int,
           patient_id: str, patient_name: str) -> Path:
    """A copy of a real file with a fresh SOP Instance UID, placed in the given study and series."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    args = ["dcmodify", "-nb", "-gin",
            "-i", f"(0020,000d)={study_uid}", "-i", f"(0020,000e)={series_uid}",
            "-i", f"(0020,0013)={instance_number}", "-i", f"(0010,0020)={patient_id}",
            "-i", f"(0010,0010)={patient_name}", target]
    result = h.run_tool(args, timeout=60)
    ds = h.read(target)
    if str(ds.StudyInstanceUID) != study_uid or h.sop_instance_uid(target) == h.sop_instance_uid(source):
        raise AssertionError(f"dcmodify did not derive {target}\n{result.describe()}")
    return target


def new_uid() -> str:
    return str(h.pydicom.uid.generate_uid(prefix="1.2.826.0.1.3680043.8.498."))


def group_elements(ds, group: int) -> list:
    return [elem.tag for elem in ds if elem.tag.group == group]


def flip_pixel_byte(source: Path, target: Path) -> int:
    """Copies an encrypted object with one bit of its pixel ciphertext flipped (in the middle of the
    first fragment for encapsulated data, of the value for native data); nothing else changes.
    Returns the file offset flipped."""
    payload = h.pixel_payload(h.read(source))[0]
    middle = len(payload) // 2
    window = payload[middle - 32:middle + 32]  # 64 bytes of ciphertext occur once in the file
    data = bytearray(Path(source).read_bytes())
    at = data.find(window)
    if at < 0 or data.find(window, at + 1) >= 0:
        raise AssertionError(f"pixel ciphertext window not found exactly once in {source}")
    data[at + 32] ^= 0x01
    Path(target).write_bytes(bytes(data))
    return at + 32
