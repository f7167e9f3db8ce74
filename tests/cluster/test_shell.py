"""The pcli shell against a live cluster: commands through cmd2's
onecmd_plus_hooks and `pcli -c`, scripts and exit statuses (`top`: test_top.py)."""
import io
import json
import os
import subprocess
import sys

import pytest

import pcli
from appcases import APPS_DIR
from conftest import ROOT, wait_for
from pcli.shell import Shell
from tinyapp import forever_app

RING = str(APPS_DIR / "ring_v2.xml")


def pcli_cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pcli", *args], input=stdin, capture_output=True, text=True,
                          timeout=120, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)))


def test_run_ps_result_info_engines(shell):
    out = shell.do(f"run {RING}")
    assert "state finished, exit code 0" in out and "Delivered messages: 40" in out
    assert not shell.failed
    assert "e1" in shell.do("engines") and json.loads(shell.do("engines --json"))[0]["slots"] == 2
    assert shell.do("ps").splitlines()[1:] == []                        # nothing running
    assert "finished" in shell.do("ps -a")
    res = json.loads(shell.do("result 1 --json"))
    assert res["metrics"]["Delivered messages"] == 40
    assert json.loads(shell.do("info 1 --json"))["engines"] == {"0": "e1"}
    assert "graph_type: ro" in shell.do("info 1")


def test_run_with_a_region_map_file(shell, tmp_path):
    rmap = _write(tmp_path / "rmap.json", '{"n2": 1, "n3": 1}')
    assert "state finished, exit code 0" in shell.do(f"run --rmap {rmap} {RING}")
    assert pcli.info(1)["regions"] == 2


def test_async_run_kill_and_block(shell, tmp_path):
    split = int(shell.do(f"run --async --regions 2 {RING}"))
    assert "state finished, exit code 0" in shell.do(f"block {split}")
    assert pcli.info(split)["regions"] == 2
    pid = int(shell.do("run --async " + str(_write(tmp_path / "f.xml", forever_app("shellkill")))))
    wait_for(lambda: pcli.info(pid)["state"] == "running")
    assert str(pid) in shell.do("ps")
    shell.do(f"kill {pid}")
    assert not shell.failed
    assert "state killed" in shell.do(f"block {pid}")
    assert shell.failed                                                 # waiting on a killed process fails


def test_log_of_verbose_and_quiet_processes(shell):
    shell.do(f"run --verbose {RING}")
    lines = shell.do("log 1").splitlines()
    assert lines[0] == "[e1:0] n0: counter = 1" and len(lines) == 40
    shell.do(f"run {RING}")
    assert shell.do("log 2").splitlines()[0] == "n0: counter = 1"
    pid = int(shell.do(f"run --async --verbose {RING}"))
    assert len(shell.do(f"log -f {pid}").splitlines()) == 40


def test_failing_commands_are_marked_failed(shell):
    shell.do("kill 999")
    assert shell.failed
    shell.do("result --nonsense")
    assert shell.failed
    shell.do("nosuchcommand")
    assert shell.failed
    shell.do(f"run --rmap nonsense {RING}")
    assert shell.failed
    shell.do("engines")
    assert not shell.failed


def test_run_pyscript_and_run_script(shell, tmp_path):
    script = tmp_path / "s.py"
    script.write_text(f"r = run({RING!r})\nprint('delivered', r['metrics']['Delivered messages'])\n"
                      "app('ps -a')\n")
    out = shell.do(f"run_pyscript {script}")
    assert "delivered 40" in out
    commands = tmp_path / "cmds.txt"
    commands.write_text(f"run {RING}\nengines\n")
    out = shell.do(f"run_script {commands}")
    assert "exit code 0" in out and "e1" in out


def test_an_application_engine_from_a_shell_script(shell, tmp_path):
    script = tmp_path / "engine.py"
    script.write_text(f"""
def receive(engine, msg):
    engine.state[msg.dst] = {{"seen": engine.state.get(msg.dst, {{"seen": 0}})["seen"] + 1}}
    engine.send(msg.dst, "toggle_out")
eng = Engine(receive)
f = run({RING!r}, rmap={{"n1": 1}}, rcon={{1: eng}}, async_=True)
eng.run()
print("n1 saw", block(f)["states"]["n1"]["seen"])
""")
    assert "n1 saw 10" in shell.do(f"run_pyscript {script}")


def test_pcli_c_and_stdin_exit_statuses(cluster):
    cluster.start("e1")
    ok = pcli_cli("-c", f"run {RING}", "-c", "ps -a --json")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout[ok.stdout.index("["):])[0]["state"] == "finished"
    bad = pcli_cli("-c", "kill 12345", "-c", "engines")
    assert bad.returncode == 1 and "kill: no process 12345" in bad.stderr and "e1" not in bad.stdout
    failing_app = pcli_cli("-c", f"run {APPS_DIR / 'assert_v3.xml'}")
    assert failing_app.returncode == 1
    piped = pcli_cli(stdin="engines\nps\n")
    assert piped.returncode == 0 and "e1" in piped.stdout
    assert pcli_cli(stdin="engines\nnosuchcommand\n").returncode == 1


def _write(path, text: str):
    path.write_text(text)
    return path


def test_history_across_sessions(cluster, tmp_path):      # pid completion: test_shell_promises.py
    cluster.start("e1")
    history = tmp_path / "history"
    env = dict(os.environ, PCLI_HISTORY=str(history), PYTHONPATH=str(ROOT))
    first = subprocess.run([sys.executable, "-c", "from pcli.shell import Shell; import io; "
                            "s = Shell(stdout=io.StringIO(), quiet=True); s.onecmd_plus_hooks('engines')"],
                           env=env, cwd=ROOT, timeout=60)
    assert first.returncode == 0 and history.exists()
    again = subprocess.run([sys.executable, "-c", "from pcli.shell import Shell; import io; "
                            "out = io.StringIO(); s = Shell(stdout=out, quiet=True); "
                            "s.onecmd_plus_hooks('history -a'); print(out.getvalue())"],
                           env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert "engines" in again.stdout
