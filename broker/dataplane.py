"""The data plane: ZeroMQ sockets between the regions of one process.

Each region binds one PULL socket, publishes its address in Redis
(keys.proc_endpoints), waits for every region's address, and connects one
PUSH socket to each region (itself included, so control frames to the
coordinator go the same way).  Queues are unbounded (HWM 0): a send never
blocks, so two regions sending to each other cannot deadlock.  Frames from
one region to another arrive in order; sequence numbers check it.

Before any message, every region sends HELLO to every region and waits to
hear HELLO from all of them: a region that cannot be reached (a firewall, a
wrong advertised address) fails the process within seconds, with the
addresses, instead of hanging it.  Frames of another process or incarnation
(token) are dropped and counted.
"""
from __future__ import annotations

import ipaddress
import os
import socket
import time
from typing import Any

import redis
import zmq

from . import keys, wire

RENDEZVOUS_SECONDS = 60.0
HANDSHAKE_SECONDS = 5.0


class DataPlaneError(Exception):
    """The data plane cannot be set up; the message says why."""


def parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """TEXT as an IP address (a scope such as %eth0 dropped), or None."""
    try:
        return ipaddress.ip_address(text.split("%")[0])
    except ValueError:
        return None


def is_loopback(host: str | None) -> bool:
    """True when HOST (an address or a name; None: a unix socket) is only
    reachable from this machine."""
    if not host:
        return True
    ip = parse_ip(host)
    if ip is not None:
        return ip.is_loopback
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except socket.gaierror:
        return False                      # unknown here: the ping will say so
    return all(parse_ip(info[4][0]).is_loopback for info in infos)


def advertised_host(r: redis.Redis) -> str:
    """The address other hosts reach this one at: $PSTACK_DATA_HOST, else the
    local address of the route to the Redis server.  Never a loopback
    address when Redis is elsewhere: other hosts could not reach it."""
    kw = r.connection_pool.connection_kwargs
    redis_host = kw.get("host", "127.0.0.1")
    local_redis = is_loopback(redis_host)
    given = os.environ.get("PSTACK_DATA_HOST")
    if given:
        if is_loopback(given) and not local_redis:
            raise DataPlaneError(f"PSTACK_DATA_HOST={given} is a loopback address but Redis is at {redis_host}: "
                                 "other hosts could not reach this region")
        return given
    if local_redis:
        return "127.0.0.1"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect((redis_host, int(kw.get("port", 6379))))      # no packet is sent
        return s.getsockname()[0]


class DataPlane:
    def __init__(self, r: redis.Redis, pid: int, token: str, region: int, nregions: int):
        self.r = r
        self.pid, self.token, self.region, self.nregions = pid, token, region, nregions
        self.ctx = zmq.Context()
        self.pull = self.ctx.socket(zmq.PULL)
        self.pull.setsockopt(zmq.RCVHWM, 0)
        host = advertised_host(r)
        try:
            port = self.pull.bind_to_random_port(f"tcp://{host}")
        except zmq.ZMQError as e:
            raise DataPlaneError(f"cannot listen on {host}: {e}") from None
        self.address = f"tcp://{host}:{port}"
        r.hset(keys.proc_endpoints(pid), region, self.address)
        self.addresses = self._rendezvous()
        self.push = [self._connect(address) for address in self.addresses]
        self.seq_out = [0] * nregions
        self.seq_in = [0] * nregions
        self.poller = zmq.Poller()
        self.poller.register(self.pull, zmq.POLLIN)
        self.bytes_out = self.bytes_in = 0
        self.dropped = 0                   # frames of another process or incarnation
        self.early: list[wire.Frame] = []  # frames that came during the handshake
        self._handshake()

    def _rendezvous(self) -> list[str]:
        deadline = time.monotonic() + RENDEZVOUS_SECONDS
        while True:
            found = {int(k): v.decode() for k, v in self.r.hgetall(keys.proc_endpoints(self.pid)).items()}
            if len(found) >= self.nregions:
                return [found[q] for q in range(self.nregions)]
            if time.monotonic() > deadline:
                missing = sorted(set(range(self.nregions)) - set(found))
                raise DataPlaneError(f"regions {missing} never published their data-plane address")
            time.sleep(0.01)

    def _connect(self, address: str) -> zmq.Socket:
        s = self.ctx.socket(zmq.PUSH)
        s.setsockopt(zmq.SNDHWM, 0)
        s.setsockopt(zmq.LINGER, 5000)       # deliver what is queued when we close
        s.connect(address)
        return s

    def _handshake(self) -> None:
        """HELLO to everyone; wait to hear HELLO from everyone."""
        self.broadcast(wire.HELLO, {})
        heard: set[int] = set()
        deadline = time.monotonic() + HANDSHAKE_SECONDS
        while len(heard) < self.nregions:
            left_ms = int((deadline - time.monotonic()) * 1000)
            if left_ms <= 0:
                raise DataPlaneError(self._unreachable(sorted(set(range(self.nregions)) - heard)))
            for f in self._receive(left_ms, self.nregions):
                if f.kind == wire.HELLO:
                    heard.add(f.source)
                else:
                    self.early.append(f)

    def _unreachable(self, silent: list[int]) -> str:
        engines = {int(k): v.decode() for k, v in self.r.hgetall(keys.proc_regions(self.pid)).items()}
        who = ", ".join(f"region {q} (engine {engines.get(q, '?')}, {self.addresses[q]})" for q in silent)
        return (f"region {self.region} (engine {engines.get(self.region, '?')}) heard nothing in "
                f"{HANDSHAKE_SECONDS:.0f} s from {who}: they cannot reach {self.address} "
                "(a firewall, or a wrong --advertise / PSTACK_DATA_HOST address)")

    def send(self, to: int, kind: int, payload: Any) -> None:
        frame = wire.pack(kind, self.pid, self.token, self.region, self.seq_out[to], payload)
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
        if self.early:
            frames, self.early = self.early, []
            return frames
        return self._receive(timeout_ms, most)

    def _receive(self, timeout_ms: int, most: int) -> list[wire.Frame]:
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
            if frame.pid != self.pid or frame.token != self.token:
                self.dropped += 1                        # a stale or foreign sender
                continue
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
