"""A deliberately small DICOM upper-layer client that writes PDUs byte by byte, so tests can send what
no well-behaved toolkit would: lying element lengths, truncated or deflate-bomb data sets, garbage PDUs.
Only what the hostile-input tests need: one association, C-STORE requests, release."""

import socket
import struct
import zlib

APPLICATION_CONTEXT = b"1.2.840.10008.3.1.1.1"
IMPLEMENTATION_UID = b"1.2.826.0.1.3680043.9.7433.1.99"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
DEFLATED_LE = "1.2.840.10008.1.2.1.99"
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"


def _uid(text: str) -> bytes:
    data = text.encode()
    return data + (b"\x00" if len(data) % 2 else b"")


def _item(kind: int, value: bytes) -> bytes:
    return struct.pack(">BBH", kind, 0, len(value)) + value


def _ae(title: str) -> bytes:
    return title.encode().ljust(16)


def implicit_element(group: int, element: int, value: bytes) -> bytes:
    if len(value) % 2:
        value += b"\x00"
    return struct.pack("<HHI", group, element, len(value)) + value


def explicit_element(group: int, element: int, vr: str, value: bytes, length: int = None) -> bytes:
    """Explicit VR little endian; `length` overrides the declared length (to lie)."""
    if len(value) % 2:
        value += b" " if vr not in ("UI", "OB") else b"\x00"
    declared = len(value) if length is None else length
    if vr in ("OB", "OW", "OF", "SQ", "UT", "UN"):
        return struct.pack("<HH2sHI", group, element, vr.encode(), 0, declared) + value
    return struct.pack("<HH2sH", group, element, vr.encode(), declared) + value


def image_header(sop_instance: str, study: str, rows: int, columns: int, pixel_length: int = None) -> bytes:
    """An explicit-LE CT data set up to and including the Pixel Data element header (16-bit samples)."""
    us = lambda v: struct.pack("<H", v)  # noqa: E731
    parts = [
        explicit_element(0x0008, 0x0016, "UI", _uid(CT_IMAGE_STORAGE)),
        explicit_element(0x0008, 0x0018, "UI", _uid(sop_instance)),
        explicit_element(0x0008, 0x0060, "CS", b"CT"),
        explicit_element(0x0010, 0x0010, "PN", b"HOSTILE^INPUT"),
        explicit_element(0x0010, 0x0020, "LO", b"HOSTILE1"),
        explicit_element(0x0020, 0x000D, "UI", _uid(study)),
        explicit_element(0x0020, 0x000E, "UI", _uid(study + ".1")),
        explicit_element(0x0028, 0x0002, "US", us(1)),
        explicit_element(0x0028, 0x0004, "CS", b"MONOCHROME2"),
        explicit_element(0x0028, 0x0010, "US", us(rows)),
        explicit_element(0x0028, 0x0011, "US", us(columns)),
        explicit_element(0x0028, 0x0100, "US", us(16)),
        explicit_element(0x0028, 0x0101, "US", us(16)),
        explicit_element(0x0028, 0x0102, "US", us(15)),
        explicit_element(0x0028, 0x0103, "US", us(0)),
    ]
    length = rows * columns * 2 if pixel_length is None else pixel_length
    parts.append(struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OW", 0, length))
    return b"".join(parts)


def deflate_bomb_chunks(header: bytes, zero_bytes: int, chunk: int = 16 << 20):
    """Raw-deflate (RFC 1951) pieces of `header` followed by `zero_bytes` zero bytes, produced lazily."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    yield compressor.compress(header)
    zeros = bytes(chunk)
    left = zero_bytes
    while left > 0:
        n = min(chunk, left)
        out = compressor.compress(zeros if n == chunk else bytes(n))
        if out:
            yield out
        left -= n
    yield compressor.flush()


class Association:
    def __init__(self, port: int, called: str, calling: str, transfer_syntax: str = EXPLICIT_LE,
                 sop_class: str = CT_IMAGE_STORAGE, host: str = "127.0.0.1", timeout: float = 60):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.pc_id = 1
        self.max_pdv = 16384
        pc = _item(0x20, bytes([self.pc_id, 0, 0, 0]) + _item(0x30, sop_class.encode()) +
                   _item(0x40, transfer_syntax.encode()))
        user = _item(0x50, _item(0x51, struct.pack(">I", 16384)) + _item(0x52, IMPLEMENTATION_UID))
        body = (struct.pack(">HH", 1, 0) + _ae(called) + _ae(calling) + bytes(32) +
                _item(0x10, APPLICATION_CONTEXT) + pc + user)
        self.sock.sendall(struct.pack(">BBI", 0x01, 0, len(body)) + body)
        kind, reply = self.read_pdu()
        self.accepted = False
        if kind == 0x02:
            pos = 68
            while pos + 4 <= len(reply):
                item_type, _, item_len = struct.unpack_from(">BBH", reply, pos)
                if item_type == 0x21 and reply[pos + 4] == self.pc_id:
                    self.accepted = reply[pos + 6] == 0
                pos += 4 + item_len
        self.reply_type = kind

    def read_exact(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            part = self.sock.recv(n - len(data))
            if not part:
                raise ConnectionError("connection closed by the gateway")
            data += part
        return data

    def read_pdu(self):
        kind, _, length = struct.unpack(">BBI", self.read_exact(6))
        return kind, self.read_exact(length)

    def send_pdv(self, data: bytes, command: bool, last: bool):
        header = (1 if command else 0) | (2 if last else 0)
        item = struct.pack(">IBB", len(data) + 2, self.pc_id, header) + data
        self.sock.sendall(struct.pack(">BBI", 0x04, 0, len(item)) + item)

    def send_raw(self, data: bytes):
        self.sock.sendall(data)

    def send_store_command(self, sop_instance: str, message_id: int = 1, sop_class: str = CT_IMAGE_STORAGE):
        elements = (implicit_element(0x0000, 0x0002, _uid(sop_class)) +
                    implicit_element(0x0000, 0x0100, struct.pack("<H", 0x0001)) +
                    implicit_element(0x0000, 0x0110, struct.pack("<H", message_id)) +
                    implicit_element(0x0000, 0x0700, struct.pack("<H", 0)) +
                    implicit_element(0x0000, 0x0800, struct.pack("<H", 0x0000)) +
                    implicit_element(0x0000, 0x1000, _uid(sop_instance)))
        command = implicit_element(0x0000, 0x0000, struct.pack("<I", len(elements))) + elements
        self.send_pdv(command, command=True, last=True)

    def send_dataset(self, pieces):
        """Sends the data set given as an iterable of byte strings, in PDVs of at most max_pdv bytes."""
        pending = b""
        for piece in pieces:
            pending += piece
            while len(pending) > self.max_pdv:
                self.send_pdv(pending[:self.max_pdv], command=False, last=False)
                pending = pending[self.max_pdv:]
        self.send_pdv(pending, command=False, last=True)

    def read_store_status(self):
        """The Status of the next C-STORE-RSP, or None when the gateway aborted or closed instead."""
        command = b""
        try:
            while True:
                kind, body = self.read_pdu()
                if kind != 0x04:
                    return None
                pos = 0
                last = False
                while pos + 6 <= len(body):
                    length, _, header = struct.unpack_from(">IBB", body, pos)
                    command += body[pos + 6:pos + 4 + length]
                    last = last or (header & 0x03) == 0x03
                    pos += 4 + length
                if last:
                    break
        except (ConnectionError, OSError):
            return None
        pos = 0
        while pos + 8 <= len(command):
            group, element, length = struct.unpack_from("<HHI", command, pos)
            if (group, element) == (0x0000, 0x0900):
                return struct.unpack_from("<H", command, pos + 8)[0]
            pos += 8 + length
        return None

    def release(self):
        try:
            self.sock.sendall(struct.pack(">BBI", 0x05, 0, 4) + bytes(4))
            self.read_pdu()
        except (ConnectionError, OSError):
            pass
        self.close()

    def closed_by_peer(self, timeout: float = 30) -> bool:
        """True when the gateway closed (or aborted) the connection within `timeout` seconds."""
        self.sock.settimeout(timeout)
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    return True
                if data[0] == 0x07:  # A-ABORT
                    return True
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False

    def close(self):
        self.sock.close()
