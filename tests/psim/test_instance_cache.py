"""The binary instance cache (psim/instcache.py): a second read of a file
takes pass 2's arrays from the cache and gives the same instance and the
same results; a changed file misses; a bad cache file is a miss, never a
crash; concurrent first runs agree; it can be bypassed; it keeps its cap.

Each test reads its own copy of an application with a unique comment, so
its cache entry (keyed by content) is its own."""
import json
import os
import shutil
import struct
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from appcases import APPS_DIR, check, externals, options
from psim import build, instcache, psim
from psim.partition import partition
from psim.run import Loaded, load_instance
from tinyapp import ring_app

ROOT = Path(__file__).resolve().parents[2]
CASES = ["ring_v2", "quirks_v2", "edges_v3", "sendindex_mixed_v3", "halt_v3", "ext_echo_v3", "empty_v3",
         "edge_pins_v4", "heat_v4", "sup_bcast_v4"]


def fresh(tmp_path: Path, name: str) -> Path:
    """A copy of tests/apps/NAME.xml (and its checker) that no cache entry has seen."""
    app = tmp_path / f"{name}.xml"
    app.write_text((APPS_DIR / f"{name}.xml").read_text() + f"\n<!-- {uuid.uuid4()} -->\n")
    shutil.copy(APPS_DIR / f"{name}.py", tmp_path / f"{name}.py")
    return app


def entry(app: Path) -> Path:
    return instcache.folder() / (instcache.content_key(app) + ".inst")


def loader_state(inst) -> dict:
    """The C loader's pre-finish arrays, the edge slots and kind counts."""
    lib, ffi = build.loader_module().lib, build.loader_module().ffi
    st = ffi.new("pl_state*")
    lib.pl_export(inst.loader, st)
    n, m = st.n_devices, st.n_edges
    state = {"arena": ffi.buffer(st.arena, st.arena_len)[:], "dev_type": ffi.buffer(st.dev_type, 2 * n)[:],
             "sidx": ffi.buffer(st.sidx, 4 * m)[:] if st.sidx != ffi.NULL else None,
             "slots": [lib.pl_edge_slot(inst.loader, e) for e in range(m)],
             "kinds": [lib.pl_kind_count(inst.loader, p.kind) for p in inst.graph.edge_pins]}
    for name, size in (("src", 4), ("dst", 4), ("spin", 2), ("dpin", 2)):
        state[name] = ffi.buffer(getattr(st, name), size * m)[:]
    return state


def arrays(inst) -> dict:
    return {"ids": list(inst.ids), "id": inst.id, "n_edges": inst.n_edges, "halt": inst.halt,
            "externals": list(inst.externals), "graph_props": bytes(inst.graph_props),
            **{name: [bytes(a) for a in getattr(inst, name)] for name in ("props", "state", "eprops", "estate")},
            "loader": loader_state(inst)}


def untimed(metrics: dict) -> dict:
    """Metrics without the times, which differ from run to run (regions' too)."""
    return {k: untimed(v) if isinstance(v, dict) else v for k, v in metrics.items() if "time" not in str(k)}


def comparable(result: dict) -> dict:
    return {**result, **{k: untimed(result[k]) for k in ("metrics", "regions") if k in result}}


@pytest.mark.parametrize("name", CASES)
def test_warm_load_gives_the_arrays_of_a_cold_read(tmp_path, monkeypatch, name):
    app = fresh(tmp_path, name)
    cold, warm = Loaded(str(app)), Loaded(str(app))
    assert (cold.instance_cached, warm.instance_cached) == (False, True)
    assert arrays(warm.instance) == arrays(cold.instance)
    monkeypatch.setenv("PSTACK_INSTANCE_CACHE", "0")
    assert arrays(load_instance(str(app))) == arrays(cold.instance)


@pytest.mark.parametrize("name", CASES)
def test_warm_run_gives_the_results_of_a_cold_run(tmp_path, name):
    app = fresh(tmp_path, name)
    cold = psim(str(app), options=options(app), externals=externals(app))
    assert entry(app).exists()
    warm = psim(str(app), options=options(app), externals=externals(app))
    check(app, warm)
    assert comparable(warm) == comparable(cold)


def test_ids_of_a_cached_instance_behave_as_a_list(tmp_path):
    app = fresh(tmp_path, "ring_v2")
    cold, warm = load_instance(str(app)), load_instance(str(app))
    assert type(warm.ids) is not list                  # the lazy sequence over the arena
    ids = cold.ids
    assert [warm.ids[i] for i in range(len(ids))] == ids and warm.ids[-1] == ids[-1]
    assert warm.ids[1:3] == ids[1:3] and list(warm.ids) == ids and warm.ids == ids
    assert warm.ids.index(ids[2]) == 2 and ids[0] in warm.ids and "no such device" not in warm.ids
    with pytest.raises(ValueError):
        warm.ids.index("no such device")
    with pytest.raises(IndexError):
        warm.ids[len(ids)]


def test_a_changed_file_misses(tmp_path):
    app = tmp_path / "ring.xml"
    app.write_text(ring_app("icache", n=4))
    assert psim(str(app))["metrics"]["Devices"] == 4
    assert Loaded(str(app)).instance_cached
    app.write_text(ring_app("icache", n=6))
    changed = Loaded(str(app))
    assert not changed.instance_cached and changed.instance.n_devices == 6
    assert psim(str(app))["metrics"]["Devices"] == 6


def forge(path: Path, section: str, offset: int, value: bytes) -> None:
    """Overwrite bytes of one section of a cache file, leaving it well formed."""
    raw = bytearray(path.read_bytes())
    magic, fmt, meta_len = instcache.HEAD.unpack_from(raw)
    meta = json.loads(raw[instcache.HEAD.size:instcache.HEAD.size + meta_len])
    body = -(-(instcache.HEAD.size + meta_len) // instcache.ALIGN) * instcache.ALIGN
    off = next(o for name, o, _ in meta["sections"] if name == section)
    raw[body + off + offset:body + off + offset + len(value)] = value
    path.write_bytes(bytes(raw))


def forge_meta(path: Path, **changes) -> None:
    raw = path.read_bytes()
    magic, fmt, meta_len = instcache.HEAD.unpack_from(raw)
    meta = json.loads(raw[instcache.HEAD.size:instcache.HEAD.size + meta_len])
    meta.update(changes)
    text = json.dumps(meta).encode().ljust(meta_len)     # the same length: sections stay where they are
    assert len(text) == meta_len
    path.write_bytes(raw[:instcache.HEAD.size] + text + raw[instcache.HEAD.size + meta_len:])


BAD_FILES = {
    "truncated": lambda p: p.write_bytes(p.read_bytes()[:len(p.read_bytes()) // 2]),
    "empty": lambda p: p.write_bytes(b""),
    "garbage": lambda p: p.write_bytes(os.urandom(len(p.read_bytes()))),
    "header only": lambda p: p.write_bytes(p.read_bytes()[:instcache.HEAD.size + 10]),
    "edge to a missing device": lambda p: forge(p, "dst", 0, struct.pack("<I", 0xFFFFFFFF)),
    "edge from a missing device": lambda p: forge(p, "src", 4, struct.pack("<I", 1 << 20)),
    "unknown device type": lambda p: forge(p, "dev_type", 0, struct.pack("<H", 999)),
    "unknown input pin": lambda p: forge(p, "dpin", 0, struct.pack("<H", 77)),
    "unknown output pin": lambda p: forge(p, "spin", 2, struct.pack("<H", 5)),
    "duplicate id": lambda p: forge(p, "arena", 0, b"d1\0"),     # ring of d0..d3: 'd0' becomes 'd1'
    "ids unterminated": lambda p: forge(p, "arena", 11, b"x"),
    "more devices than ids": lambda p: forge_meta(p, n_devices=5),
    "fewer edges than claimed": lambda p: forge_meta(p, n_edges=5),
    "external that is not": lambda p: forge_meta(p, halt=1),
    "another file's entry": lambda p: forge_meta(p, key="0" * 40),
}


@pytest.mark.parametrize("damage", BAD_FILES, ids=str)
def test_a_bad_cache_file_is_ignored_and_replaced(tmp_path, damage):
    app = tmp_path / "ring.xml"
    app.write_text(ring_app("icache", n=4) + f"<!-- {uuid.uuid4()} -->\n")
    expected = comparable(psim(str(app)))
    BAD_FILES[damage](entry(app))
    again = Loaded(str(app))
    assert not again.instance_cached
    assert comparable(psim(str(app))) == expected
    assert Loaded(str(app)).instance_cached              # the entry was written again


def run_cli(app: Path, *flags: str, env: dict | None = None) -> tuple[dict, str]:
    done = subprocess.run([sys.executable, "-m", "psim", str(app), "-r", "--internals", *flags],
                          capture_output=True, text=True, env=env or dict(os.environ), timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return comparable(json.loads(done.stdout)), done.stderr


def test_the_psim_command_reads_the_cache_and_says_so(tmp_path):
    app = fresh(tmp_path, "edges_v3")
    cold, said_cold = run_cli(app)
    warm, said_warm = run_cli(app)
    assert "instance read from the XML" in said_cold and "instance from the instance cache" in said_warm
    assert warm == cold
    check(app, warm)


def test_the_cache_can_be_bypassed(tmp_path, monkeypatch):
    app = fresh(tmp_path, "ring_v2")
    res, said = run_cli(app, "--no-instance-cache")
    assert "instance read from the XML" in said and not entry(app).exists()
    res_env, said = run_cli(app, env=dict(os.environ, PSTACK_INSTANCE_CACHE="0"))
    assert "instance read from the XML" in said and not entry(app).exists()
    assert res == res_env
    assert not Loaded(str(app)).instance_cached and Loaded(str(app)).instance_cached
    monkeypatch.setenv("PSTACK_INSTANCE_CACHE", "0")
    assert not Loaded(str(app)).instance_cached


def test_concurrent_first_runs_publish_one_good_entry(tmp_path):
    app = tmp_path / "ring.xml"
    app.write_text(ring_app("icache", n=3000) + f"<!-- {uuid.uuid4()} -->\n")
    procs = [subprocess.Popen([sys.executable, "-m", "psim", str(app), "-r"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, cwd=ROOT) for _ in range(4)]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        results.append(comparable(json.loads(out)))
    assert all(r == results[0] for r in results)
    assert not [p for p in instcache.folder().iterdir() if p.name.startswith(".tmp.")
                and p.stat().st_mtime > app.stat().st_mtime]
    warm = Loaded(str(app))
    assert warm.instance_cached
    assert comparable(psim(str(app))) == results[0]


def test_the_cache_keeps_its_cap(tmp_path, monkeypatch):
    monkeypatch.setenv("PSTACK_CACHE", str(tmp_path / "cache"))
    apps = []
    for n in (200, 210, 220):
        apps.append(tmp_path / f"ring{n}.xml")
        apps[-1].write_text(ring_app("icache", n=n))
    Loaded(str(apps[0]))
    size = entry(apps[0]).stat().st_size
    monkeypatch.setenv("PSTACK_INSTANCE_CACHE_MB", str(2.5 * size / (1 << 20)))   # room for two
    for app in apps[1:]:
        Loaded(str(app))
    kept = list(instcache.folder().glob("*.inst"))
    assert sum(p.stat().st_size for p in kept) <= instcache.cap_bytes()
    assert sorted(kept) == sorted(entry(a) for a in apps[1:])            # the oldest went
    monkeypatch.setenv("PSTACK_INSTANCE_CACHE_MB", str(0.5 * size / (1 << 20)))   # an entry over the cap
    big = Loaded(str(apps[0]))
    assert not big.instance_cached and not entry(apps[0]).exists()
    assert psim(str(apps[0]))["metrics"]["Devices"] == 200


def test_partition_reads_the_cache(tmp_path):
    app = fresh(tmp_path, "heat_v4")
    cold = partition(str(app), 2)
    assert entry(app).exists()
    assert partition(str(app), 2) == cold
