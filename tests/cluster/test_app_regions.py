"""The control-plane side of application engines: a region whose rcon is
'@app' takes no engine slot and is run by its owner's own client, which acts
on it only through requests the scheduler checks (claim, beat, log,
finish); nobody else may, and one that never connects fails its process."""
from __future__ import annotations

import pytest
import redis

import pcli
from broker import keys
from broker.control import APP, Control
from conftest import wait_for
from tinyapp import ring_app

PLAIN = "plain " + "0" * 40          # a CURVE record's form; no region ever connects to it here


def client(url: str) -> Control:
    return Control(redis.Redis.from_url(url))


def app_process(name: str) -> pcli.Future:
    """A two-region ring whose region 1 is an application engine's."""
    future = pcli.run(ring_app(name), rmap={"d1": 1}, rcon={1: APP}, async_=True)
    wait_for(lambda: pcli.info(future.pid)["state"] == "running")
    return future


def test_an_app_region_takes_no_slot_and_only_its_owner_may_run_it(secured):
    future = app_process("app")
    pid = future.pid
    assert pcli.info(pid)["engines"] == {0: "e1", 1: APP}
    assert [e["used"] for e in pcli.engines()] == [1]                    # region 0 only
    bob, alice = client(secured.urls["bob"]), client(secured.urls["alice"])
    with pytest.raises(ValueError, match="belongs to alice"):
        bob.app_claim("bob", pid, 1, PLAIN, "tcp://127.0.0.1:9")
    with pytest.raises(ValueError, match="not run by an application engine"):
        alice.app_claim("alice", pid, 0, PLAIN, "tcp://127.0.0.1:9")
    token = alice.app_claim("alice", pid, 1, PLAIN, "tcp://127.0.0.1:9")
    assert token == future.token
    with pytest.raises(ValueError, match="claimed by another application engine"):
        alice.app_claim("alice", pid, 1, PLAIN, "tcp://127.0.0.1:9")
    assert alice.r.hget(keys.proc_endpoints("alice", pid), 1) == b"tcp://127.0.0.1:9"
    assert alice.app_beat("alice", pid, 1, **{"delivered:1": 5, "owner": "bob"}) == ("ok", 0)
    assert pcli.info(pid)["owner"] == "alice" and pcli.info(pid)["delivered"] >= 5   # only its own fields
    alice.app_log("alice", pid, 1, [("d1", 1, "hello from Python")])
    assert [e["text"] for _, e in alice.read_log(pid)] == ["hello from Python"]
    alice.app_finish("alice", pid, 1, "failed", "the engine's receive raised ValueError: boom")
    res = future.result(timeout=30)
    assert res["state"] == "failed" and res["reason"] == "the engine's receive raised ValueError: boom"
    assert alice.app_beat("alice", pid, 1) == ("ended", 0)
    assert [e["used"] for e in pcli.engines()] == [0]


def test_app_regions_do_not_count_against_the_cluster_s_slots(secured):
    rmap = {"d1": 1, "d2": 2, "d3": 3}                                   # e1 has 2 slots in all
    future = pcli.run(ring_app("fits"), rmap=rmap, rcon={1: APP, 2: APP, 3: APP}, async_=True)
    wait_for(lambda: pcli.info(future.pid)["state"] == "running")
    assert pcli.kill(future.pid)
    with pytest.raises(ValueError, match="3 regions on engines, but the cluster has 2 slots in all"):
        pcli.run(ring_app("too_many"), rmap=rmap, rcon={3: APP}, async_=True)


def test_an_app_region_whose_engine_stops_beating_fails_its_process(secured):
    future = app_process("silent")
    client(secured.urls["alice"]).app_claim("alice", future.pid, 1, PLAIN, "tcp://127.0.0.1:9")
    res = future.result(timeout=30)             # no beat within APP_TTL_MS (region 0 may fail first: no HELLO)
    assert res["state"] == "failed"
    assert "application engine stopped responding" in res["reason"] or "cannot reach" in res["reason"]
