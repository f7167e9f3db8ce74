"""What an application is made of, read without compiling or running it:
its types, device and edge counts, degrees, and how a region map splits it.

Counts come from the loader's packed arrays (psim/topology.py) with NumPy,
so a million-device instance costs its read and little more:

    graph("app.xml")                      # a JSON-able dict; rmap=: its split too
    split_by(inst, topology(inst), rmap)  # devices and edges per region, cut edges
    render(graph(...)), render_split(...) # the same as rich tables

The loader indexes an instance's edges once: summary() and split() take
the Topology that topology() made of it.
"""
from __future__ import annotations

import time
from array import array
from pathlib import Path

import numpy as np
from rich.console import Group
from rich.table import Table
from rich.text import Text

from .model import DeviceType, GraphType, SupervisorType
from .reader import Instance, Source
from .run import load_instance, region_array, supervisor_region
from .topology import Topology
from .typed import Layout


def graph(xml: str | Path | Source, rmap: dict | None = None) -> dict:
    """The summary of an application (a file name or XML text): graph
    type, schema version, types with their pins and fields, device counts
    per type, edge counts per pin, in- and out-degree histograms, supervisor,
    externals, idle handlers, and the seconds it took.  With `rmap`
    ({device: region}, "__supervisor__" too), its split into regions
    under "split".  Raises BadInput for a bad file or region map."""
    t0 = time.perf_counter()
    inst = load_instance(xml)
    top = topology(inst)
    out = summary(inst, top)
    if rmap is not None:
        out["split"] = split_by(inst, top, rmap)
    out["seconds"] = round(time.perf_counter() - t0, 3)
    return out


def summary(inst: Instance, top: Topology) -> dict:
    """graph() of an instance already read."""
    g = inst.graph
    per_type = np.bincount(top.types, minlength=len(g.devices))
    out_edges, in_edges = output_counts(top, len(g.devices)), input_counts(top, g)
    dst = top.edges["dst"]
    return {
        "file": inst.source.name,
        "graph_type": g.id,
        "instance": inst.id,
        "schema_version": g.version,
        "devices": inst.n_devices,
        "edges": inst.n_edges,
        "device_types": {d.id: device_type(d, int(per_type[d.index]), out_edges[d.index], in_edges[d.index])
                         for d in g.devices.values()},
        "message_types": {m.id: fields(m.layout) for m in g.messages.values()},
        "supervisor": supervisor(g.supervisor),
        "externals": externals(inst),
        "degrees": {"in": degrees(np.bincount(dst, minlength=inst.n_devices)),
                    "out": degrees(np.diff(top.out_off[::top.max_out]))},
        "hardware_idle": any(d.on_hardware_idle is not None for d in g.devices.values()),
        "device_idle": any(d.on_device_idle is not None for d in g.devices.values()),
    }


def topology(inst: Instance) -> Topology:
    """The instance's edges indexed (once: the loader then frees what it
    indexed them from), every device in one region."""
    return Topology(inst, array("H", bytes(2 * inst.n_devices)), 0)


def output_counts(top: Topology, n_types: int) -> np.ndarray:
    """Edges leaving each (device type, output pin): [type][pin]."""
    per_key = np.diff(top.out_off)                       # one entry per (device, output pin)
    key_type = np.repeat(top.types.astype(np.int64), top.max_out)
    flat = key_type * top.max_out + np.arange(per_key.size) % top.max_out
    counts = np.bincount(flat, weights=per_key, minlength=n_types * top.max_out)
    return counts.astype(np.int64).reshape(n_types, top.max_out)


def input_counts(top: Topology, g: GraphType) -> np.ndarray:
    """Edges arriving at each (device type, input pin): [type][pin]."""
    max_in = max([len(d.inputs) for d in g.devices.values()] + [1])
    dst_type = top.types[top.edges["dst"]].astype(np.int64)
    flat = dst_type * max_in + top.edges["dst_pin"]
    return np.bincount(flat, minlength=len(g.devices) * max_in).reshape(len(g.devices), max_in)


def device_type(d: DeviceType, count: int, out_edges: np.ndarray, in_edges: np.ndarray) -> dict:
    return {
        "devices": count,
        "external": d.external,
        "properties": fields(d.props),
        "state": fields(d.state),
        "inputs": {p.name: {"message": p.message.id, "edges": int(in_edges[p.index]),
                            "edge_properties": fields(p.props) if p.props else [],
                            "edge_state": fields(p.state) if p.state else [],
                            "supervisor": p.supervisor} for p in d.inputs},
        "outputs": {p.name: {"message": p.message.id, "edges": int(out_edges[p.index]),
                             "indexed": p.indexed, "supervisor": p.supervisor} for p in d.outputs},
        "handlers": {"init": d.on_init is not None, "hardware_idle": d.on_hardware_idle is not None,
                     "device_idle": d.on_device_idle is not None},
    }


def fields(layout: Layout) -> list[str]:
    """A block's members as C declarations: ["uint32_t v", "float x[4]"]."""
    return [" ".join(t.c_decl(name).split()) for name, t in layout.spec.members]


def supervisor(s: SupervisorType | None) -> dict | None:
    if s is None:
        return None
    return {"id": s.id, "pin": s.pin_id, "message": s.message.id,
            "handlers": {"init": s.on_init is not None, "supervisor_idle": s.on_idle is not None}}


def externals(inst: Instance) -> dict | None:
    """External devices: those an application engine serves, and __halt__."""
    if not any(d.external for d in inst.graph.devices.values()):
        return None
    return {"served": len(inst.externals), "halt": inst.halt is not None}


def degrees(per_device: np.ndarray) -> dict:
    """min, max, mean and a histogram in power-of-two buckets ("0", "1",
    "2-3", "4-7", ...), every bucket up to the largest."""
    if per_device.size == 0:
        return {"min": 0, "max": 0, "mean": 0.0, "histogram": {}}
    bucket = np.frexp(per_device.astype(np.float64))[1]     # bit length: 0 -> 0, 1 -> 1, 2..3 -> 2, ...
    counts = np.bincount(bucket)
    return {"min": int(per_device.min()), "max": int(per_device.max()),
            "mean": round(float(per_device.mean()), 3),
            "histogram": {bucket_name(b): int(c) for b, c in enumerate(counts)}}


def bucket_name(b: int) -> str:
    return str(b) if b < 2 else f"{1 << (b - 1)}-{(1 << b) - 1}"


# ---- the split of an instance into regions ---------------------------------------------

def split_by(inst: Instance, top: Topology, rmap: dict, partition: bytes | None = None, nregions: int = 0) -> dict:
    """split() as a process's regions run it: by its region map (unmapped
    devices in region 0, "__supervisor__" placing the supervisor), or by
    its partition (a region per device) when it has one."""
    rmap = dict(rmap)
    sup_region = supervisor_region(inst, rmap)
    regions = region_array(inst, rmap) if partition is None else array("H", partition)
    return split(inst, top, regions, sup_region, nregions)


def split(inst: Instance, top: Topology, regions: array, sup_region: int = 0, nregions: int = 0) -> dict:
    """How `regions` (one entry per device) splits the instance: devices
    per region (per type too), edges inside each region, edges cut between
    each ordered pair (from the sender's region to the receiver's)."""
    reg = np.frombuffer(regions, "<u2").astype(np.int64)
    n = max(nregions, int(reg.max(initial=0)) + 1, sup_region + 1)
    types = list(inst.graph.devices)
    per_type = np.bincount(reg * len(types) + top.types, minlength=n * len(types)).reshape(n, len(types))
    src = np.repeat(reg, np.diff(top.out_off[::top.max_out]))      # the sender's region, per edge
    dst = reg[top.edges["dst"]]
    cut = src != dst
    inside = np.bincount(src[~cut], minlength=n)
    cut_out, cut_in = np.bincount(src[cut], minlength=n), np.bincount(dst[cut], minlength=n)
    # the pairs that cut edges join: few, whatever n is (a dense n x n matrix need not fit)
    pairs, counts = np.unique(src[cut] * n + dst[cut], return_counts=True)
    return {
        "regions": [{"region": r, "devices": int(per_type[r].sum()),
                     "device_types": {t: int(c) for t, c in zip(types, per_type[r]) if c},
                     "edges_inside": int(inside[r]), "cut_out": int(cut_out[r]), "cut_in": int(cut_in[r]),
                     "supervisor": inst.graph.supervisor is not None and r == sup_region} for r in range(n)],
        "cut_edges": [{"from": int(p // n), "to": int(p % n), "edges": int(c)} for p, c in zip(pairs, counts)],
        "edges_cut": int(cut.sum()),
    }


# ---- as tables ----------------------------------------------------------------------------

def table(columns: tuple[str, ...], rows: list[tuple[str, ...]], title: str | None = None,
          wrap: tuple[str, ...] = ()) -> Table:
    """The look of every pcli and psim table; columns in `wrap` fold long
    text, the others never do."""
    t = Table(box=None, header_style="bold", pad_edge=False, title=title, title_justify="left",
              title_style="bold")
    for c in columns:
        t.add_column(c, no_wrap=c not in wrap)
    for row in rows:
        t.add_row(*row)
    return t


def render(s: dict) -> Group:
    """graph() as a heading and tables."""
    types = s["device_types"]
    head = (f"{s['file']}: graph type '{s['graph_type']}' (schema v{s['schema_version']}), instance "
            f"'{s['instance']}'\n{s['devices']:,} devices, {s['edges']:,} edges; "
            f"hardware idle: {yes(s['hardware_idle'])}, device idle: {yes(s['device_idle'])}"
            + (f"\nread and counted in {s['seconds']} s" if "seconds" in s else ""))
    parts = [Text(head),
             table(("DEVICE TYPE", "DEVICES", "EXTERNAL", "HANDLERS"), [device_row(t, d) for t, d in types.items()],
                   "device types"),
             table(("DEVICE TYPE", "PIN", "DIR", "MESSAGE", "EDGES", "INDEXED", "EDGE DATA"), pin_rows(types), "pins",
                   wrap=("EDGE DATA",)),
             table(("DEVICE TYPE", "BLOCK", "FIELDS"), [(t, block, joined(d[block])) for t, d in types.items()
                                                       for block in ("properties", "state") if d[block]],
                   "device fields", wrap=("FIELDS",)),
             table(("MESSAGE TYPE", "FIELDS"), [(m, joined(f)) for m, f in s["message_types"].items()],
                   "message types", wrap=("FIELDS",))]
    if s["supervisor"]:
        sup = s["supervisor"]
        name = f"'{sup['id']}'" if sup["id"] else "(no id)"
        parts.append(Text(f"supervisor {name}: input pin '{sup['pin']}' (message {sup['message']}), handlers: "
                          + (", ".join(k for k, v in sup["handlers"].items() if v) or "-")))
    if s["externals"]:
        ext = s["externals"]
        parts.append(Text(f"externals: {ext['served']} served by an application engine, __halt__: {yes(ext['halt'])}"))
    parts.append(degree_table(s["degrees"]))
    if "split" in s:
        parts.append(render_split(s["split"]))
    return Group(*spaced(parts))


def spaced(parts: list) -> list:
    """A blank line between parts."""
    return [x for p in parts for x in (p, Text(""))][:-1]


def device_row(name: str, d: dict) -> tuple[str, ...]:
    handlers = ", ".join(k for k, v in d["handlers"].items() if v) or "-"
    return (name, f"{d['devices']:,}", yes(d["external"]), handlers)


def pin_rows(types: dict) -> list[tuple[str, ...]]:
    rows = []
    for name, d in types.items():
        for pin, p in d["inputs"].items():
            data = "; ".join(f"{k[5:]}: {joined(p[k])}" for k in ("edge_properties", "edge_state") if p[k])
            rows.append((name, pin, "in", p["message"], edge_count(p), "-", data or "-"))
        for pin, p in d["outputs"].items():
            rows.append((name, pin, "out", p["message"], edge_count(p), yes(p["indexed"]), "-"))
    return rows


def edge_count(pin: dict) -> str:
    return "supervisor" if pin["supervisor"] else f"{pin['edges']:,}"


def degree_table(d: dict) -> Table:
    buckets = list(dict.fromkeys([*d["in"]["histogram"], *d["out"]["histogram"]]))
    rows = [(k, *(f"{d[x]['histogram'].get(k, 0):,}" for x in ("in", "out"))) for k in buckets]
    rows += [(k, str(d["in"][k]), str(d["out"][k])) for k in ("min", "max", "mean")]
    return table(("DEGREE", "IN (devices)", "OUT (devices)"), rows, "degrees")


def render_split(s: dict) -> Group:
    """split() as tables; an ENGINE column when its regions name their
    engine (pcli.info(pid, regions=True); "-": not placed yet), a
    SUPERVISOR one when the application has a supervisor, devices per
    type when it has several."""
    engine = ("ENGINE",) if any("engine" in r for r in s["regions"]) else ()
    sup = ("SUPERVISOR",) if any(r["supervisor"] for r in s["regions"]) else ()
    rows = [(str(r["region"]), *((r.get("engine") or "-",) if engine else ()), f"{r['devices']:,}",
             f"{r['edges_inside']:,}", f"{r['cut_out']:,}", f"{r['cut_in']:,}",
             *((yes(r["supervisor"]),) if sup else ())) for r in s["regions"]]
    parts = [table(("REGION", *engine, "DEVICES", "INSIDE", "CUT OUT", "CUT IN", *sup), rows,
                   f"regions ({s['edges_cut']:,} edges cut)")]
    if len({t for r in s["regions"] for t in r["device_types"]}) > 1:
        parts.append(table(("REGION", "DEVICE TYPE", "DEVICES"), [(str(r["region"]), t, f"{n:,}") for r in s["regions"]
                                                                 for t, n in r["device_types"].items()],
                           "devices per type"))
    if s["cut_edges"]:
        parts.append(table(("FROM", "TO", "EDGES"), [(str(c["from"]), str(c["to"]), f"{c['edges']:,}")
                                                     for c in s["cut_edges"]], "cut edges"))
    return Group(*spaced(parts))


def yes(flag: bool) -> str:
    return "yes" if flag else "no"


def joined(decls: list[str]) -> str:
    return ", ".join(decls) or "-"
