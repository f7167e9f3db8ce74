"""The shell's Python: `py` (ptpython at a terminal, the plain interpreter
reading lines otherwise) and `run_pyscript`.  Both run in one namespace
that lives as long as the shell (cmd2's own `py` works on a copy, so
nothing made there outlived it); pcli/context.py keeps its plain variables
for the next session.

Each returns the exit status of what ran, as `python` would: 0; 1 after an
uncaught exception (its traceback printed) or, for lines read from a pipe,
after any line raised; N for sys.exit(N), 1 for sys.exit("message")."""
from __future__ import annotations

import builtins
import code
import contextlib
import os
import sys
import traceback
from pathlib import Path
from typing import IO, Callable, Iterator

import cmd2


def exit_status(e: SystemExit) -> int:
    """The status `python` gives for SystemExit `e` (printing a message it carries)."""
    if e.code is None or isinstance(e.code, int):
        return e.code or 0
    print(e.code, file=sys.stderr)
    return 1


@contextlib.contextmanager
def given(namespace: dict, **names) -> Iterator[None]:
    """NAMESPACE with NAMES set for a while (app, print, __file__, ...), then
    as it was: they belong to one run, not to the session."""
    saved = {k: namespace[k] for k in names if k in namespace}
    namespace.update(names)
    try:
        yield
    finally:
        for k in names:
            namespace.pop(k, None)
        namespace.update(saved)


def leave(code: int | str | None = None) -> None:
    """quit() and exit() in the namespace: site's close sys.stdin first,
    which the shell goes on reading."""
    raise SystemExit(code)


def run_file(namespace: dict, path: str, argv: list[str]) -> int:
    """Run the script at PATH in NAMESPACE with sys.argv = [PATH, *ARGV] and
    its folder first on sys.path, as `python PATH` would."""
    try:
        source = Path(path).read_text()
    except OSError as e:
        print(f"run_pyscript: cannot read {path}: {e.strerror or e}", file=sys.stderr)
        return 1
    saved_argv, saved_path = sys.argv, list(sys.path)
    sys.argv = [path, *argv]
    sys.path.insert(0, os.path.dirname(os.path.abspath(path)))
    try:
        with given(namespace, __name__="__main__", __file__=path):
            exec(compile(source, path, "exec"), namespace)
        return 0
    except SystemExit as e:
        return exit_status(e)
    except BaseException as e:          # noqa: BLE001 - the script's own error: shown, the command fails
        traceback.print_exception(type(e), e, e.__traceback__.tb_next)     # from the script's frame on
        return 1
    finally:
        sys.argv, sys.path[:] = saved_argv, saved_path


class LineConsole(code.InteractiveConsole):
    """The plain interpreter on lines from a pipe: no banner, no prompts, and
    it remembers whether a line raised."""

    def __init__(self, namespace: dict, stdin: IO[str]):
        super().__init__(namespace)
        self.stdin, self.raised = stdin, False

    def raw_input(self, prompt: str = "") -> str:
        line = self.stdin.readline()
        if not line:
            raise EOFError
        return line.rstrip("\n")

    def showtraceback(self) -> None:
        self.raised = True
        super().showtraceback()

    def showsyntaxerror(self, filename: str | None = None, **kwargs) -> None:
        self.raised = True
        super().showsyntaxerror(filename, **kwargs)


def interact(namespace: dict, stdin: IO[str], history: str | None, color: bool) -> int:
    """Python until quit(), exit() or end of input: ptpython when STDIN is a
    terminal (history in the file HISTORY), the plain interpreter otherwise."""
    try:
        if stdin.isatty():
            _ptpython(namespace, history, color)
            return 0
        console = LineConsole(namespace, stdin)
        console.interact(banner="", exitmsg="")
        return 1 if console.raised else 0
    except SystemExit as e:
        return exit_status(e)


def _ptpython(namespace: dict, history: str | None, color: bool) -> None:
    from ptpython.repl import embed           # imported when used: pcli starts faster without it

    def configure(repl) -> None:
        repl.confirm_exit = False             # Ctrl-D leaves at once, as in the plain interpreter
        repl.enable_syntax_highlighting = color
    embed(globals=namespace, locals=namespace, configure=configure, history_filename=history)


def printer(shell: cmd2.Cmd) -> Callable:
    """print() for the namespace: to the shell's stdout of the moment unless
    file= says otherwise, so `run_pyscript f.py > out`, app("...") captures
    and shells writing to a StringIO get it."""
    def print_(*objects, sep: str = " ", end: str = "\n", file: IO[str] | None = None, flush: bool = False) -> None:
        builtins.print(*objects, sep=sep, end=end, file=file or shell.stdout, flush=flush)
    return print_
