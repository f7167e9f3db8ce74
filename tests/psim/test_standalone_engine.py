"""psim with an application engine, in one process (pcli/standalone.py):
the C devices in psim's engine, the externals served by a pcli.Engine in a
thread, over broker/localplane.py; the result merged as pcli's."""
import subprocess
import sys

import pytest

import pcli
from appcases import APPS_DIR
from broker import wire
from broker.localplane import local_planes
from psim import BadInput, psim

ECHO = str(APPS_DIR / "ext_echo_v3.xml")
ECHO_ENGINE = str(APPS_DIR / "ext_echo_v3.py")

PAIRS = """<?xml version="1.0"?>
<Graphs xmlns="https://poets-project.org/schemas/virtual-graph-schema-v3">
  <GraphType id="pairs">
    <MessageTypes><MessageType id="val"><Message><Scalar name="v" type="uint32_t"/></Message></MessageType>
    </MessageTypes>
    <DeviceTypes>
      <DeviceType id="node">
        <State><Scalar name="sent" type="uint32_t"/><Scalar name="sum" type="uint32_t"/></State>
        <ReadyToSend><![CDATA[ if (deviceState->sent < 3) *readyToSend = RTS_FLAG_ask; ]]></ReadyToSend>
        <OutputPin name="ask" messageTypeId="val">
          <OnSend><![CDATA[ message->v = ++deviceState->sent; ]]></OnSend></OutputPin>
        <InputPin name="answer" messageTypeId="val">
          <OnReceive><![CDATA[ {receive} deviceState->sum += message->v; ]]></OnReceive></InputPin>
      </DeviceType>
      <ExternalType id="io">
        <InputPin name="in" messageTypeId="val"/><OutputPin name="out" messageTypeId="val"/>
      </ExternalType>
    </DeviceTypes>
  </GraphType>
  <GraphInstance id="pairs_1" graphTypeId="pairs">
    <DeviceInstances>{devices}</DeviceInstances>
    <EdgeInstances>{edges}</EdgeInstances>
  </GraphInstance>
</Graphs>
"""


def pairs_app(n: int = 8, receive: str = "") -> str:
    """n devices d<k>, each wired both ways to its own external x<k>: d<k>
    sends 1, 2, 3 and adds the answers."""
    devices = "".join(f'<DevI id="d{k}" type="node"/><ExtI id="x{k}" type="io"/>' for k in range(n))
    edges = "".join(f'<EdgeI path="x{k}:in-d{k}:ask"/><EdgeI path="d{k}:answer-x{k}:out"/>' for k in range(n))
    return PAIRS.format(devices=devices, edges=edges, receive=receive)


def doubling(arrivals: list):
    """An engine's receive: note what arrives, answer twice the value."""
    def receive(engine, msg):
        arrivals.append((msg.src, msg.fields["v"]))
        engine.send(msg.dst, "out", v=2 * msg.fields["v"])
    return receive


def cli(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "psim", *args], capture_output=True, text=True, timeout=120,
                          cwd=cwd)


# ---- the API ------------------------------------------------------------------------------


def test_the_engine_serves_the_externals_and_the_result_merges_both_regions():
    def receive(engine, msg):
        engine.log("io", f"got {msg.fields['v']}")
        engine.state.setdefault("io", {"answered": 0})["answered"] += 1
        engine.send("io", "out", v=2 * msg.fields["v"])
    res = psim(ECHO, externals=pcli.Engine(receive))
    assert res["status"] == "idle" and "error" not in res
    assert res["states"] == {"dev": {"sent": 3, "sum": 12, "got": 3}, "io": {"answered": 3}}
    assert res["metrics"]["Delivered messages"] == 6 and res["metrics"]["Exit code"] == 0
    assert [res["regions"][r]["Delivered messages"] for r in (0, 1)] == [3, 3]
    assert res["log"] == [["io", 1, "got 1"], ["io", 1, "got 2"], ["io", 1, "got 3"]]


def test_a_batch_engine_serves_them_too():
    def batch(engine, deliveries):
        for v in deliveries["msg"]["v"]:
            engine.send("io", "out", v=2 * int(v))
    assert psim(ECHO, externals=pcli.Engine(receive_batch=batch))["states"]["dev"]["sum"] == 12


def test_random_orders_mix_the_engines_messages_with_the_c_regions():
    runs = {}
    for seed in (None, 1, 2, 1):
        arrivals: list = []
        options = {"order": "random", "seed": seed} if seed is not None else {}
        res = psim(pairs_app(), options=options, externals=pcli.Engine(doubling(arrivals)))
        assert res["status"] == "idle", res.get("error")
        assert {d: s["sum"] for d, s in res["states"].items() if d.startswith("d")} == \
            {f"d{k}": 12 for k in range(8)}
        assert res["metrics"]["Delivered messages"] == 48
        runs.setdefault(seed, arrivals)
        assert arrivals == runs[seed], f"seed {seed} runs the same schedule again"
    assert runs[None] == [(f"d{k}", v) for v in (1, 2, 3) for k in range(8)]     # fixed: devices take turns
    assert runs[1] != runs[None] and runs[1] != runs[2]


def test_the_engine_may_end_the_run():
    def stop(engine, msg):
        engine.exit(5)
    res = psim(ECHO, externals=pcli.Engine(stop))
    assert res["status"] == "exit" and res["metrics"]["Exit code"] == 5


def test_a_raising_function_fails_the_run_with_its_last_traceback_line():
    def broken(engine, msg):
        raise KeyError("no such thing")
    res = psim(pairs_app(), externals=pcli.Engine(broken))
    assert res["status"] == "failed" and res["metrics"]["Exit code"] == 1
    assert res["error"] == "region 1 (application engine): KeyError: 'no such thing'"


def test_a_failing_c_region_ends_the_engine_and_gives_its_reason():
    res = psim(pairs_app(receive="assert(message->v < 4);"), externals=pcli.Engine(doubling([])))
    assert res["status"] == "failed"
    assert res["error"].startswith("assertion 'message->v < 4' failed in device 'd"), res["error"]


def test_what_psim_refuses_with_an_engine():
    engine = pcli.Engine(doubling([]))
    with pytest.raises(BadInput, match="no region map"):
        psim(ECHO, rmap={"dev": 0}, externals=engine)
    with pytest.raises(BadInput, match="the application has none"):
        psim(str(APPS_DIR / "ring_v2.xml"), externals=engine)
    with pytest.raises(TypeError, match="pcli.Engine"):
        psim(ECHO, externals=doubling([]))
    with pytest.raises(BadInput, match="external device 'io' needs an application engine.*psim --external"):
        psim(ECHO)


def test_psim_imports_no_pcli_until_given_an_engine():
    code = "import sys, psim; psim.psim(sys.argv[1]); print(sorted(m for m in sys.modules if m.split('.')[0] in " \
           "('pcli', 'pd', 'zmq', 'redis')))"
    done = subprocess.run([sys.executable, "-c", code, str(APPS_DIR / "ring_v2.xml")], capture_output=True,
                          text=True, timeout=120)
    assert done.stdout.strip() == "[]", done.stderr


# ---- the command --------------------------------------------------------------------------


def test_cli_external_from_a_file():
    done = cli("--external", f"{ECHO_ENGINE}:externals", ECHO)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert 'State  dev: {"sent": 3, "sum": 12, "got": 3}' in lines
    assert 'State  io: {"seen": [1, 2, 3]}' in lines
    assert "Exit   0 (idle)" in lines


def test_cli_external_module_from_the_working_directory_engine_or_factory(tmp_path):
    (tmp_path / "myengine.py").write_text(
        "import pcli\n"
        "def fail(engine, msg):\n    raise ValueError('bad value')\n"
        "broken = pcli.Engine(fail)\n"
        "def make():\n    return pcli.Engine(fail)\n")
    for spec in ("myengine:broken", "myengine:make"):
        done = cli("-q", "--external", spec, ECHO, cwd=tmp_path)
        assert done.returncode == 1, done.stderr
        assert "Error  region 1 (application engine): ValueError: bad value" in done.stdout.splitlines()


@pytest.mark.parametrize("spec, message", [
    ("nosuchmodule:f", "no module named 'nosuchmodule'"),
    ("enginemod:missing", "module 'enginemod' has no attribute 'missing'"),
    ("enginemod:number", "number is a value of type int, not a pcli.Engine"),
    ("enginemod:gives_str", "gives_str() returned a value of type str, not a pcli.Engine"),
    ("enginemod:raises", "raises() raised RuntimeError: not today"),
    ("brokenmod:f", "importing 'brokenmod' raised ZeroDivisionError: division by zero"),
    ("no/such/file.py:f", "no file no/such/file.py"),
    ("enginemod", "expected module:factory (or path/to/module.py:factory)"),
])
def test_cli_bad_external_specs_are_one_line_errors(tmp_path, spec, message):
    (tmp_path / "enginemod.py").write_text(
        "number = 3\ndef gives_str():\n    return 'x'\ndef raises():\n    raise RuntimeError('not today')\n")
    (tmp_path / "brokenmod.py").write_text("1 / 0\n")
    done = cli("--external", spec, ECHO, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr == f"psim: --external {spec}: {message}\n"


def test_cli_refuses_externals_without_an_engine():
    done = cli(ECHO)
    line = next(i for i, text in enumerate(open(ECHO), 1) if '<ExtI id="io"' in text)
    assert done.returncode == 2
    assert done.stderr.startswith(f"psim: ext_echo_v3.xml:{line}: external device 'io' needs an application "
                                  "engine to serve it: ")
    assert "psim --external module:factory" in done.stderr


def test_cli_supervisor_in_python_from_a_file():
    app = APPS_DIR / "sup_barrier_v4.xml"
    done = cli("--supervisor", f"{app.with_suffix('.py')}:supervisor", str(app))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "Log    __supervisor__: sup_barrier: rounds=4 bcasts=3" in lines and "Exit   0 (exit)" in lines
    assert 'State  n0: {"step": 3, "reported": 4, "heard": 3, "lastGo": 2}' in lines


def test_what_psim_refuses_with_a_supervisor_engine():
    with pytest.raises(BadInput, match="an engine for the supervisor was given, but the application has no"):
        psim(str(APPS_DIR / "ring_v2.xml"), supervisor=pcli.Engine(doubling([])))
    done = cli("--supervisor", "nosuchmodule:f", str(APPS_DIR / "sup_barrier_v4.xml"))
    assert done.returncode == 2 and done.stderr == "psim: --supervisor nosuchmodule:f: no module named 'nosuchmodule'\n"


# ---- the plane -----------------------------------------------------------------------------


def test_local_planes_copy_records_once_and_keep_each_senders_order():
    a, b = local_planes(2)
    box = bytearray(b"records")
    a.send(1, wire.MSG, memoryview(box))
    box[:] = b"changed"                       # the engine reuses its outbox once it is cleared
    a.broadcast(wire.PROBE, {"wave": 1})
    frames = b.receive(0)
    assert [(f.kind, f.source, f.payload) for f in frames] == [(wire.MSG, 0, b"records"), (wire.PROBE, 0, {"wave": 1})]
    assert [f.kind for f in a.receive(0)] == [wire.PROBE]
    assert b.receive(0) == [] and b.dropped == 0
