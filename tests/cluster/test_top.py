"""`top` as a user meets it: pcli in tmux against a live cluster, read with
capture-pane, driven with keys; its snapshots through `pcli -c`; and the
rate meter behind MSG/S."""
import itertools
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import pcli
from conftest import ROOT, wait_for
from pcli.rates import Rates
from pcli.topscreen import KEYS, Data, View, screen
from tinyapp import forever_app, ring_app

PCLI = str(Path(sys.executable).parent / "pcli")
SPARKS = set("▁▂▃▄▅▆▇█")
sessions = itertools.count()


class Tmux:
    """The pcli shell in a tmux server of its own, `width` x `height`."""

    def __init__(self, tmp_path: Path, width: int, height: int, user: str):
        self.server = f"pstack-top-{os.getpid()}-{next(sessions)}"
        env = {"PSTACK_REDIS": os.environ["PSTACK_REDIS"], "PSTACK_USER": user, "PYTHONPATH": str(ROOT),
               "PCLI_HISTORY": str(tmp_path / "history"), "PCLI_CONTEXT": str(tmp_path / "context.json"),
               "LANG": "C.UTF-8"}
        command = f"env {' '.join(f'{k}={v}' for k, v in env.items())} {PCLI} -q -n"
        self.tmux("new-session", "-d", "-s", "top", "-x", str(width), "-y", str(height), command)

    def tmux(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.server, *args], check=True, capture_output=True, text=True,
                              timeout=10).stdout

    def screen(self) -> str:
        return self.tmux("capture-pane", "-t", "top", "-p")

    def keys(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", "top", *keys)

    def wait(self, what, timeout: float = 20) -> str:
        """The screen, once `what(screen)` holds."""
        try:
            return wait_for(lambda: (lambda s: what(s) and s)(self.screen()), timeout=timeout)
        except AssertionError:
            raise AssertionError(f"the screen never got there:\n{self.screen()}") from None

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.server, "kill-server"], capture_output=True, timeout=10)


def row(screen: str, pid: int) -> dict[str, str]:
    """The cells of process `pid`'s row by column name ({} if not shown); the
    last column (the rate history) may hold blanks and is left whole."""
    lines = screen.splitlines()
    heading = next((ln for ln in lines if ln.startswith("PID")), "")
    names = heading.replace("▲", "").replace("▼", "").split()
    for ln in lines:
        if ln.startswith(f"{pid} "):
            return dict(zip(names, ln.split(None, len(names) - 1)))
    return {}


def pids_shown(screen: str, *pids: int) -> list[int]:
    """Which of `pids` have a row, in screen order."""
    lines = screen.splitlines()
    return sorted((p for p in pids if row(screen, p)),
                  key=lambda p: next(i for i, ln in enumerate(lines) if ln.startswith(f"{p} ")))


@pytest.fixture
def busy(cluster, tmp_path, monkeypatch):
    """Engine e1 (2 slots) running alice's endless ring, and bob's
    two-region ring waiting for both slots: (alice's pid, bob's pid)."""
    cluster.start("e1", slots=2)
    monkeypatch.setenv("PSTACK_USER", "alice")
    forever = pcli.run(forever_app("topped"), async_=True)
    wait_for(lambda: pcli.info(forever.pid)["state"] == "running")
    monkeypatch.setenv("PSTACK_USER", "bob")
    wide = pcli.run(ring_app("wide", rings=2), rmap={f"d1_{i}": 1 for i in range(4)}, async_=True)
    assert pcli.info(wide.pid)["state"] == "waiting"
    monkeypatch.setenv("PSTACK_USER", "alice")
    yield forever.pid, wide.pid
    for pid in (forever.pid, wide.pid):
        pcli.kill(pid, force=True)


@pytest.fixture
def top_80x24(busy, tmp_path):
    """top on an 80x24 terminal, as alice."""
    term = Tmux(tmp_path, 80, 24, "alice")
    try:
        term.wait(lambda s: "pcli>" in s)
        term.keys("top", "Enter")
        term.wait(lambda s: "ENGINE" in s)
        yield term
    finally:
        term.close()


def test_top_shows_engines_processes_and_rates_at_80x24(busy, top_80x24):
    alice, bob = busy
    term = top_80x24
    screen = term.wait(lambda s: row(s, alice).get("PHASE") == "running" and row(s, bob).get("PHASE") == "queued")
    assert all(len(ln) <= 80 for ln in screen.splitlines()) and len(screen.splitlines()) == 24
    assert row(screen, alice)["USER"] == "alice" and row(screen, alice)["ENGINES"] == "e1"
    assert (row(screen, bob)["ENGINES"], row(screen, bob)["REG"], row(screen, bob)["MSG/S"]) == ("-", "2", "-")
    assert "      #1 waiting for 2 slots (1 free)" in screen
    assert screen.splitlines()[-1].startswith("q quit  ↑↓ select  s/</> sort  r reverse  / filter")
    # the engine: a slot bar, half full, and its worker's CPU (an endless loop: busy, whatever else runs here)
    engine = lambda s: next((ln for ln in s.splitlines() if ln.startswith("e1 ")), "").split()   # noqa: E731
    screen = term.wait(lambda s: len(engine(s)) > 4 and float(engine(s)[4]) > 5)
    assert engine(screen)[2:4] == ["████░░░░", "1/2"]

    # the rate: once measured it stays up between heartbeats, and its history fills
    term.wait(lambda s: row(s, alice)["MSG/S"] not in ("-", "0"))
    watch_until = time.monotonic() + 3                             # six looks, six of the workers' reports
    while time.monotonic() < watch_until:
        shown = row(term.screen(), alice)
        assert shown["MSG/S"] not in ("-", "0"), shown
    assert SPARKS & set(row(term.screen(), alice)["HISTORY"])


def test_top_keys_sort_filter_mine_help_kill_and_quit(busy, top_80x24):
    alice, bob = busy
    term = top_80x24
    term.wait(lambda s: pids_shown(s, alice, bob) == [alice, bob] and "PID▲" in s)
    term.keys("s")                                                  # sorted by user
    term.wait(lambda s: "USER▲" in s and pids_shown(s, alice, bob) == [alice, bob])
    term.keys("r")
    term.wait(lambda s: "USER▼" in s and pids_shown(s, alice, bob) == [bob, alice])
    term.keys("<", "r")                                             # back to pid order, ascending
    term.wait(lambda s: "PID▲" in s and pids_shown(s, alice, bob) == [alice, bob])

    term.keys("/", "que")                                           # filter by phase, as it is typed
    term.wait(lambda s: "filter: que_" in s)
    term.keys("Enter")
    screen = term.wait(lambda s: "filter 'que'" in s and pids_shown(s, alice, bob) == [bob])
    term.keys("/", "BSpace", "BSpace", "BSpace", "alice", "Escape")  # Esc keeps the filter there was
    term.wait(lambda s: "filter:" not in s and pids_shown(s, alice, bob) == [bob])
    term.keys("/", "BSpace", "BSpace", "BSpace", "Enter")           # an empty filter shows all
    term.wait(lambda s: "filter '" not in s and pids_shown(s, alice, bob) == [alice, bob])
    term.keys("u")
    term.wait(lambda s: "user alice" in s and pids_shown(s, alice, bob) == [alice])
    term.keys("u")
    term.wait(lambda s: "user alice" not in s and pids_shown(s, alice, bob) == [alice, bob])

    term.keys("h")
    term.wait(lambda s: "reverse the sort" in s and not row(s, alice))
    term.keys("x")                                                  # any key returns
    term.wait(lambda s: "reverse the sort" not in s and row(s, alice))

    term.keys("Down", "k")                                          # bob's: not alice's to kill
    term.wait(lambda s: f"kill process {bob} (bob, " in s and ")? y/n" in s)
    term.keys("y")
    term.wait(lambda s: f"kill: process {bob} belongs to bob" in s)
    assert pcli.info(bob)["state"] == "waiting"
    term.keys("Up", "k")
    term.wait(lambda s: f"kill process {alice} (alice, " in s and ")? y/n" in s)
    term.keys("n")
    term.wait(lambda s: f"process {alice} not killed" in s)
    term.keys("k", "y")
    term.wait(lambda s: f"killed process {alice}" in s and not row(s, alice))
    assert pcli.info(alice)["state"] == "killed"

    term.keys("q")
    term.wait(lambda s: "ENGINE" not in s and "pcli>" in s)         # back at the prompt


def test_top_on_a_bigger_terminal_and_through_a_redis_outage(busy, top_80x24, redis_server):
    alice, bob = busy
    term = top_80x24
    term.wait(lambda s: row(s, alice) and "DEVICES" not in s)
    term.tmux("resize-window", "-t", "top", "-x", "30", "-y", "6")             # too small for the frame
    term.wait(lambda s: s.splitlines()[-1:] == [KEYS[:29]])
    term.tmux("resize-window", "-t", "top", "-x", "140", "-y", "40")
    # more columns, and the rate history takes the width left (newest on the right)
    wide = lambda s: any(ln.startswith(f"{alice} ") and len(ln) == 139 for ln in s.splitlines())   # noqa: E731
    screen = term.wait(lambda s: "DEVICES" in s and "KIND" in s and len(s.splitlines()) == 40 and wide(s))
    assert row(screen, alice)["APP"] == "tiny_topped" and row(screen, alice)["DEVICES"] == "4"
    assert all(len(ln) <= 140 for ln in screen.splitlines())

    redis_server.stop()
    screen = term.wait(lambda s: "Redis unreachable, retrying" in s)
    assert row(screen, alice)["PHASE"] == "running"                 # the last look stays on screen
    redis_server.start()
    term.wait(lambda s: "Redis unreachable" not in s and row(s, alice).get("PHASE") == "running")
    term.keys("q")
    term.wait(lambda s: "pcli>" in s)


def test_every_frame_fits_its_screen(busy):
    data = Data(pcli.engines(), pcli.processes())
    views = (View(), View(help=True), View(typing="x"), View(confirm=1), View(sort="MSG/S", reverse=True))
    for view, width, height in itertools.product(views, (1, 2, 10, 30, 79, 80, 81, 200), (0, 1, 2, 3, 5, 8, 24, 60)):
        lines = screen(data, view, width, height)
        assert len(lines) == height and all(len(text) < max(width, 1) for text, _ in lines), (width, height)
        assert height < 2 or lines[-1] == (KEYS[:width - 1], "keys")


def pcli_c(*commands: str) -> subprocess.CompletedProcess:
    args = [a for c in commands for a in ("-c", c)]
    return subprocess.run([PCLI, "-q", *args], capture_output=True, text=True, timeout=60, cwd=ROOT,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))


def test_snapshots_as_text_png_and_svg(busy, tmp_path):
    alice, bob = busy
    text, png, svg = tmp_path / "top.txt", tmp_path / "top.png", tmp_path / "top.svg"
    done = pcli_c(f"top --snapshot {text} --size 120x30 --seconds 3", f"top --snapshot {png} --seconds 0",
                  f"top --snapshot {svg} --size 80x24 --seconds 0")
    assert done.returncode == 0, done.stderr
    lines = text.read_text().splitlines()
    assert len(lines) == 30 and lines[0].startswith("pstack top ") and lines[-1].startswith("q quit")
    assert row(text.read_text(), alice)["MSG/S"] not in ("-", "0") and row(text.read_text(), bob)["PHASE"] == "queued"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<svg" in svg.read_text() and "alice" in svg.read_text()
    engine = next(e for e in pcli.engines() if e["name"] == "e1")
    assert engine["workers_cpu"] > 0 and engine["workers_mem"] > 10 << 20


def test_bad_snapshot_arguments_are_one_line_errors(cluster, tmp_path):
    cluster.start("e1")
    bad = pcli_c(f"top --snapshot {tmp_path / 'top.jpg'}")
    assert bad.returncode == 1 and "top: a snapshot is saved as .png, .svg, .txt; not as 'top.jpg'" in bad.stderr
    bad = pcli_c(f"top --snapshot {tmp_path / 'top.txt'} --size 100by30")
    assert bad.returncode == 1 and "top: '100by30' is not WIDTHxHEIGHT, e.g. 100x30" in bad.stderr
    bad = pcli_c(f"top --snapshot {tmp_path / 'top.txt'} --size 10x3")
    assert bad.returncode == 1 and "top: a snapshot of 10x3 is too small: 20x5 at least" in bad.stderr
    assert not (tmp_path / "top.txt").exists()


def test_the_rate_holds_between_heartbeats_and_falls_when_deliveries_stop():
    """A counter that reaches Redis every 0.5 s at 1000 messages a second,
    looked at every 0.2 s: the rate never shows 0 while it moves, and goes
    to 0 once it stops."""
    rates = Rates()
    seen = []
    for tick in range(100):                                 # 20 s, in looks 0.2 s apart
        now = tick * 0.2
        delivered = int(now // 0.5) * 500 if now < 10 else 10_000
        rates.look([{"pid": 7, "delivered": delivered}], now)
        seen.append(rates.rate(7))
    measured = [r for r in seen[:50] if r is not None]
    assert len(measured) >= 45 and all(700 < r < 1300 for r in measured[5:])
    assert seen[-1] < 1
    assert len(rates.history(7)) == len([r for r in seen if r is not None])
    rates.look([], 20.0)
    assert rates.rate(7) is None and rates.history(7) == []    # an ended process is forgotten
