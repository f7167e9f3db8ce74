"""Pictures of runs (docs/pictures.md): the message rate over time, and the
devices at their coordinates coloured by a field or by region.  The one
user of matplotlib in pstack, imported only when a picture is drawn (Agg,
no display); PNG or SVG by the file's suffix."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import BadInput
from .snapshot import Points

SUFFIXES = (".png", ".svg")
HEAT_COLOURS = "inferno"           # a field's values: low dark, high bright
REGION_COLOURS = "tab10"           # regions, one colour each (tab20 past 10)
SIZE = (8.0, 6.0)                  # inches, at DPI: 800 x 600 pixels
DPI = 100
SPARSE = 4                         # a grid may have up to this many cells per device, else points are drawn


def check_file(path: str | Path) -> None:
    """BadInput unless the file's suffix says PNG or SVG, in a folder there is."""
    if Path(path).suffix.lower() not in SUFFIXES:
        raise BadInput(f"{path}: a picture's file name ends in .png or .svg")
    if not Path(path).absolute().parent.is_dir():
        raise BadInput(f"{path}: no such folder")


def _figure(rows: int = 1, heights: tuple[int, ...] = (1,)):
    from matplotlib.figure import Figure      # here: psim's start-up does not pay for matplotlib
    fig = Figure(figsize=SIZE, dpi=DPI, layout="constrained")
    axes = fig.subplots(rows, 1, gridspec_kw={"height_ratios": heights}, squeeze=False)[:, 0]
    return fig, axes


def _save(fig, path: str | Path) -> None:
    check_file(path)
    try:
        fig.savefig(path)
    except OSError as e:
        raise BadInput(f"{path}: cannot write the picture ({e.strerror or e})") from None


# ---- rates --------------------------------------------------------------------------

def steps(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(edges, rates) of a cumulative count: the count per second between
    each point and the next (points at the same time taken as one)."""
    t, c = points[:, 0], points[:, 1]
    later = np.append(np.diff(t) > 0, True)          # of points at one time, the last
    t, c = t[later], c[later]
    return t, np.diff(c) / np.diff(t)


def total(curves: list[np.ndarray]) -> np.ndarray:
    """The sum of several cumulative counts, at every time any was sampled
    (each holds its value between its points, and its last after its end)."""
    times = np.unique(np.concatenate([c[:, 0] for c in curves]))
    return np.column_stack([times, sum(np.interp(times, c[:, 0], c[:, 1]) for c in curves)])


def rates(path: str | Path, curves: dict[str, np.ndarray], title: str, regions: bool = False) -> None:
    """A plot of counts per second.  curves: label -> (n, 2) points of
    (seconds, cumulative count).  regions: the curves are a process's
    regions: their total is drawn too, and a panel of what each delivered."""
    from matplotlib.ticker import EngFormatter
    fig, axes = _figure(2, (3, 1)) if regions and len(curves) > 1 else _figure()
    start = min(c[0, 0] for c in curves.values() if len(c))
    lines = dict(curves)
    if regions and len(curves) > 1:
        lines["total"] = total(list(curves.values()))
    ax = axes[0]
    for label, points in lines.items():
        if len(points) < 2:
            continue
        edges, per_second = steps(points)
        ax.stairs(per_second, edges - start, label=label, linewidth=2.5 if label == "total" else 1.5,
                  baseline=None)
    ax.set(title=title, xlabel="seconds since the start", ylabel="messages per second")
    ax.set_ylim(bottom=0)
    ax.yaxis.set_major_formatter(EngFormatter())
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:            # a region with only its start point draws no line
        ax.legend(loc="best")
    if len(axes) > 1:
        names = list(curves)
        axes[1].bar(names, [c[-1, 1] if len(c) else 0 for c in curves.values()], color="tab:blue")
        axes[1].set(ylabel="delivered", title="load per region")
        axes[1].yaxis.set_major_formatter(EngFormatter())
    _save(fig, path)


# ---- devices ------------------------------------------------------------------------

def _even(values: np.ndarray) -> bool:
    return len(values) < 3 or bool(np.allclose(np.diff(values), values[1] - values[0]))


def grid(points: Points) -> tuple[np.ndarray, tuple[float, float, float, float]] | None:
    """The points as an image (NaN where no device is) and its extent, when
    they sit on a regular grid, one device a cell; else None."""
    xs, xi = np.unique(points.x, return_inverse=True)
    ys, yi = np.unique(points.y, return_inverse=True)
    if not (_even(xs) and _even(ys)) or len(xs) * len(ys) > SPARSE * len(points.x):
        return None
    if len(np.unique(yi.astype(np.int64) * len(xs) + xi)) != len(points.x):
        return None                                   # two devices in one cell
    image = np.full((len(ys), len(xs)), np.nan)
    image[yi, xi] = points.value
    dx = xs[1] - xs[0] if len(xs) > 1 else 1.0
    dy = ys[1] - ys[0] if len(ys) > 1 else 1.0
    return image, (xs[0] - dx / 2, xs[-1] + dx / 2, ys[0] - dy / 2, ys[-1] + dy / 2)


def devices(path: str | Path, points: Points, title: str, label: str, categories: int = 0,
            links: np.ndarray | None = None) -> None:
    """The devices at their coordinates (y up) coloured by their value: a
    colour scale, or `categories` colours (regions 0..categories-1).  A
    regular grid is drawn as an image, other points as dots.  links: the
    devices were laid out from their edges, these line segments: drawn
    under the dots, without axes (the coordinates mean nothing)."""
    import matplotlib
    from matplotlib.collections import LineCollection
    if not len(points.x):
        raise BadInput("no devices to draw")
    fig, (ax,) = _figure()
    if categories:
        cmap = matplotlib.colormaps[REGION_COLOURS if categories <= 10 else "tab20"].resampled(categories)
        scale = {"cmap": cmap, "vmin": -0.5, "vmax": categories - 0.5}
    else:
        cmap = matplotlib.colormaps[HEAT_COLOURS].with_extremes(bad="lightgrey")
        scale = {"cmap": cmap}
    as_image = grid(points) if links is None else None
    if links is not None:
        ax.add_collection(LineCollection(links, colors="0.75", linewidths=0.8, zorder=0))
        ax.set_axis_off()
    if as_image is not None:
        image, extent = as_image
        drawn = ax.imshow(image, origin="lower", extent=extent, interpolation="nearest", **scale)
    else:
        size = float(np.clip(20_000 / len(points.x), 0.5, 60 if links is None else 200))
        drawn = ax.scatter(points.x, points.y, c=points.value, s=size, marker="s" if links is None else "o",
                           linewidths=0, rasterized=len(points.x) > 10_000, **scale)
        ax.set_aspect("equal", adjustable="datalim")
    bar = fig.colorbar(drawn, ax=ax, label=label, shrink=0.9)
    if categories:
        bar.set_ticks(range(categories))
    ax.set(title=title, xlabel="x", ylabel="y")
    _save(fig, path)
