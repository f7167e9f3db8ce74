"""A run restricted to one region: remote messages leave as packed records
in per-region outboxes and enter other regions by injection.  Shuttling the
records by hand between engines gives the single-engine answer."""
import struct

import pytest

from appcases import APPS_DIR
from psim import psim
from psim.engine import IDLE, STOPPED, Options
from psim.run import Loaded

BATCH = 1 << 16


def shuttle(engines: list, after_round=lambda engine: None) -> None:
    """Run started engines of one process's regions to the end, moving
    their outboxes by hand; after_round(engine) after each engine's round."""
    for _ in range(10_000):
        status = [e.run(BATCH) for e in engines]
        moved = 0
        for e in engines:
            for r in range(len(engines)):
                records = e.outbox(r)
                if records is not None:
                    engines[r].inject(bytes(records))
                    e.clear_outbox(r)
                    moved += 1
            after_round(e)
        if STOPPED in status or (not moved and all(s == IDLE for s in status)):
            return


def run_split(app: str, rmap: dict, n: int) -> tuple[dict, list]:
    engines = [Loaded(app).engine(Options(region=r), rmap) for r in range(n)]
    for e in engines:
        e.start()
    shuttle(engines)
    states = {}
    for e in engines:
        states.update(e.states())
    return states, [e.outcome() for e in engines]


def test_ring_split_in_two_regions_matches_one_engine():
    app = str(APPS_DIR / "ring_v2.xml")
    states, outcomes = run_split(app, {"n2": 1, "n3": 1}, 2)
    whole = psim(app)
    assert states == whole["states"]
    assert sum(o.delivered for o in outcomes) == 40
    assert [o.remote_sent for o in outcomes] == [10, 10]       # n1 -> n2 and n3 -> n0, ten laps
    assert [o.remote_received for o in outcomes] == [10, 10]
    assert outcomes[0].stop == 1 and outcomes[0].exit_code == 0   # n0, in region 0, exits


@pytest.mark.parametrize("name", ["sum_tree_v3", "edges_v3", "typed_v3", "devidle_v3", "halt_v3"])
def test_split_apps_match_one_engine(name):
    app = str(APPS_DIR / f"{name}.xml")
    whole = psim(app)
    devices = list(whole["states"])
    rmap = {d: i % 3 for i, d in enumerate(devices)}
    states, outcomes = run_split(app, rmap, 3)
    assert states == whole["states"]
    assert sum(o.delivered for o in outcomes) == whole["metrics"]["Delivered messages"]


def test_region_run_keeps_only_its_devices_and_counts_remote_traffic():
    app = str(APPS_DIR / "ring_v2.xml")
    res = psim(app, rmap={"n2": 1, "n3": 1}, options={"region": 0})
    assert set(res["states"]) == {"n0", "n1"}
    assert res["metrics"]["Remote messages sent"] == 1       # n1 -> n2, then nothing comes back
    assert res["status"] == "idle"


def test_malformed_records_are_refused():
    engine = Loaded(str(APPS_DIR / "ring_v2.xml")).engine(Options(region=0), {"n2": 1, "n3": 1})
    with pytest.raises(ValueError, match="truncated record"):
        engine.inject(b"\x01\x00")
    with pytest.raises(ValueError, match="source device index out of range"):
        engine.inject(bytes(8 * [0xFF]) + bytes(4))


@pytest.mark.parametrize("name", ["sup_barrier_v4", "sup_code_v4", "sup_bcast_v4"])
@pytest.mark.parametrize("where", [0, 1, 3])          # 3: a region of its own, with no devices
def test_split_supervisor_apps_match_one_engine(name, where):
    """Device-to-supervisor messages, replies and broadcasts travel as records
    between regions; apps that exit with nothing in flight give the whole answer."""
    app = str(APPS_DIR / f"{name}.xml")
    whole = psim(app)
    rmap = {d: i % 3 for i, d in enumerate(whole["states"])}
    states, outcomes = run_split(app, {**rmap, "__supervisor__": where}, max(3, where + 1))
    assert states == whole["states"]
    assert sum(o.delivered for o in outcomes) == whole["metrics"]["Delivered messages"]
    assert sum(o.remote_sent for o in outcomes) > 0
    assert [o.stop for o in outcomes][where] == 1                   # the supervisor's region ends it


def test_forged_supervisor_records_are_refused():
    app = str(APPS_DIR / "sup_bcast_v4.xml")                   # n0 n1 ear n2 rock n3; 'rock' has no supervisor pin
    here, away = (Loaded(app).engine(Options(region=r), {"n1": 1}) for r in (0, 1))
    here.start(), away.start()
    sup, n0, n1, rock, cmd = 0xFFFFFFFE, 0, 1, 4, bytes(12)
    with pytest.raises(ValueError, match="for the supervisor, sent to a region without it"):
        away.inject(struct.pack("<IIHH", n0, 0xFFFFFFFF, 0, 12) + cmd)
    with pytest.raises(ValueError, match="reply from the supervisor to a device not in this region"):
        here.inject(struct.pack("<IIHH", sup, n1, 0, 12) + cmd)
    with pytest.raises(ValueError, match="reply from the supervisor to a device without a supervisor input"):
        here.inject(struct.pack("<IIHH", sup, rock, 0, 12) + cmd)
    with pytest.raises(ValueError, match="must have pin 0"):
        here.inject(struct.pack("<IIHH", sup, 0xFFFFFFFF, 1, 12) + cmd)


def test_an_out_of_range_send_index_sends_no_record_to_another_region(tmp_path):
    """sender's indexed pin has one edge (to r0, here); its send to index 1
    fails the run before anything leaves: not a record to the region of the
    edge that happens to follow in memory (s2's, to r1, away)."""
    app = (APPS_DIR / "send_index_range_v3.xml").read_text()
    app = app.replace('*sendIndex = deviceState->sent == 0 ? 0 : 2;', '*sendIndex = deviceState->sent == 0 ? 0 : 1;')
    app = app.replace('<DevI id="r1" type="dst"/>', '<DevI id="s2" type="src"/><DevI id="r1" type="dst"/>')
    app = app.replace('<EdgeI path="r1:in-sender:out"/>', '<EdgeI path="r1:in-s2:out"/>')
    app = app.replace('if (deviceState->sent < 2)', 'if (deviceState->sent < 2 && deviceProperties->quiet == 0)')
    app = app.replace('<DeviceType id="src">', '<DeviceType id="src"><Properties><Scalar name="quiet" type="uint32_t"/>'
                                               '</Properties>')
    app = app.replace('<DevI id="s2" type="src"/>', '<DevI id="s2" type="src"><P>"quiet": 1</P></DevI>')
    path = tmp_path / "sir_remote.xml"
    path.write_text(app)
    res = psim(str(path), rmap={"r1": 1}, options={"region": 0})
    assert res["status"] == "failed" and "sendIndex 1 is out of range" in res["error"], res.get("error")
    assert res["metrics"]["Remote messages sent"] == 0
