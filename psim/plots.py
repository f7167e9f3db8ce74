"""psim's picture options (docs/pictures.md):

    --plot FILE                      the run's messages delivered (and sent) per second
    --snapshot-png FILE --field F    the devices at their coordinates, coloured by F after the run
    --snapshot-png FILE --partition N | --rmap MAP    coloured by region (nothing runs)

Sampling is psim/series.py's, drawing psim/pictures.py's."""
from __future__ import annotations

import argparse

import numpy as np

from . import pictures
from .errors import BadInput
from .series import EngineSampler
from .snapshot import Placed
from .topology import Wiring


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--plot", metavar="FILE", help="after the run, plot its messages per second to FILE "
                                                  "(.png or .svg); -r: the result carries the series")
    p.add_argument("--snapshot-png", metavar="FILE",
                   help="draw the devices at their coordinates to FILE (.png or .svg): with --field, "
                        "coloured by a field after the run; with --partition N or --rmap, by region, not run")
    p.add_argument("--field", metavar="NAME", help="with --snapshot-png: the state (or property) field to colour by")
    p.add_argument("--partition", type=int, metavar="N",
                   help="with --snapshot-png: colour by METIS's split into N regions (as --threads N splits)")
    p.add_argument("--xy", metavar="X,Y", type=xy_names,
                   help="the two properties that place a device (default x,y or coords[2])")


def misused(args: argparse.Namespace) -> str | None:
    """Why the picture options given do not go together (None: they do)."""
    if (args.plot or args.snapshot_png) and (args.inspect or args.check or args.replay or args.events):
        return "--plot and --snapshot-png draw a run: not with --inspect, --check, --replay or --events"
    if args.field and not args.snapshot_png:
        return "--field names what --snapshot-png FILE colours by: give the file too"
    if args.partition is not None and not (args.snapshot_png and not args.field):
        return "--partition N draws a split without running: give --snapshot-png FILE and no --field"
    return None


def region_picture(args: argparse.Namespace) -> bool:
    """Is this run a picture of regions only (--snapshot-png without --field)?"""
    return bool(args.snapshot_png) and not args.field


def xy_names(text: str) -> tuple[str, str]:
    """--xy X,Y (psim's and pcli picture's): two property names."""
    names = tuple(n.strip() for n in text.split(","))
    if len(names) != 2 or not all(names):
        raise argparse.ArgumentTypeError(f"{text!r}: give two property names, X,Y")
    return names


def draw_regions(args: argparse.Namespace) -> str:
    """--snapshot-png with --partition N or --rmap: the split drawn; what was written."""
    from .run import load_instance, region_array       # psim's loader: only when drawing
    if args.partition is None and not args.rmap:
        raise BadInput("--snapshot-png draws a field (--field NAME) or regions (--partition N or --rmap MAP)")
    if args.partition is not None and args.rmap:
        raise BadInput("--partition N or --rmap MAP, not both")
    pictures.check_file(args.snapshot_png)
    xy = args.xy
    if args.partition is not None:
        from .partition import partition
        if args.partition < 1:
            raise BadInput(f"--partition {args.partition}: a number of regions from 1")
        regions = np.asarray(partition(args.app, args.partition))
        inst = load_instance(args.app)
    else:
        from .cli import json_object
        inst = load_instance(args.app)
        regions = np.asarray(region_array(inst, json_object(args.rmap, "--rmap")))
    from .inspect import topology
    placed = Placed(inst, xy, lambda: topology(inst))
    points = placed.regions(regions)
    count = int(regions.max(initial=0)) + 1
    pictures.devices(args.snapshot_png, points, f"{inst.id}: {count} region(s)", "region", count, placed.links())
    return f"Picture {len(points.x)} devices in {count} region(s) drawn to {args.snapshot_png}"


class Wanted:
    """The pictures a run was asked for: checked before it starts, sampled
    while it runs (on_batch), drawn after it."""

    def __init__(self, args: argparse.Namespace):
        self.plot, self.snapshot, self.field = args.plot, args.snapshot_png, args.field
        for path in (self.plot, self.snapshot):
            if path:
                pictures.check_file(path)
        self.xy = args.xy
        self.sampler: EngineSampler | None = None

    def start(self, loaded) -> EngineSampler | None:
        """Before the run: the snapshot's field and coordinates checked
        (BadInput now, not after a long run), and the run's on_batch
        observer (None: no plot), whose clock starts now."""
        if self.snapshot:
            # the edges are indexed once the run has made its engine
            self.placed = Placed(loaded.instance, self.xy, lambda: Wiring(loaded.instance))
            self.placed.check_field(self.field)
        self.sampler = EngineSampler() if self.plot else None
        return self.sampler

    def draw(self, loaded, res: dict, with_series: bool) -> list[str]:
        """Draw what was asked from the ended run; a line for each."""
        out = []
        name = loaded.instance.id
        if self.sampler is not None:
            m = res["metrics"]
            self.sampler.end(m["Delivered messages"], m["Sends"], m["Run time (s)"])
            points = np.asarray(self.sampler.series.points, dtype=float)
            pictures.rates(self.plot, {"delivered": points[:, [0, 1]], "sent": points[:, [0, 2]]},
                           f"{name}: {m['Delivered messages']} messages in {m['Run time (s)']} s")
            if with_series:
                res["rate"] = self.sampler.result()
            out.append(f"Plot   {len(points)} points drawn to {self.plot}")
        if self.snapshot:
            points = self.placed.field(self.field)
            pictures.devices(self.snapshot, points, f"{name}: {self.field}", self.field, links=self.placed.links())
            out.append(f"Picture {len(points.x)} devices drawn to {self.snapshot}")
        return out
