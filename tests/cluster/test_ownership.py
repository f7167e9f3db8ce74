"""Ownership enforced by Redis ACLs and the scheduler, on a secured cluster:
user B cannot kill, read the result of, or change user A's process, through
the API or through Redis directly, whatever PSTACK_USER says; an admin can.
Real Redis ACL users: the identity is the Redis user, whichever OS user runs
the client."""
from __future__ import annotations

import pytest
import redis

import pcli
from broker import acl, keys
from broker.control import Control
from tinyapp import endless_app, ring_app, slow_app

def as_user(monkeypatch, urls: dict, name: str, claim: str | None = None) -> None:
    """Act as `name` (its credentials); `claim`: what PSTACK_USER says."""
    monkeypatch.setenv("PSTACK_REDIS", urls[name])
    monkeypatch.setenv("PSTACK_USER", claim or name)


def test_anonymous_access_is_refused(secured):
    with pytest.raises(redis.AuthenticationError):
        redis.Redis.from_url(secured.plain).get(keys.PID)


def test_the_owner_is_the_identity_not_pstack_user(secured, monkeypatch):
    as_user(monkeypatch, secured.urls, "bob", claim="alice")
    future = pcli.run(ring_app("mine"), async_=True)
    assert pcli.info(future.pid)["owner"] == "bob"
    assert future.result(timeout=60)["state"] == "finished"


def test_another_user_cannot_kill_or_read_but_may_list(secured, monkeypatch):
    as_user(monkeypatch, secured.urls, "alice")
    future = pcli.run(endless_app("alice"), async_=True)
    as_user(monkeypatch, secured.urls, "bob", claim="alice")
    assert future.pid in pcli.ps() and pcli.info(future.pid)["owner"] == "alice"
    with pytest.raises(PermissionError, match="belongs to alice"):
        pcli.kill(future.pid)
    with pytest.raises(PermissionError, match="belongs to alice"):
        pcli.kill(future.pid, force=True)            # force means nothing on a secured cluster
    assert pcli.info(future.pid)["state"] in ("waiting", "running")
    as_user(monkeypatch, secured.urls, "alice")
    assert pcli.kill(future.pid)
    assert pcli.block(future)["reason"] == "killed by alice"
    as_user(monkeypatch, secured.urls, "bob")
    with pytest.raises(PermissionError, match="only its owner may read"):
        pcli.result(future.pid)


def test_an_admin_kills_anyone_s_process(secured, monkeypatch):
    future = pcli.run(endless_app("alice"), async_=True)
    as_user(monkeypatch, secured.urls, acl.ADMIN)
    assert pcli.kill(future.pid)
    assert pcli.result(future.pid)["reason"] == "killed by admin"     # and reads it


def test_redis_itself_refuses_every_write_to_another_user_s_process(secured, monkeypatch):
    future = pcli.run(slow_app("target", 3), async_=True)
    pid = future.pid
    bob = redis.Redis.from_url(secured.urls["bob"])
    attempts = [
        lambda: bob.set(keys.proc_app("alice", pid), b"intruder"),
        lambda: bob.get(keys.proc_app("alice", pid)),
        lambda: bob.hgetall(keys.proc_results("alice", pid)),
        lambda: bob.xread({keys.proc_log("alice", pid): "0-0"}),
        lambda: bob.hset(keys.proc(pid), "owner", "bob"),
        lambda: bob.hset(keys.proc(pid), "state", "killed"),
        lambda: bob.delete(keys.proc(pid)),
        lambda: bob.xadd(keys.requests("alice"), {"op": "kill", "pid": pid}),
        lambda: bob.rpush(keys.QUEUE, pid),
        lambda: bob.rpush(keys.engine_jobs("e1"), f"{pid} 0 x"),
        lambda: bob.eval("return redis.call('HSET', KEYS[1], 'state', 'killed')", 1, keys.proc(pid)),
        lambda: bob.execute_command("ACL", "SETUSER", "bob", "~*"),
    ]
    for attempt in attempts:
        with pytest.raises(redis.exceptions.NoPermissionError):
            attempt()
    assert bob.hget(keys.proc(pid), "owner") == b"alice"           # what everyone may read
    res = future.result(timeout=60)
    assert res["state"] == "finished" and pcli.info(pid)["owner"] == "alice"


def test_the_scheduler_refuses_forged_requests(secured):
    bob = Control(redis.Redis.from_url(secured.urls["bob"]))
    forged = {"op": "submit", "app": keys.upload("alice", "0" * 32), "nregions": 1, "rcon": "{}",
              "record": "{}", "partition": ""}
    with pytest.raises(ValueError, match="is not an upload of user bob"):
        bob.request("bob", forged)
    with pytest.raises(ValueError, match="a submission sets only"):
        bob.request("bob", {"op": "create", "nregions": 1, "rcon": "{}", "record": '{"owner": "alice"}',
                            "phase": "uploading", "lease": 30})
    with pytest.raises(ValueError, match="unknown request"):
        bob.request("bob", {"op": "reboot"})
