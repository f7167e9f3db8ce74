"""The `psim` command."""
from __future__ import annotations

import argparse
import json
import os
import sys
import traceback

from broker.config import pstack_version      # the stdlib only: no cost to start-up

from . import limits, plots, progress
from .engine import Options
from .errors import BadInput

INTERRUPTED = 130        # run.INTERRUPTED, without importing the engine's modules before PSTACK_CACHE is set

EPILOG = """\
exit status:
  0    the application called handler_exit(0) (or an equivalent), or ended idle;
       --check: every check passed; --replay: the recorded run's, as above
  1    it exited with a non-zero code or failed (assert, crash, timeout, step
       limit, memory); --check: a check failed; --replay: the run diverged
  2    bad input: a bad application file, option, region map, trace or
       MODULE:FACTORY (the message names it)
  3    an internal error of psim (--internals shows its traceback)
  130  interrupted (Ctrl-C); -r still prints what the run had then

environment:
  PSTACK_CACHE               folder for compiled modules and the instance cache
                             (default ~/.cache/pstack; -t DIR sets it)
  PSTACK_INSTANCE_CACHE      0: read every instance from its XML (--no-instance-cache)
  PSTACK_INSTANCE_CACHE_MB   the instance cache's size, in MB (default 4096)
  CXX                        the C++ compiler for the handlers (default g++)
  TMP                        where a supervisor's get_output_directory() makes its folder

docs/psim.md is the user guide.
"""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="psim", description="Run a POETS application (graph-schema v2, v3 or v4 XML).",
                                epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"psim (pstack) {pstack_version()}")
    p.add_argument("app", nargs="?", help="application file (.xml or .xml.gz); with --check, by default the one "
                                          "beside the checker file; with --replay or --events, the trace's own")
    p.add_argument("-l", "--level", type=int, help="log level: show handler_log lines up to N (default 1)")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the exit code and metrics")
    p.add_argument("-r", "--result", action="store_true", help="print the result as JSON")
    p.add_argument("--internals", action="store_true", help="show internal tracebacks and where modules are built")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction,
                   help="show reading, compiling and running on stderr (default: when stderr is a terminal, "
                        "but not with -q or -r)")
    p.add_argument("--debug", action="store_true",
                   help="open the debugger's prompt, paused before the first event (docs/debugging.md)")
    p.add_argument("--break", dest="breaks", action="append", default=[], metavar="SPEC",
                   help="debug, and stop at SPEC: '[DEVICE|*][:PIN] [type=T] [handler=H] [if CONDITION]', "
                        "e.g. 'n2:toggle_in if counter == 5' (repeatable)")
    p.add_argument("-t", "--temp", metavar="DIR", help="folder for compiled modules (default ~/.cache/pstack)")
    p.add_argument("--no-instance-cache", action="store_true",
                   help="read the instance from the XML, not from the instance cache (PSTACK_INSTANCE_CACHE=0)")
    p.add_argument("--order", choices=("fixed", "random"), help="scheduling order (default fixed)")
    p.add_argument("--seed", type=int, help="seed for --order random")
    p.add_argument("--max-steps", type=int, metavar="N", help="fail the run after N steps")
    p.add_argument("--timeout", type=float, metavar="S", help="fail the run after S seconds")
    p.add_argument("--threads", type=int, metavar="N",
                   help="run in N threads of this process, one engine each on a METIS region (default 1)")
    p.add_argument("--rmap", metavar="FILE|JSON", help="region map {device: region}, as JSON or a JSON file")
    p.add_argument("--region", type=int, help="run only this region of the region map")
    p.add_argument("--external", metavar="MODULE:FACTORY",
                   help="serve the external devices with the pcli.Engine that MODULE.FACTORY() returns "
                        "(MODULE: a module name, or path/to/module.py)")
    p.add_argument("--supervisor", metavar="MODULE:FACTORY",
                   help="run the application's supervisor in the pcli.Engine that MODULE.FACTORY() returns, "
                        "instead of its C code")
    p.add_argument("--memory-mb", type=int, metavar="N",
                   help="memory the application may use, in MB, beyond what psim needs (default: no limit)")
    p.add_argument("--inspect", action="store_true",
                   help="print what the application is made of (types, counts, degrees; with --rmap, its "
                        "split into regions) instead of running it; -r: as JSON")
    p.add_argument("--check", metavar="CHECKER.py",
                   help="run the application with its checker file's options, then its check_* functions on the "
                        "result: PASS or FAIL with the assertion for each; exit status 1 if one fails")
    p.add_argument("--trace", metavar="FILE", help="record every send, delivery and input in FILE (docs/tracing.md)")
    p.add_argument("--replay", metavar="FILE", help="run the schedule the trace FILE recorded again, checking "
                                                    "every event against it")
    p.add_argument("--events", metavar="FILE", help="print the trace FILE's records, one JSON object a line")
    p.add_argument("--xml", metavar="OUT", help="with --events: write graph-schema's event log XML to OUT instead")
    plots.add_arguments(p)
    return p


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except KeyboardInterrupt:   # Ctrl-C where no result is to be had: reading, compiling, --inspect, --replay...
        print("psim: interrupted", file=sys.stderr)
        return INTERRUPTED
    except BrokenPipeError:     # `psim ... | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())   # so the exit's flush fails silently
        return 1


def _main(argv: list[str] | None) -> int:
    p = parser()
    args = p.parse_args(argv)
    if not (args.app or args.check or args.replay or args.events):
        p.error("the following arguments are required: app")
    if args.region is not None and not args.rmap:
        p.error("--region N runs one region of a region map: give --rmap too")
    if plots.misused(args):
        p.error(plots.misused(args))
    if args.temp:
        os.environ["PSTACK_CACHE"] = args.temp
    if args.no_instance_cache:
        os.environ["PSTACK_INSTANCE_CACHE"] = "0"
    if args.inspect:
        return inspect(args)
    if plots.region_picture(args):
        return _region_picture(args)
    if args.replay or args.events:
        return _traced(args)
    given = options_given(args)
    try:
        opts = Options.from_dict({**given, "region": args.region, "trace": args.trace or False})
    except ValueError as e:
        print(f"psim: {e}", file=sys.stderr)
        return 2
    if args.check:
        return _check(args, given)
    limits.apply(limits.Limits(memory_mb=opts.memory_mb))     # imports done: what is in use now is psim's
    debugging = bool(args.debug or args.breaks)
    shown = progress.reporter(not debugging and progress.wanted(args.progress, args.quiet or args.result))
    try:
        wanted = plots.Wanted(args)
        try:
            res, drawn = _run(args, opts, debugging, shown, wanted)
        finally:
            shown.close()
        if args.result:
            print(json.dumps(res))
        else:
            _print_human(res, args.quiet)
            for line in drawn if not args.quiet else []:
                print(line)
        return _status(res)
    except BadInput as e:
        print(f"psim: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        raise                  # not psim's fault: main() handles it
    except MemoryError:        # in Python: reading the instance or shaping the result
        print(f"psim: memory limit of {opts.memory_mb} MB exceeded (in psim, not a handler)"
              if opts.memory_mb else "psim: out of memory", file=sys.stderr)
        return 1
    except Exception as e:     # a bug in psim, not the user's mistake
        if args.internals:
            traceback.print_exc()
        print(f"psim: internal error: {type(e).__name__}: {e}", file=sys.stderr)
        return 3


def _run(args: argparse.Namespace, opts: Options, debugging: bool, shown: progress.Quiet,
         wanted: plots.Wanted) -> tuple[dict, list[str]]:
    """Load and run (or debug) the application: its result, and a line for
    each picture drawn of it."""
    from .run import Loaded, run_loaded   # after PSTACK_CACHE is set
    rmap = json_object(args.rmap, "--rmap")
    externals, supervisor = _engine(args.external, "--external"), _engine(args.supervisor, "--supervisor")
    loaded = Loaded(args.app, watchers=bool(debugging or opts.trace), progress=shown)
    if args.internals:
        print(f"Debug  module {loaded.module.__file__}", file=sys.stderr)
        print(f"Debug  instance {'from the instance cache' if loaded.instance_cached else 'read from the XML'}",
              file=sys.stderr)
    on_log = (lambda d, lv, t: print(f"Log    {d}: {t}")) if not (args.quiet or args.result) else None
    if debugging:
        res = debug(loaded, opts, args.breaks, on_log)
    else:
        sampler = wanted.start(loaded)
        res = run_loaded(loaded, opts, rmap, externals, on_log, supervisor, states=args.result or not args.quiet,
                         progress=shown, on_batch=[sampler] if sampler else [])
    return res, wanted.draw(loaded, res, with_series=args.result)


def _region_picture(args: argparse.Namespace) -> int:
    """psim --snapshot-png FILE --partition N | --rmap MAP: the split drawn, nothing run."""
    try:
        print(plots.draw_regions(args))
    except BadInput as e:
        print(f"psim: {e}", file=sys.stderr)
        return 2
    return 0


def _traced(args) -> int:
    """--replay (the result, printed as a run's) or --events."""
    from . import trace
    try:
        if args.events:
            if args.xml:
                print(f"Events {trace.to_xml(args.events, args.xml, args.app)} written to {args.xml}")
            else:
                for event in trace.events(args.events, args.app):
                    print(json.dumps(event))
            return 0
        res = trace.replay(args.replay, args.app)
    except BadInput as e:
        print(f"psim: {e}", file=sys.stderr)
        return 2
    except trace.Diverged as e:
        print(f"psim: {e}", file=sys.stderr)
        return 1
    _report(res, args)
    return _status(res)


def _report(res: dict, args) -> None:
    if args.result:
        print(json.dumps(res))
        return
    for dev, _, text in res.get("log", []) if not args.quiet else []:
        print(f"Log    {dev}: {text}")
    _print_human(res, args.quiet)
    rep = res["replay"]
    print(f"Replay {rep['records']} records in {rep['regions']} region(s) matched the trace")
    for region in rep["unended"]:
        print(f"Replay region {region} was stopped before it recorded its end: checked as far as its trace goes, "
              "no result (as in the process's)")


def _status(res: dict) -> int:
    if res["status"] == "interrupted":
        return INTERRUPTED
    return 0 if res["status"] == "idle" or (res["status"] == "exit" and res["metrics"]["Exit code"] == 0) else 1


def inspect(args: argparse.Namespace) -> int:
    """psim --inspect: the application's summary (and split, with --rmap)."""
    from rich.console import Console

    from .inspect import graph, render
    try:
        summary = graph(args.app, json_object(args.rmap, "--rmap") if args.rmap else None)
    except BadInput as e:
        print(f"psim: {e}", file=sys.stderr)
        return 2
    if args.result:
        print(json.dumps(summary))
    else:
        Console().print(render(summary))
    return 0


def debug(loaded, opts: Options, breaks: list[str], on_log) -> dict:
    """psim --debug / --break: the debugger's prompt over this run; its result."""
    from pcli.debugger import local               # the layer above psim: imported only to debug
    from pcli.debugshell import DebugShell
    session = local(loaded=loaded, options=opts, on_log=on_log)
    shell = DebugShell(session, "psim", report=False)
    for spec in breaks:
        shell.onecmd_plus_hooks(f"break {spec}")
    if breaks:
        shell.intro = ""
        shell.onecmd_plus_hooks("cont")
    shell.cmdloop()
    return session.finish()
OPTION_FLAGS = ("level", "order", "seed", "max_steps", "timeout", "memory_mb", "threads")


def options_given(args: argparse.Namespace) -> dict:
    """The run options given on the command line (the others are psim's
    defaults, or with --check the checker's)."""
    return {k: getattr(args, k) for k in OPTION_FLAGS if getattr(args, k) is not None}


def _check(args: argparse.Namespace, given: dict) -> int:
    """psim --check: the application's checkers on its run (the checker's
    options, then those given here); 0 if all pass, 1 if one fails."""
    from .check import Checker
    if args.rmap or args.region is not None:
        print("psim: --check runs the whole application: no --rmap or --region", file=sys.stderr)
        return 2
    try:
        checker = Checker.of(args.check, args.app)
        res = checker.run(given, _engine(args.external, "--external"), _engine(args.supervisor, "--supervisor"))
    except BadInput as e:
        print(f"psim: {e}", file=sys.stderr)
        return 2
    if res["status"] == "interrupted":         # nothing to check: the run did not end
        print("psim: interrupted", file=sys.stderr)
        return INTERRUPTED
    verdicts = checker.verdicts(res)
    for v in verdicts:
        print(f"{'PASS' if v.passed else 'FAIL'}  {v.name}" + (f": {v.message}" if v.message else ""))
    failed = sum(not v.passed for v in verdicts)
    print(f"{checker.name}: {len(verdicts) - failed} passed, {failed} failed")
    return 1 if failed else 0


def _engine(spec: str | None, option: str):
    """The application engine --external or --supervisor names (before the
    load: a bad spec fails at once), or None without one."""
    if not spec:
        return None
    from pcli.standalone import engine_from_spec     # the layer above psim: imported only for an engine
    return engine_from_spec(spec, option)


def json_object(arg: str | None, option: str) -> dict:
    """A command-line option given as a JSON object or a file holding one
    (--rmap here, --rmap and --rcon in pcli); {} when not given."""
    if not arg:
        return {}
    try:
        text = open(arg).read() if os.path.isfile(arg) else arg
        value = json.loads(text)
    except (OSError, ValueError) as e:
        raise BadInput(f"{option}: not JSON: {e}") from None
    if not isinstance(value, dict):
        raise BadInput(f"{option}: expected a JSON object")
    return value


def _print_human(res: dict, quiet: bool) -> None:
    if "error" in res:
        print(f"Error  {res['error']}")
    print(f"Exit   {res['metrics']['Exit code']} ({res['status']})")
    for name, value in res["metrics"].items():
        print(f"Metric {name}: {value}")
    if not quiet:
        for dev, state in res["states"].items():
            print(f"State  {dev}: {json.dumps(abridged(state))}")


def abridged(value, limit: int = 16):
    """Long arrays shortened for reading; -r gives them whole."""
    if isinstance(value, dict):
        return {k: abridged(v, limit) for k, v in value.items()}
    if isinstance(value, list) and len(value) > limit:
        return [abridged(v, limit) for v in value[:limit]] + [f"... {len(value)} items"]
    return value
