"""psim.inspect through its entry points: pcli.graph(), `psim --inspect`
and the shell's `inspect`, checked against counts made here straight from
the XML with lxml."""
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from lxml import etree

import pcli
from appcases import APPS, APPS_DIR, BAD, expectations
from psim import BadInput

ROOT = APPS_DIR.parent.parent
VERSIONS = {"v2": 2, "v3": 3, "v4": 4}


class Xml:
    """What the file says, read with lxml alone."""

    def __init__(self, path: Path):
        root = etree.parse(str(path)).getroot()
        self.version = VERSIONS[root.tag.split("}")[0].rsplit("-", 1)[1]]
        self.graph_type = next(root.iter("{*}GraphType")).get("id")
        self.instance = next(root.iter("{*}GraphInstance")).get("id")
        self.types = {t.get("id"): t for t in root.iter("{*}DeviceType", "{*}ExternalType")}
        self.device_type = {d.get("id"): d.get("type") for d in root.iter("{*}DevI", "{*}ExtI")}
        self.edges = [self.ends(e.get("path")) for e in root.iter("{*}EdgeI")]

    @staticmethod
    def ends(path: str) -> tuple[str, str, str, str]:
        """(dst device, dst pin, src device, src pin)"""
        dst, _, src = path.partition("-")
        return (*dst.split(":"), *src.split(":"))

    def pin_edges(self, end: int) -> Counter:
        """Edges per (device type, pin) at the destination (end 0) or source (end 2)."""
        return Counter((self.device_type[e[end]], e[end + 1]) for e in self.edges)

    def histogram(self, end: int) -> Counter:
        """Devices per degree bucket: 0, 1, 2-3, 4-7, ..."""
        degree = Counter(e[end] for e in self.edges)
        return Counter(bucket(degree[d]) for d in self.device_type)


def bucket(d: int) -> str:
    k = d.bit_length()
    return str(d) if d < 2 else f"{2 ** (k - 1)}-{2 ** k - 1}"


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=60, cwd=ROOT,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))


@pytest.mark.parametrize("app", APPS, ids=lambda p: p.stem)
def test_counts_match_the_xml(app):
    s, x = pcli.graph(str(app)), Xml(app)
    assert (s["graph_type"], s["instance"], s["schema_version"]) == (x.graph_type, x.instance, x.version)
    assert (s["devices"], s["edges"]) == (len(x.device_type), len(x.edges))
    assert {t: d["devices"] for t, d in s["device_types"].items() if d["devices"]} == Counter(x.device_type.values())
    for end, pins in ((0, "inputs"), (2, "outputs")):
        got = {(t, p): pin["edges"] for t, d in s["device_types"].items() for p, pin in d[pins].items()}
        assert {k: v for k, v in got.items() if v} == x.pin_edges(end)
    for end, way in ((0, "in"), (2, "out")):
        assert {k: v for k, v in s["degrees"][way]["histogram"].items() if v} == x.histogram(end)
    for t, el in x.types.items():       # the pins the XML declares, with their message types
        declared = {(p.get("name"), p.get("messageTypeId")) for p in el.iter("{*}InputPin", "{*}OutputPin")}
        pins = {**s["device_types"][t]["inputs"], **s["device_types"][t]["outputs"]}
        assert {(n, p["message"]) for n, p in pins.items() if not p["supervisor"]} == declared
    json.dumps(s)                       # JSON-able


def test_several_device_types_and_edge_data():
    s = pcli.graph(str(APPS_DIR / "edge_pins_v4.xml"))
    multi = s["device_types"]["multi"]
    assert multi["inputs"]["scaled"]["edge_properties"] == ["float P"]
    assert multi["inputs"]["scaled"]["edge_state"] == ["uint32_t seen"]
    assert s["device_types"]["first"]["inputs"]["in"]["edge_properties"] == ["uint32_t K"]
    assert s["message_types"] == {"val": ["uint32_t v"]}
    assert s["degrees"]["in"]["max"] == 4 and s["degrees"]["out"]["max"] == 3
    hub = pcli.graph(str(APPS_DIR / "sendindex_mixed_v3.xml"))["device_types"]["hub"]
    assert any(p["indexed"] for p in hub["outputs"].values())


def test_idle_handlers():
    devidle = pcli.graph(str(APPS_DIR / "devidle_v3.xml"))
    assert devidle["device_idle"] and not devidle["hardware_idle"]
    assert devidle["device_types"]["worker"]["handlers"]["device_idle"]
    assert not devidle["device_types"]["collector"]["handlers"]["device_idle"]
    barrier = pcli.graph(str(APPS_DIR / "barrier_v3.xml"))
    assert barrier["hardware_idle"] and barrier["device_types"]["cell"]["handlers"]["hardware_idle"]


def test_a_supervisor_app():
    s = pcli.graph(str(APPS_DIR / "sup_bcast_v4.xml"))
    assert s["supervisor"]["id"] == "boss" and s["supervisor"]["message"] == "cmd"
    types = s["device_types"]
    assert types["node"]["inputs"]["__SUP_IN__"]["supervisor"] and types["node"]["outputs"]["__SUP_OUT__"]["supervisor"]
    assert list(types["listener"]["inputs"]) == ["__SUP_IN__"] and not types["listener"]["outputs"]
    assert not types["deaf"]["inputs"] and not types["deaf"]["outputs"]
    assert s["externals"] is None and pcli.graph(str(APPS_DIR / "ring_v2.xml"))["supervisor"] is None


def test_externals():
    echo = pcli.graph(str(APPS_DIR / "ext_echo_v3.xml"))
    assert echo["externals"] == {"served": 1, "halt": False}
    assert echo["device_types"]["doubler"]["external"] and not echo["device_types"]["node"]["external"]
    assert pcli.graph(str(APPS_DIR / "halt_v3.xml"))["externals"] == {"served": 0, "halt": True}


def test_bad_files_name_the_file(tmp_path):
    bad = APPS_DIR / "bad" / "bad_edge_dev.xml"
    with pytest.raises(BadInput, match=r"bad_edge_dev\.xml:\d+: edge .* names missing device"):
        pcli.graph(str(bad))
    with pytest.raises(BadInput, match="nothere.xml: no such file"):
        pcli.graph(str(tmp_path / "nothere.xml"))
    out = run("-m", "psim", "--inspect", str(bad))
    assert out.returncode == 2 and "bad_edge_dev.xml:" in out.stderr and not out.stdout
    out = run("-m", "pcli", "-c", f"inspect {bad}")
    assert out.returncode == 1 and "inspect: bad_edge_dev.xml:" in out.stderr


@pytest.mark.parametrize("bad", BAD, ids=lambda p: p.stem)
def test_bad_apps_are_refused_as_psim_refuses_them(bad):
    """What psim refuses at load is refused here, with psim's message; a
    handler that does not compile is no matter: nothing is compiled."""
    if "compile" in bad.stem:
        assert pcli.graph(str(bad))["devices"] > 0
        return
    with pytest.raises(BadInput) as e:
        pcli.graph(str(bad))
    assert str(e.value).startswith(f"{bad.name}:")
    for part in expectations(bad):
        assert part in str(e.value)


def test_the_commands_print_the_same_summary():
    app = APPS_DIR / "edge_pins_v4.xml"
    api = pcli.graph(str(app))
    cli = json.loads(run("-m", "psim", "--inspect", "-r", str(app)).stdout)
    shell = json.loads(run("-m", "pcli", "-c", f"inspect {app} --json").stdout)
    for s in (api, cli, shell):
        assert s.pop("seconds") < 5
    assert cli == api and shell == api
    text = run("-m", "psim", "--inspect", str(app)).stdout
    assert "graph type 'edge_pins' (schema v4)" in text and "4 devices, 5 edges" in text
    assert "multi        scaled    in   val      2" in text


def test_psim_inspect_with_a_region_map():
    app = APPS_DIR / "storm_v4.xml"
    x = Xml(app)
    rmap = {d: i % 3 for i, d in enumerate(x.device_type)}
    split = json.loads(run("-m", "psim", "--inspect", "-r", "--rmap", json.dumps(rmap), str(app)).stdout)["split"]
    pairs = Counter((rmap[src], rmap[dst]) for dst, _, src, _ in x.edges)
    assert [r["devices"] for r in split["regions"]] == [list(rmap.values()).count(r) for r in range(3)]
    assert [r["edges_inside"] for r in split["regions"]] == [pairs[r, r] for r in range(3)]
    assert {(c["from"], c["to"]): c["edges"] for c in split["cut_edges"]} == {k: v for k, v in pairs.items()
                                                                            if k[0] != k[1]}


def test_the_supervisor_in_a_region_of_its_own():
    app = APPS_DIR / "sup_barrier_v4.xml"
    out = run("-m", "psim", "--inspect", "-r", "--rmap", '{"n0": 1, "ear": 1, "__supervisor__": 2}', str(app))
    regions = json.loads(out.stdout)["split"]["regions"]
    assert [(r["devices"], r["device_types"], r["supervisor"]) for r in regions] == [
        (5, {"node": 5}, False), (2, {"node": 1, "listener": 1}, False), (0, {}, True)]
    text = run("-m", "psim", "--inspect", "--rmap", '{"__supervisor__": 1}', str(app)).stdout
    assert ["1", "0", "0", "0", "0", "yes"] in [line.split() for line in text.splitlines()]
