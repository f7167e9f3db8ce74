"""CURVE on the data plane (real redis-server, pd daemons, ZeroMQ): a split
process gives psim's answer over CURVE; peers without the process's keys
are refused at the handshake, counted as dropped, and change nothing;
CURVE is the default on loopback too, plain TCP only when told
(PSTACK_CURVE=off); mixed modes work."""
from __future__ import annotations

import zmq

import pcli
from appcases import APPS_DIR
from broker import keys
from conftest import wait_for
from faults import record
from psim import psim
from rogues import forge
from tinyapp import slow_app

RING = str(APPS_DIR / "ring_v2.xml")
SPLIT = {"rmap": {"n2": 1, "n3": 1}, "rcon": {0: "left", 1: "right"}}


def answer(res: dict) -> tuple:
    return res["states"], res["status"], res["metrics"]["Exit code"], res["metrics"]["Delivered messages"]


def modes(pid: int) -> dict[int, str]:
    """Region -> "curve" or "plain", as the regions published it."""
    ctl = pcli.api.control()
    records = ctl.r.hgetall(keys.proc_curve(ctl.owner(pid), pid))
    return {int(k): v.decode().split(" ")[0] for k, v in records.items()}


def start_pds(cluster, left: str | None, right: str | None) -> None:
    """Daemons left and right, with PSTACK_CURVE as given (None: unset, on)."""
    for name, mode in (("left", left), ("right", right)):
        cluster.start(name, slots=2, env={"PSTACK_CURVE": mode} if mode else None)


def test_split_process_over_curve_gives_psims_answer(cluster):
    start_pds(cluster, "on", "on")
    res = pcli.run(RING, **SPLIT)
    assert res["state"] == "finished", res.get("reason")
    assert answer(res) == answer(psim(RING))
    assert res["metrics"]["Dropped frames"] == 0
    assert modes(max(pcli.ps(all=True))) == {0: "curve", 1: "curve"}


def test_curve_is_the_default_on_loopback_and_mixes_with_plain(cluster):
    start_pds(cluster, None, "off")
    res = pcli.run(RING, **SPLIT)
    assert res["state"] == "finished", res.get("reason")
    assert answer(res) == answer(psim(RING))
    assert modes(max(pcli.ps(all=True))) == {0: "curve", 1: "plain"}


def test_bad_curve_setting_fails_the_process_with_a_reason(cluster):
    start_pds(cluster, "auto", None)             # auto (plain TCP on loopback) is gone: not a safe choice
    res = pcli.run(RING, **SPLIT)
    assert res["state"] == "failed" and "PSTACK_CURVE=auto: expected on or off" in res["reason"]


def test_rogue_peers_are_refused_at_the_handshake_and_counted(cluster, tmp_path):
    start_pds(cluster, None, None)
    app = tmp_path / "slow.xml"
    app.write_text(slow_app("curve_rogue", 4.0))           # each region sleeps 4 s in its first OnInit
    future = pcli.run(str(app), rmap={"d2": 1, "d3": 1}, rcon={0: "left", 1: "right"}, async_=True)
    ctl = pcli.api.control()
    owner = ctl.owner(future.pid)
    wait_for(lambda: ctl.r.hlen(keys.proc_curve(owner, future.pid)) == 2)
    address = ctl.r.hget(keys.proc_endpoints(owner, future.pid), 1).decode()
    server_key = ctl.r.hget(keys.proc_curve(owner, future.pid), 1).decode().split(" ")[1].encode()
    # the rogue has the pid, the token and the sequence; only the keys are missing
    outcomes, refused_after = forge(future, address, server_key)
    # the CURVE rogue hears the ZAP refusal; the plain one is cut off (mechanism mismatch)
    assert outcomes[0] == zmq.EVENT_HANDSHAKE_FAILED_AUTH and outcomes[1] != zmq.EVENT_HANDSHAKE_SUCCEEDED
    res = future.result(timeout=30)
    assert res["state"] == "finished", res.get("reason")
    assert answer(res) == answer(psim(str(app)))
    dropped = res["regions"][1]["Dropped frames"]
    assert dropped >= 2                                     # one per refused handshake; plain TCP retries
    assert res["regions"][0]["Dropped frames"] == 0
    record("peers without the process's CURVE keys (a random keypair with the right server key; plain TCP) "
           "send frames with the right pid, token and sequence (CURVE, the default, on loopback)",
           f"refused at the CURVE handshake (ZAP: unknown key; mechanism mismatch), their frames never arrive; "
           f"counted as dropped ({dropped}: one per refused handshake); the process ends with psim's answer",
           refused_after)
