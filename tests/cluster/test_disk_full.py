"""The head's cluster folder on a full disk: a real cluster
(`pstack-cluster start`) in a small tmpfs, filled with a file.  A
submission fails at once with a reason naming the disk and the folder (the
API and the shell); a process running meanwhile finishes, or, when the
disk stays full longer than a worker's patience, fails with that reason;
once the file is removed, a new submission runs to psim's answer without restarting
anything.  Needs root (mount)."""
from __future__ import annotations

import errno
import os
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest
import redis
from clusters import identity, start_cluster, stop_and_sweep
from conftest import wait_for
from faults import RUN, record
from tinyapp import forever_app, ring_app, slow_app

import pcli
from broker import keys
from broker.diskfull import DiskFull
from pcli.api import Future
from pd.worker import PATIENCE_SECONDS

ROOT = Path(__file__).resolve().parents[2]
TMPFS_MB = 16

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")


@pytest.fixture
def small_disk(tmp_path):
    """A folder on a tmpfs of TMPFS_MB MB; unmounted, its cluster stopped,
    whatever the test did."""
    d = tmp_path / "c"
    d.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS_MB}m,mode=0700", "tmpfs", str(d)], check=True)
    try:
        yield d
    finally:
        stop_and_sweep(d)
        subprocess.run(["umount", str(d)], check=True)


def fill(d: Path) -> Path:
    """Fill D's disk with one file (until ENOSPC); the file."""
    filler = d / "filler"
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError as e:
            assert e.errno == errno.ENOSPC
    return filler


def refusing(admin: redis.Redis) -> bool:
    """Redis failed to write its append-only file (the heartbeats' writes
    fill the last page the filler left)."""
    return admin.info("persistence")["aof_last_write_status"] == "err"


def started(d: Path, monkeypatch, app: str) -> tuple[redis.Redis, Future]:
    """A cluster in D, $PSTACK_REDIS its user's; its admin client, and APP
    running there."""
    monkeypatch.setenv("PSTACK_REDIS", start_cluster(d, "--pds", 1, "--slots", 2))
    running = pcli.run(app, async_=True)
    wait_for(lambda: pcli.info(running.pid)["state"] == "running", 60)
    return redis.Redis.from_url(identity(d, "admin"), decode_responses=True), running


@contextmanager
def disk_full(d: Path, admin: redis.Redis) -> Iterator[dict]:
    """D's disk filled until Redis refuses writes, and freed when the block
    ends; the dict yielded then says how soon Redis took writes again."""
    filler, times = fill(d), {}
    wait_for(lambda: refusing(admin), 30)
    yield times
    filler.unlink()
    freed = time.monotonic()
    wait_for(lambda: not refusing(admin), 15)
    times["back"] = time.monotonic() - freed


def resumed() -> None:
    """A new submission runs to psim's answer."""
    assert pcli.run(ring_app("diskfull"))["metrics"]["Delivered messages"] == 12


def test_a_full_disk_names_itself_and_the_service_resumes_when_space_is_freed(small_disk, tmp_path, monkeypatch):
    d = small_disk
    # a graph type never compiled before: its region may still be compiling when the disk fills
    admin, running = started(d, monkeypatch, slow_app(f"diskfull{os.getpid()}", 4))
    with disk_full(d, admin) as times:
        t0 = time.monotonic()
        with pytest.raises(DiskFull) as refused:
            pcli.run(ring_app("diskfull"))
        seconds = time.monotonic() - t0
        why = str(refused.value)
        assert why.startswith(f"the cluster's disk is full: Redis cannot write its append-only file in {d} "
                              "(No space left on device)"), why
        assert seconds < 5

        xml = tmp_path / "ring.xml"
        xml.write_text(ring_app("diskfull"))
        shell = subprocess.run([sys.executable, "-m", "pcli", "-c", f"run {xml}"], capture_output=True,
                               text=True, timeout=60, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)))
        assert f"run: the cluster's disk is full: Redis cannot write its append-only file in {d}" in \
            shell.stdout + shell.stderr, shell.stdout + shell.stderr
        assert pcli.info(running.pid)["state"] == "running" and running.pid in pcli.ps()    # reads go on
        time.sleep(4)               # the slow process ends meanwhile: its worker retries its writes
    done = pcli.block(running)
    assert done["state"] == "finished", done["reason"]
    resumed()
    record("the head's cluster folder fills up (disk full: Redis cannot write its AOF)",
           "a submission fails at once naming the disk and the folder (API, shell); reads go on; a running "
           "process finishes (its writes are retried); once space is freed Redis takes writes again and new "
           f"submissions run, nothing restarted (writes resumed {times['back']:.1f} s after the space was freed)",
           seconds)


@pytest.mark.slow
def test_a_region_refused_longer_than_its_workers_patience_fails_with_the_reason(small_disk, monkeypatch):
    d = small_disk
    admin, running = started(d, monkeypatch, forever_app("diskfull"))
    # running: its progress, hence its rate points, are being written
    wait_for(lambda: int(admin.hget(keys.proc(running.pid), "delivered:0") or 0) > 0, 60)
    with disk_full(d, admin):
        time.sleep(PATIENCE_SECONDS + 5)
    done = running.result(timeout=60)
    assert done["state"] == "failed"
    assert done["reason"].startswith(f"region 0 (engine t-0): the cluster's disk is full: Redis cannot write "
                                     f"its append-only file in {d} (No space left on device)"), done["reason"]
    resumed()
    record(f"the head's cluster folder full for {PATIENCE_SECONDS + 5:.0f} s while a process runs",
           "the process fails with the disk's reason (its worker's writes were refused longer than its "
           f"{PATIENCE_SECONDS:.0f} s patience), recorded once space is freed; new submissions then run",
           None, lost=RUN)
