"""`pstack-cluster check`: can every pair of live engines run a process together?

For each pair (a, b) of live engines it submits a tiny ring of four devices
split in two regions, region 0 on a and region 1 on b, so messages cross
between the engines in both directions.  All pairs are submitted at once
through the pcli API; each may run for a time limit (counted from when it
starts: pairs sharing an engine queue behind each other) and is killed
after it.  One line per pair says "ok in N ms" or "FAILED: reason", then
which pairs cannot run together, and which engine fails with every peer
(most likely its own address or firewall).
"""
from __future__ import annotations

import itertools
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator

from broker import keys
from broker.credentials import redact
from pcli import api

HELP = ("run a two-region ring on every pair of live engines and report "
        "which pairs cannot reach each other (exit 1 if any fails)")
TIMEOUT = 20.0                  # seconds a pair may run
POLL_SECONDS = 0.1

# Four devices d0..d3, each sends three messages to the next; d0 d1 are in
# region 0, d2 d3 in region 1, so d1 -> d2 and d3 -> d0 cross both ways.
RING = """<?xml version="1.0"?>
<Graphs xmlns="https://poets-project.org/schemas/virtual-graph-schema-v3">
  <GraphType id="pstack_check_ring">
    <MessageTypes><MessageType id="m"><Message><Scalar name="v" type="uint32_t"/></Message></MessageType></MessageTypes>
    <DeviceTypes>
      <DeviceType id="node">
        <State><Scalar name="n" type="uint32_t"/><Scalar name="got" type="uint32_t"/></State>
        <ReadyToSend><![CDATA[ *readyToSend = deviceState->n < 3 ? RTS_FLAG_out : 0; ]]></ReadyToSend>
        <InputPin name="in" messageTypeId="m"><OnReceive><![CDATA[ deviceState->got++; ]]></OnReceive></InputPin>
        <OutputPin name="out" messageTypeId="m"><OnSend><![CDATA[ message->v = deviceState->n++; ]]></OnSend></OutputPin>
      </DeviceType>
    </DeviceTypes>
  </GraphType>
  <GraphInstance id="ring" graphTypeId="pstack_check_ring">
    <DeviceInstances><DevI id="d0" type="node"/><DevI id="d1" type="node"/><DevI id="d2" type="node"/><DevI id="d3" type="node"/></DeviceInstances>
    <EdgeInstances><EdgeI path="d1:in-d0:out"/><EdgeI path="d2:in-d1:out"/><EdgeI path="d3:in-d2:out"/><EdgeI path="d0:in-d3:out"/></EdgeInstances>
  </GraphInstance>
</Graphs>
"""
RMAP = {"d2": 1, "d3": 1}
DELIVERED = 12                  # 4 devices x 3 messages


@dataclass
class Pair:
    a: str
    b: str
    pid: int
    running_since: float | None = None     # monotonic, when first seen running
    outcome: str | None = None              # set once decided
    ok: bool = False

    def decide(self, ok: bool, outcome: str) -> None:
        self.ok, self.outcome = ok, outcome


@contextmanager
def _pointing_at(url: str) -> Iterator[None]:
    """pcli's API talks to $PSTACK_REDIS: point it at URL for a while."""
    before = os.environ.get("PSTACK_REDIS")
    os.environ["PSTACK_REDIS"] = url
    try:
        yield
    finally:
        if before is None:
            del os.environ["PSTACK_REDIS"]
        else:
            os.environ["PSTACK_REDIS"] = before


def check(url: str, timeout: float = TIMEOUT, out: Callable[[str], None] = print) -> bool:
    """Run the ring on every pair of live engines at URL, print one line per
    pair and a summary; True when every pair ran it correctly."""
    with _pointing_at(url):
        names = sorted(e["name"] for e in api.engines() if e["alive"])
        if len(names) < 2:
            out(f"{len(names)} live engine{'s' * (len(names) != 1)} at {redact(url)}: no pair to check"
                + (f" ({names[0]})" if names else ""))
            return len(names) == 1
        pairs = [Pair(a, b, api.run(RING, rmap=RMAP, rcon={0: a, 1: b}, async_=True).pid)
                 for a, b in itertools.combinations(names, 2)]
        _watch(pairs, timeout)
    width = max(map(len, names))
    for p in pairs:
        out(f"{p.a:<{width}}  {p.b:<{width}}  {p.outcome}")
    return _summary(names, pairs, out)


def _watch(pairs: list[Pair], timeout: float) -> None:
    """Poll until every pair is decided; kill those over their time limit.

    A pair waits while its engines run other pairs, so the wait for a start
    is bounded by every pair taking its full limit, one after another."""
    give_up = time.monotonic() + timeout * len(pairs)
    while not all(p.outcome for p in pairs):
        now = time.monotonic()
        for p in pairs:
            if not p.outcome:
                _look(p, now, timeout, now > give_up)
        time.sleep(POLL_SECONDS)


def _look(p: Pair, now: float, timeout: float, give_up: bool) -> None:
    rec = api.info(p.pid)
    if rec["state"] in keys.ENDED:
        p.decide(*_judge(rec))
    elif rec["state"] == "running":
        p.running_since = p.running_since or now
        if now - p.running_since > timeout:
            api.kill(p.pid)
            p.decide(False, f"FAILED: no result within {timeout:g} s (pid {p.pid} killed)")
    elif give_up:
        api.kill(p.pid)
        p.decide(False, f"FAILED: never started (pid {p.pid} {rec['state']}; killed)")


def _judge(rec: dict) -> tuple[bool, str]:
    """(ok, outcome line) for an ended process record."""
    if rec["state"] != "finished":
        state = "" if rec["state"] == "failed" else f"{rec['state']}: "
        return False, f"FAILED: {state}{rec['reason'] or 'no reason given'} (pid {rec['pid']})"
    res = api.result(rec["pid"])
    delivered = res["metrics"].get("Delivered messages", 0)
    if res.get("status") == "failed" or delivered != DELIVERED:
        return False, (f"FAILED: wrong result: {delivered} of {DELIVERED} messages delivered "
                       f"(pid {rec['pid']})")
    ms = (rec["ended"] - rec["started"]) * 1000
    return True, f"ok in {ms:.0f} ms"


def _summary(names: list[str], pairs: list[Pair], out: Callable[[str], None]) -> bool:
    """Print which pairs failed, and any engine that failed with every peer."""
    failed = [p for p in pairs if not p.ok]
    if not failed:
        out(f"all {len(pairs)} pairs of {len(names)} engines ok")
        return True
    out(f"{len(failed)} of {len(pairs)} pairs cannot run together: "
        + ", ".join(f"{p.a} <-> {p.b}" for p in failed))
    if len(failed) < len(pairs):            # someone works: blame whoever fails with all
        for name in names:
            mine = [p for p in pairs if name in (p.a, p.b)]
            if all(not p.ok for p in mine):
                out(f"{name} fails with every other engine: check its advertised address "
                    "(pd --advertise, PSTACK_DATA_HOST), its firewall, and its pd log")
    return False
