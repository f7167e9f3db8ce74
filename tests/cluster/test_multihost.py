"""Several hosts on one machine (network namespaces, tests/netns.py): a head
host and worker hosts set up as docs/deployment.md says, each running the
real `pstack-cluster` (supervisord, redis-server, pd) from this checkout's
.venv. Clients run inside a host too: the root namespace has no route to
the hosts. A process split across hosts gives psim's answer; a host cut off
fails its process with a reason within 10 s and rejoins when reconnected;
`--bind 0.0.0.0` gives a URL other hosts can use; `pstack-cluster check`
finds the pairs of engines that cannot reach each other."""
from __future__ import annotations

import ipaddress
import json
import os
import socket
import subprocess
import time
from pathlib import Path
from urllib.parse import urlsplit

import psutil
import pytest

from clusters import user_url
from conftest import gone, wait_for
from faults import RUN, record
from netns import NETNS_ETC, Host, Network
from psim import psim
from tinyapp import forever_app

ROOT = Path(__file__).resolve().parents[2]
HOSTS = ["head", "w1", "w2"]                 # the module's Network (conftest `network`)
RING = "tests/apps/ring_v2.xml"
CUT_OFF_SECONDS = 10                         # a lost host's process fails within this
REJOIN_SECONDS = 30                          # TCP retransmit backoff after the cable is back


def engine(folder: str) -> str:
    """The engine name pstack-cluster gives daemon 0 of DIR (HOST-DIRNAME-0)."""
    return f"{socket.gethostname().split('.')[0]}-{folder}-0"


HEAD, W1, W2 = engine("head"), engine("w1"), engine("w2")


def answer(res: dict) -> tuple:
    """What a split run must share with psim: final states, how it ended, counts."""
    m = res["metrics"]
    return res["states"], res["status"], m["Exit code"], m["Delivered messages"], m["Sends"]


def psim_answer(app: str) -> tuple:
    # through JSON, as results from the cluster come to the test
    return answer(json.loads(json.dumps(psim(str(ROOT / app)))))


class Site:
    """The clusters one test starts on the network's hosts, and its clients."""

    def __init__(self, network: Network, base: Path):
        self.net, self.base = network, base
        self.started: list[tuple[Host, Path]] = []

    def host(self, name: str) -> Host:
        return self.net.hosts[name]

    def pstack_cluster(self, host: Host, *args: object, timeout: float = 90, **env: str) -> subprocess.CompletedProcess:
        return host.run([".venv/bin/pstack-cluster", *args], cwd=ROOT, timeout=timeout, env={**os.environ, **env})

    def _up(self, host: Host, command: str, folder: str, *options: object, **env: str) -> str:
        """`pstack-cluster COMMAND DIR OPTIONS` in HOST, DIR named FOLDER; the
        Redis address it prints."""
        d = self.base / folder
        self.started.append((host, d))                 # stopped even if half started
        out = self.pstack_cluster(host, command, d, *options, **env)
        assert out.returncode == 0, out.stderr
        assert out.stdout.startswith(f"pstack {command if command == 'worker' else 'head'} started"), out.stdout
        return out.stdout.split("Redis at ", 1)[1].split(",", 1)[0]

    def identity(self, which: str) -> str:
        """The full URL of the head's identity WHICH ("admin", "engine")."""
        out = self.pstack_cluster(self.host("head"), "url", self.base / "head", f"--{which}")
        assert out.returncode == 0, out.stderr
        return out.stdout.strip()

    def start_head(self, *options: object) -> str:
        """`pstack-cluster start DIR ... --pds 1` on host head (DIR named head);
        a URL that may run processes there."""
        self._up(self.host("head"), "start", "head", *options, "--pds", 1)
        out = self.pstack_cluster(self.host("head"), "adduser", self.base / "head", "tester")
        assert out.returncode == 0, out.stderr
        return user_url(out.stdout)

    def start_worker(self, name: str, *options: object) -> None:
        """`pstack-cluster worker DIR --pds 1` on host NAME (DIR named NAME), as
        the head's engine identity (from $PSTACK_REDIS: on no command line)."""
        self._up(self.host(name), "worker", name, "--pds", 1, *options, PSTACK_REDIS=self.identity("engine"))

    def python(self, host: Host, url: str, code: str, timeout: float = 60):
        """Run CODE (which sets `out`) in HOST's Python with PSTACK_REDIS=URL; `out`."""
        proc = host.run([".venv/bin/python", "-c", "import json, time, pcli\n" + code +
                         "\nprint(json.dumps(out))"], cwd=ROOT, timeout=timeout,
                        env=dict(os.environ, PSTACK_REDIS=url))
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout.splitlines()[-1])

    def run_split(self, url: str, rcon: dict, timeout: float = 30, **options) -> tuple[dict, dict]:
        """pcli.run(RING, rcon=RCON, **OPTIONS) from the head host: the result
        and the engines its regions ran on."""
        return self.python(self.host("head"), url, f"""
f = pcli.run({RING!r}, rcon={rcon!r}, async_=True, **{options!r})
res = f.result(timeout={timeout})
out = [res, pcli.info(f.pid)["engines"]]""", timeout=timeout + 30)

    def stop(self) -> None:
        """Stop every cluster started (workers first), then anything left in the hosts."""
        try:
            for host in self.net.hosts.values():
                host.link(True)
            for host, d in reversed(self.started):
                self.pstack_cluster(host, "stop", d)
        finally:
            for host in self.net.hosts.values():
                host.kill_all()


@pytest.fixture
def site(network, tmp_path):
    s = Site(network, tmp_path)
    yield s
    s.stop()


def test_hosts_exist_only_in_their_namespaces_and_go_away_with_everything_in_them(network):
    root = subprocess.run(["ip", "-o", "addr"], capture_output=True, text=True, check=True).stdout
    assert not any(f" {h.addr}/" in root for h in network.hosts.values()), root
    for h in network.hosts.values():            # the bridge's subnet is all a host can reach
        assert h.run(["ip", "route"]).stdout.split()[0] == str(network.subnet)

    with Network(["a", "b"], prefix=f"pst{os.getpid()}x") as net:
        sleeper = net.hosts["a"].popen(["sleep", "60"])
        made = [h.ns for h in net.hosts.values()] + [net.switch]
    assert sleeper.wait(timeout=5) == -9
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert not [ns for ns in made if ns in listed.split() or (NETNS_ETC / ns).exists()], listed


def test_a_process_split_across_three_hosts_gives_psims_answer(site):
    url = site.start_head("--bind", site.host("head").addr)
    site.start_worker("w1")
    site.start_worker("w2")

    res, where = site.run_split(url, rcon={0: HEAD, 1: W1, 2: W2}, rmap={"n1": 1, "n2": 2, "n3": 2})
    assert res["state"] == "finished", res["reason"]
    assert answer(res) == psim_answer(RING)
    assert where == {"0": HEAD, "1": W1, "2": W2}
    assert all(res["regions"][r]["Remote messages sent"] > 0 for r in ("0", "1", "2"))

    res, where = site.run_split(url, rcon={0: W1, 1: W2}, regions=2)     # METIS, no region on the head
    assert res["state"] == "finished", res["reason"]
    assert answer(res) == psim_answer(RING)
    assert where == {"0": W1, "1": W2}


def test_an_application_engine_on_another_host_runs_its_region(site):
    """The user's own client on w2 (no pd there) serves n1 of the ring, with
    the user's credentials; the rest runs on the head's engine.  Across hosts
    the data plane is CURVE (as everywhere)."""
    url = site.start_head("--bind", site.host("head").addr)
    res = site.python(site.host("w2"), url, f"""
def receive(engine, msg):
    st = engine.state.setdefault(msg.dst, {{"counter": 0}})
    st["counter"] += 1
    engine.send(msg.dst, "toggle_out", fields={{"src": 1, "dst": 0xFFFFFFFF}})
eng = pcli.Engine(receive)
f = pcli.run({RING!r}, rmap={{"n1": 1}}, rcon={{0: {HEAD!r}, 1: eng}}, async_=True)
eng.run()
res = f.result(timeout=30)
out = [res, pcli.info(f.pid)["engines"]]""", timeout=90)
    res, where = res
    assert res["state"] == "finished", res["reason"]
    assert where == {"0": HEAD, "1": "@app"}
    alone = psim(RING)["states"]
    assert {d: res["states"][d] for d in ("n0", "n2", "n3")} == {d: alone[d] for d in ("n0", "n2", "n3")}
    assert res["states"]["n1"] == {"counter": 10}


def test_a_host_cut_off_fails_its_process_within_seconds_and_rejoins(site):
    head, w1 = site.host("head"), site.host("w1")
    url = site.start_head("--bind", head.addr)
    site.start_worker("w1")
    app = site.base / "forever.xml"
    app.write_text(forever_app("multihost_forever"))

    # The client waits until messages cross between the hosts (without them
    # each region stops after a few local deliveries), tells us the OS pids
    # of its region workers, and on a line from us waits for the end.
    client = head.popen([".venv/bin/python", "-c", f"""
import json, sys, time, pcli
f = pcli.run({str(app)!r}, rmap={{"d2": 1, "d3": 1}}, rcon={{0: {HEAD!r}, 1: {W1!r}}}, async_=True)
deadline = time.monotonic() + 30
while pcli.info(f.pid)["delivered"] < 100:
    assert time.monotonic() < deadline, pcli.info(f.pid)
    time.sleep(0.05)
rec = pcli.api.control().process(f.pid)
print(json.dumps([int(v) for k, v in rec.items() if k.startswith("worker:")]), flush=True)
sys.stdin.readline()
res = f.result(timeout=30)
print(json.dumps({{"state": res["state"], "reason": res["reason"]}}), flush=True)
"""], cwd=ROOT, env=dict(os.environ, PSTACK_REDIS=url), text=True,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        running = client.stdout.readline()
        assert running, client.communicate(timeout=30)
        workers = [psutil.Process(pid) for pid in json.loads(running)]
        assert len(workers) == 2
        start = time.monotonic()
        w1.link(False)
        client.stdin.write("go\n")
        client.stdin.flush()
        out, err = client.communicate(timeout=60)
        seconds = time.monotonic() - start
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
    assert client.returncode == 0, err
    res = json.loads(out)
    assert seconds < CUT_OFF_SECONDS, res
    assert res["state"] == "failed"
    assert W1 in res["reason"] or "region 1" in res["reason"], res["reason"]
    record("a worker host cut off (its link down) while it runs a region of a split process",
           f"the process fails: {res['reason']}; the host's engine is alive again once the link is back, "
           "and its old worker ends", seconds, lost=RUN)

    w1.link(True)
    alive = site.python(head, url, f"""
deadline = time.monotonic() + {REJOIN_SECONDS}
while not any(e["name"] == {W1!r} and e["alive"] for e in pcli.engines()):
    if time.monotonic() > deadline:
        break
    time.sleep(0.1)
out = sorted(e["name"] for e in pcli.engines() if e["alive"])""", timeout=REJOIN_SECONDS + 30)
    assert alive == [HEAD, W1]
    # back in touch, w1's daemon ends the region it ran for the failed process
    wait_for(lambda: gone(workers), timeout=10)

    res, where = site.run_split(url, rcon={0: HEAD, 1: W1}, rmap={"n2": 1, "n3": 1})
    assert res["state"] == "finished", res["reason"]
    assert answer(res) == psim_answer(RING)
    assert where == {"0": HEAD, "1": W1}


def test_a_head_bound_to_every_address_prints_an_address_others_use(site):
    head = site.host("head")
    url = site.start_head("--bind", "0.0.0.0")
    where = urlsplit(url).hostname
    # On a Debian host its own name is 127.0.1.1 (netns.py gives each host
    # that /etc/hosts line): a URL naming it would send other hosts nowhere.
    try:
        ipaddress.ip_address(where)
    except ValueError:
        pytest.fail(f"{url}: names {where!r}, not an address")
    assert where == head.addr, url                 # the head's only address on the network
    site.start_worker("w1")

    res, engines = site.run_split(url, rcon={0: HEAD, 1: W1}, rmap={"n2": 1, "n3": 1})
    assert res["state"] == "finished", res["reason"]
    assert answer(res) == psim_answer(RING)
    assert engines == {"0": HEAD, "1": W1}


def failing(lines: list[str], a: str, b: str) -> bool:
    """Whether `check` printed a line saying engines A and B failed together."""
    return any(a in line and b in line and "fail" in line.lower() for line in lines)


def test_check_finds_the_engine_nobody_can_reach(site):
    site.start_head("--bind", site.host("head").addr)
    site.start_worker("w1")
    site.start_worker("w2")
    check = site.pstack_cluster(site.host("head"), "check", site.base / "head")
    assert check.returncode == 0, check.stdout + check.stderr
    assert "fail" not in check.stdout.lower(), check.stdout

    # w2 again, advertising an address of its own that no other host has a
    # route to (a misconfigured host: say, its address on another network).
    # Two slots and a short limit let both of its pairs fail at once.
    w2 = site.host("w2")
    assert site.pstack_cluster(w2, "stop", site.base / "w2").returncode == 0
    subnet = site.net.subnet
    nowhere = str(ipaddress.ip_network((int(subnet.network_address) ^ 256, 24)).network_address + 1)
    assert w2.run(["ip", "addr", "add", f"{nowhere}/32", "dev", "lo"]).returncode == 0
    try:
        site.start_worker("w2", "--advertise", nowhere, "--slots", 2)
        check = site.pstack_cluster(site.host("head"), "check", site.base / "head", "--timeout", 5)
    finally:
        w2.run(["ip", "addr", "del", f"{nowhere}/32", "dev", "lo"])
    assert check.returncode == 1, check.stdout + check.stderr
    lines = check.stdout.splitlines()
    record("a host advertising an address no other host can reach",
           "`pstack-cluster check` fails its pairs (the data-plane handshake names the addresses), exit 1", None)
    assert failing(lines, W2, HEAD) and failing(lines, W2, W1), check.stdout
    assert not failing([line for line in lines if W2 not in line], HEAD, W1), check.stdout
