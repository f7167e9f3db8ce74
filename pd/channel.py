"""Messages between a region worker and its sandbox (pd/sandbox.py), over
the socketpair that is the sandbox's only link to anything privileged.

Each message is a msgpack map with a "t" (its type), framed by a 4-byte
length.  Messages are few (setup, log batches, progress every 0.2 s, the
result): the data plane's frames never come this way.
"""
from __future__ import annotations

import select
import socket
import struct
import threading
from typing import Any

import msgpack

_LEN = struct.Struct("!I")
MAX_MESSAGE = 1 << 30          # a result with every device's state can be large, not this large


class Closed(EOFError):
    """The other side closed the channel (it ended, or died)."""


class Channel:
    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.sending = threading.Lock()            # a sandbox's compile thread asks for modules meanwhile

    def send(self, kind: str, **fields: Any) -> None:
        data = msgpack.packb({"t": kind, **fields}, use_bin_type=True)
        try:
            with self.sending:
                self.sock.sendall(_LEN.pack(len(data)))
                self.sock.sendall(data)            # apart: an application can be hundreds of MB
        except (BrokenPipeError, ConnectionResetError):
            raise Closed("the other side is gone") from None

    def ready(self, timeout: float) -> bool:
        """Whether a message (or the end) is waiting, after up to `timeout` s."""
        return bool(select.select([self.sock], [], [], timeout)[0])

    def receive(self, timeout: float | None = None) -> dict | None:
        """The next message; None when none came within `timeout` seconds
        (None: wait as long as it takes).  Raises Closed at the end."""
        if timeout is not None and not self.ready(timeout):
            return None
        (size,) = _LEN.unpack(self._exactly(_LEN.size))
        if size > MAX_MESSAGE:
            raise Closed(f"message of {size} bytes: the channel is out of step")
        return msgpack.unpackb(self._exactly(size), raw=False, strict_map_key=False)

    def request(self, kind: str, **fields: Any) -> dict:
        """Send, and wait for the answer (the worker answers requests in order)."""
        self.send(kind, **fields)
        return self.receive()

    def _exactly(self, n: int) -> bytearray:
        buf, got = bytearray(n), 0
        view = memoryview(buf)
        while got < n:
            try:
                k = self.sock.recv_into(view[got:])
            except ConnectionResetError:
                k = 0
            if not k:
                raise Closed("the other side is gone")
            got += k
        return buf

    def close(self) -> None:
        self.sock.close()
