"""The debugger's prompt (docs/debugging.md): `debug PID` in the pcli shell
and `psim --debug app.xml` open it over a Session (pcli/debugger.py).

    break [DEVICE|*][:PIN] [type=T] [handler=H] [if CONDITION]
    clear [N]   cont [SECONDS]   step [N] [region=R]   pause   where
    state DEVICE   props DEVICE   pending DEVICE
    inject DEVICE PIN [FIELD=VALUE ...]   set DEVICE FIELD=VALUE ...
    watch DEVICE [FIELD ...]   unwatch [DEVICE]   finish   quit

Device ids and pins complete with Tab.  Values are Python literals.
"""
from __future__ import annotations

import ast
import json
import shlex

import cmd2

from psim.cli import abridged
from psim.debug import DebugError, parse_break
from .debugger import Session, Stop

CATEGORY = "debugger"


def fields(words: list[str]) -> dict:
    """FIELD=VALUE words as a dict, values read as Python literals (else text)."""
    out = {}
    for w in words:
        name, eq, text = w.partition("=")
        if not eq or not name:
            raise DebugError(f"expected FIELD=VALUE, not '{w}'")
        try:
            out[name] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            out[name] = text
    return out


class DebugShell(cmd2.Cmd):
    def __init__(self, session: Session, name: str = "debug", report: bool = True, **kwargs):
        """report: print the result's status and counts when the run ends (the
        pcli shell; psim prints its own result)."""
        super().__init__(allow_cli_args=False, persistent_history_file="", **kwargs)
        self.session, self.report = session, report
        self.prompt = f"({name}) "
        self.watches: dict[str, list[str]] = {}
        self.failed = False
        self.reported = False                 # the result's summary was printed
        self.intro = f"{session.where()}\n`help` lists the debugger's commands; `quit` runs the process to its end."

    def pexcept(self, exception: BaseException, **kwargs) -> None:
        """A request the debugger refused: one line, and the command failed."""
        self.failed = True
        if isinstance(exception, (DebugError, ValueError)):
            self.perror(f"debug: {exception}")
        else:
            super().pexcept(exception, **kwargs)

    # ---- running ---------------------------------------------------------------------

    def _show(self, stop: Stop) -> None:
        self.poutput(str(stop))
        if stop.reason == "end":
            return
        for dev, names in self.watches.items():
            state = self.session.state(dev)
            shown = {k: state[k] for k in names if k in state} if names else state
            self.poutput(f"  {dev}: {json.dumps(abridged(shown))}")

    @cmd2.with_category(CATEGORY)
    def do_cont(self, arg: cmd2.Statement) -> None:
        """cont [SECONDS]: run to the next breakpoint or the end (after SECONDS, pause). Ctrl-C pauses."""
        timeout = float(arg.args) if arg.args.strip() else None
        try:
            stop = self.session.cont(timeout)
        except KeyboardInterrupt:
            stop = self.session.pause()
        self._show(stop)

    @cmd2.with_category(CATEGORY)
    def do_step(self, arg: cmd2.Statement) -> None:
        """step [N] [region=R]: run N events (default 1) in the region that stopped last (or R)."""
        words = arg.arg_list
        opts = fields([w for w in words if "=" in w])
        counts = [w for w in words if "=" not in w]
        self._show(self.session.step(int(counts[0]) if counts else 1, opts.get("region")))

    @cmd2.with_category(CATEGORY)
    def do_pause(self, _: cmd2.Statement) -> None:
        """pause: pause every region (they are paused whenever this prompt shows)."""
        self._show(self.session.pause())

    @cmd2.with_category(CATEGORY)
    def do_where(self, _: cmd2.Statement) -> None:
        """where: where the process stopped, and the event about to run."""
        self._show(self.session.where())

    @cmd2.with_category(CATEGORY)
    def do_finish(self, _: cmd2.Statement) -> None:
        """finish: clear the breakpoints and run to the end; the result's status and counts."""
        res = self.session.finish()
        if not self.report or self.reported:
            return
        self.reported = True
        if "error" in res:
            self.poutput(f"Error  {res['error']}")
        self.poutput(f"Exit   {res['metrics'].get('Exit code', 0)} ({res['status']})")
        for name in ("Delivered messages", "Sends", "Steps"):
            if name in res["metrics"]:
                self.poutput(f"Metric {name}: {res['metrics'][name]}")

    def do_quit(self, _: cmd2.Statement) -> bool:
        """quit: run the process to its end (breakpoints cleared) and leave the debugger."""
        self.do_finish(_)
        return True

    do_eof = do_quit

    # ---- breakpoints -----------------------------------------------------------------

    @cmd2.with_category(CATEGORY)
    def do_break(self, arg: cmd2.Statement) -> None:
        """break [DEVICE|*][:PIN] [type=T] [handler=H] [if CONDITION]: stop before a handler runs
        (CONDITION: Python over the device's state and properties fields, msg.FIELD, device, pin).
        With no argument, list the breakpoints."""
        if not arg.args.strip():
            for i, bp in enumerate(self.session.breakpoints):
                if bp:
                    self.poutput(f"{i}: {bp}")
            return
        n = self.session.break_on(**vars(parse_break(arg.args)))
        self.poutput(f"breakpoint {n}: {self.session.breakpoints[n]}")

    @cmd2.with_category(CATEGORY)
    def do_clear(self, arg: cmd2.Statement) -> None:
        """clear [N]: remove breakpoint N, or all of them."""
        self.session.clear(int(arg.args) if arg.args.strip() else None)

    # ---- looking and changing --------------------------------------------------------

    def _device_arg(self, arg: cmd2.Statement, what: str) -> str:
        if len(arg.arg_list) != 1:
            raise DebugError(f"{what} takes one device id")
        return arg.arg_list[0]

    @cmd2.with_category(CATEGORY)
    def do_state(self, arg: cmd2.Statement) -> None:
        """state DEVICE: the device's state."""
        self.poutput(json.dumps(abridged(self.session.state(self._device_arg(arg, "state")))))

    @cmd2.with_category(CATEGORY)
    def do_props(self, arg: cmd2.Statement) -> None:
        """props DEVICE: the device's properties."""
        self.poutput(json.dumps(abridged(self.session.props(self._device_arg(arg, "props")))))

    @cmd2.with_category(CATEGORY)
    def do_pending(self, arg: cmd2.Statement) -> None:
        """pending DEVICE: messages waiting for the device (in random order; injected ones)."""
        waiting = self.session.pending(self._device_arg(arg, "pending"))
        for m in waiting:
            self.poutput(f"{m['pin']} {m['source']}: {json.dumps(abridged(m['message']))}")
        if not waiting:
            self.poutput("nothing waiting")

    @cmd2.with_category(CATEGORY)
    def do_inject(self, arg: cmd2.Statement) -> None:
        """inject DEVICE PIN [FIELD=VALUE ...]: deliver a message to the pin before the next event."""
        words = shlex.split(arg.args)
        if len(words) < 2:
            raise DebugError("inject takes DEVICE PIN [FIELD=VALUE ...]")
        self.session.inject(words[0], words[1], **fields(words[2:]))
        self.poutput(f"queued for {words[0]}:{words[1]}")

    @cmd2.with_category(CATEGORY)
    def do_set(self, arg: cmd2.Statement) -> None:
        """set DEVICE FIELD=VALUE ...: change the device's state."""
        words = shlex.split(arg.args)
        if len(words) < 2:
            raise DebugError("set takes DEVICE FIELD=VALUE ...")
        self.poutput(json.dumps(abridged(self.session.set_state(words[0], **fields(words[1:])))))

    @cmd2.with_category(CATEGORY)
    def do_watch(self, arg: cmd2.Statement) -> None:
        """watch DEVICE [FIELD ...]: show the device's state (or those fields) at every stop."""
        if not arg.arg_list:
            raise DebugError("watch takes DEVICE [FIELD ...]")
        dev, names = arg.arg_list[0], arg.arg_list[1:]
        self.session.state(dev)                  # fails now for a device the process has not
        self.watches[dev] = names

    @cmd2.with_category(CATEGORY)
    def do_unwatch(self, arg: cmd2.Statement) -> None:
        """unwatch [DEVICE]: stop showing DEVICE (or every watched device)."""
        if arg.arg_list:
            self.watches.pop(arg.arg_list[0], None)
        else:
            self.watches.clear()

    # ---- completion ------------------------------------------------------------------

    def _devices(self, text: str) -> list[str]:
        try:
            return self.session.names(text)
        except DebugError:
            return []

    def _device_then_pin(self, text: str, line: str, begidx: int) -> list[str]:
        words = shlex.split(line[:begidx]) if line[:begidx].strip() else []
        if len(words) == 1:
            return self._devices(text)
        if len(words) == 2:
            try:
                return self.session.names(text, device=words[1])
            except DebugError:
                return []
        return []

    def complete_break(self, text: str, line: str, begidx: int, endidx: int) -> list[str]:
        device, colon, pin = text.partition(":")
        if colon:
            try:
                return [f"{device}:{p}" for p in self.session.names(pin, device=device)]
            except DebugError:
                return []
        return self._devices(text)

    def complete_inject(self, text: str, line: str, begidx: int, endidx: int) -> list[str]:
        return self._device_then_pin(text, line, begidx)

    def _complete_device(self, text: str, line: str, begidx: int, endidx: int) -> list[str]:
        return self._devices(text)

    complete_state = complete_props = complete_pending = complete_set = complete_watch = _complete_device
