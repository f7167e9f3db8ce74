"""Resource limits of region workers on a real cluster: memory, CPU seconds,
file size, and the daemon's maximum.  Each limit hit fails its process with
a reason naming the limit, the region and the engine, and the daemon serves
on.  Apps are compiled here first, so the limits meet the handlers, not g++."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import redis

import pcli
from appcases import APPS_DIR
from conftest import ROOT, wait_for
from faults import RUN, record
from pd.limits import Policy
from psim.run import Loaded
from tinyapp import endless_app, ring_app

RING = str(APPS_DIR / "ring_v2.xml")
GROW_NEW = "for (;;) { char* p = new char[1 << 20]; memset(p, 1, 1 << 20); }"
GROW_MALLOC = "for (;;) { char* p = (char*)malloc(1 << 20); memset(p, 1, 1 << 20); }"


def start_pd(cluster, name: str, *args: str) -> subprocess.Popen:
    """A one-slot daemon with extra command-line options; stopped with the cluster."""
    with open(cluster.folder / f"pd-{name}.log", "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "pd", "--redis", cluster.url, "-n", name, "-w", "1", *args],
                                stdout=log, stderr=log, env=dict(os.environ, PYTHONPATH=str(ROOT)), cwd=ROOT)
    cluster.procs[name] = proc
    client = redis.Redis.from_url(cluster.url)
    wait_for(lambda: client.exists(f"pstack:engine:{name}:alive"))
    return proc


def compiled(app: str) -> str:
    Loaded(app)                 # into the build cache the daemons share
    return app


def timed_run(app: str, **options) -> tuple[dict, float]:
    start = time.monotonic()
    res = pcli.run(app, **options)
    return res, time.monotonic() - start


def serves_on() -> None:
    assert pcli.run(RING)["metrics"]["Delivered messages"] == 40


def test_unbounded_new_is_stopped_by_memory_mb_and_the_daemon_serves_on(cluster):
    start_pd(cluster, "e1")
    app = compiled(ring_app("limit_new", shared="#include <cstring>\n", receive=GROW_NEW))
    res, seconds = timed_run(app, memory_mb=256)
    assert res["state"] == "failed"
    assert res["reason"] == ("region 0 (engine e1): memory limit of 256 MB exceeded in device 'd1' (type 'node'), "
                             "handler OnReceive of pin 'in'")
    assert seconds < 5
    serves_on()
    record("a handler allocating without bound (`new`, memory_mb=256)", f"the process fails: {res['reason']}; "
           "the daemon serves on", seconds, lost=RUN)


def test_a_growing_vector_meets_the_daemons_default_memory_limit(cluster):
    start_pd(cluster, "e1", "--memory-mb", "256")
    app = compiled(ring_app("limit_vec", shared="#include <vector>\n",
                            receive="std::vector<char> v; for (;;) v.push_back(1);"))
    res = pcli.run(app)
    assert res["state"] == "failed"
    assert res["reason"].startswith("region 0 (engine e1): memory limit of 256 MB exceeded in device")
    serves_on()


def test_a_null_from_a_refused_malloc_crashes_and_says_it_was_at_the_limit(cluster):
    start_pd(cluster, "e1")
    app = compiled(ring_app("limit_malloc", shared="#include <cstring>\n#include <cstdlib>\n", receive=GROW_MALLOC))
    res = pcli.run(app, memory_mb=256)
    assert res["state"] == "failed"
    assert "handler crashed (Segmentation fault) in device 'd1'" in res["reason"]
    assert "at its memory limit of 256 MB" in res["reason"]
    serves_on()
    record("a handler using the NULL of a malloc the memory limit refused", f"the process fails: {res['reason']}",
           None, lost=RUN)


def test_an_endless_handler_is_stopped_by_the_cpu_limit(cluster):
    start_pd(cluster, "e1", "--cpu-seconds", "2")
    app = compiled(endless_app("limit_cpu"))
    res, seconds = timed_run(app)
    assert res["state"] == "failed" and res["reason"] == "region 0 (engine e1): CPU limit of 2 s exceeded"
    assert seconds < 60             # 2 s of CPU: on a machine busy with other work, several times that in wall time
    serves_on()
    record("a handler looping forever (pd --cpu-seconds 2)", f"the process fails: {res['reason']}; "
           "the daemon serves on", seconds, lost=RUN)


def test_a_handler_writing_a_big_file_hits_the_file_size_limit(cluster):
    start_pd(cluster, "e1", "--file-mb", "1")
    path = Path(f"/var/tmp/pstack-limit-{uuid.uuid4().hex}.bin")     # on disk: the handler has a /tmp of its own
    write = (f'static bool once = false; if (!once) {{ once = true; int fd = open("{path}", O_WRONLY | O_CREAT, 0600);'
             " static char buf[65536]; for (int i = 0; i < 256; i++) write(fd, buf, sizeof buf); close(fd); }")
    app = compiled(ring_app("limit_fsize", shared="#include <fcntl.h>\n#include <unistd.h>\n", init=write))
    try:
        res, seconds = timed_run(app)
        assert res["state"] == "failed"
        assert res["reason"] == ("region 0 (engine e1): file size limit of 1 MB exceeded in device 'd0' "
                                 "(type 'node'), handler OnInit")
        assert path.stat().st_size == 1 << 20            # 16 MB asked, the limit's 1 MB written
    finally:
        path.unlink(missing_ok=True)
    serves_on()
    record("a handler writing a 16 MB file (pd --file-mb 1)", f"the process fails: {res['reason']}", seconds,
           lost=RUN)


def test_asking_more_than_the_daemons_maximum_is_refused_with_the_reason(cluster):
    start_pd(cluster, "e1", "--memory-mb", "256", "--max-memory-mb", "512")
    res = pcli.run(RING, memory_mb=1024)
    assert res["state"] == "failed"
    assert res["reason"] == "region 0 (engine e1): memory_mb=1024 is more than engine e1 allows (512 MB at most)"
    assert pcli.run(RING, memory_mb=512)["state"] == "finished"
    with pytest.raises(ValueError, match="memory_mb must be a whole number"):
        pcli.run(RING, memory_mb=-1)
    shell = subprocess.run([sys.executable, "-m", "pcli", "-c", f"run --memory-mb 1024 {RING}"], cwd=ROOT,
                           capture_output=True, text=True, timeout=60)
    assert shell.returncode == 1 and "memory_mb=1024 is more than engine e1 allows" in shell.stdout + shell.stderr
    record("a process asking memory_mb above the engine's maximum (pd --max-memory-mb)",
           f"the process fails at once: {res['reason']}", None)


def test_pd_refuses_a_default_above_its_maximum():
    pd = subprocess.run([sys.executable, "-m", "pd", "--memory-mb", "1024", "--max-memory-mb", "512"],
                        cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert pd.returncode == 2 and "must be set and at most the maximum (512 MB)" in pd.stderr


def test_deaths_by_a_limits_signal_name_the_limit():
    policy = Policy(cpu_seconds=2, file_mb=1)
    assert policy.death(-signal.SIGXCPU) == "CPU limit of 2 s exceeded"
    assert policy.death(-signal.SIGXFSZ) == "file size limit of 1 MB exceeded"
    assert policy.death(-signal.SIGSEGV) is None and policy.death(1) is None
    assert Policy().death(-signal.SIGXCPU) is None          # no CPU limit: not ours to explain
