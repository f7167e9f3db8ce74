"""The worked examples of docs/engines.md run as documented."""
import os
import subprocess
import sys

from appcases import EXAMPLES, example
from psim import psim


def test_feeding_numbers_from_a_file_into_a_running_process(tmp_path):
    numbers = tmp_path / "numbers.txt"
    numbers.write_text("5\n-2\n\n10\n7\n")
    res = psim(str(EXAMPLES / "feed.xml"), externals=example("feed").feeder(str(numbers)))
    assert res["status"] == "exit" and res["metrics"]["Exit code"] == 0, res.get("error")
    assert res["states"]["acc"] == {"sum": 20, "count": 4}


def test_the_feeder_from_the_command_line(tmp_path):
    numbers = tmp_path / "numbers.txt"
    numbers.write_text("1\n2\n3\n")
    done = subprocess.run([sys.executable, "-m", "psim", "--external", f"{EXAMPLES / 'feed.py'}:from_file",
                           str(EXAMPLES / "feed.xml")], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "FEED_FILE": str(numbers)})
    assert done.returncode == 0, done.stderr
    assert 'State  acc: {"sum": 6, "count": 3}' in done.stdout.splitlines()


def test_the_instrumentation_engine_counts_every_node_s_messages():
    res = psim(str(EXAMPLES / "tap.xml"), externals=example("tap").counter(), options={"order": "random", "seed": 4})
    assert res["status"] == "idle", res.get("error")
    assert res["states"]["tap"] == {f"n{i}": 20 for i in range(5)}          # 100 hops, 20 sends each
