"""A burst is served whole: many submissions from 4 users at once (each
user a client process of its own, through pcli.run), on a secured cluster of
two engines; every one gets a pid and ends with psim's answer.
$PSTACK_BURST says how many (40 in `make test`, 1,000 in `make
reliability`); bench/bench_burst.py is the same burst with figures."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import redis

import faults
from broker import acl

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from bench_burst import burst  # noqa: E402

USERS = ("alice", "bob", "carol", "dave")
BURST = int(os.environ.get("PSTACK_BURST", "40"))


def test_a_burst_from_four_users_is_served_whole(secured, redis_server):
    secured.daemons.start("e2", slots=2)
    admin = secured.urls[acl.ADMIN]
    r = redis.Redis.from_url(admin)
    urls = {name: secured.urls.get(name) or
            f"redis://{name}:{acl.add_user(r, name)}@127.0.0.1:{redis_server.port}/0" for name in USERS}
    report = burst(urls, admin, BURST // len(USERS), limit=1500)
    assert report["with_pid"] == report["processes"] == BURST, report["refused"][:5]
    assert report["outcomes"] == {"finished": BURST}, report["failed_reasons"]
    scripts = report["scripts_ms"]
    faults.record(f"a burst of {BURST} submissions from 4 users at once (2 engines x 2 slots)",
                  f"every one got a pid and finished; submit to start p50 {report['submit_to_start_ms']['p50']:.0f} "
                  f"ms, p99 {report['submit_to_start_ms']['p99']:.0f} ms (queueing for 4 slots); scheduling "
                  f"pass (submit script) p99 {scripts['submit']['p99']} ms, max {scripts['submit']['max']} ms",
                  report["seconds"])
