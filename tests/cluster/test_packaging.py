"""pstack as a user installs it: `pip wheel` leaves the source tree as it
was; the wheel, installed in a fresh virtual env outside the checkout,
starts a cluster (its supervisord templates ship inside it), runs a process
and runs psim; `pstack-cluster unit` gives a systemd unit whose commands
bring a host up, back after a crash, and down."""
from __future__ import annotations

import configparser
import os
import shlex
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import psutil
import pytest
from clusters import processes_of, stop_and_sweep, user_url

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "tests" / "apps" / "barrier_v3.xml"
# what a user's shell would not have: anything pointing Python or pstack at this checkout or a cluster
CLEAN_ENV = {k: v for k, v in os.environ.items()
             if not k.startswith(("PSTACK_", "PYTHON", "VIRTUAL_ENV", "PCLI_"))}


def tree(d: Path) -> set[str]:
    return {str(p.relative_to(d)) for p in d.rglob("*")}


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """A copy of the checkout's tracked files, as a fresh clone has them."""
    d = tmp_path_factory.mktemp("src")
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for name in filter(None, listed.decode().split("\0")):
        if (ROOT / name).is_file():
            (d / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, d / name)
    return d


@pytest.fixture(scope="module")
def wheel(source, tmp_path_factory) -> Path:
    before = tree(source)
    out = tmp_path_factory.mktemp("wheels")
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(out),
                            str(source)], capture_output=True, text=True, timeout=300, cwd=out)
    assert built.returncode == 0, built.stderr[-3000:]
    assert tree(source) == before, f"pip wheel left {sorted(tree(source) - before)} in the tree"
    (found,) = out.glob("pstack-*.whl")
    return found


@pytest.fixture(scope="module")
def env(wheel, tmp_path_factory) -> Path:
    """A fresh virtual env with the wheel (and its dependencies) installed."""
    d = tmp_path_factory.mktemp("venv")
    venv.create(d, with_pip=True)
    got = subprocess.run([d / "bin" / "pip", "install", "--quiet", str(wheel)], capture_output=True, text=True,
                         timeout=600, env=CLEAN_ENV, cwd=d)
    assert got.returncode == 0, got.stderr[-3000:]
    return d


def test_the_wheel_holds_the_templates_and_the_engine_core_not_the_build_backend(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in ("pd/conf/supervisord-head.conf.in", "pd/conf/supervisord-worker.conf.in",
                   "pd/conf/pstack-host.service.in", "broker/schedule.lua", "psim/core/loader.cpp",
                   "psim/core/engine_loop.hpp"):
        assert needed in names, needed
    assert not any("backend" in n for n in names), sorted(n for n in names if "backend" in n)


def installed(env: Path, cmd: str, *args: object, **extra: str) -> subprocess.CompletedProcess:
    """An installed command of the env, run from outside the checkout."""
    return subprocess.run([env / "bin" / cmd, *map(str, args)], capture_output=True, text=True, timeout=120,
                          cwd=env, env={**CLEAN_ENV, **extra})


def test_the_installed_wheel_runs_a_cluster_a_process_and_psim(env, tmp_path):
    where = installed(env, "python", "-c", "import pd, psim; print(pd.__file__, psim.__file__)")
    assert where.stdout.count(str(env)) == 2, where.stdout       # the installed code, not the checkout's
    d = tmp_path / "c"
    try:
        up = installed(env, "pstack-cluster", "start", d, "--pds", "1", "--name", "w")
        assert up.returncode == 0, up.stdout + up.stderr
        user = installed(env, "pstack-cluster", "adduser", d, "alice")
        assert user.returncode == 0, user.stderr
        ran = installed(env, "pcli", "-c", f"run {APP}", PSTACK_REDIS=user_url(user.stdout))
        assert ran.returncode == 0 and "state finished, exit code 0" in ran.stdout, ran.stdout + ran.stderr
        assert "Delivered messages: 36" in ran.stdout
    finally:
        stop_and_sweep(d)
    alone = installed(env, "psim", "-q", APP, PSTACK_CACHE=str(tmp_path / "cache"))
    assert alone.returncode == 0 and "Metric Delivered messages: 36" in alone.stdout, alone.stdout + alone.stderr


def unit_of(env: Path, *host: object) -> configparser.ConfigParser:
    made = installed(env, "pstack-cluster", "unit", *host)
    assert made.returncode == 0, made.stderr
    unit = configparser.ConfigParser(interpolation=None, strict=False)
    unit.optionxform = str
    unit.read_string(made.stdout)
    if shutil.which("systemd-analyze"):
        path = env / "pstack-test.service"
        path.write_text(made.stdout)
        checked = subprocess.run(["systemd-analyze", "verify", str(path)], capture_output=True, text=True)
        assert checked.returncode == 0, checked.stderr
    return unit


def crash(supervisord: psutil.Process) -> None:
    """The host's supervisord dies; its programs run on (orphans: systemd
    would also signal its control group, but a host may run without it)."""
    supervisord.kill()
    supervisord.wait(timeout=10)


def test_the_systemd_unit_brings_a_host_up_back_after_a_crash_and_down(env, tmp_path):
    d = tmp_path / "c"
    service = unit_of(env, "start", d, "--pds", "1", "--name", "u")["Service"]
    assert service["Type"] == "forking" and service["PIDFile"] == f"{d}/supervisord.pid"
    assert service["Restart"] == "on-failure"

    def started() -> psutil.Process:
        up = subprocess.run(shlex.split(service["ExecStart"]), capture_output=True, text=True, timeout=120,
                            env=CLEAN_ENV, cwd="/")
        assert up.returncode == 0, up.stdout + up.stderr
        supervisord = psutil.Process(int(Path(service["PIDFile"]).read_text()))
        assert "supervisord" in " ".join(supervisord.cmdline())
        status = installed(env, "pstack-cluster", "status", d)
        assert status.returncode == 0 and status.stdout.count("RUNNING") == 3, status.stdout
        return supervisord

    def stopped() -> str:
        down = subprocess.run(shlex.split(service["ExecStop"]), capture_output=True, text=True, timeout=120,
                              env=CLEAN_ENV)
        assert down.returncode == 0, down.stderr
        assert installed(env, "pstack-cluster", "status", d).returncode != 0
        return down.stderr

    try:
        crash(started())
        crash(started())                 # ExecStart stopped the orphans, then started the host
        assert "orphaned processes" in stopped() and processes_of(d) == []    # as after a crash
        started()
        stopped()
    finally:
        stop_and_sweep(d)


def test_a_unit_runs_a_host_command_only(env):
    made = installed(env, "pstack-cluster", "unit", "stop", "/tmp/x")
    assert made.returncode == 1 and "give `start DIR ...` or `worker DIR ...`" in made.stderr
