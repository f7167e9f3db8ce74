"""Event traces (psim/trace.py): what a trace holds, its reader and its
graph-schema event log, and replays that reproduce a run exactly: fixed
and random orders, a failure a random seed finds, and a run split into
regions.  Bad traces and the wrong application give clear errors."""
import json
import subprocess
import sys
from collections import Counter

import pytest
from lxml import etree

from appcases import APPS_DIR
from psim import psim, trace
from psim.engine import STOP_EXIT, STOP_FAIL, Options
from psim.errors import BadInput
from psim.run import Loaded
from test_regions import shuttle

RING = str(APPS_DIR / "ring_v2.xml")
CAUSAL = str(APPS_DIR / "causal_v3.xml")
NODES = ["n0", "n1", "n2", "n3"]


def run_psim(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "psim", *args], capture_output=True, text=True, timeout=120)


def answer(res: dict) -> tuple:
    """What a replay must give again: states, status, error, counters, log."""
    m = res["metrics"]
    counters = {k: m[k] for k in ("Delivered messages", "Sends", "Cancelled sends", "Device idle calls",
                                  "Hardware idle rounds", "Steps", "Exit code")}
    return res["states"], res["status"], res.get("error"), counters, res.get("log")


@pytest.fixture(scope="module")
def ring(tmp_path_factory) -> tuple[dict, str]:
    path = str(tmp_path_factory.mktemp("ring") / "ring.ptrace")
    return psim(RING, options={"trace": path}), path


def test_ring_trace_holds_every_send_and_delivery(ring):
    res, path = ring
    events = list(trace.events(path))
    kinds = Counter(e["kind"] for e in events)
    assert kinds == {"init": 4, "send": 40, "sent": 40, "recv": 40, "return": 1}
    recvs = [e for e in events if e["kind"] == "recv"]
    # the token goes n0 -> n1 -> n2 -> n3 -> n0 ..., ten laps; each message names its sender
    assert [e["device"] for e in recvs] == NODES[1:] + NODES * 9 + NODES[:1]
    for e in recvs:
        src = NODES[(NODES.index(e["device"]) - 1) % 4]
        assert e["pin"] == "toggle_in" and e["source"] == f"{src}:toggle_out"
        assert e["message"] == {"src": NODES.index(src), "dst": 0xFFFFFFFF}
    # every delivery follows its send at once in the default order
    for i, e in enumerate(events):
        if e["kind"] == "recv":
            assert events[i - 1]["kind"] == "sent" and events[i - 1]["message"] == e["message"]
    # ten deliveries each: every node counts to 10 (n0 from 1, its tenth delivery exits instead)
    assert Counter(e["device"] for e in recvs) == {d: 10 for d in NODES}
    assert all(res["states"][d]["counter"] == 10 for d in NODES)


def test_ring_trace_as_graph_schema_event_log(ring, tmp_path):
    _, path = ring
    out = tmp_path / "ring-log.xml"
    assert trace.to_xml(path, out) == 84
    root = etree.parse(str(out)).getroot()
    ns = "{https://poets-project.org/schemas/virtual-graph-schema-v3}"
    assert root.tag == f"{ns}GraphLog" and root.get("graphTypeId") == "ro"
    events = list(root)
    assert Counter(e.tag[len(ns):] for e in events) == {"InitEvent": 4, "SendEvent": 40, "RecvEvent": 40}
    sends = {e.get("eventId"): e for e in events if e.tag == f"{ns}SendEvent"}
    for e in events:
        if e.tag == f"{ns}RecvEvent":
            send = sends[e.get("sendEventId")]
            assert int(json.loads("{" + send.find(f"{ns}M").text + "}")["src"]) == NODES.index(send.get("dev"))
    assert all(s.get("fanout") == "1" and s.get("cancel") == "0" for s in sends.values())


@pytest.mark.parametrize("options", [{}, {"order": "random", "seed": 7}], ids=["fixed", "random"])
@pytest.mark.parametrize("app", ["ring_v2", "order_sensitive_v3", "sup_barrier_v4", "devidle_v3"])
def test_replay_gives_the_same_result(app, options, tmp_path):
    path = str(tmp_path / "run.ptrace")
    res = psim(str(APPS_DIR / f"{app}.xml"), options={**options, "trace": path})
    again = trace.replay(path)
    assert answer(again) == answer(res)
    assert again["replay"]["records"] > 0


def failing_seed(*extra: str) -> int:
    """The first seed under which causal_v3's assertion fails (psim's exit status 1)."""
    for seed in range(50):
        done = run_psim(CAUSAL, "--order", "random", "--seed", str(seed), "-q", *extra)
        if done.returncode == 1:
            assert "Error  assertion 'deviceState->direct' failed in device 'sink" in done.stdout
            return seed
        assert done.returncode == 0, done.stderr
    raise AssertionError("no seed of 50 shows causal_v3's bug")


def test_a_failure_found_by_a_random_seed_replays_exactly(tmp_path):
    assert run_psim(CAUSAL, "-q").returncode == 0            # the default order hides the bug
    seed = failing_seed()
    path = str(tmp_path / "causal.ptrace")
    recorded = run_psim(CAUSAL, "--order", "random", "--seed", str(seed), "--trace", path, "-r")
    assert recorded.returncode == 1
    replayed = run_psim("--replay", path, "-r")
    assert replayed.returncode == 1, replayed.stderr
    res, again = json.loads(recorded.stdout), json.loads(replayed.stdout)
    assert again["status"] == "failed" and "assertion 'deviceState->direct' failed" in again["error"]
    assert answer(again) == answer(res)
    human = run_psim("--replay", path)
    assert "Replay " in human.stdout and "records in 1 region(s) matched the trace" in human.stdout


# ---- split runs: regions in this process, each engine driven in turn -------------------

def run_split_traced(app: str, rmap: dict, n: int, opts: dict, path: str) -> dict:
    """`app` in n regions, engines run one after the other and their
    outboxes moved between them (tests/psim/test_regions.py's driver), every
    engine traced into one file; the regions' states and outcome."""
    sink = trace.FileSink(path)
    engines = [Loaded(app, watchers=True).engine(Options(**opts, region=r), rmap, n_regions=n) for r in range(n)]
    sink(trace.head_chunks(engines[0].inst, engines[0], engines[0].opts))
    for e in engines:
        trace.record(e, sink)
        e.start()
    shuttle(engines, lambda e: e.drain_trace())
    outcomes = [e.outcome() for e in engines]
    errors = [e.failure(o) if o.stop == STOP_FAIL else None for e, o in zip(engines, outcomes)]
    status = "failed" if any(errors) else "exit" if any(o.stop == STOP_EXIT for o in outcomes) else "idle"
    for e, error in zip(engines, errors):
        sink(trace.end_chunk(e, status, 1 if error else 0, error))
    sink.close()
    error = [e for e in errors if e][-1] if any(errors) else None     # as pcli.api.merge picks it
    states = {}
    for e in engines:
        states.update(e.states())
    return {"states": states, "status": status, "error": error,
            "delivered": sum(o.delivered for o in outcomes)}


def test_a_split_run_replays_across_its_regions(tmp_path):
    """causal_v3 in three regions (the roots; relays and sinks 0 and 2; 1
    and 3), random order: a seed whose run fails, traced, replays to the
    same states and failure."""
    rmap = {f"{kind}{i}": 1 + i % 2 for kind in ("relay", "sink") for i in range(4)}
    path = str(tmp_path / "split.ptrace")
    for seed in range(50):
        split = run_split_traced(CAUSAL, rmap, 3, {"order": "random", "seed": seed}, path)
        if split["status"] == "failed":
            break
    else:
        raise AssertionError("no seed of 50 shows causal_v3's bug split")
    done = run_psim("--replay", path, "-r")
    assert done.returncode == 1, done.stderr
    again = json.loads(done.stdout)
    assert again["states"] == split["states"] and again["status"] == "failed"
    assert again["error"] == split["error"] and "assertion 'deviceState->direct' failed" in again["error"]
    assert again["metrics"]["Delivered messages"] == split["delivered"]
    assert again["replay"]["regions"] == 3 and sorted(again["regions"]) == ["0", "1", "2"]


# ---- bad traces --------------------------------------------------------------------------

def test_a_truncated_trace_is_refused(ring, tmp_path):
    _, path = ring
    cut = tmp_path / "cut.ptrace"
    data = open(path, "rb").read()
    cut.write_bytes(data[:len(data) // 2])
    done = run_psim("--replay", str(cut))
    assert done.returncode == 2
    assert f"trace {cut}: truncated" in done.stderr


def test_a_record_of_no_known_kind_is_refused(ring, tmp_path):
    _, path = ring
    data = bytearray(open(path, "rb").read())
    data[data.index(bytes([trace.SEND, 0, 0, 0, 0, 0, 0, 0]))] = 9       # n0's first send: kind 9
    bad = tmp_path / "kind.ptrace"
    bad.write_bytes(bytes(data))
    done = run_psim("--replay", str(bad))
    assert done.returncode == 2
    assert f"trace {bad}: region 0, record 4: unknown record kind 9 (corrupted)" in done.stderr


def test_a_file_that_is_no_trace_is_refused(tmp_path):
    with pytest.raises(BadInput, match="not a pstack trace"):
        trace.replay(RING)


def test_a_corrupted_record_is_reported_where_the_replay_diverges(ring, tmp_path):
    """A message byte changed in the file: the replay names the event."""
    _, path = ring
    data = bytearray(open(path, "rb").read())
    data[data.index(b"\x03\x00\x00\x00\xff\xff\xff\xff")] = 2     # n3's first send now says src 2
    bad = tmp_path / "bad.ptrace"
    bad.write_bytes(bytes(data))
    done = run_psim("--replay", str(bad))
    assert done.returncode == 1
    assert "psim: replay diverged at event" in done.stderr and "in region 0: expected" in done.stderr


def test_changed_options_diverge(tmp_path):
    """The seed in the header changed: another schedule, caught at its first difference."""
    path = tmp_path / "seed.ptrace"
    psim(str(APPS_DIR / "order_sensitive_v3.xml"), options={"order": "random", "seed": 1, "trace": str(path)})
    data = path.read_bytes()
    head = trace.TraceFile(path).head
    old = json.dumps(head).encode()
    new = json.dumps({**head, "options": {**head["options"], "seed": 2}}).encode()
    assert len(old) == len(new)
    path.write_bytes(data.replace(old, new))
    with pytest.raises(trace.Diverged, match=r"replay diverged at event \d+ in region 0: expected \w+ s\d:out"):
        trace.replay(path)


def test_a_trace_of_another_app_is_refused(ring):
    _, path = ring
    done = run_psim("--replay", path, str(APPS_DIR / "order_sensitive_v3.xml"))
    assert done.returncode == 2
    assert "recorded from another application" in done.stderr and "order_sensitive_v3.xml" in done.stderr


def test_a_run_with_an_application_engine_is_not_traced(tmp_path):
    from appcases import checker
    engine = checker(APPS_DIR / "ext_echo_v3.xml").externals()
    with pytest.raises(BadInput, match="cannot be traced"):
        psim(str(APPS_DIR / "ext_echo_v3.xml"), options={"trace": str(tmp_path / "t")}, externals=engine)
