"""Compiled modules are cached by content: a second run of any instance of
a cached graph type compiles nothing, and concurrent first runs agree."""
import json
import os
import subprocess
import sys
from pathlib import Path

from tinyapp import ring_app

ROOT = Path(__file__).resolve().parents[2]


def run_cli(app: Path, cache: Path) -> dict:
    env = dict(os.environ, PSTACK_CACHE=str(cache))
    done = subprocess.run([sys.executable, "-m", "psim", str(app), "-r"], capture_output=True, text=True,
                          env=env, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_second_instance_of_a_graph_type_compiles_nothing(tmp_path):
    first, second = tmp_path / "a.xml", tmp_path / "b.xml"
    first.write_text(ring_app("cache", n=4))
    second.write_text(ring_app("cache", n=7).replace("?>\n", "?>\n<!-- elsewhere -->\n\n", 1))
    cache = tmp_path / "cache"
    cold = run_cli(first, cache)
    warm = run_cli(second, cache)
    assert cold["metrics"]["Compile time (s)"] > 0
    assert warm["metrics"]["Compile time (s)"] == 0
    assert warm["metrics"]["Devices"] == 7
    assert len([p for p in cache.iterdir() if p.name.startswith("_pstack_g_")]) == 1


def test_concurrent_first_runs_share_one_published_module(tmp_path):
    app = tmp_path / "app.xml"
    app.write_text(ring_app("race", n=5))
    cache = tmp_path / "cache"
    env = dict(os.environ, PSTACK_CACHE=str(cache))
    procs = [subprocess.Popen([sys.executable, "-m", "psim", str(app), "-r"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT) for _ in range(4)]
    results = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _, err in results]
    states = [json.loads(out)["states"] for out, _ in results]
    assert all(s == states[0] for s in states)
    leftovers = [p.name for p in cache.iterdir() if "." in p.name]     # temporary build folders
    assert leftovers == []
