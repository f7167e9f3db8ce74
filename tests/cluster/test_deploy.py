"""pstack-deploy against real sshd instances, each in a host of its own
(network namespaces, tests/netns.py): a head host runs a pstack cluster and
the deploy; two worker hosts run sshd, each under `unshare --mount` with its
own folder bind-mounted over the install prefix, so the two look like
separate machines to pstack-deploy."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import stat
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import psutil
import pytest

from clusters import user_url
from conftest import wait_for
from netns import Host, Network
from pd import wheelhouse
from psim import psim

ROOT = Path(__file__).resolve().parents[2]
HOSTS = ["head", "w1", "w2"]                 # the module's Network (conftest `network`)
WORKERS = ["w1", "w2"]
RING = "tests/apps/ring_v2.xml"
CACHE = ROOT / ".venv" / "pstack-wheelhouse"  # shared with later runs: a warm cache keeps this fast
SSHD_CONFIG = """\
ListenAddress {addr}
Port 22
HostKey {dir}/host_key
PidFile {dir}/sshd.pid
AuthorizedKeysFile {key}.pub
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
Subsystem sftp internal-sftp
"""


class Site:
    """The head's cluster, an sshd per worker host, and the deploy command."""

    def __init__(self, net: Network, base: Path):
        self.net, self.base = net, base
        self.prefix = base / "opt"                      # the same path on every host...
        self.key = base / "id_ed25519"
        self.source = base / "src"                      # what the wheel is built from
        self.sshd: dict[str, subprocess.Popen] = {}
        self.prefix.mkdir()
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", self.key], check=True)
        for top in wheelhouse.SOURCES:
            src = ROOT / top
            if src.is_dir():
                shutil.copytree(src, self.source / top, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                (self.source / top).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, self.source / top)

    def host(self, name: str) -> Host:
        return self.net.hosts[name]

    def root(self, name: str) -> Path:
        """...backed by this folder on host NAME."""
        return self.base / name / "root"

    def start_sshd(self, name: str) -> None:
        host, d = self.host(name), self.base / name
        self.root(name).mkdir(parents=True, exist_ok=True)
        if not (d / "host_key").exists():
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", d / "host_key"],
                           check=True)
        (d / "sshd_config").write_text(SSHD_CONFIG.format(addr=host.addr, dir=d, key=self.key))
        (d / "sshd.pid").unlink(missing_ok=True)
        # A private mount namespace: the prefix is this host's folder for
        # sshd and everything started through it, and for nothing else.
        script = (f"mkdir -p /run/sshd && mount --bind {self.root(name)} {self.prefix} && "
                  f"exec /usr/sbin/sshd -D -e -f {d / 'sshd_config'}")
        self.sshd[name] = host.popen(["unshare", "--mount", "--propagation", "private",
                                      "sh", "-c", script],
                                     stdout=subprocess.DEVNULL, stderr=open(d / "sshd.log", "ab"))
        # sshd writes its pid file once it listens
        wait_for(lambda: (d / "sshd.pid").exists() or self.sshd[name].poll() is not None)
        assert self.sshd[name].poll() is None, (d / "sshd.log").read_text()

    def stop_sshd(self, name: str) -> None:
        """Stop the listening sshd; what it started (the worker) keeps running."""
        pid = int((self.base / name / "sshd.pid").read_text())
        os.kill(pid, signal.SIGTERM)
        self.sshd[name].wait(timeout=10)

    def start_head(self) -> str:
        """The head's cluster; a URL that may run processes there."""
        out = self.host("head").run([".venv/bin/pstack-cluster", "start", self.base / "head",
                                     "--bind", self.host("head").addr, "--pds", 1], cwd=ROOT, timeout=90)
        assert out.returncode == 0, out.stderr
        self.url_file = self.base / "head" / "engine.url"       # what workers get, as docs/deployment.md says
        self.engine_url = self.url_file.read_text().strip()
        out = self.host("head").run([".venv/bin/pstack-cluster", "adduser", self.base / "head", "tester"],
                                    cwd=ROOT, timeout=60)
        assert out.returncode == 0, out.stderr
        self.url = user_url(out.stdout)
        return self.url

    def deploy(self, *targets: str, options: tuple = ()) -> subprocess.CompletedProcess:
        """pstack-deploy run in the head host, to TARGETS (host names or addresses)."""
        # the wheelhouse is built here, in the root namespace, then found in the cache
        wheelhouse.build_wheelhouse(self.source, CACHE)
        addrs = [self.host(t).addr if t in self.net.hosts else t for t in targets]
        return self.host("head").run(
            [".venv/bin/python", "-m", "pd.deploy", "--redis-file", self.url_file,
             "--prefix", self.prefix, "--identity", self.key, "--known-hosts", self.base / "known_hosts",
             "--source", self.source, "--cache", CACHE, "--slots", 2, "--timeout", 120,
             *options, *(f"root@{a}" for a in addrs)], cwd=ROOT, timeout=300)

    def python(self, code: str, timeout: float = 60):
        """Run CODE (which sets `out`) in the head host's Python; `out`."""
        proc = self.host("head").run([".venv/bin/python", "-c", "import json, pcli\n" + code +
                                      "\nprint(json.dumps(out))"], cwd=ROOT, timeout=timeout,
                                     env=dict(os.environ, PSTACK_REDIS=self.url))
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout.splitlines()[-1])

    def engines(self) -> dict[str, bool]:
        """Engine name -> alive, as the head's Redis has them."""
        return self.python("from broker.control import Control, connect\n"
                           "out = {e['name']: e['alive'] for e in Control(connect()).engines()}")

    def supervisord_pid(self, name: str) -> int:
        return int((self.root(name) / "cluster" / "supervisord.pid").read_text())

    def close(self) -> None:
        try:
            self.host("head").run([".venv/bin/pstack-cluster", "stop", self.base / "head"],
                                  cwd=ROOT, timeout=60)
        finally:
            for host in self.net.hosts.values():
                host.kill_all()        # the workers, the sshds and their mount namespaces
            shutil.rmtree(self.base, ignore_errors=True)


def engine(worker: str, site: Site) -> str:
    """The engine pstack-deploy names for daemon 0 of WORKER: ADDRESS-0."""
    return f"{site.host(worker).addr}-0"


def pd_cmdline(site: Site, worker: str) -> list[str]:
    """The command line of WORKER's deployed daemon 0."""
    name = engine(worker, site)
    (cmd,) = [p.info["cmdline"] for p in psutil.process_iter(["cmdline"])
              if p.info["cmdline"] and "pd" in p.info["cmdline"] and name in p.info["cmdline"]]
    return cmd


def lines(out: subprocess.CompletedProcess) -> dict[str, str]:
    """pstack-deploy's report: target -> the rest of its line."""
    return dict(re.match(r"(\S+)\s+(.*)", line).groups() for line in out.stdout.splitlines())


@pytest.fixture(scope="module")
def site(network, tmp_path_factory):
    if not Path("/usr/sbin/sshd").exists():
        pytest.fail("/usr/sbin/sshd is missing: make system (apt-get install -y openssh-server)")
    s = Site(network, tmp_path_factory.mktemp("deploy"))
    try:
        for w in WORKERS:
            s.start_sshd(w)
        s.start_head()
        s.first = s.deploy(*WORKERS)
        yield s
    finally:
        s.close()


def test_deploy_installs_and_starts_a_registered_worker_on_each_host(site):
    out = site.first
    assert out.returncode == 0, out.stdout + out.stderr
    report = lines(out)
    for w in WORKERS:
        line = report[f"root@{site.host(w).addr}"]
        assert re.fullmatch(rf"ok\s+pstack 0\.1\.0\+src\.[0-9a-f]{{10}}, engines {engine(w, site)} alive",
                            line), line
    engines = site.engines()
    assert all(engines[engine(w, site)] for w in WORKERS)
    for w in WORKERS:
        root = site.root(w)              # the host's own prefix, separate from the other's
        assert (root / "venv" / "bin" / "pstack-cluster").exists()
        assert any(root.glob("wheelhouse/pstack-0.1.0+src.*.whl"))
        url_file = root / "redis.url"
        assert stat.S_IMODE(url_file.stat().st_mode) == 0o600
        assert url_file.read_text().strip() == site.engine_url
        assert (root / "cluster" / "supervisord.pid").exists()
    assert site.supervisord_pid("w1") != site.supervisord_pid("w2")
    # the secrets are in files only, on no command line anywhere
    secrets = [urlsplit(u).password for u in (site.engine_url, site.url)]
    for p in psutil.process_iter(["cmdline"]):
        assert not any(s in " ".join(p.info["cmdline"] or []) for s in secrets), p.info["cmdline"]


def test_a_process_split_across_deployed_hosts_gives_psims_answer(site):
    w1, w2 = engine("w1", site), engine("w2", site)
    res, where = site.python(f"""
f = pcli.run({RING!r}, rmap={{"n2": 1, "n3": 1}}, rcon={{0: {w1!r}, 1: {w2!r}}}, async_=True)
res = f.result(timeout=60)
out = [res, pcli.info(f.pid)["engines"]]""", timeout=120)
    assert res["state"] == "finished", res["reason"]
    whole = json.loads(json.dumps(psim(str(ROOT / RING))))
    assert res["states"] == whole["states"]
    assert res["metrics"]["Delivered messages"] == whole["metrics"]["Delivered messages"]
    assert where == {"0": w1, "1": w2}
    assert all(res["regions"][r]["Remote messages sent"] > 0 for r in ("0", "1"))


def test_redeploy_upgrades_in_place_and_restarts_the_workers(site):
    before = {w: site.supervisord_pid(w) for w in WORKERS}
    setup = site.source / "setup.cfg"
    setup.write_text(re.sub(r"(?m)^version = .*$", "version = 0.1.1", setup.read_text(), count=1))
    out = site.deploy(*WORKERS, options=("--advertise-from-host",))
    assert out.returncode == 0, out.stdout + out.stderr
    report = lines(out)
    for w in WORKERS:
        assert report[f"root@{site.host(w).addr}"].startswith("ok      pstack 0.1.1+src."), out.stdout
        assert pd_cmdline(site, w)[-2:] == ["--advertise", site.host(w).addr]
        root = site.root(w)
        assert [d.name.removesuffix(".dist-info").split("-")[1] for d in root.glob("venv/lib/python3*/site-packages/pstack-*.dist-info")] \
            == [report[f"root@{site.host(w).addr}"].split()[2].rstrip(",")]
        assert not any(root.glob("wheelhouse/pstack-0.1.0*"))     # the old wheel is gone
        assert site.supervisord_pid(w) != before[w]                # restarted
    engines = site.engines()
    assert all(engines[engine(w, site)] for w in WORKERS)


def test_an_unreachable_host_fails_alone(site):
    w1, w2 = site.host("w1"), site.host("w2")
    nowhere = str(site.net.subnet[200])                        # no host has it
    site.stop_sshd("w2")
    try:
        out = site.deploy("w1", "w2", nowhere)
    finally:
        site.start_sshd("w2")
    assert out.returncode == 1, out.stdout + out.stderr
    report = lines(out)
    assert report[f"root@{w1.addr}"].startswith("ok "), out.stdout
    assert report[f"root@{w2.addr}"] == "FAILED  connect to port 22: Connection refused", out.stdout
    assert report[f"root@{nowhere}"] in ("FAILED  connect to port 22: No route to host",
                                         "FAILED  connect to port 22: no answer in 10 s"), out.stdout
    assert site.engines()[engine("w1", site)]


def test_systemd_is_refused_where_systemd_does_not_run(site):
    before = site.supervisord_pid("w1")
    out = site.deploy("w1", options=("--systemd",))
    assert out.returncode == 1
    assert "systemd is not running on this host" in lines(out)[f"root@{site.host('w1').addr}"]
    assert site.supervisord_pid("w1") == before                    # nothing was touched


def test_a_changed_host_key_is_refused(site):
    site.stop_sshd("w2")
    for f in ("host_key", "host_key.pub"):
        (site.base / "w2" / f).unlink()
    site.start_sshd("w2")                                          # a new key, as if reinstalled
    out = site.deploy("w2")
    assert out.returncode == 1
    assert "host key is not the one recorded" in lines(out)[f"root@{site.host('w2').addr}"]


def test_strict_host_keys_refuse_a_host_not_recorded(site):
    out = site.deploy("w1", options=("--strict-host-keys", "--known-hosts", site.base / "empty_known_hosts"))
    assert out.returncode == 1
    assert "host key is not in" in lines(out)[f"root@{site.host('w1').addr}"]
    assert not (site.base / "empty_known_hosts").exists()            # nothing recorded
