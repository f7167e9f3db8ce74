"""Devices as NumPy arrays for pictures (docs/pictures.md): where each
device is (its coordinate properties) and a number for it (a state or
property field, or its region), read straight out of the packed per-type
arrays (psim/typed.py's layouts) as strided views: no per-device Python.

A field is named by its path in the type: `temp`, `s.a` (a struct's
member), `coords[1]` (an array's element).  Coordinates are the
properties named x and y (any case), else the first two elements of an
array property named coords, coord, pos, position, xy, loc or location,
else the two fields `xy` names."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np

from .build import loader_module
from .errors import BadInput
from .model import DeviceType
from .reader import Instance
from .typed import SCALARS, Array, Layout, Ref, Scalar, Tuple, Type

COORD_ARRAYS = ("coords", "coord", "pos", "position", "xy", "loc", "location")
SHOWN_ELEMENTS = 4          # elements of an array listed by name in messages


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


class Placed:
    """Where the devices of an instance are, type by type."""

    def __init__(self, inst: Instance, xy: tuple[str, str] | None = None):
        self.inst = inst
        self.types = list(inst.graph.devices.values())
        dev_types = types_in(inst)
        self.of_type = [np.flatnonzero(dev_types == t) for t in range(len(self.types))]   # slot order
        drawn = [dt for dt in self.types if not dt.external]
        # the types with coordinates, and the two property fields that hold them
        self.coords = {t: c for t, dt in enumerate(self.types)
                       if not dt.external and (c := coordinate_fields(dt, xy)) is not None}
        if not self.coords:
            raise BadInput(_no_coordinates(drawn, xy), inst.source.name)

    def place(self, t: int, slots: np.ndarray | slice = slice(None)) -> tuple[np.ndarray, np.ndarray]:
        """x and y of the devices of type t in `slots` (positions in the type's arrays)."""
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
            shown = sorted({f for dt in placed for f in field_names(dt.state) + field_names(dt.props)})
            raise BadInput(f"no field '{name}' in the state or properties of the devices with coordinates; their "
                           f"numeric fields: {', '.join(shown) or 'none'}", self.inst.source.name)

    def regions(self, region_of: np.ndarray) -> Points:
        """Each placed device's region (`region_of`: one per device)."""
        return _joined([(*self.place(t), region_of[self.of_type[t]], self.of_type[t]) for t in self.coords])


def _no_coordinates(types: list[DeviceType], xy: tuple[str, str] | None) -> str:
    shown = ", ".join(sorted({n for dt in types for n in field_names(dt.props)})) or "none"
    if xy is not None:
        return f"no device type has the coordinate properties {xy[0]},{xy[1]} (numeric properties: {shown})"
    return ("no device type has coordinates (properties x and y, or coords[2]); the numeric properties: "
            f"{shown} (name two with --xy X,Y)")


def _joined(parts: list[tuple]) -> Points:
    x, y, v, at = (np.concatenate([np.asarray(p[i], dtype=float if i < 3 else np.int64) for p in parts])
                   for i in range(4))
    return Points(x, y, v, at)
