"""Devices as NumPy arrays for pictures (docs/pictures.md): where each
device is (its coordinate properties) and a number for it (a state or
property field, or its region), read straight out of the packed per-type
arrays (psim/typed.py's layouts) as strided views: no per-device Python.

A field is named by its path in the type: `temp`, `s.a` (a struct's
member), `coords[1]` (an array's element).  Coordinates are the
properties named x and y (any case), else the first two elements of an
array property named coords, coord, pos, position, xy, loc or location,
or the two fields `xy` names.  A small application without them (up to
LAYOUT_MAX devices) is laid out from its edges instead (a spectral
layout: the graph Laplacian's first non-trivial eigenvectors)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np

from .build import loader_module
from .errors import BadInput
from .model import DeviceType
from .reader import Instance
from .topology import Wiring
from .typed import SCALARS, Array, Layout, Ref, Scalar, Tuple, Type

COORD_ARRAYS = ("coords", "coord", "pos", "position", "xy", "loc", "location")
SHOWN_ELEMENTS = 4          # elements of an array listed by name in messages
LAYOUT_MAX = 1000           # devices laid out from their edges when they have no coordinates (dense: n^2)
LAID_OUT = ("(layout)", "(layout)")      # Placed.coords of a type placed by the layout


@dataclass
class Points:
    """One number per device at its place; `at` is which devices (indices)."""
    x: np.ndarray
    y: np.ndarray
    value: np.ndarray
    at: np.ndarray


def leaves(t: Type, path: str = "", off: int = 0) -> Iterator[tuple[str, int, Scalar]]:
    """Every numeric scalar inside `t`: (path, offset, scalar)."""
    while isinstance(t, Ref):
        t = t.target
    if isinstance(t, Scalar):
        yield path, off, t
    elif isinstance(t, Tuple):
        for name, (o, member) in t.offsets.items():
            yield from leaves(member, f"{path}.{name}" if path else name, off + o)
    elif isinstance(t, Array):
        for i in range(t.length):
            yield from leaves(t.elem, f"{path}[{i}]", off + i * t.elem.size)
    # unions: which member a device holds differs device by device; not drawn


def field_view(layout: Layout, data, count: int, path: str) -> np.ndarray | None:
    """Field `path` of `count` packed values of `layout` in `data`, as a
    strided view (None: no such numeric field)."""
    found = next(((off, s) for p, off, s in leaves(layout.spec) if p == path), None)
    if found is None:
        return None
    off, scalar = found
    if not count:
        return np.zeros(0, np.dtype("<" + SCALARS[scalar.kind]))
    return np.ndarray((count,), np.dtype("<" + SCALARS[scalar.kind]), data, off, (layout.size,))


def field_names(layout: Layout) -> list[str]:
    """The numeric fields of a layout, for messages (long arrays shortened)."""
    out: list[str] = []
    for path, _, _ in leaves(layout.spec):
        head, bracket, index = path.rpartition("[")
        at = int(index[:-1]) if bracket else 0
        if at == SHOWN_ELEMENTS:
            out.append(f"{head}[...]")
        elif at < SHOWN_ELEMENTS:
            out.append(path)
    return out


def coordinate_fields(dt: DeviceType, xy: tuple[str, str] | None = None) -> tuple[str, str] | None:
    """The two property fields that place devices of type `dt`, or None."""
    names = [p for p, _, _ in leaves(dt.props.spec)]
    if xy is not None:
        return xy if all(n in names for n in xy) else None
    by_lower = {n.lower(): n for n in names}
    if "x" in by_lower and "y" in by_lower:
        return by_lower["x"], by_lower["y"]
    for base in COORD_ARRAYS:
        for name in names:
            if name.lower() == f"{base}[0]" and f"{name[:-3]}[1]" in names:
                return name, f"{name[:-3]}[1]"
    return None


def types_in(inst: Instance) -> np.ndarray:
    """The device type index of every device."""
    ll = loader_module()
    n = inst.n_devices
    return np.frombuffer(ll.ffi.buffer(ll.lib.pl_dev_types(inst.loader), 2 * n), np.uint16) if n else \
        np.zeros(0, np.uint16)


def edge_ends(wiring: Wiring) -> tuple[np.ndarray, np.ndarray]:
    """The source and destination device of every edge."""
    src = np.repeat(np.arange(len(wiring.out_off) - 1) // wiring.max_out, np.diff(wiring.out_off))
    return src, wiring.edges["dst"].astype(np.int64)


def spectral_layout(src: np.ndarray, dst: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """x and y of n devices from their edges (undirected): each connected
    part laid out by its graph Laplacian's eigenvectors 2 and 3 (a ring
    comes out a circle, a grid a grid), the parts side by side."""
    adjacent = np.zeros((n, n))
    adjacent[src, dst] = 1
    adjacent = np.maximum(adjacent, adjacent.T)
    np.fill_diagonal(adjacent, 0)
    laplacian = np.diag(adjacent.sum(axis=1)) - adjacent
    values, vectors = np.linalg.eigh(laplacian)
    # the null space is spanned by the parts' indicators: its rows tell the parts apart
    null = vectors[:, :max(int((values < 1e-8).sum()), 1)]
    part = np.unique(np.round(null, 6), axis=0, return_inverse=True)[1].ravel()
    per_row = int(np.ceil(np.sqrt(part.max() + 1)))
    x, y = np.zeros(n), np.zeros(n)
    for p in range(part.max() + 1):
        members = np.flatnonzero(part == p)
        px, py = _part_layout(laplacian[np.ix_(members, members)])
        x[members], y[members] = px + 1.5 * (p % per_row), py - 1.5 * (p // per_row)
    return x, y


def _part_layout(laplacian: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A connected part's x and y, each scaled to 0..1."""
    m = len(laplacian)
    if m < 3:
        return np.linspace(0, 1, m), np.full(m, 0.5)
    vectors = np.linalg.eigh(laplacian)[1]
    return _unit(vectors[:, 1]), _unit(vectors[:, 2])


def _unit(values: np.ndarray) -> np.ndarray:
    span = np.ptp(values)
    return (values - values.min()) / span if span > 1e-12 else np.full(len(values), 0.5)


class Placed:
    """Where the devices of an instance are, type by type.  `wiring` gives
    the instance's indexed edges, for a layout when there are no
    coordinates (called only when drawing: after a run, or once indexed)."""

    def __init__(self, inst: Instance, xy: tuple[str, str] | None = None,
                 wiring: Callable[[], Wiring] | None = None):
        self.inst, self.wiring = inst, wiring
        self.types = list(inst.graph.devices.values())
        dev_types = types_in(inst)
        self.of_type = [np.flatnonzero(dev_types == t) for t in range(len(self.types))]   # slot order
        drawn = [dt for dt in self.types if not dt.external]
        # the types with coordinates, and the two property fields that hold them
        self.coords = {t: c for t, dt in enumerate(self.types)
                       if not dt.external and (c := coordinate_fields(dt, xy)) is not None}
        self.laid_out: tuple[np.ndarray, np.ndarray] | None = None      # x and y of every device
        self.ends: tuple[np.ndarray, np.ndarray] | None = None          # of every edge, with a layout
        if not self.coords and xy is None and wiring is not None and inst.n_devices <= LAYOUT_MAX:
            self.coords = {t: LAID_OUT for t, dt in enumerate(self.types) if not dt.external}
        if not self.coords:
            raise BadInput(_no_coordinates(drawn, xy), inst.source.name)

    def _laid_out(self) -> tuple[np.ndarray, np.ndarray]:
        if self.laid_out is None:
            self.ends = edge_ends(self.wiring())
            self.laid_out = spectral_layout(*self.ends, self.inst.n_devices)
        return self.laid_out

    def links(self) -> np.ndarray | None:
        """With a layout, the edges as line segments [(x, y), (x, y)] (the
        picture shows what the layout came from); else None."""
        if LAID_OUT not in self.coords.values():
            return None
        x, y = self._laid_out()
        src, dst = self.ends
        return np.stack([np.column_stack([x[src], y[src]]), np.column_stack([x[dst], y[dst]])], axis=1)

    def place(self, t: int, slots: np.ndarray | slice = slice(None)) -> tuple[np.ndarray, np.ndarray]:
        """x and y of the devices of type t in `slots` (positions in the type's arrays)."""
        if self.coords[t] == LAID_OUT:
            return tuple(c[self.of_type[t][slots]] for c in self._laid_out())
        dt, count = self.types[t], len(self.of_type[t])
        xs, ys = (field_view(dt.props, self.inst.props[t], count, name)[slots] for name in self.coords[t])
        return xs, ys

    def field(self, name: str, states: dict[int, tuple[np.ndarray, bytes]] | None = None) -> Points:
        """Field `name` of each placed device: from its state (`states`:
        type -> (device indices, their packed states), else the instance's
        own), else from its properties."""
        parts = []
        for t in self.coords:
            dt = self.types[t]
            if states is None:
                devices, data = self.of_type[t], self.inst.state[t]
            elif t in states:
                devices, data = states[t]
            else:
                continue
            slots = np.searchsorted(self.of_type[t], devices)
            values = field_view(dt.state, data, len(devices), name)
            if values is None:
                prop = field_view(dt.props, self.inst.props[t], len(self.of_type[t]), name)
                values = prop[slots] if prop is not None else None
            if values is not None:
                parts.append((*self.place(t, slots), values, devices))
        if not parts:
            self.check_field(name)
            raise BadInput(f"no device with coordinates and a field '{name}' took part", self.inst.source.name)
        return _joined(parts)

    def check_field(self, name: str) -> None:
        """BadInput naming the fields there are, unless a device type with
        coordinates has a numeric field `name` (state or property)."""
        placed = [self.types[t] for t in self.coords]
        fields = {f for dt in placed for f, _, _ in [*leaves(dt.state.spec), *leaves(dt.props.spec)]}
        if name not in fields:
            shown = dict.fromkeys(f for dt in placed for f in field_names(dt.state) + field_names(dt.props))
            raise BadInput(f"no field '{name}' in the state or properties of the devices drawn; their numeric "
                           f"fields: {', '.join(shown) or 'none'}", self.inst.source.name)

    def regions(self, region_of: np.ndarray) -> Points:
        """Each placed device's region (`region_of`: one per device)."""
        return _joined([(*self.place(t), region_of[self.of_type[t]], self.of_type[t]) for t in self.coords])


def _no_coordinates(types: list[DeviceType], xy: tuple[str, str] | None) -> str:
    shown = ", ".join(dict.fromkeys(n for dt in types for n in field_names(dt.props))) or "none"
    if xy is not None:
        return f"no device type has the coordinate properties {xy[0]},{xy[1]} (numeric properties: {shown})"
    return (f"no device type has coordinates (properties x and y, or coords[2]), and over {LAYOUT_MAX} devices are "
            f"too many to lay out from their edges; the numeric properties: {shown} (name two with --xy X,Y)")


def _joined(parts: list[tuple]) -> Points:
    x, y, v, at = (np.concatenate([np.asarray(p[i], dtype=float if i < 3 else np.int64) for p in parts])
                   for i in range(4))
    return Points(x, y, v, at)
