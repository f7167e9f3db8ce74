"""`pstack-cluster` as tests run it: the command itself, the full URL of a
head's identity, and a sweep that leaves nothing of a cluster running."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[2]


def run_cluster(*args: object, timeout: float = 90, **env: str) -> subprocess.CompletedProcess:
    """`pstack-cluster ARGS` with ENV added to its environment."""
    return subprocess.run([sys.executable, "-m", "pd.cluster", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout, env={**os.environ, **env})


def identity(d: Path, which: str) -> str:
    """The full URL of the head's identity WHICH ("admin", "engine") in D."""
    out = run_cluster("url", d, f"--{which}")
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def user_url(adduser_output: str) -> str:
    """The URL on adduser's last line, `PSTACK_REDIS=URL`."""
    return adduser_output.splitlines()[-1].split("=", 1)[1]


def add_user(d: Path, name: str) -> str:
    """An ordinary user of the head in D (`adduser D NAME`): its URL."""
    out = run_cluster("adduser", d, name)
    assert out.returncode == 0, out.stderr
    return user_url(out.stdout)


def start_cluster(d: Path, *args: object) -> str:
    """Start a head cluster in D (engines t-0, ...); a URL that may run
    processes there."""
    out = run_cluster("start", d, "--name", "t", *args)
    assert out.returncode == 0, out.stderr
    return add_user(d, "tester")


def processes_of(d: Path) -> list[psutil.Process]:
    """Processes working in D or naming it: supervisord, redis, pd, workers."""
    found = []
    for p in psutil.process_iter(["cwd", "cmdline", "status"]):
        if p.pid == os.getpid() or p.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        cwd, cmd = p.info["cwd"] or "", " ".join(p.info["cmdline"] or ())
        if cwd == str(d) or cwd.startswith(f"{d}/") or str(d) in cmd:
            found.append(p)
    return found


def stop_and_sweep(d: Path) -> None:
    """Stop D's cluster, even when a test failed, and kill anything left."""
    run_cluster("stop", d)
    sweep(d)


def sweep(d: Path) -> None:
    """Kill every process of D's cluster, until none is left (a daemon may
    have started a worker meanwhile)."""
    while left := processes_of(d):
        for p in left:
            try:
                p.kill()
            except psutil.Error:
                pass
        psutil.wait_procs(left, timeout=5)
