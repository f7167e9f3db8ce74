"""Identities and secrets on a real cluster (`pstack-cluster` with real
supervisord, redis-server and pd): anonymous clients are refused; `adduser`
prints a URL that authenticates as the user, with a user's rules; `users`
lists users, `deluser` revokes one (and closes its connections);
identities survive a stop and start; the engine identity cannot administer
Redis; no secret is in the process list, the logs, the configuration or
what is printed; a user's own config file is used, and refused when others
may read it."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis
from clusters import identity, processes_of, run_cluster, stop_and_sweep, user_url
from conftest import wait_for
from tinyapp import forever_app

import pcli

USER_LINE = re.compile(r"PSTACK_REDIS=redis://(?P<name>[a-z_.-]+):(?P<secret>[A-Za-z0-9_-]+)@"
                       r"127\.0\.0\.1:(?P<port>\d+)/0")


@pytest.fixture(scope="module")
def head(tmp_path_factory):
    """A head cluster (one engine) for the module: its folder and what start printed."""
    d = tmp_path_factory.mktemp("identities") / "head"
    out = run_cluster("start", d, "--pds", 1, "--name", "id")
    try:
        assert out.returncode == 0, out.stderr
        yield d, out.stdout + out.stderr
    finally:
        stop_and_sweep(d)


def adduser(d: Path, name: str, *options: str) -> str:
    """`adduser D NAME`: the URL of its last line (checked against the form promised)."""
    out = run_cluster("adduser", d, name, *options)
    assert out.returncode == 0, out.stderr
    match = USER_LINE.fullmatch(out.stdout.splitlines()[-1])
    assert match and match["name"] == name, out.stdout
    assert f"redis://127.0.0.1:{match['port']}/0" == public(d)
    return user_url(out.stdout)


def public(d: Path) -> str:
    out = run_cluster("url", d)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=5, decode_responses=True)


def whoami(url: str) -> str:
    return client(url).execute_command("ACL", "WHOAMI")


def users(d: Path) -> list[list[str]]:
    out = run_cluster("users", d)
    assert out.returncode == 0, out.stderr
    return [line.split() for line in out.stdout.splitlines()]


def test_anonymous_clients_are_refused(head):
    d, _ = head
    with pytest.raises(redis.AuthenticationError):
        client(public(d)).get("pstack:procs")
    with pytest.raises(redis.AuthenticationError):              # `default` is off: no password opens it
        client(public(d).replace("redis://", "redis://default:@")).ping()
    port = str(urlsplit(public(d)).port)
    cli = subprocess.run(["redis-cli", "-p", port, "zrange", "pstack:procs", "0", "-1"],
                         capture_output=True, text=True, timeout=10)
    assert "NOAUTH" in cli.stdout + cli.stderr


def test_adduser_prints_a_url_of_that_user_with_a_users_rules(head):
    d, _ = head
    url = adduser(d, "alice")
    assert whoami(url) == "alice"
    alice = client(url)
    assert alice.zrange("pstack:procs", 0, -1) == []            # reads what everyone may read
    with pytest.raises(redis.exceptions.NoPermissionError):
        alice.set("pstack:proc:1", "x")                          # writes no process
    with pytest.raises(redis.exceptions.NoPermissionError):
        alice.get("pstack:u:bob:p:1:log")                         # reads no one else's keys
    assert whoami(adduser(d, "bob", "--admin")) == "bob"
    assert client(identity(d, "admin")).exists("pstack:u:bob:p:1:log") == 0   # admin reads all
    rows = users(d)
    assert rows[0] == ["NAME", "ROLE"]
    assert ["alice", "user"] in rows and ["bob", "admin"] in rows


def test_adduser_can_write_the_url_to_a_private_file(head, tmp_path):
    d, _ = head
    out = run_cluster("adduser", d, "carol", "--write", tmp_path / "carol.url")
    assert out.returncode == 0, out.stderr
    assert "redis://" not in out.stdout + out.stderr
    assert (tmp_path / "carol.url").stat().st_mode & 0o777 == 0o600
    assert whoami((tmp_path / "carol.url").read_text().strip()) == "carol"


def test_deluser_revokes_the_user_and_closes_its_connections(head):
    d, _ = head
    url = adduser(d, "dave")
    dave = client(url)
    assert dave.ping()
    admin = client(identity(d, "admin"))
    assert [c for c in admin.client_list() if c["user"] == "dave"]

    out = run_cluster("deluser", d, "dave")
    assert out.returncode == 0, out.stderr
    assert not [c for c in admin.client_list() if c["user"] == "dave"]   # its open connection is gone
    with pytest.raises(redis.AuthenticationError):
        dave.ping()                                              # nor can it come back
    assert ["dave", "user"] not in users(d)

    again = run_cluster("deluser", d, "dave")
    assert again.returncode == 1 and "no user 'dave'" in again.stderr
    reserved = run_cluster("deluser", d, "pstack-engine")
    assert reserved.returncode == 1 and "reserved" in reserved.stderr


def test_the_engine_identity_runs_engines_but_cannot_administer_redis(head, tmp_path):
    d, _ = head
    engine = client(identity(d, "engine"))
    assert engine.execute_command("ACL", "WHOAMI") == "pstack-engine"
    for command in (["ACL", "SETUSER", "eve", "on", ">x", "+@all"], ["ACL", "LIST"],
                    ["CONFIG", "SET", "dir", "/tmp"], ["FLUSHALL"]):
        with pytest.raises(redis.exceptions.NoPermissionError):
            engine.execute_command(*command)
    assert engine.smembers("pstack:engines") == {"id-0"}
    # a worker host given a user's URL is refused: it needs the engine identity
    out = run_cluster("worker", tmp_path / "w", "--pds", 1, PSTACK_REDIS=adduser(d, "frank"))
    assert out.returncode == 1 and "user frank's" in out.stderr
    assert processes_of(tmp_path / "w") == []


def secrets_of(d: Path, *urls: str) -> list[str]:
    """The secrets of D's admin and engine identities and of URLS."""
    return [urlsplit(u).password for u in (identity(d, "admin"), identity(d, "engine"), *urls)]


def test_no_secret_is_in_the_process_list_logs_configuration_or_output(head, monkeypatch):
    d, started = head
    user = adduser(d, "grace")
    secrets = secrets_of(d, user)
    monkeypatch.setenv("PSTACK_REDIS", user)
    busy = pcli.run(forever_app("secrets"), async_=True)       # a region worker runs too
    try:
        wait_for(lambda: pcli.info(busy.pid)["state"] == "running")
        ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True).stdout
    finally:
        pcli.kill(busy.pid)
    names = {" ".join(p.cmdline()) for p in processes_of(d)}
    assert any("pd.scheduler" in n for n in names) and any("redis-server" in n for n in names)
    assert any("pd.worker" in line for line in ps.splitlines())
    printed = started + "".join(run_cluster(*a).stdout for a in (["url", d], ["users", d], ["status", d]))
    files = [f.read_text(errors="replace") for f in d.iterdir()
             if f.suffix in (".log", ".conf") or f.name == "users.acl"]
    for text in [ps, printed, *files]:
        assert not [s for s in secrets if s in text]
    assert "users.acl" in {f.name for f in d.iterdir()} and len(files) >= 5


def test_a_wrong_secret_is_not_echoed_in_errors(head, tmp_path):
    d, _ = head
    wrong = public(d).replace("redis://", "redis://pstack-engine:not-the-secret-4711@")
    out = run_cluster("worker", tmp_path / "w", "--pds", 1, PSTACK_REDIS=wrong)
    assert out.returncode == 1 and "invalid username-password pair" in out.stderr
    on_command_line = run_cluster("check", "--redis", wrong)
    assert on_command_line.returncode == 1 and "process list" in on_command_line.stderr
    for text in (out.stdout + out.stderr, on_command_line.stdout + on_command_line.stderr):
        assert "not-the-secret-4711" not in text


def test_a_users_own_config_file_is_used_and_refused_when_others_may_read_it(head, tmp_path):
    d, _ = head
    home = tmp_path / "home"
    own = home / ".config" / "pstack" / "redis.url"
    own.parent.mkdir(parents=True)
    url = adduser(d, "heidi")
    own.write_text(f"PSTACK_REDIS={url}\n")      # adduser's line, as printed
    own.chmod(0o600)
    env = {"HOME": str(home), "PSTACK_REDIS": "", "PSTACK_REDIS_FILE": ""}
    out = run_cluster("check", **env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"1 live engine at {public(d).replace('redis://', 'redis://heidi:***@')}: " \
                                 "no pair to check (id-0)"
    own.chmod(0o644)
    out = run_cluster("check", **env)
    assert out.returncode == 1
    assert f"{own} holds a Redis password but others may read it (mode 0644)" in out.stderr
    assert f"chmod 600 {own}" in out.stderr


def test_identities_survive_a_stop_and_start(tmp_path):
    d = tmp_path / "c"
    try:
        assert run_cluster("start", d, "--pds", 1, "--name", "re").returncode == 0
        url, engine, admin = adduser(d, "heidi"), identity(d, "engine"), identity(d, "admin")
        assert run_cluster("stop", d).returncode == 0
        out = run_cluster("start", d, "--pds", 1, "--name", "re")
        assert out.returncode == 0, out.stderr
        assert (identity(d, "engine"), identity(d, "admin")) == (engine, admin)
        assert whoami(url) == "heidi"
        assert ["heidi", "user"] in users(d)
        with pytest.raises(redis.AuthenticationError):
            client(public(d)).ping()
        # start waited for the engine: it came back as the same identity
        assert client(engine).smembers("pstack:engines") == {"re-0"}
    finally:
        stop_and_sweep(d)

