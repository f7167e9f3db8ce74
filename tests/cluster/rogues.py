"""Peers that are not regions of a process: a PUSH socket connecting to a
region's data-plane address with a CURVE keypair of its own, or plain TCP,
and what its handshake came to."""
from __future__ import annotations

import time

import zmq
from zmq.utils.monitor import recv_monitor_message

import pcli
from broker import wire


def rogue(ctx: zmq.Context, address: str, server_key: bytes | None) -> tuple[zmq.Socket, zmq.Socket]:
    """A PUSH socket to ADDRESS, a CURVE client with its own random keypair
    (or plain TCP when server_key is None), and a monitor of its handshakes."""
    s = ctx.socket(zmq.PUSH)
    if server_key:
        s.curve_publickey, s.curve_secretkey = zmq.curve_keypair()
        s.curve_serverkey = server_key
    monitor = s.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_HANDSHAKE_FAILED_AUTH
                                   | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL)
    s.connect(address)
    return s, monitor


def handshake_outcome(monitor: zmq.Socket) -> zmq.Event:
    assert monitor.poll(10_000), "no handshake outcome in 10 s"
    return recv_monitor_message(monitor)["event"]


def forge(future, address: str, server_key: bytes) -> tuple[list[zmq.Event], float]:
    """Send region 1 of `future`'s process at ADDRESS the most a forger could
    know (pid, token, and what region 0 sends it next after its HELLO, seq
    0: a STOP and a MSG) from a CURVE keypair of its own and over plain TCP:
    each socket's handshake outcome, and the seconds until both were known.
    The process must still run when they are."""
    frames = [wire.pack(wire.STOP, future.pid, future.token, 0, 1, {"status": "exit", "code": 7}),
              wire.pack(wire.MSG, future.pid, future.token, 0, 2, b"\0" * 16)]
    start = time.monotonic()
    with zmq.Context() as ctx:
        sockets = [rogue(ctx, address, server_key), rogue(ctx, address, None)]
        for s, _ in sockets:
            for f in frames:
                s.send(f)
        outcomes = [handshake_outcome(m) for _, m in sockets]
        refused_after = time.monotonic() - start
        assert pcli.info(future.pid)["state"] == "running"  # refused while the process ran
        for s, m in sockets:
            s.close(linger=0)
            m.close(linger=0)
    return outcomes, refused_after
