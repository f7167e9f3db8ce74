"""Peers that are not regions of a process: a PUSH socket connecting to a
region's data-plane address with a CURVE keypair of its own, or plain TCP,
and what its handshake came to."""
from __future__ import annotations

import zmq
from zmq.utils.monitor import recv_monitor_message


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
