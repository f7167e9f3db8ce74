"""The data plane: ZeroMQ sockets between the regions of one process.

Each region binds one PULL socket, publishes its address in Redis
(keys.proc_endpoints), waits for every region's address, and connects one
PUSH socket to each region (itself included, so control frames to the
coordinator go the same way).  Queues are unbounded (HWM 0): a send never
blocks, so two regions sending to each other cannot deadlock.  Frames from
one region to another arrive in order; sequence numbers check it.
"""
from __future__ import annotations

import os
import socket
import time
from typing import Any

import redis
import zmq

from . import keys, wire

RENDEZVOUS_SECONDS = 60.0


def advertised_host(r: redis.Redis) -> str:
    """The address other hosts reach this one at: $PSTACK_DATA_HOST, else the
    local address of the route to the Redis server."""
    if os.environ.get("PSTACK_DATA_HOST"):
        return os.environ["PSTACK_DATA_HOST"]
    kw = r.connection_pool.connection_kwargs
    host = kw.get("host", "127.0.0.1")
    if host in ("localhost", "127.0.0.1", "::1"):
        return "127.0.0.1"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect((host, int(kw.get("port", 6379))))      # no packet is sent
        return s.getsockname()[0]


class DataPlane:
    def __init__(self, r: redis.Redis, pid: int, region: int, nregions: int):
        self.pid, self.region, self.nregions = pid, region, nregions
        self.ctx = zmq.Context()
        self.pull = self.ctx.socket(zmq.PULL)
        self.pull.setsockopt(zmq.RCVHWM, 0)
        host = advertised_host(r)
        port = self.pull.bind_to_random_port(f"tcp://{host}")
        r.hset(keys.proc_endpoints(pid), region, f"tcp://{host}:{port}")
        self.push = [self._connect(address) for address in self._rendezvous(r)]
        self.seq_out = [0] * nregions
        self.seq_in = [0] * nregions
        self.poller = zmq.Poller()
        self.poller.register(self.pull, zmq.POLLIN)
        self.bytes_out = self.bytes_in = 0

    def _rendezvous(self, r: redis.Redis) -> list[str]:
        deadline = time.monotonic() + RENDEZVOUS_SECONDS
        while True:
            found = {int(k): v.decode() for k, v in r.hgetall(keys.proc_endpoints(self.pid)).items()}
            if len(found) >= self.nregions:
                return [found[q] for q in range(self.nregions)]
            if time.monotonic() > deadline:
                missing = sorted(set(range(self.nregions)) - set(found))
                raise TimeoutError(f"regions {missing} never published their data-plane address")
            time.sleep(0.01)

    def _connect(self, address: str) -> zmq.Socket:
        s = self.ctx.socket(zmq.PUSH)
        s.setsockopt(zmq.SNDHWM, 0)
        s.setsockopt(zmq.LINGER, 5000)       # deliver what is queued when we close
        s.connect(address)
        return s

    def send(self, to: int, kind: int, payload: Any) -> None:
        frame = wire.pack(kind, self.pid, self.region, self.seq_out[to], payload)
        self.seq_out[to] += 1
        self.bytes_out += len(frame)
        self.push[to].send(frame, copy=False)

    def broadcast(self, kind: int, payload: Any) -> None:
        for q in range(self.nregions):
            self.send(q, kind, payload)

    def receive(self, timeout_ms: int, most: int = 8) -> list[wire.Frame]:
        """Up to `most` frames that arrived, waiting up to timeout_ms for the
        first; few at a time, so the engine consumes records as they come.
        Raises ValueError on a malformed or out-of-order frame."""
        if not self.poller.poll(timeout_ms):
            return []
        frames: list[wire.Frame] = []
        while len(frames) < most:
            try:
                data = self.pull.recv(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return frames
            frame = wire.unpack(data.buffer)
            self.bytes_in += len(data.buffer)
            if frame.pid != self.pid:
                continue                                 # a stale sender from another process
            if not 0 <= frame.source < self.nregions or frame.seq != self.seq_in[frame.source]:
                raise ValueError(f"frame {frame.seq} from region {frame.source} out of order")
            self.seq_in[frame.source] += 1
            frames.append(frame)
        return frames

    def close(self) -> None:
        for s in self.push:
            s.close()
        self.pull.close(linger=0)
        self.ctx.term()
