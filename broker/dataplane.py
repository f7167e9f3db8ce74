"""The data plane: ZeroMQ sockets between the regions of one process.

Each region binds one PULL socket, publishes its address in Redis
(keys.proc_endpoints) with its public CURVE key (keys.proc_curve) through a
Rendezvous (a sandboxed region has no Redis: its worker does it), waits
for every region's, and connects one PUSH socket to each region (itself
included, so control frames to the coordinator go the same way).  Queues
are unbounded (HWM 0): a send never blocks, so two regions sending to each
other cannot deadlock.  Frames from
one region to another arrive in order; sequence numbers check it.

Before any message, every region sends HELLO to every region and waits to
hear HELLO from all of them: a region that cannot be reached (a firewall, a
wrong advertised address) fails the process within seconds, with the
addresses, instead of hanging it.  Frames of another process or incarnation
(token) are dropped and counted.

CURVE (authenticated, encrypted by libzmq): a region's PULL socket is a
CURVE server on every cluster, loopback included: other local users (and
their handlers, which run as users of their own) can connect to a loopback
address as well as a remote host can.  PSTACK_CURVE=off forces plain TCP,
an operator's choice for a cluster with one user only.  Every region makes
a keypair for this process (the secret key never leaves the worker) and
publishes the public key, so it can connect as a CURVE client to peers that
run CURVE, whatever its own mode.  A ZAP handler allows exactly the public
keys the process's regions published: another peer is refused at the
handshake and its frames never arrive.  Each refused handshake (an unknown
key, a peer without CURVE, garbage) counts as one dropped frame.
"""
from __future__ import annotations

import ipaddress
import logging
import os
import socket
import threading
import time
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

import zmq
from zmq.auth.thread import ThreadAuthenticator
from zmq.utils.monitor import recv_monitor_message

from . import keys, wire

if TYPE_CHECKING:          # a sandbox has no Redis, and need not import it (~80 ms)
    import redis

RENDEZVOUS_SECONDS = 60.0
HANDSHAKE_SECONDS = 5.0
CURVE_MODES = ("on", "off")
REFUSED = (zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
           | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL)
log = logging.getLogger("broker.dataplane")


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


def curve_wanted() -> bool:
    """Whether this region's PULL socket runs CURVE: $PSTACK_CURVE, on
    (the default) or off (plain TCP: anyone who reaches the address can
    send frames, so only for a cluster with one user)."""
    mode = os.environ.get("PSTACK_CURVE", "on")
    if mode not in CURVE_MODES:
        raise DataPlaneError(f"PSTACK_CURVE={mode}: expected on or off (plain TCP on loopback is not "
                             "safe: other local users can connect to a loopback address)")
    return mode == "on"


class Peer(NamedTuple):
    """A region as published in the control plane."""
    address: str
    curve: bool       # its PULL socket is a CURVE server
    key: bytes        # its public key, Z85


class Allowed:
    """The ZAP policy (called in the authenticator's thread): a client key
    is allowed when one of the process's regions published it.  A handshake
    that comes before this region's rendezvous waits for it."""

    def __init__(self) -> None:
        self.keys: frozenset[bytes] = frozenset()
        self.known = threading.Event()

    def set(self, keys: frozenset[bytes]) -> None:
        self.keys = keys
        self.known.set()

    def release(self) -> None:
        """Closing: a handshake waiting for the rendezvous is refused now."""
        self.known.set()

    def callback(self, domain: str, key: bytes) -> bool:
        self.known.wait(RENDEZVOUS_SECONDS)
        return key in self.keys


class Rendezvous(Protocol):
    """Where the regions of one process find each other (the control plane).
    RedisRendezvous is the real one; a sandboxed region asks its worker
    (pd/sandbox.py), which holds the Redis credentials."""

    def publish(self, region: int, curve: str, address: str) -> None:
        """Region `region`'s CURVE record ("curve KEY" or "plain KEY") and
        address, seen together or not at all."""

    def lookup(self) -> tuple[dict[int, str], dict[int, str]]:
        """The addresses and CURVE records published so far, by region."""

    def engines(self) -> dict[int, str]:
        """The engine of every region (for error messages)."""


class RedisRendezvous:
    """The rendezvous in the process's private keys (its owner's prefix:
    no other user can read where its regions listen)."""

    def __init__(self, r: redis.Redis, pid: int, owner: str):
        self.r, self.pid, self.owner = r, pid, owner

    def publish(self, region: int, curve: str, address: str) -> None:
        with self.r.pipeline(transaction=True) as p:    # readers see both or neither
            p.hset(keys.proc_curve(self.owner, self.pid), region, curve)
            p.hset(keys.proc_endpoints(self.owner, self.pid), region, address)
            p.execute()

    def lookup(self) -> tuple[dict[int, str], dict[int, str]]:
        with self.r.pipeline(transaction=True) as p:
            p.hgetall(keys.proc_endpoints(self.owner, self.pid))
            p.hgetall(keys.proc_curve(self.owner, self.pid))
            endpoints, curve = p.execute()
        return _by_region(endpoints), _by_region(curve)

    def engines(self) -> dict[int, str]:
        return _by_region(self.r.hgetall(keys.proc_regions(self.pid)))


def _by_region(h: dict[bytes, bytes]) -> dict[int, str]:
    return {int(k): v.decode() for k, v in h.items()}


class DataPlane:
    def __init__(self, rendezvous: Rendezvous, pid: int, token: str, region: int, nregions: int,
                 host: str, curve: bool | None = None):
        """This region's sockets, listening at `host` (advertised_host());
        CURVE or not for its PULL socket: `curve`, else curve_wanted()."""
        self.rendezvous = rendezvous
        self.pid, self.token, self.region, self.nregions = pid, token, region, nregions
        self.curve = curve_wanted() if curve is None else curve
        self.public, self.secret = zmq.curve_keypair()
        self.allowed = Allowed()
        self.ctx = zmq.Context()
        self.auth: ThreadAuthenticator | None = None
        self.pull = self._listen()
        self.monitor = self.pull.get_monitor_socket(REFUSED)
        self.push: list[zmq.Socket] = []
        self.peers: list[Peer] = []
        self.seq_out = [0] * nregions
        self.seq_in = [0] * nregions
        self.poller = zmq.Poller()
        self.poller.register(self.pull, zmq.POLLIN)
        self.poller.register(self.monitor, zmq.POLLIN)
        self.bytes_out = self.bytes_in = 0
        self.dropped = 0                   # frames of another process or incarnation, refused handshakes
        self.refused = 0                   # handshakes refused (counted in dropped too)
        self.early: list[wire.Frame] = []  # frames that came during the handshake
        try:
            self.address = self._bind(host)
            self.rendezvous.publish(region, f"{'curve' if self.curve else 'plain'} {self.public.decode()}",
                                    self.address)
            self.peers = self._rendezvous()
            self.allowed.set(frozenset(p.key for p in self.peers))
            self.push = [self._connect(peer) for peer in self.peers]
            self._handshake()
        except BaseException:
            self._close_sockets(linger_ms=0)       # nothing queued is wanted now
            raise

    @property
    def addresses(self) -> list[str]:
        return [p.address for p in self.peers]

    def _listen(self) -> zmq.Socket:
        """The PULL socket, a CURVE server behind the ZAP policy when curve."""
        s = self.ctx.socket(zmq.PULL)
        s.setsockopt(zmq.RCVHWM, 0)
        if self.curve:
            self.auth = ThreadAuthenticator(self.ctx)      # before any handshake can happen
            self.auth.start()
            self.auth.configure_curve_callback("*", credentials_provider=self.allowed)
            s.curve_server = True
            s.curve_secretkey, s.curve_publickey = self.secret, self.public
        return s

    def _bind(self, host: str) -> str:
        try:
            port = self.pull.bind_to_random_port(f"tcp://{host}")
        except zmq.ZMQError as e:
            raise DataPlaneError(f"cannot listen on {host}: {e}") from None
        return f"tcp://{host}:{port}"

    def _rendezvous(self) -> list[Peer]:
        deadline = time.monotonic() + RENDEZVOUS_SECONDS
        while True:
            found, curve = self.rendezvous.lookup()
            if len(found) >= self.nregions:
                return [self._peer(q, found[q], curve.get(q)) for q in range(self.nregions)]
            if time.monotonic() > deadline:
                missing = sorted(set(range(self.nregions)) - set(found))
                raise DataPlaneError(f"regions {missing} never published their data-plane address")
            time.sleep(0.01)

    @staticmethod
    def _peer(region: int, address: str, record: str | None) -> Peer:
        mode, _, key = (record or "").partition(" ")
        if mode not in ("curve", "plain") or len(key) != 40:
            raise DataPlaneError(f"region {region} published no valid CURVE record ({record!r})")
        return Peer(address, mode == "curve", key.encode())

    def _connect(self, peer: Peer) -> zmq.Socket:
        s = self.ctx.socket(zmq.PUSH)
        s.setsockopt(zmq.SNDHWM, 0)
        if peer.curve:
            s.curve_secretkey, s.curve_publickey, s.curve_serverkey = self.secret, self.public, peer.key
        s.connect(peer.address)
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
        engines = self.rendezvous.engines()
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
        ready = dict(self.poller.poll(timeout_ms))
        if self.monitor in ready:
            self._count_refused()
        if self.pull not in ready:
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

    def _count_refused(self) -> None:
        """A refused handshake is a peer whose frames will never arrive: one
        dropped frame each (a peer without CURVE retries, and counts again)."""
        while True:
            try:
                event = recv_monitor_message(self.monitor, zmq.NOBLOCK)
            except zmq.Again:
                return
            if not self.refused:
                log.warning("process %d region %d: a peer was refused at the handshake (%s, %s)",
                            self.pid, self.region, event["event"].name, event["value"])
            self.refused += 1
            self.dropped += 1

    def close(self) -> None:
        self._count_refused()                 # so the result counts every refusal
        self._close_sockets(linger_ms=5000)   # deliver what is queued (a STOP, a last batch)

    def _close_sockets(self, linger_ms: int) -> None:
        for s in self.push:
            s.close(linger=linger_ms)
        self.pull.disable_monitor()
        self.monitor.close(linger=0)
        self.pull.close(linger=0)
        if self.auth:
            self.allowed.release()            # else auth.stop() could wait for a waiting handshake
            self.auth.stop()
        self.ctx.term()
