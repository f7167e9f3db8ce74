"""pcli: the pstack shell (cmd2).

    pcli [--redis URL] [-n] [-q] [-c COMMAND ...]

Commands: run, ps, kill, purge, block, result, info, log, trace, engines, inspect, top, test, debug,
plot, picture; py (a Python interpreter with the API imported), run_pyscript,
run_script, history, help.  `-c` runs commands and exits (status 1 if one fails);
commands piped on stdin run the same way.
"""
from __future__ import annotations

import argparse
import functools
import io
import itertools
import json
import os
import sys
import time
from pathlib import Path
from typing import Callable, Iterator
from urllib.parse import urlsplit

import cmd2
import redis
from cmd2 import Cmd2ArgumentParser, with_argparser, with_category
from cmd2.py_bridge import PyBridge
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

from broker import config
from broker.control import duration, unreachable
from broker.credentials import (CredentialsError, password_and_source, redact, redis_url, refuse_on_command_line,
                                url_and_source)
from psim.cli import abridged, json_object
from psim.debug import DebugError
from psim.errors import BadInput
from psim.inspect import render, render_split, table
from psim.plots import xy_names
from . import api, apptest, context, pyshell
from .format import ENGINE_COLUMNS, PROCESS_COLUMNS, engine_row, process_row, queue_note



def history_path() -> str:
    return os.environ.get("PCLI_HISTORY") or str(Path.home() / ".pcli_history")

CATEGORY = "pstack"
SHOWN_STATES = 10          # devices whose states `result` shows without --states
JSON_BATCH = 4096          # pieces of JSON written at a time
USER_ERRORS = (ValueError, PermissionError, OSError, TimeoutError, redis.RedisError, BadInput)


def command(fn):
    """A pstack command: user errors print one line and mark the command failed."""
    @functools.wraps(fn)
    def wrapper(self, args):
        try:
            return fn(self, args)
        except (redis.ConnectionError, redis.TimeoutError) as e:
            self.fail(f"{fn.__name__[3:]}: {unreachable(redis_url(), e)}")
        except USER_ERRORS as e:
            self.fail(f"{fn.__name__[3:]}: {e}")
    return wrapper


def pid_choices(shell: cmd2.Cmd) -> cmd2.Choices:
    """Tab completion of pids (cmd2 passes the shell)."""
    try:
        return cmd2.Choices.from_values(api.ps(all=True), is_sorted=True)
    except redis.RedisError:
        return cmd2.Choices.from_values([])


def pid_arg(parser: Cmd2ArgumentParser, help: str = "process id", nargs: str | None = None) -> None:
    parser.add_argument("pid", type=int, help=help, choices_provider=pid_choices, nargs=nargs)


def comma_list(text: str) -> list[str]:
    return [w for w in text.split(",") if w]


def duration_arg(text: str) -> float:
    try:
        return duration(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def json_chunks(data: object) -> Iterator[str]:
    """`data` as indented JSON, in pieces of JSON_BATCH of the encoder's
    chunks: a million devices' states are never one string."""
    chunks = json.JSONEncoder(indent=2, sort_keys=True).iterencode(data)
    while batch := "".join(itertools.islice(chunks, JSON_BATCH)):
        yield batch


def picture_args(description: str) -> Cmd2ArgumentParser:
    """The parser of a picture command (plot, picture): PID FILE."""
    parser = Cmd2ArgumentParser(description=description)
    pid_arg(parser)
    parser.add_argument("file", help="picture file to write (.png or .svg)", completer=cmd2.Cmd.path_complete)
    return parser


def json_arg(parser: Cmd2ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON, for scripts")


class Shell(cmd2.Cmd):
    def __init__(self, history: bool = True, color: bool = True, quiet: bool = False, **kwargs):
        """history: keep command history in ~/.pcli_history ($PCLI_HISTORY)."""
        super().__init__(include_py=True, allow_cli_args=False,
                         persistent_history_file=history_path() if history else "",
                         intro="" if quiet else "pstack shell: `help` lists commands, `py` opens Python. "
                                                "Ctrl-D quits.", **kwargs)
        self.prompt = "pcli> "
        self.failed = False
        self.fail_status = 1             # the exit status of `pcli -c` when a command fails (a pyscript's own)
        self.keep_history, self.color = history, color
        if not color:
            self.allow_style = cmd2.rich_utils.AllowStyle.NEVER
        self.py_locals = {**context.load(), **{name: getattr(api, name) for name in api.__all__}}
        self.python_running = False
        self.register_precmd_hook(self._reset_failed)

    # ---- failures: whatever prints an error marks the command failed ----------------------

    def _reset_failed(self, data: cmd2.plugin.PrecommandData) -> cmd2.plugin.PrecommandData:
        self.failed, self.fail_status = False, 1
        return data

    def perror(self, *args, **kwargs) -> None:
        self.failed = True
        super().perror(*args, **kwargs)

    def pexcept(self, *args, **kwargs) -> None:
        self.failed = True
        super().pexcept(*args, **kwargs)

    def onecmd(self, statement, **kwargs):
        try:
            return super().onecmd(statement, **kwargs)
        except cmd2.exceptions.Cmd2ArgparseError:
            self.failed = True                 # bad arguments: argparse printed why
            raise

    # ---- helpers ------------------------------------------------------------------

    def fail(self, message: str) -> None:
        self.perror(message)

    def table(self, columns: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
        self.poutput(table(columns, rows))

    def json_out(self, data) -> None:
        self.poutput(json.dumps(data, indent=2, sort_keys=True))

    def json_stream(self, data: object) -> None:
        """json_out for what may be big (a result's states): written as it is encoded."""
        for piece in json_chunks(data):
            self.stdout.write(piece)
        self.stdout.write("\n")
        self.stdout.flush()

    def preloop(self) -> None:
        self.interactive = True                # cmdloop, at a prompt: Ctrl-C may ask

    def summary(self, res: dict) -> None:
        """A result in a few lines; the command fails if the process did."""
        m = res.get("metrics", {})
        self.poutput(f"state {res.get('state', res.get('status'))}, exit code {m.get('Exit code', '-')}"
                     + (f": {res['error']}" if res.get("error") else ""))
        for name in ("Delivered messages", "Sends", "Devices", "Edges", "Run time (s)"):
            if name in m:
                self.poutput(f"  {name}: {m[name]}")
        if res.get("state") != "finished" or m.get("Exit code", 0) != 0 or res.get("status") == "failed":
            self.failed = True

    # ---- Python: py and run_pyscript share the session's namespace (pcli/pyshell.py) ----

    py_parser = Cmd2ArgumentParser(description="Python with the API imported; app(\"command\") runs a shell "
                                               "command. At a terminal ptpython, else the plain interpreter "
                                               "on the lines that follow until quit() or their end.")

    @with_argparser(py_parser)
    def do_py(self, args) -> bool | None:
        """Run Python."""
        history = f"{history_path()}-py" if self.keep_history else None
        return self.python(lambda namespace: pyshell.interact(namespace, self.stdin, history, self.color))

    pyscript_parser = Cmd2ArgumentParser(description="Run a Python script in the shell's namespace; the command "
                                                     "fails if it raises (status 1) or calls sys.exit(N), N > 0.")
    pyscript_parser.add_argument("script_path", help="the script", completer=cmd2.Cmd.path_complete)
    pyscript_parser.add_argument("script_arguments", nargs=argparse.REMAINDER, help="its sys.argv[1:]")

    @with_argparser(pyscript_parser)
    def do_run_pyscript(self, args) -> bool | None:
        """Run a Python script."""
        path = os.path.expanduser(args.script_path)
        return self.python(lambda namespace: pyshell.run_file(namespace, path, args.script_arguments))

    def python(self, run: Callable[[dict], int]) -> bool | None:
        """RUN(namespace) with app() and print() for the shell; the command
        fails with its exit status; plain variables are saved for the next
        session.  True if app("quit") asked the shell to stop."""
        if self.python_running:
            self.fail("Python is running already: app() cannot start another")
            return None
        bridge = PyBridge(self)
        self.python_running = True
        try:
            with pyshell.given(self.py_locals, app=bridge, print=pyshell.printer(self),
                               quit=pyshell.leave, exit=pyshell.leave):
                status = run(self.py_locals)
        finally:
            self.python_running = False
            context.save(self.py_locals)
        self.failed, self.fail_status = bool(status), status or 1   # the script's outcome, not its app() calls'
        return bridge.stop

    def in_pyscript(self) -> bool:
        return self.python_running

    # ---- commands ---------------------------------------------------------------------

    run_parser = Cmd2ArgumentParser(description="Run an application as a process (waits for it unless --async).")
    run_parser.add_argument("app", help="application XML file", completer=cmd2.Cmd.path_complete)
    run_parser.add_argument("--rmap", metavar="FILE|JSON", help="region map {device: region}")
    run_parser.add_argument("--regions", type=int, default=0, metavar="N", help="split into N regions (METIS)")
    run_parser.add_argument("--rcon", metavar="JSON", help="engines for regions {region: engine}")
    run_parser.add_argument("--async", dest="async_", action="store_true", help="print the pid and return")
    run_parser.add_argument("--verbose", action="store_true", help="print log lines as they come")
    run_parser.add_argument("--paused", action="store_true",
                            help="start paused before the first event and print the pid: then `debug PID`")
    run_parser.add_argument("--level", type=int, help="log level (default 1, or the configuration file's)")
    run_parser.add_argument("--order", choices=("fixed", "random"), help="scheduling order")
    run_parser.add_argument("--seed", type=int, help="seed for --order random")
    run_parser.add_argument("--timeout", type=float, help="fail the process after S seconds")
    run_parser.add_argument("--max-steps", type=int, help="fail the process after N steps")
    run_parser.add_argument("--memory-mb", type=int, metavar="N",
                            help="memory each region may use, in MB (default: the engine's)")
    run_parser.add_argument("--trace", action="store_true",
                            help="record every event, for `trace PID FILE` and psim --replay")
    json_arg(run_parser)

    @with_category(CATEGORY)
    @with_argparser(run_parser)
    @command
    def do_run(self, args) -> None:
        """Run an application."""
        options = {k: v for k, v in (("order", args.order), ("seed", args.seed), ("timeout", args.timeout),
                                     ("max_steps", args.max_steps), ("regions", args.regions),
                                     ("memory_mb", args.memory_mb), ("trace", args.trace)) if v}
        background, made = args.async_ or args.paused, []

        def on_pid(pid: int) -> None:         # before the upload: a big application takes a while
            made.append(pid)
            if background:
                self.poutput(str(pid))
                self.stdout.flush()           # to a pipe too: whoever reads it may use it now
        try:
            future = api.run(args.app, rmap=json_object(args.rmap, "--rmap"), rcon=json_object(args.rcon, "--rcon"),
                             level=args.level, verbose=args.verbose, async_=True, paused=args.paused,
                             on_pid=on_pid, **options)
        except KeyboardInterrupt:             # api.run killed it
            self.fail(f"run: interrupted; process {made[0]} killed before it was queued" if made
                      else "run: interrupted")
            return
        if background:
            return
        future.verbose, future.echo = args.verbose, self.poutput
        try:
            res = future.result(states=args.json)      # the summary shows no states: none decoded for it
        except KeyboardInterrupt:
            self.interrupted(future.pid)
            return
        self.json_stream(res) if args.json else self.summary(res)
        if args.json and res.get("state") != "finished":
            self.failed = True

    def interrupted(self, pid: int) -> None:
        """Ctrl-C while waiting for process `pid`: at a prompt, ask whether
        to kill it; in a script (-c, piped), kill it.  Its pid is said either way."""
        self.failed = True
        if getattr(self, "interactive", False) and self.stdin.isatty() and not self.in_pyscript():
            try:
                keep = self.read_input(f"kill process {pid}? [y/N] ").strip().lower() not in ("y", "yes")
            except (EOFError, KeyboardInterrupt):
                keep = True
            if keep:
                self.poutput(f"process {pid} goes on: block {pid} / kill {pid}")
                return
        outcome = "killed" if api.kill(pid) else "had already ended"
        self.poutput(f"process {pid} {outcome}")

    debug_parser = Cmd2ArgumentParser(description="Debug a process started with `run --paused` "
                                                  "(docs/debugging.md): a prompt of its own, `help` lists its commands.")
    pid_arg(debug_parser)

    @with_category(CATEGORY)
    @with_argparser(debug_parser)
    @command
    def do_debug(self, args) -> None:
        """Debug a paused process."""
        from .debugger import attach
        from .debugshell import DebugShell
        try:
            session = attach(args.pid)
        except DebugError as e:
            raise ValueError(str(e)) from None
        shell = DebugShell(session, f"debug {args.pid}", stdin=self.stdin, stdout=self.stdout)
        try:
            shell.cmdloop()
        finally:
            session.close()
        if shell.failed:
            self.failed = True

    ps_parser = Cmd2ArgumentParser(description="List waiting and running processes (every user's).")
    ps_parser.add_argument("-a", "--all", action="store_true", help="ended processes too")
    ps_parser.add_argument("--user", metavar="NAME", help="only NAME's processes (me: yours)")
    ps_parser.add_argument("--state", metavar="STATE[,STATE]", action="append", type=comma_list, default=[],
                           help="only processes in these states (repeatable): waiting, running, finished, "
                                "failed, killed")
    json_arg(ps_parser)

    @with_category(CATEGORY)
    @with_argparser(ps_parser)
    @command
    def do_ps(self, args) -> None:
        """List processes."""
        who = api.user() if args.user == "me" else args.user
        infos = api.processes(all=args.all, user=who, states=[s for group in args.state for s in group])
        if args.json:
            self.json_out(infos)
        else:
            self.table(PROCESS_COLUMNS, [process_row(i) for i in infos])
            for i in infos:
                if queue_note(i):
                    self.poutput(f"pid {i['pid']}: {queue_note(i)}")

    kill_parser = Cmd2ArgumentParser(description="Kill processes (each is tried; fails if one could not be).")
    pid_arg(kill_parser, "process ids", nargs="+")
    kill_parser.add_argument("-f", "--force", action="store_true", help="on an open cluster (no identities): kill another user's process; on a secured one, owners and admins may kill")

    @with_category(CATEGORY)
    @with_argparser(kill_parser)
    @command
    def do_kill(self, args) -> None:
        """Kill processes."""
        for pid in args.pid:
            try:
                if not api.kill(pid, force=args.force):
                    self.fail(f"kill: process {pid} had already ended")
            except api.NotAllowed as e:
                self.fail(f"kill: {e.message('kill -f')}")
            except USER_ERRORS as e:
                self.fail(f"kill: {e}")

    purge_parser = Cmd2ArgumentParser(description="Remove ended processes (record, result, log): your own, the "
                                                  "given pids, or everyone's (--all: an admin; on an open "
                                                  "cluster with -f). They also expire by themselves "
                                                  "(PSTACK_RESULT_TTL, default 7d).")
    pid_arg(purge_parser, "process ids (default: all your ended processes)", nargs="*")
    purge_parser.add_argument("--all", action="store_true", help="every user's ended processes")
    purge_parser.add_argument("--older-than", type=duration_arg, metavar="DURATION",
                              help="only those that ended longer ago than this (3600, 90m, 12h, 7d)")
    purge_parser.add_argument("-f", "--force", action="store_true",
                              help="on an open cluster (no identities): others' processes too")

    @with_category(CATEGORY)
    @with_argparser(purge_parser)
    @command
    def do_purge(self, args) -> None:
        """Remove ended processes."""
        if args.pid and (args.all or args.older_than is not None):
            raise ValueError("give pids, or --all / --older-than, not both")
        try:
            got = api.purge(args.pid, all=args.all, older_than=args.older_than, force=args.force)
        except api.NotAllowed as e:
            raise PermissionError(e.message("purge --all -f")) from None
        n = len(got["purged"])
        self.poutput(f"purged {n} process{'es' if n != 1 else ''}"
                     + (f": {' '.join(map(str, got['purged']))}" if got["purged"] and args.pid else ""))
        for pid, why in got["refused"].items():
            self.fail(f"purge: process {pid}: {why}")

    block_parser = Cmd2ArgumentParser(description="Wait for a process to end.")
    pid_arg(block_parser)

    @with_category(CATEGORY)
    @with_argparser(block_parser)
    @command
    def do_block(self, args) -> None:
        """Wait for a process."""
        self.summary(api.block(args.pid))

    result_parser = Cmd2ArgumentParser(description="The result of an ended process: a summary with the first "
                                                   f"{SHOWN_STATES} devices' states, unless --states or --json.")
    pid_arg(result_parser)
    result_parser.add_argument("--states", action="store_true", help="every device's state, one a line")
    json_arg(result_parser)

    @with_category(CATEGORY)
    @with_argparser(result_parser)
    @command
    def do_result(self, args) -> None:
        """Show a process's result."""
        whole = args.states or args.json
        res = api.result(args.pid, states=True if whole else SHOWN_STATES)
        if res is None:
            self.fail(f"result: process {args.pid} is still {api.info(args.pid)['state']}")
            return
        if args.json:
            self.json_stream(res)
            return
        self.summary(res)
        states = res.get("states", {})
        shown = iter(states.items()) if whole else itertools.islice(states.items(), SHOWN_STATES)
        for batch in iter(lambda: list(itertools.islice(shown, JSON_BATCH)), []):
            self.stdout.write("".join(f"  {dev}: {json.dumps(abridged(state))}\n" for dev, state in batch))
        total = res.get("metrics", {}).get("Devices", len(states))
        if not whole and total > SHOWN_STATES:
            self.poutput(f"  ... {total - SHOWN_STATES} more devices: result {args.pid} --states, or "
                         f"result {args.pid} --json")

    info_parser = Cmd2ArgumentParser(description="A process's record: state, reason, owner, engines, sizes.")
    pid_arg(info_parser)
    info_parser.add_argument("--regions", action="store_true",
                             help="how its regions split the application: devices, edges inside, cut edges")
    json_arg(info_parser)

    @with_category(CATEGORY)
    @with_argparser(info_parser)
    @command
    def do_info(self, args) -> None:
        """Show a process's record."""
        rec = api.info(args.pid, regions=args.regions)
        if args.json:
            self.json_out(rec)
            return
        split = rec.pop("split", None)
        width = max(map(len, rec))
        for k, v in rec.items():
            if k in ("created", "started", "ended", "expected_start") and v:
                v = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(v))
            self.poutput(f"{k:>{width}}: {v}")
        if split is not None:
            self.poutput("")
            self.poutput(render_split(split))

    inspect_parser = Cmd2ArgumentParser(description="What an application is made of: types, pins, fields, "
                                                    "device and edge counts, degrees (nothing is run).")
    inspect_parser.add_argument("app", help="application XML file", completer=cmd2.Cmd.path_complete)
    json_arg(inspect_parser)

    @with_category(CATEGORY)
    @with_argparser(inspect_parser)
    @command
    def do_inspect(self, args) -> None:
        """Summarise an application file."""
        summary = api.graph(args.app)
        self.json_out(summary) if args.json else self.poutput(render(summary))

    log_parser = Cmd2ArgumentParser(description="A process's log lines (streamed for --verbose processes, "
                                                "from the result otherwise).")
    pid_arg(log_parser)
    log_parser.add_argument("-f", "--follow", action="store_true", help="keep printing until the process ends")

    @with_category(CATEGORY)
    @with_argparser(log_parser)
    @command
    def do_log(self, args) -> None:
        """Show a process's log."""
        future = api.Future(args.pid, verbose=True, echo=self.poutput)
        streamed = future.print_log()
        if args.follow:
            future.result()
            streamed += future.print_log()
        res = api.result(args.pid)
        if not streamed and res is not None:
            for dev, _, text in res.get("log", []):
                self.poutput(f"{dev}: {text}")

    trace_parser = Cmd2ArgumentParser(description="Write the event trace of an ended process run with --trace "
                                                  "to FILE (replay it with psim --replay FILE).")
    pid_arg(trace_parser)
    trace_parser.add_argument("file", help="trace file to write", completer=cmd2.Cmd.path_complete)

    @with_category(CATEGORY)
    @with_argparser(trace_parser)
    @command
    def do_trace(self, args) -> None:
        """Fetch a process's event trace."""
        out = api.trace(args.pid, args.file)
        self.poutput(f"trace of process {args.pid}: {out['regions']} region(s), {out['bytes']} bytes in {out['path']}")

    engines_parser = Cmd2ArgumentParser(description="Registered engines.")
    json_arg(engines_parser)

    @with_category(CATEGORY)
    @with_argparser(engines_parser)
    @command
    def do_engines(self, args) -> None:
        """List engines."""
        rows = api.engines()
        if args.json:
            self.json_out(rows)
        else:
            self.table(ENGINE_COLUMNS, [engine_row(e) for e in rows])

    test_parser = Cmd2ArgumentParser(description="Run applications on engines, region counts and orders, and "
                                                 "judge each run by the application's checker file (X.py beside "
                                                 "X.xml, with check_* functions); fails if a check fails.")
    test_parser.add_argument("paths", nargs="+", metavar="PATH", completer=cmd2.Cmd.path_complete,
                             help="an app's .xml or its .py, or a folder searched for apps with checkers")
    test_parser.add_argument("--engines", default=apptest.ALL, metavar="all|NAME,...",
                             help=f"engines to run on: {apptest.PSIM} (in this process) and the cluster's "
                                  f"(default {apptest.ALL}: {apptest.PSIM} and every registered engine)")
    test_parser.add_argument("--regions", default="1", metavar="N,...", help="region counts (default 1)")
    test_parser.add_argument("--orders", default=apptest.DEFAULT_ORDER, metavar="default|random:SEED,...",
                             help="orders (default: default, the checker's own, fixed unless it says otherwise)")
    test_parser.add_argument("--junit", metavar="FILE", help="also write the results as JUnit XML")
    test_parser.add_argument("--timeout", type=float, default=apptest.TIMEOUT, metavar="S",
                             help=f"fail a run after S seconds (default {apptest.TIMEOUT:g})")

    @with_category(CATEGORY)
    @with_argparser(test_parser)
    @command
    def do_test(self, args) -> None:
        """Test applications with their checkers."""
        report = apptest.test(args.paths, args.engines, args.regions, args.orders, args.junit, args.timeout)
        table = report.table()
        # to a terminal the table fits its width; to a file or pipe (CI logs) it is printed whole
        if self.stdout.isatty():
            self.poutput(table, soft_wrap=False)
        else:
            self.poutput(unwrapped(table))
        for line in report.failure_lines():
            self.poutput(line)
        self.poutput(report.summary())
        if not report.ok:
            self.failed = True

    config_parser = Cmd2ArgumentParser(description="The configuration in effect: the configuration file, the "
                                                   "Redis URL and password (hidden) and where each came from, "
                                                   "and run's defaults.")
    json_arg(config_parser)

    @with_category(CATEGORY)
    @with_argparser(config_parser)
    @command
    def do_config(self, args) -> None:
        """Show the configuration in effect."""
        settings = effective_configuration()
        if args.json:
            self.json_out(settings)
            return
        run = ", ".join(f"{k}={v!r}" for k, v in settings["run"].items()) or "none (the built-in defaults)"
        self.poutput(f"configuration file: {settings['file']}" + ("" if settings["file_exists"] else " (none there)"))
        self.poutput(f"         Redis URL: {settings['redis_url']}  (from {settings['redis_url_from']})")
        self.poutput(f"    Redis password: {settings['password']}")
        self.poutput(f"      run defaults: {run}")

    top_parser = Cmd2ArgumentParser(description="Live view of engines and processes; h lists the keys, q quits.")
    top_parser.add_argument("--snapshot", metavar="FILE", completer=cmd2.Cmd.path_complete,
                            help="save one frame to FILE (.png, .svg or .txt) instead")
    top_parser.add_argument("--size", default="100x30", metavar="WxH",
                            help="of the snapshot, in characters (default 100x30)")
    top_parser.add_argument("--seconds", type=float, default=3.0, metavar="S",
                            help="of looking before the snapshot, to measure message rates (default 3)")

    @with_category(CATEGORY)
    @with_argparser(top_parser)
    @command
    def do_top(self, args) -> None:
        """Live view of engines and processes."""
        from . import top
        if args.snapshot:
            top.snapshot(Path(args.snapshot), args.size, args.seconds)
            self.poutput(f"top: saved {args.snapshot}")
        else:
            top.top()

    plot_parser = picture_args("Plot a process's messages delivered per second, per region and in total, with "
                               "each region's load, to FILE (.png or .svg).")

    @with_category(CATEGORY)
    @with_argparser(plot_parser)
    @command
    def do_plot(self, args) -> None:
        """Plot a process's message rate."""
        from .pictures import plot               # matplotlib and NumPy: only when drawing
        self.poutput(plot(args.pid, args.file))

    picture_parser = picture_args("Draw an ended process's devices at their coordinates to FILE (.png or .svg), "
                                  "coloured by a field of their final state (--field) or by their region (--regions).")
    colour = picture_parser.add_mutually_exclusive_group(required=True)
    colour.add_argument("--field", metavar="NAME", help="the state (or property) field to colour by, e.g. temp, "
                                                        "s.a, hist[2]")
    colour.add_argument("--regions", action="store_true", help="colour by the region that ran each device")
    picture_parser.add_argument("--xy", metavar="X,Y", type=xy_names,
                                help="the two properties that place a device (default x,y or coords[2])")

    @with_category(CATEGORY)
    @with_argparser(picture_parser)
    @command
    def do_picture(self, args) -> None:
        """Draw a process's devices."""
        from .pictures import picture            # matplotlib and NumPy: only when drawing
        self.poutput(picture(args.pid, args.file, args.field, args.regions, args.xy))


def effective_configuration() -> dict:
    """What pcli goes by, and where each setting came from (no secret shown)."""
    url, url_from = url_and_source()
    if urlsplit(url).password is not None:
        password = "*** (in the URL)"
    else:
        secret, source = password_and_source()
        password = f"*** ({source})" if secret else "none"
    file = config.path()
    return {"file": str(file), "file_exists": file.exists(), "redis_url": redact(url), "redis_url_from": url_from,
            "password": password, "run": config.run_defaults()}


def unwrapped(renderable) -> str:
    """A rich renderable as plain text, as wide as it needs to be."""
    measure = Console(width=10_000)
    out = io.StringIO()
    width = Measurement.get(measure, measure.options, renderable).maximum
    Console(file=out, width=width, color_system=None).print(renderable)
    return "\n".join(line.rstrip() for line in out.getvalue().splitlines())


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pcli", description="The pstack shell.")
    p.add_argument("--redis", metavar="URL", help="Redis of the pstack service (default $PSTACK_REDIS)")
    p.add_argument("-n", "--nocolor", action="store_true", help="no colour")
    p.add_argument("-q", "--quiet", action="store_true", help="no banner")
    p.add_argument("-c", dest="commands", action="append", metavar="COMMAND",
                   help="run COMMAND and exit (repeatable); status 1 if one fails")
    config.describe(p, {"0": "every command succeeded (or the session ended)",
                        "1": "a command failed: the ones after it were not run",
                        "N": "a run_pyscript script's sys.exit(N)", "2": "bad arguments to pcli"},
                    ("PSTACK_REDIS", "PSTACK_REDIS_FILE", "PSTACK_PASSWORD", "PSTACK_CONFIG", "PSTACK_USER",
                     "PCLI_HISTORY", "PCLI_CONTEXT", "PSTACK_CACHE"))
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.redis:
        try:
            os.environ["PSTACK_REDIS"] = refuse_on_command_line(args.redis, "--redis")
        except CredentialsError as e:
            raise SystemExit(f"pcli: {e}") from None
    scripted = scripted_lines(args.commands)
    shell = Shell(color=not args.nocolor, quiet=args.quiet or scripted is not None, history=scripted is None)
    if scripted is None:
        shell.cmdloop()
        return shell.exit_code
    for line in scripted:
        if not line.strip():
            continue
        shell.failed = False
        stop = shell.onecmd_plus_hooks(line.rstrip("\n"))
        if shell.failed or shell.exit_code:
            return shell.fail_status if shell.failed else 1
        if stop:
            return 0
    return 0


def scripted_lines(commands: list[str] | None) -> Iterator[str] | None:
    """The -c commands, else stdin's lines when it is not a terminal, read one
    at a time (a `py` among them reads the lines after it); None: interactive."""
    if commands:
        return iter(commands)
    if sys.stdin.isatty():
        return None
    return iter(sys.stdin.readline, "")


if __name__ == "__main__":
    raise SystemExit(main())
