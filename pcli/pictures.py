"""Pictures of a cluster's processes (docs/pictures.md), drawn by
psim/pictures.py: `plot PID FILE` (messages delivered per second, per
region and in total, from api.series) and `picture PID FILE --field F |
--regions` (the devices of an ended process at their coordinates, coloured
by a field of their final state or by the region that ran them).  The
packed results are read as NumPy arrays, not decoded device by device."""
from __future__ import annotations

import tempfile
import zlib
from pathlib import Path

import numpy as np

from broker import keys
from broker.control import Control
from pd import form as forms
from pd import results as records
from psim import build, pictures
from psim.errors import BadInput
from psim.inspect import topology
from psim.reader import Instance, Source, read_graph_type
from psim.run import load_instance
from psim.snapshot import Placed, Points, types_in

from . import api


def plot(pid: int, path: str | Path) -> str:
    """Draw the process's rate plot to `path`; a line saying what was drawn."""
    pictures.check_file(path)
    info = api.info(pid)
    series = api.series(pid)
    if not series:
        raise ValueError(f"process {pid} has recorded no deliveries over time yet (its regions record them "
                         "once they have loaded; a Python engine's region records none)")
    curves = {f"region {r}": np.asarray(points, dtype=float).reshape(-1, 2) for r, points in sorted(series.items())}
    delivered = sum(int(points[-1][1]) for points in series.values())
    pictures.rates(path, curves, f"process {pid} ({info['app'] or info['graph_type']}): {delivered} delivered",
                   regions=True)
    return (f"plot of process {pid}: {delivered} messages delivered in {len(series)} region(s), "
            f"{sum(len(p) for p in series.values())} points, in {path}")


def picture(pid: int, path: str | Path, field: str | None = None, regions: bool = False,
            xy: tuple[str, str] | None = None) -> str:
    """Draw an ended process's devices to `path`, coloured by `field` or by
    their region; a line saying what was drawn."""
    if bool(field) == regions:
        raise ValueError("picture draws a field (--field NAME) or the regions (--regions)")
    pictures.check_file(path)
    ctl, info = api.control(), api.info(pid)
    if info["state"] not in keys.ENDED:
        raise ValueError(f"process {pid} is still {info['state']}: its picture is drawn from its result, once it ends")
    with api.owners_only(info, "result"):
        by_region = {r: records.unpack(data, r) for r, data in ctl.results(int(pid)).items()}
        by_region = {r: res for r, res in by_region.items() if not res.get("debugger")}
        if not by_region:
            raise ValueError(f"process {pid} ended with no result to draw ({info['reason'] or info['state']})")
        inst = _instance(ctl, int(pid), info["app"])
        placed = Placed(inst, xy, lambda: topology(inst))
    name = f"process {pid} ({info['app'] or placed.inst.id})"
    if regions:
        points = _regions(placed, by_region)
        count = info["regions"]
        pictures.devices(path, points, f"{name}: {count} region(s)", "region", count, placed.links())
    else:
        placed.check_field(field)
        points = placed.field(field, _states(placed, by_region))
        pictures.devices(path, points, f"{name}: {field}", field, placed.links())
    return f"picture of process {pid}: {len(points.x)} devices in {path}"


def _instance(ctl: Control, pid: int, name: str | None) -> Instance:
    """The process's instance: from the binary instance form a split process
    travelled with (pd/form.py: seconds quicker for a million devices),
    else from its XML.  Messages name the file it was submitted from."""
    try:
        form = ctl.instance(pid)
    except zlib.error:
        form = None
    if form is not None:
        src = Source(ctl.app_head(pid).decode())
        src.name = name or src.name
        graph, ns = read_graph_type(src)
        loader = build.loader_module()
        with tempfile.TemporaryDirectory() as folder:
            try:
                entry = Path(folder) / forms.place(form, Path(folder))
                return forms.instance(entry, src, graph, ns, loader.lib, loader.ffi)
            except BadInput:                  # not a faithful form: the XML says what the process ran
                pass
    src = Source(ctl.app(pid).decode())
    src.name = name or src.name
    return load_instance(src)


def _devices_of(placed: Placed, region: int, res: dict) -> list[tuple[int, np.ndarray, bytes]]:
    """A region's devices: (type, device indices, their packed states) per
    type; a JSON record's (a Python engine's region) packed here."""
    dev_types = types_in(placed.inst)
    states = res.get("states", {})
    if isinstance(states, list):
        return [_checked(placed, region, s, dev_types) for s in states]
    index = {dev: i for i, dev in enumerate(placed.inst.ids)}
    out = []
    for t, dt in enumerate(placed.types):
        mine = [(index[d], s) for d, s in states.items() if d in index and dev_types[index[d]] == t]
        if mine:
            out.append((t, np.array([i for i, _ in mine], "<u4"), b"".join(dt.state.pack(s) for _, s in mine)))
    return out


def _checked(placed: Placed, region: int, entry: dict, dev_types: np.ndarray) -> tuple[int, np.ndarray, bytes]:
    """A packed record's states of one type, (type, devices, states), once
    they are known to fit the application (a sandbox's record is not trusted)."""
    t = next((t for t, dt in enumerate(placed.types) if dt.id == entry["type"]), None)
    devices = np.frombuffer(entry["devices"], "<u4")
    if t is None or len(entry["state"]) != len(devices) * placed.types[t].state.size \
            or np.any(devices >= len(dev_types)) or np.any(dev_types[devices] != t):
        raise ValueError(f"region {region}'s result is malformed: its states of type {entry['type']!r} do not fit "
                         "the application")
    return t, devices, entry["state"]


def _states(placed: Placed, by_region: dict[int, dict]) -> dict[int, tuple[np.ndarray, bytes]]:
    """type -> (device indices, packed states) over every region, in device order."""
    parts: dict[int, list] = {}
    for r, res in by_region.items():
        for t, devices, state in _devices_of(placed, r, res):
            parts.setdefault(t, []).append((devices, state))
    out = {}
    for t, found in parts.items():
        devices = np.concatenate([d for d, _ in found])
        size = placed.types[t].state.size
        rows = np.frombuffer(b"".join(s for _, s in found), np.uint8).reshape(len(devices), size)
        order = np.argsort(devices, kind="stable")
        out[t] = (devices[order], rows[order].tobytes())
    return out


def _regions(placed: Placed, by_region: dict[int, dict]) -> Points:
    """Each device's region, as the results say (devices no result holds left out)."""
    region_of = np.full(placed.inst.n_devices, -1, np.int64)
    for r, res in by_region.items():
        for _, devices, _ in _devices_of(placed, r, res):
            region_of[devices] = r
    points = placed.regions(region_of)
    keep = points.value >= 0
    return Points(points.x[keep], points.y[keep], points.value[keep], points.at[keep])
