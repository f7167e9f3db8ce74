"""Nobody writes into another user's process (issue 21, item 3), on a
secured single-host cluster (loopback, where the data plane used to run
plain TCP): bob cannot read alice's token, endpoints or keys through his
own URL; frames he sends to her region's address (found by other means:
here the admin reads it), plain or with a CURVE keypair of his own, with
her pid, token and sequence, are refused at the handshake and counted as
dropped, and her process gives psim's answer; a handler of bob's, in its
sandbox as a user of its own, that speaks ZeroMQ's wire protocol to her
address is cut off the same way."""
from __future__ import annotations

import os
import re
import time
from urllib.parse import urlsplit

import pytest
import redis
import zmq

import pcli
from broker import acl, keys
from conftest import wait_for
from faults import record
from pd.jail import UID_BASE
from psim import psim
from rogues import forge
from tinyapp import forever_app, slow_app

SPLIT = {"rmap": {"d2": 1, "d3": 1}, "rcon": {0: "e1", 1: "e1"}}

# A handler of bob's: a plain (NULL mechanism) ZMTP 3.0 PUSH peer, as any
# local user could write, to 127.0.0.1:PORT: greeting, READY, one message.
FORGER = r"""
#include <arpa/inet.h>
#include <cerrno>
#include <cstring>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
// What came of it: how the connection ended, and the server's mechanism.
static const char* forge(unsigned port, char* mechanism) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0) return strerror(errno);
    timeval tv{10, 0};
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(s, (sockaddr*)&a, sizeof a) < 0) { close(s); return strerror(errno); }
    unsigned char greeting[64] = {0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0x7f, 3, 0};
    memcpy(greeting + 12, "NULL", 4);
    static const unsigned char ready[] = {0x04, 26, 5, 'R', 'E', 'A', 'D', 'Y', 11, 'S', 'o', 'c', 'k', 'e', 't',
                                          '-', 'T', 'y', 'p', 'e', 0, 0, 0, 4, 'P', 'U', 'S', 'H'};
    unsigned char frame[2 + 32] = {0x00, 32};
    memset(frame + 2, 0xab, 32);
    send(s, greeting, 12, MSG_NOSIGNAL);             // signature and version: the server answers its greeting
    unsigned char got[64];
    size_t n = 0;
    ssize_t k = 1;
    while (n < sizeof got && (k = read(s, got + n, sizeof got - n)) > 0) n += k;
    if (n == sizeof got) memcpy(mechanism, got + 12, 20);
    send(s, greeting + 12, sizeof greeting - 12, MSG_NOSIGNAL);
    send(s, ready, sizeof ready, MSG_NOSIGNAL);
    send(s, frame, sizeof frame, MSG_NOSIGNAL);
    char rest[256];
    while (k > 0) k = read(s, rest, sizeof rest);
    close(s);
    return k == 0 || errno == ECONNRESET ? "cut off by the server" : strerror(errno);
}
"""

BOB_APP = """<?xml version="1.0"?>
<Graphs xmlns="https://poets-project.org/schemas/virtual-graph-schema-v3">
  <GraphType id="forger">
    <SharedCode><![CDATA[ {shared} ]]></SharedCode>
    <MessageTypes><MessageType id="m"><Message><Scalar name="v" type="uint32_t"/></Message></MessageType></MessageTypes>
    <DeviceTypes>
      <DeviceType id="node">
        <Properties><Scalar name="port" type="uint32_t"/></Properties>
        <State><Scalar name="n" type="uint32_t"/></State>
        <ReadyToSend><![CDATA[ *readyToSend = 0; ]]></ReadyToSend>
        <OnInit><![CDATA[
          if (deviceProperties->port) {{
            char mechanism[21] = {{0}};
            const char* how = forge(deviceProperties->port, mechanism);
            handler_log(1, "forged as uid %u: %s; the server speaks %s", (unsigned)getuid(), how, mechanism);
          }}
        ]]></OnInit>
        <InputPin name="in" messageTypeId="m"><OnReceive><![CDATA[ ]]></OnReceive></InputPin>
      </DeviceType>
    </DeviceTypes>
  </GraphType>
  <GraphInstance id="g" graphTypeId="forger">
    <DeviceInstances><DevI id="d0" type="node"><P>"port": {port}</P></DevI></DeviceInstances>
    <EdgeInstances></EdgeInstances>
  </GraphInstance>
</Graphs>
"""


def bob_app(port: int) -> str:
    """Bob's application; port 0: its handler does nothing (to compile it)."""
    return BOB_APP.format(shared=FORGER, port=port)


def answer(res: dict) -> tuple:
    return res["states"], res["status"], res["metrics"]["Exit code"], res["metrics"]["Delivered messages"]


def client(secured, name: str) -> redis.Redis:
    return redis.Redis.from_url(secured.urls[name])


def region_address(secured, pid: int, region: int) -> tuple[str, bytes]:
    """Where region `region` of alice's process listens, and its public key,
    as the admin reads them (bob may not: he found them by other means)."""
    admin = client(secured, acl.ADMIN)
    curve = keys.proc_curve("alice", pid)
    wait_for(lambda: admin.hlen(curve) == 2, timeout=60)
    address = admin.hget(keys.proc_endpoints("alice", pid), region).decode()
    return address, admin.hget(curve, region).decode().split(" ")[1].encode()


def readable(r: redis.Redis, key: bytes) -> object:
    """What `r` reads of a process table key (a hash or a string)."""
    return r.hgetall(key) if r.type(key) == b"hash" else r.get(key)


def as_bob(secured, monkeypatch) -> None:
    monkeypatch.setenv("PSTACK_REDIS", secured.urls["bob"])


def test_another_user_cannot_read_a_process_s_token_endpoints_or_keys(secured, monkeypatch):
    future = pcli.run(forever_app("private_plane"), **SPLIT, async_=True)
    region_address(secured, future.pid, 1)                     # its regions have published
    admin, bob = client(secured, acl.ADMIN), client(secured, "bob")
    token = admin.get(keys.proc_token("alice", future.pid)).decode()
    assert token == future.token
    reads = {"token": lambda: bob.get(keys.proc_token("alice", future.pid)),
             "endpoints": lambda: bob.hgetall(keys.proc_endpoints("alice", future.pid)),
             "keys": lambda: bob.hgetall(keys.proc_curve("alice", future.pid)),
             "an endpoint": lambda: bob.hget(keys.proc_endpoints("alice", future.pid), 1),
             "the engine's jobs": lambda: bob.lrange(keys.engine_jobs("e1"), 0, -1),
             "the engine's taken jobs": lambda: bob.lrange(keys.engine_taken("e1"), 0, -1)}
    for what, read in reads.items():
        with pytest.raises(redis.exceptions.NoPermissionError):
            read()
            pytest.fail(f"bob read {what}")
    # what bob may read of her process says nothing of its token or data plane
    for key in admin.scan_iter(f"{keys.proc(future.pid)}*"):
        text = repr(readable(bob, key))                        # he may read it all
        assert token not in text and "tcp://" not in text, key
    as_bob(secured, monkeypatch)                               # and ps, info and engines work for him
    assert future.pid in pcli.ps()
    info = pcli.info(future.pid)
    assert info["owner"] == "alice" and info["state"] == "running" and "token" not in info
    assert [e["name"] for e in pcli.engines()] == ["e1"]
    monkeypatch.setenv("PSTACK_REDIS", secured.urls["alice"])
    assert pcli.kill(future.pid)
    pcli.block(future)
    assert pcli.purge([future.pid])["purged"] == [future.pid]          # and purge takes them with it
    assert not admin.exists(*(key("alice", future.pid) for key in (keys.proc_token, keys.proc_endpoints,
                                                                    keys.proc_curve)))


def test_users_of_an_older_pstack_get_todays_rules_when_the_cluster_is_secured_again(secured):
    admin, bob = client(secured, acl.ADMIN), client(secured, "bob")
    older = [rule for rule in acl.user_rules("bob") if not rule.startswith("(")] + [f"%R~{acl.ENGINE_KEYS}"]
    admin.execute_command("ACL", "SETUSER", "bob", "clearselectors", *older)      # as an older pstack made him
    assert bob.lrange(keys.engine_jobs("e1"), 0, -1) == []                       # he could read the job lists
    secrets = {name: urlsplit(url).password for name, url in secured.urls.items()}
    acl.secure(admin, secrets[acl.ADMIN], secrets[acl.ENGINE])                  # what `pstack-cluster start` does
    with pytest.raises(redis.exceptions.NoPermissionError):
        bob.lrange(keys.engine_jobs("e1"), 0, -1)
    assert bob.execute_command("ACL", "WHOAMI") == b"bob"                        # his secret still his


def test_another_user_s_forged_frames_are_refused_and_counted(secured, tmp_path):
    app = tmp_path / "slow.xml"
    app.write_text(slow_app("auth_rogue", 6.0))            # each region sleeps 6 s in its first OnInit
    future = pcli.run(str(app), **SPLIT, async_=True)
    address, server_key = region_address(secured, future.pid, 1)
    # the most a forger could know (the token: the admin's read)
    outcomes, refused_after = forge(future, address, server_key)
    assert outcomes[0] == zmq.EVENT_HANDSHAKE_FAILED_AUTH and outcomes[1] != zmq.EVENT_HANDSHAKE_SUCCEEDED
    res = future.result(timeout=60)
    assert res["state"] == "finished", res.get("reason")
    assert answer(res) == answer(psim(str(app)))
    dropped = res["regions"][1]["Dropped frames"]
    assert dropped >= 2 and res["regions"][0]["Dropped frames"] == 0
    record("another user sends frames with the pid, token and sequence of a user's split process to its "
           "region's loopback address, plain TCP and with a CURVE keypair of his own (secured single-host "
           "cluster, the default PSTACK_CURVE)",
           f"refused at the CURVE handshake, the frames never arrive; counted as dropped ({dropped}); the "
           "process ends with psim's answer", refused_after)


def test_another_user_s_handler_cannot_reach_a_process_s_data_plane(secured, monkeypatch):
    secured.daemons.start("e2")                            # bob's process runs beside alice's two regions
    as_bob(secured, monkeypatch)
    compiled = pcli.run(bob_app(0), rcon={0: "e2"})        # compiled before alice's process starts
    assert compiled["state"] == "finished", compiled.get("reason")
    monkeypatch.setenv("PSTACK_REDIS", secured.urls["alice"])
    future = pcli.run(forever_app("handler_target"), **SPLIT, async_=True)
    address, _ = region_address(secured, future.pid, 1)
    wait_for(lambda: pcli.info(future.pid)["delivered"] > 0, timeout=60)
    as_bob(secured, monkeypatch)
    start = time.monotonic()
    res = pcli.run(bob_app(int(address.rsplit(":", 1)[1])), rcon={0: "e2"})
    assert res["state"] == "finished", res.get("reason")
    [line] = [text for _, _, text in res["log"]]
    how, uid = re.fullmatch(r"forged as uid (\d+): (.*)", line).group(2, 1)
    assert how == "cut off by the server; the server speaks CURVE"
    assert int(uid) >= UID_BASE or os.geteuid() != 0           # a user of its own when pd is root
    monkeypatch.setenv("PSTACK_REDIS", secured.urls["alice"])
    wait_for(lambda: pcli.info(future.pid)["dropped"] >= 1, timeout=30)
    refused_after = time.monotonic() - start
    delivered = pcli.info(future.pid)["delivered"]
    wait_for(lambda: pcli.info(future.pid)["delivered"] > delivered, timeout=30)     # it runs on
    info = pcli.info(future.pid)
    assert info["state"] == "running"
    assert pcli.kill(future.pid)
    record("another user's handler (in its sandbox, a user of its own) connects to a user's region's "
           "loopback address and speaks ZeroMQ's wire protocol to it, plain (NULL mechanism)",
           f"cut off at the handshake (the region's socket speaks CURVE only): the handler sees the connection "
           f"cut; counted as dropped ({info['dropped']}); the process runs on", refused_after)
