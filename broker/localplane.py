"""The data plane of regions that share one process (psim standalone with
an application engine, pcli/standalone.py): one thread-safe queue per
region instead of ZeroMQ sockets, with broker/dataplane.py DataPlane's
interface as pd/region.py's RegionRun uses it, so the region protocol
(RegionRun and its Coordinator) is the same in one process as across hosts.

Frames stay Python objects (wire.Frame, nothing packed): one process and
one incarnation need no pid, token or sequence check, and a queue keeps
each sender's order.
"""
from __future__ import annotations

import queue
from typing import Any

from . import wire


class LocalPlane:
    """Region `region`'s end of `len(inboxes)` connected planes (local_planes())."""

    def __init__(self, region: int, inboxes: list[queue.SimpleQueue]):
        self.region, self.nregions = region, len(inboxes)
        self.inboxes = inboxes
        self.dropped = 0                  # nothing foreign can reach a queue: always 0

    def send(self, to: int, kind: int, payload: Any) -> None:
        if kind == wire.MSG:              # a view of the engine's outbox, valid until clear_outbox: copy it once
            payload = bytes(payload)
        self.inboxes[to].put(wire.Frame(kind, 0, "", self.region, 0, payload))

    def broadcast(self, kind: int, payload: Any) -> None:
        for q in range(self.nregions):
            self.send(q, kind, payload)

    def receive(self, timeout_ms: int, most: int = 8) -> list[wire.Frame]:
        """Up to `most` frames, waiting up to timeout_ms for the first."""
        inbox, frames = self.inboxes[self.region], []
        try:
            frames.append(inbox.get(timeout=timeout_ms / 1000) if timeout_ms > 0 else inbox.get_nowait())
            while len(frames) < most:
                frames.append(inbox.get_nowait())
        except queue.Empty:
            pass
        return frames

    def close(self) -> None:
        """Nothing to release: a queue needs no linger (frames sent are already there)."""


def local_planes(n: int) -> list[LocalPlane]:
    """The planes of n regions in one process, each able to reach every region (itself included)."""
    inboxes = [queue.SimpleQueue() for _ in range(n)]
    return [LocalPlane(region, inboxes) for region in range(n)]
