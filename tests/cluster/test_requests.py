"""No request stops the scheduler: whatever a user puts in its own inbox
(through its own Redis URL, as anyone with an account can), that request is
answered with a reason and removed, the scheduler keeps running, and other
users are served at once.  A request the scheduler was serving when it died
is not served again when it restarts."""
from __future__ import annotations

import json
import signal
import time

import psutil
import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import faults
from broker import acl, keys
from broker.control import Control
from conftest import Scheduler, wait_for

OPS = ("create", "prepare", "submit", "kill", "purge", "app_claim", "app_beat", "app_finish", "app_log")
FIELDS = ("op", "pid", "region", "nregions", "rcon", "record", "phase", "lease", "counts", "app", "partition",
          "instance", "pids", "whose", "before", "force", "why", "curve", "address", "progress", "state",
          "reason", "result", "lines")
SERVED_WITHIN = 1.0          # seconds for another user's request to be answered after the attack


def nested(depth: int, opener: str) -> str:
    """JSON nested `depth` deep: lists, or objects."""
    if opener == "{":
        return '{"a":' * depth + "1" + "}" * depth
    return "[" * depth + "1" + "]" * depth


texts = st.one_of(
    st.text(max_size=40),                                            # any Unicode
    st.binary(max_size=40),                                          # any bytes, UTF-8 or not
    st.integers(min_value=-2**70, max_value=2**70).map(str),         # numbers out of every range
    st.sampled_from(["nan", "inf", "-1", "0", "1e309", "", " ", "{}", "[]", "null", '"x"', "1.5"]),
    st.builds(nested, st.integers(1, 100_000), st.sampled_from("[{")),   # deep nesting, 100,000 at most
    st.integers(0, 200_000).map(lambda n: "9" * n),                  # long numbers
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3).map(json.dumps),
)
names = st.one_of(st.sampled_from(FIELDS), st.text(min_size=1, max_size=10), st.binary(min_size=1, max_size=10))
ops = st.one_of(st.sampled_from(OPS), texts)
requests = st.builds(lambda op, rest: {"op": op, **rest}, ops, st.dictionaries(names, texts, max_size=8))


def reply(r: redis.Redis, user: str, rid: bytes, timeout: float = 10.0) -> dict:
    got = r.blpop([keys.reply(user, rid.decode())], timeout=timeout)
    assert got is not None, f"request {rid!r} was not answered in {timeout} s"
    return json.loads(got[1])


def served_quickly(alice: Control) -> float:
    """Seconds the scheduler takes to answer another user (alice) now."""
    start = time.monotonic()
    assert alice.kill("alice", 999_999) == "nosuch"
    return time.monotonic() - start


@pytest.fixture
def users(secured, redis_server):
    """bob's own connection, alice's Control, and the scheduler's process."""
    bob = redis.Redis.from_url(secured.urls["bob"])
    alice = Control(redis.Redis.from_url(secured.urls["alice"]))
    return bob, alice, psutil.Process(redis_server.scheduler.proc.pid)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow, HealthCheck.data_too_large])
@given(batch=st.lists(requests, min_size=1, max_size=5))
def test_random_requests_are_answered_and_others_served(users, batch):
    bob, alice, scheduler = users
    rids = [bob.xadd(keys.requests("bob"), fields) for fields in batch]
    for rid in rids:
        answer = reply(bob, "bob", rid)
        assert isinstance(answer, dict) and answer
    assert bob.xlen(keys.requests("bob")) == 0                      # each one removed
    assert scheduler.is_running() and scheduler.status() != psutil.STATUS_ZOMBIE
    assert served_quickly(alice) < SERVED_WITHIN


@pytest.mark.parametrize("fields", [
    {"op": b"\xff"},                                                  # not UTF-8
    {b"\xfe": "1", "op": "kill"},
    {"op": "create", "nregions": "1", "rcon": "{}", "record": "[" * 100_000 + "]" * 100_000,
     "phase": "uploading", "lease": "30"},
    {"op": "create", "nregions": "1", "rcon": "[" * 100_000 + "]" * 100_000, "record": "{}",
     "phase": "uploading", "lease": "30"},
    {"op": "prepare", "pid": "1", "phase": "uploading", "counts": "{" * 50_000 + "}" * 50_000},
    {"op": "app_beat", "pid": "1", "region": "0", "progress": "[1, 2]"},
    {"op": "kill", "pid": "9" * 5000},
], ids=["op-not-utf8", "name-not-utf8", "record-nested", "rcon-nested", "counts-nested", "progress-list",
        "pid-huge"])
def test_the_requests_that_stopped_the_scheduler_get_a_reason(users, fields):
    bob, alice, scheduler = users
    start = time.monotonic()
    rid = bob.xadd(keys.requests("bob"), fields)
    answer = reply(bob, "bob", rid)
    took = time.monotonic() - start
    assert "error" in answer and answer["error"]
    assert bob.xlen(keys.requests("bob")) == 0
    assert scheduler.is_running() and served_quickly(alice) < SERVED_WITHIN
    faults.record(f"a user's request that crashed the scheduler ({next(iter(fields.values()))!r:.20} ...)",
                  f"refused with a reason: {answer['error'][:80]}; the scheduler serves on", took)


def test_a_request_being_served_when_the_scheduler_dies_is_not_served_again(secured, redis_server, tmp_path):
    """SIGKILL the scheduler while it serves a stream of requests (caught with
    a request's serving mark set); the new scheduler answers that request once,
    and every request gets exactly one answer."""
    admin = redis.Redis.from_url(secured.urls["admin"])
    bob = redis.Redis.from_url(secured.urls["bob"])
    for attempt in range(20):
        rids = [bob.xadd(keys.requests("bob"), {"op": "kill", "pid": 10**6 + i}) for i in range(900)]  # < inbox cap
        caught = wait_for(lambda: admin.hgetall(keys.SERVING), timeout=30, every=0.0005)
        redis_server.scheduler.proc.send_signal(signal.SIGKILL)
        redis_server.scheduler.proc.wait()
        left = admin.hgetall(keys.SERVING)
        redis_server.scheduler = Scheduler(secured.urls[acl.ENGINE], tmp_path)
        if left:
            break
        # killed between two requests: no mark to recover; let it finish and try again
        wait_for(lambda: bob.xlen(keys.requests("bob")) == 0, timeout=60)
    assert left, f"no kill landed while a request was being served in {attempt + 1} tries (caught {caught})"
    (mark,) = left
    marked = mark.decode().split(" ")[1]
    wait_for(lambda: bob.xlen(keys.requests("bob")) == 0, timeout=60)
    answers = {}
    for rid in rids:
        key = keys.reply("bob", rid.decode())
        answers[rid.decode()] = [json.loads(a) for a in bob.lrange(key, 0, -1)]
    assert all(len(a) == 1 for a in answers.values()), "a request was answered twice or not at all"
    assert answers[marked][0] in ({"outcome": "nosuch"},
                                  {"error": "the scheduler stopped while serving this request; "
                                            "it is not served again"})
    assert not admin.hgetall(keys.SERVING)
