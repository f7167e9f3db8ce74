"""Region results recorded packed (pd/results.py, docs/protocol.md
"Results"): decoded by pcli.result only when asked, equal to a whole run's,
and a forged record from the sandbox fails its own process with a reason."""
from __future__ import annotations

import msgpack
import pytest
from appcases import APPS_DIR
from tinyapp import ring_app

import pcli
from psim import psim

RING = str(APPS_DIR / "ring_v2.xml")
SPLIT = {"devidle": APPS_DIR / "devidle_v3.xml",      # four device types
         "heat": APPS_DIR / "heat_v4.xml"}            # arrays and a struct in its state: the layouts' slow path


@pytest.fixture
def two_pds(cluster):
    cluster.start("left")
    cluster.start("right")
    return cluster


@pytest.mark.parametrize("app", list(SPLIT.values()), ids=list(SPLIT))
def test_split_states_decode_to_the_whole_runs_and_only_when_asked(two_pds, app):
    app = str(app)
    whole = psim(app)
    res = pcli.run(app, regions=2)
    assert res["state"] == "finished", res["reason"]
    assert res["states"] == whole["states"]
    pid = max(pcli.ps(all=True))
    bare = pcli.result(pid, states=False)
    assert "states" not in bare
    assert bare["metrics"] == res["metrics"] and bare["status"] == res["status"] and bare["log"] == res["log"]
    assert pcli.result(pid) == res


def forging(record: bytes) -> str:
    """OnInit code that sends the worker a "done" message with `record` as
    the result, on the sandbox's channel (its fd is on its command line),
    then waits to be stopped."""
    msg = msgpack.packb({"t": "done", "status": "finished", "reason": "", "result": record}, use_bin_type=True)
    data = ", ".join(str(b) for b in len(msg).to_bytes(4, "big") + msg)
    return f"""static bool once = false; if (!once) {{ once = true;
        static const unsigned char forged[] = {{{data}}};
        char cmd[4096] = {{0}}; FILE* f = fopen("/proc/self/cmdline", "r");
        size_t n = fread(cmd, 1, sizeof cmd - 1, f); fclose(f);
        const char* args[16]; int k = 0;
        for (size_t i = 0; i < n && k < 16; i += strlen(cmd + i) + 1) args[k++] = cmd + i;
        write(atoi(args[k - 2]), forged, sizeof forged);
        for (;;) sleep(1); }}"""


SHARED = "#include <cstdio>\n#include <cstdlib>\n#include <cstring>\n#include <unistd.h>\n"


@pytest.mark.parametrize("record, why", [
    (msgpack.packb({"format": 1, "metrics": {}, "states": []})[:-3], "not msgpack"),
    (msgpack.packb({"format": 1, "metrics": {}, "states": [{"type": "node", "devices": b"\0" * 8, "ids": b"d0\0",
                                                           "state": b""}]}, use_bin_type=True),
     "ids and indices disagree"),
    (msgpack.packb({"format": 7, "states": []}), "unknown format 7"),
], ids=["truncated", "ids", "format"])
def test_a_forged_result_fails_its_process_with_the_reason_and_pd_serves_on(cluster, record, why):
    cluster.start("e1")
    res = pcli.run(ring_app(f"forged_{why.split()[0]}", shared=SHARED, init=forging(record)))
    assert res["state"] == "failed"
    assert res["reason"].startswith("region 0 (engine e1): the region's result is malformed (")
    assert why in res["reason"]
    assert pcli.run(RING)["metrics"]["Delivered messages"] == 40


def test_states_that_do_not_fit_the_graph_type_fail_only_their_decoding(cluster):
    cluster.start("e1")
    record = msgpack.packb({"format": 1, "metrics": {"Delivered messages": 7}, "status": "idle", "log": [],
                            "states": [{"type": "node", "devices": b"\0" * 4, "ids": b"d0\0", "state": b"\0"}]},
                           use_bin_type=True)
    future = pcli.run(ring_app("forged_fit", shared=SHARED, init=forging(record)), async_=True)
    with pytest.raises(ValueError, match="region 0's result is malformed: its states of type 'node' do not fit"):
        future.result()
    bare = pcli.result(future.pid, states=False)
    assert bare["state"] == "finished" and bare["metrics"]["Delivered messages"] == 7
