"""One frame of top saved to a file: .txt (the text), .svg (rich's recorded
console) or .png (the text drawn with matplotlib in a monospace font)."""
from __future__ import annotations

import io
from pathlib import Path
from typing import Callable

from .topscreen import Line

BACKGROUND, FOREGROUND = "#1e1e2e", "#d9e0ee"
# style: foreground, background (None: the screen's), bold
LOOKS = {"title": ("#f5e0dc", None, True), "heading": ("#1e1e2e", "#a6adc8", True),
         "selected": ("#1e1e2e", "#89dceb", True), "note": ("#9399b2", None, False),
         "status": ("#f9e2af", None, True), "keys": ("#1e1e2e", "#a6adc8", False), "row": (FOREGROUND, None, False)}
FONT_POINTS, DPI = 11, 110
CHAR_WIDTH, LINE_HEIGHT = 0.602, 1.3  # of the font size: DejaVu Sans Mono's advance, and the line spacing
PAD = 0.15                             # inches round the text


def size(text: str) -> tuple[int, int]:
    """A snapshot's size in characters: WIDTHxHEIGHT, e.g. "100x30", as (100, 30)."""
    try:
        width, height = (int(n) for n in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"'{text}' is not WIDTHxHEIGHT, e.g. 100x30") from None
    if width < 20 or height < 5:
        raise ValueError(f"a snapshot of {text} is too small: 20x5 at least")
    return width, height


def saver(path: Path) -> Callable[[list[Line], int, Path], None]:
    """The function that saves a snapshot as `path` names (by its suffix)."""
    savers = {".png": save_png, ".svg": save_svg, ".txt": save_text}
    if path.suffix.lower() not in savers:
        raise ValueError(f"a snapshot is saved as {', '.join(savers)}; not as '{path.name}'")
    return savers[path.suffix.lower()]


def save_text(lines: list[Line], width: int, path: Path) -> None:
    path.write_text("".join(text + "\n" for text, _ in lines))


def save_svg(lines: list[Line], width: int, path: Path) -> None:
    from rich.console import Console
    from rich.style import Style
    from rich.text import Text
    console = Console(record=True, width=width, file=io.StringIO(), force_terminal=True, color_system="truecolor")
    for text, style in lines:
        fg, bg, bold = LOOKS[style]
        console.print(Text(text.ljust(width - 1) if bg else text, Style(color=fg, bgcolor=bg, bold=bold)),
                      no_wrap=True, overflow="crop")
    console.save_svg(str(path), title="pcli top")


def save_png(lines: list[Line], width: int, path: Path) -> None:
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle
    char, line = FONT_POINTS * CHAR_WIDTH / 72, FONT_POINTS * LINE_HEIGHT / 72        # inches
    w, h = width * char + 2 * PAD, len(lines) * line + 2 * PAD
    fig = Figure(figsize=(w, h), dpi=DPI, facecolor=BACKGROUND)
    for y, (text, style) in enumerate(lines):
        fg, bg, bold = LOOKS[style]
        top = 1 - (PAD + y * line) / h
        if bg:
            fig.add_artist(Rectangle((PAD / w, top - line / h), (width - 1) * char / w, line / h,
                                     transform=fig.transFigure, color=bg, linewidth=0))
        fig.text(PAD / w, top - line / h / 2, text, family="DejaVu Sans Mono", size=FONT_POINTS, color=fg,
                 weight="bold" if bold else "normal", va="center", ha="left")
    fig.savefig(path, dpi=DPI, facecolor=BACKGROUND)
