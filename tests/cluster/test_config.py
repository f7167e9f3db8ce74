"""The configuration file (broker/config.py) through the real `pcli` and
`pd`: where the Redis URL and password come from, what overrides them,
refusals with the file, line or key named, and the [run] defaults."""
import json
import os
import subprocess
import sys
from urllib.parse import urlsplit

from appcases import APPS_DIR
from conftest import ROOT, free_port

RING = str(APPS_DIR / "ring_v2.xml")


def pcli(config, *commands: str, **env: str) -> subprocess.CompletedProcess:
    """`pcli -c COMMAND ...` with only the configuration file (and ENV) to go by."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PSTACK_", "PCLI_"))}
    base.update(PYTHONPATH=str(ROOT), PSTACK_CONFIG=str(config), PCLI_CONTEXT=str(config.parent / "ctx.json"),
                HOME=str(config.parent), **env)
    args = [a for c in commands for a in ("-c", c)]
    return subprocess.run([sys.executable, "-m", "pcli", *args], capture_output=True, text=True, timeout=120,
                          cwd=ROOT, env=base)


def write(path, text: str, mode: int = 0o600):
    path.write_text(text)
    path.chmod(mode)
    return path


def test_url_and_password_from_the_file(secured, tmp_path):
    alice = urlsplit(secured.urls["alice"])
    bare = alice._replace(netloc=f"alice@{alice.hostname}:{alice.port}").geturl()
    config = write(tmp_path / "config.toml", f'[redis]\nurl = "{bare}"\npassword = "{alice.password}"\n')
    out = pcli(config, "engines")
    assert out.returncode == 0 and "e1" in out.stdout, out.stderr

    config.chmod(0o644)
    refused = pcli(config, "engines")
    assert refused.returncode == 1
    assert refused.stderr.strip() == (f"engines: {config} holds a Redis password but others may read it "
                                      f"(mode 0644): make it private with: chmod 600 {config}")
    config.chmod(0o600)
    wrong = pcli(config, "engines", PSTACK_PASSWORD="not-it")          # the environment comes first
    assert wrong.returncode == 1 and alice.password not in wrong.stderr
    assert wrong.stderr.startswith(f"engines: Redis at {bare} refused the identity: invalid username-password pair")

    write(config, "[redis\n")      # broken, but a URL with its secret in the environment needs nothing from it
    assert pcli(config, "engines", PSTACK_REDIS=secured.urls["alice"]).returncode == 0


def test_the_environment_comes_before_the_file(cluster, tmp_path):
    cluster.start("e1")
    dead = f"redis://127.0.0.1:{free_port()}/0"
    config = write(tmp_path / "config.toml", f'[redis]\nurl = "{dead}"\n', mode=0o644)    # no secret: may be shared
    assert pcli(config, "engines").stderr.strip() == f"engines: cannot reach Redis at {dead}: connection refused"
    live = pcli(config, "engines", PSTACK_REDIS=os.environ["PSTACK_REDIS"])
    assert live.returncode == 0 and "e1" in live.stdout, live.stderr


def test_run_defaults_from_the_file_and_flags_over_them(cluster, tmp_path):
    cluster.start("e1", slots=2)
    config = write(tmp_path / "config.toml", '[run]\norder = "random"\nseed = 5\nlevel = 2\nmax_steps = 100000\n'
                                             'regions = 2\n')
    url = os.environ["PSTACK_REDIS"]
    out = pcli(config, f"run {RING} --async", PSTACK_REDIS=url)
    assert out.returncode == 0, out.stderr
    first = int(out.stdout.split()[-1])
    rmap = json.dumps({"n1": 0})
    out = pcli(config, f"run {RING} --async --seed 9 --order fixed --rmap '{rmap}'", PSTACK_REDIS=url)
    second = int(out.stdout.split()[-1])
    info = lambda pid: json.loads(pcli(config, f"info {pid} --json", PSTACK_REDIS=url).stdout)  # noqa: E731
    assert info(first)["options"] == {"level": 2, "order": "random", "seed": 5, "max_steps": 100000}
    assert info(first)["regions"] == 2
    assert info(second)["options"] == {"level": 2, "order": "fixed", "seed": 9, "max_steps": 100000}
    assert info(second)["regions"] == 1                    # a region map given: the file's regions yield


def test_config_shows_the_settings_and_where_they_came_from(tmp_path):
    config = write(tmp_path / "config.toml", '[redis]\nurl = "redis://bob@head:6379/0"\npassword = "hush"\n'
                                             '[run]\nseed = 5\n')
    shown = pcli(config, "config")
    assert shown.returncode == 0 and "hush" not in shown.stdout, shown.stderr
    assert shown.stdout.splitlines() == [f"configuration file: {config}",
                                         f"         Redis URL: redis://bob@head:6379/0  (from {config} [redis] url)",
                                         f"    Redis password: *** ({config} [redis] password)",
                                         "      run defaults: seed=5"]
    url = "redis://carol:secret@other:6380/0"
    settings = json.loads(pcli(config, "config --json", PSTACK_REDIS=url).stdout)
    assert settings == {"file": str(config), "file_exists": True, "redis_url": "redis://carol:***@other:6380/0",
                        "redis_url_from": "$PSTACK_REDIS", "password": "*** (in the URL)", "run": {"seed": 5}}


def test_bad_files_name_the_file_and_the_line_or_key(tmp_path):
    cases = {'[run]\nseed = \n': "Invalid value (at line 2, column 8)",
             '[run]\nsed = 5\n': "[run] sed: unknown key (known: level, order, seed, timeout, max_steps, "
                                 "memory_mb, regions, trace)",
             '[run]\nseed = "five"\n': "[run] seed must be a whole number, not 'five'",
             '[run]\ntrace = 1\n': "[run] trace must be true or false, not 1",
             '[rum]\nseed = 5\n': "unknown table [rum] (known: redis, run)"}
    for text, message in cases.items():
        config = write(tmp_path / "config.toml", text)
        out = pcli(config, f"run {RING}")
        assert out.returncode == 1 and out.stderr.strip() == f"run: {config}: {message}", out.stderr
    missing = pcli(tmp_path / "nosuch.toml", "engines")
    assert missing.stderr.strip() == f"engines: {tmp_path / 'nosuch.toml'} ($PSTACK_CONFIG) does not exist"


def test_pd_refuses_a_bad_file_in_one_line(tmp_path):
    config = write(tmp_path / "config.toml", '[redis]\nurl = 6379\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("PSTACK_")}
    out = subprocess.run([sys.executable, "-m", "pd", "-n", "x"], capture_output=True, text=True, timeout=60,
                         cwd=ROOT, env=dict(env, PYTHONPATH=str(ROOT), PSTACK_CONFIG=str(config)))
    assert out.returncode == 2 and out.stderr.strip().endswith(f"pd: {config}: [redis] url must be a string, not 6379")
