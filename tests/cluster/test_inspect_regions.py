"""`info PID --regions` and pcli.info(pid, regions=True) on a real cluster:
the split of a process by its region map or by METIS, checked against
counts made here from the region map and the XML."""
import json
from collections import Counter

import pytest
from lxml import etree

import pcli
from appcases import APPS_DIR
from bench import graphs
from test_ownership import as_user
from test_shell import pcli_cli

STORM = APPS_DIR / "storm_v4.xml"       # 16 devices, 160 edges


def edges(app) -> list[tuple[str, str]]:
    """(src device, dst device) of every edge, from the XML."""
    ends = [e.get("path").split("-") for e in etree.parse(str(app)).getroot().iter("{*}EdgeI")]
    return [(src.split(":")[0], dst.split(":")[0]) for dst, src in ends]


@pytest.fixture
def two_engines(cluster):
    cluster.start("left", slots=1)
    cluster.start("right", slots=1)
    return cluster


def table_rows(text: str, title: str) -> list[list[str]]:
    """The rows of the table under `title`, split on blanks."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(title)) + 2    # title, header
    rows = []
    for line in lines[start:]:
        if not line.strip():
            break
        rows.append(line.split())
    return rows


def test_a_region_map_split_as_the_shell_shows_it(two_engines):
    devices = [d.get("id") for d in etree.parse(str(STORM)).getroot().iter("{*}DevI")]
    rmap = {d: 1 for d in devices[::3]}                    # the rest: region 0
    region = lambda d: rmap.get(d, 0)                      # noqa: E731
    pairs = Counter((region(s), region(d)) for s, d in edges(STORM))
    res = pcli.run(str(STORM), rmap=rmap)
    assert res["state"] == "finished", res.get("reason")
    pid = max(pcli.ps(all=True))
    engines = pcli.info(pid)["engines"]

    out = pcli_cli("-c", f"info {pid} --regions")
    assert out.returncode == 0, out.stderr
    rows = table_rows(out.stdout, "regions (")
    # REGION ENGINE DEVICES INSIDE CUT-OUT CUT-IN
    expected = [[str(r), engines[r], str(len(devices) - len(rmap) if r == 0 else len(rmap)), str(pairs[r, r]),
                 str(pairs[r, 1 - r]), str(pairs[1 - r, r])] for r in (0, 1)]
    assert rows == expected
    assert f"regions ({pairs[0, 1] + pairs[1, 0]} edges cut)" in out.stdout
    assert table_rows(out.stdout, "cut edges") == [["0", "1", str(pairs[0, 1])], ["1", "0", str(pairs[1, 0])]]
    assert "     state: finished" in out.stdout                 # the record above the tables

    split = json.loads(pcli_cli("-c", f"info {pid} --regions --json").stdout)["split"]
    assert [r["devices"] for r in split["regions"]] == [len(devices) - len(rmap), len(rmap)]
    assert {r["engine"] for r in split["regions"]} == {"left", "right"}


def test_a_metis_split_covers_every_device(two_engines, tmp_path):
    app = tmp_path / "mesh.xml"
    with open(app, "w") as f:
        n_edges = graphs.write(f, *graphs.mesh(12, 10))
    res = pcli.run(str(app), regions=2)
    assert res["state"] == "finished", res.get("reason")
    split = pcli.info(max(pcli.ps(all=True)), regions=True)["split"]
    regions = split["regions"]
    assert len(regions) == 2 and all(r["devices"] > 0 for r in regions)
    assert sum(r["devices"] for r in regions) == 120
    assert [r["device_types"] for r in regions] == [{"cell": r["devices"]} for r in regions]
    assert sum(r["edges_inside"] for r in regions) + split["edges_cut"] == n_edges
    assert split["edges_cut"] == sum(c["edges"] for c in split["cut_edges"]) > 0
    assert split["edges_cut"] < n_edges / 4                   # METIS cuts a mesh along a short line


def test_only_the_owner_reads_the_split(secured, monkeypatch):
    as_user(monkeypatch, secured.urls, "alice")
    res = pcli.run(str(APPS_DIR / "ring_v2.xml"), rmap={"n2": 1, "n3": 1})
    assert res["state"] == "finished", res.get("reason")
    pid = max(pcli.ps(all=True))
    assert [r["devices"] for r in pcli.info(pid, regions=True)["split"]["regions"]] == [2, 2]
    as_user(monkeypatch, secured.urls, "bob")
    assert pcli.info(pid)["owner"] == "alice"                  # the record: anyone's to read
    with pytest.raises(PermissionError, match="belongs to alice: only its owner may read its application"):
        pcli.info(pid, regions=True)
