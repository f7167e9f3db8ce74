"""`top`: a full-screen live view of engines and processes (curses).

A thread looks at the cluster twice a second; the screen itself is
pcli/topscreen.py's (data and view -> lines), drawn here ten times a
second and at once on a key.  While Redis is unreachable it keeps the last
look on screen, says so, and retries.  `snapshot` renders one frame to a file instead.
"""
from __future__ import annotations

import curses
import os
import queue
import sys
import threading
import time
from pathlib import Path

import redis

from . import api
from .topframe import saver, size
from .topscreen import SORTABLE, Data, View, rows, screen, selected

REFRESH_SECONDS = 0.5
KEY_WAIT_MS = 100                                   # between looks at new data, while no key comes
PAGE = 10                                           # rows PgUp / PgDn move by
ENTER, ESCAPE, BACKSPACES = ("\n", "\r", curses.KEY_ENTER), "\x1b", ("\x7f", "\b", curses.KEY_BACKSPACE)
MOVES = {curses.KEY_UP: -1, curses.KEY_DOWN: 1, curses.KEY_PPAGE: -PAGE, curses.KEY_NPAGE: PAGE,
         curses.KEY_HOME: -10**9, curses.KEY_END: 10**9}


def fetch() -> tuple[list[dict], list[dict]] | str:
    """The engines and processes now, or why Redis did not tell (one line)."""
    try:
        return api.engines(), api.processes()
    except redis.RedisError as e:
        return str(e).splitlines()[0] if str(e) else type(e).__name__


class Looker(threading.Thread):
    """fetch() every REFRESH_SECONDS, off the screen's thread: an unreachable
    Redis can hold a command for seconds, and keys must not wait on it."""

    def __init__(self) -> None:
        super().__init__(daemon=True, name="top-looker")
        self.looks: queue.SimpleQueue = queue.SimpleQueue()      # (what fetch() saw, when)
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            self.looks.put((fetch(), time.monotonic()))
            self.stopping.wait(REFRESH_SECONDS)


class Top:
    """The data of the last look and the view, and what keys do to them."""

    def __init__(self) -> None:
        self.data, self.view = Data(), View()

    def apply(self, seen: tuple[list[dict], list[dict]] | str, when: float) -> None:
        """What fetch() saw at `when` (time.monotonic()): the new data, or why there is none."""
        if isinstance(seen, str):
            self.data.error = seen
            return
        engines, infos = seen
        self.data.rates.look(infos, when)
        self.data.engines, self.data.infos, self.data.at, self.data.error = engines, infos, time.time(), ""

    def press(self, key: str | int) -> bool:
        """Act on a key (a character, or a curses KEY_ code); False: quit."""
        view = self.view
        if key == curses.KEY_RESIZE:
            return True
        if view.help:
            view.help = False
        elif view.typing is not None:
            self.type(key)
        elif view.confirm is not None:
            self.answer(key)
        elif key in ("q", "Q"):
            return False
        else:
            self.command(key)
        return True

    def command(self, key: str | int) -> None:
        view = self.view
        view.status = ""
        if key in ("h", "?"):
            view.help = True
        elif key in ("s", ">", "<"):
            view.sort = SORTABLE[(SORTABLE.index(view.sort) + (-1 if key == "<" else 1)) % len(SORTABLE)]
        elif key == "r":
            view.reverse = not view.reverse
        elif key == "/":
            view.typing = view.filter
        elif key == "u":
            self.toggle_mine()
        elif key == "k":
            view.confirm = selected(rows(self.data, view), view)
            view.status = "" if view.confirm is not None else "no process to kill"
        elif key in MOVES:
            self.move(MOVES[key])

    def type(self, key: str | int) -> None:
        view = self.view
        if key in ENTER:
            view.filter, view.typing = view.typing.strip(), None
        elif key == ESCAPE:
            view.typing = None
        elif key in BACKSPACES:
            view.typing = view.typing[:-1]
        elif isinstance(key, str) and key.isprintable():
            view.typing += key

    def answer(self, key: str | int) -> None:
        pid, self.view.confirm = self.view.confirm, None
        if key not in ("y", "Y"):
            self.view.status = f"process {pid} not killed"
            return
        try:
            killed = api.kill(pid)
            self.view.status = f"killed process {pid}" if killed else f"process {pid} had already ended"
        except (ValueError, PermissionError, redis.RedisError) as e:
            self.view.status = f"kill: {e}"

    def toggle_mine(self) -> None:
        try:
            self.view.mine = None if self.view.mine else api.user()
        except redis.RedisError as e:
            self.view.status = f"u: {e}"

    def move(self, step: int) -> None:
        shown = rows(self.data, self.view)
        pids = [p.info["pid"] for p in shown]
        if pids:
            here = pids.index(selected(shown, self.view))
            self.view.selected = pids[max(0, min(len(pids) - 1, here + step))]


def attributes() -> dict[str, int]:
    """The look of each style of line on this terminal."""
    selected = curses.A_REVERSE | curses.A_BOLD
    if curses.has_colors():
        curses.use_default_colors()
        curses.init_pair(1, curses.COLOR_BLACK, curses.COLOR_CYAN)
        selected = curses.color_pair(1) | curses.A_BOLD
    return {"title": curses.A_BOLD, "heading": curses.A_REVERSE, "selected": selected, "note": curses.A_DIM,
            "status": curses.A_BOLD, "keys": curses.A_REVERSE, "row": curses.A_NORMAL}


def draw(win, lines: list[tuple[str, str]], looks: dict[str, int]) -> None:
    width = win.getmaxyx()[1]
    win.erase()
    for y, (text, style) in enumerate(lines):
        if style in ("heading", "selected", "keys"):
            text = text.ljust(width - 1)                 # a full-width band
        try:
            win.addstr(y, 0, text, looks[style])
        except curses.error:                             # shrunk under us: the next frame fits
            pass
    win.refresh()


def follow_size(win) -> tuple[int, int]:
    """The screen's height and width, curses resized first if the terminal's
    changed: the shell's readline holds SIGWINCH, so curses is not told."""
    try:
        size = os.get_terminal_size(sys.__stdout__.fileno())
    except (OSError, ValueError, AttributeError):      # no terminal to ask: keep what curses knows
        return win.getmaxyx()
    if (size.lines, size.columns) != win.getmaxyx():
        curses.resizeterm(size.lines, size.columns)
    return win.getmaxyx()


def loop(win, top: Top) -> None:
    try:
        curses.curs_set(0)
    except curses.error:                                 # a terminal that cannot hide it
        pass
    curses.set_escdelay(25)
    looks = attributes()
    looker = Looker()
    looker.start()
    try:
        while True:
            while not looker.looks.empty():
                top.apply(*looker.looks.get())
            height, width = follow_size(win)
            draw(win, screen(top.data, top.view, width, height), looks)
            win.timeout(KEY_WAIT_MS)
            try:
                key = win.get_wch()
            except curses.error:                         # no key: look for new data
                continue
            if not top.press(key):
                return
    finally:
        looker.stopping.set()


def top() -> None:
    curses.wrapper(loop, Top())


def snapshot(path: Path, shape: str, seconds: float) -> None:
    """Look for `seconds` (rates need a few looks), then save one frame of
    `shape` ("100x30" characters) to `path` (.png, .svg or .txt)."""
    save, (width, height) = saver(path), size(shape)
    view = Top()
    deadline = time.monotonic() + seconds
    while True:
        view.apply(fetch(), time.monotonic())
        if time.monotonic() >= deadline:
            break
        time.sleep(REFRESH_SECONDS)
    if view.data.error:
        raise redis.ConnectionError(view.data.error)
    save(screen(view.data, view.view, width, height), width, path)
