"""Generators of large graph-schema (v3) applications for benchmarks.

Every generated app uses the same trivial graph type: each device sends
`rounds` messages on its one output pin (broadcast to its neighbours) and
counts what it receives, so deliveries = rounds x edges.  Only the topology
differs:
    ring    n devices, each to the next
    mesh    w x h 2D grid, 4-neighbour (both directions)
    random  n devices, each with `degree` random out-edges
    pairs   2n devices, device i sending to device n + i

    python bench/graphs.py mesh 1000 1000 > mesh.xml

`heat` writes a heat-diffusion-like w x h mesh whose every device has P and
S values and every edge a P value (for loading benchmarks: its handlers do
nothing), in v3 (<P>/<S> children, JSON) or v4 (P/S attributes, C
initialisers):
    python bench/graphs.py heat 200 200 3 > heat_v3.xml
"""
from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path
from typing import Callable, Iterator, TextIO

GRAPH_TYPE = """<?xml version="1.0"?>
<Graphs xmlns="https://poets-project.org/schemas/virtual-graph-schema-v3">
  <GraphType id="bench">
    <Properties>
      <Scalar name="rounds" type="uint32_t" default="10"/>
    </Properties>
    <MessageTypes>
      <MessageType id="tick"><Message><Scalar name="v" type="uint32_t"/></Message></MessageType>
    </MessageTypes>
    <DeviceTypes>
      <DeviceType id="cell">
        <State>
          <Scalar name="sent" type="uint32_t"/>
          <Scalar name="received" type="uint32_t"/>
          <Scalar name="sum" type="uint32_t"/>
        </State>
        <ReadyToSend><![CDATA[
          *readyToSend = deviceState->sent < graphProperties->rounds ? RTS_FLAG_out : 0;
        ]]></ReadyToSend>
        <InputPin name="in" messageTypeId="tick">
          <OnReceive><![CDATA[
            deviceState->received++;
            deviceState->sum += message->v;
          ]]></OnReceive>
        </InputPin>
        <OutputPin name="out" messageTypeId="tick">
          <OnSend><![CDATA[
            message->v = deviceState->sent++;
          ]]></OnSend>
        </OutputPin>
      </DeviceType>
    </DeviceTypes>
  </GraphType>
"""


def ring(n: int) -> tuple[int, Iterator[tuple[int, int]]]:
    return n, ((i, (i + 1) % n) for i in range(n))


def mesh(w: int, h: int) -> tuple[int, Iterator[tuple[int, int]]]:
    def edges():
        for y in range(h):
            for x in range(w):
                i = y * w + x
                if x + 1 < w:
                    yield i, i + 1
                    yield i + 1, i
                if y + 1 < h:
                    yield i, i + w
                    yield i + w, i
    return w * h, edges()


def random_graph(n: int, degree: int, seed: int = 1) -> tuple[int, Iterator[tuple[int, int]]]:
    rng = random.Random(seed)

    def edges():
        for i in range(n):
            for j in rng.sample(range(n - 1), degree):
                yield i, j + (j >= i)          # no self edges
    return n, edges()


def pairs(n: int) -> tuple[int, Iterator[tuple[int, int]]]:
    return 2 * n, ((i, n + i) for i in range(n))


OUT = Path(__file__).resolve().parent / "out"      # generated apps, kept between runs (git-ignored)


def generated(name: str, write: Callable[[TextIO], object]) -> Path:
    """bench/out/NAME.xml, written by write(file) the first time; written
    aside and renamed, so an interrupted run leaves no half file."""
    path = OUT / f"{name}.xml"
    if not path.exists():
        OUT.mkdir(exist_ok=True)
        tmp = path.with_suffix(".tmp")
        with open(tmp, "w") as f:
            write(f)
        tmp.rename(path)
    return path


def write(out: TextIO, n: int, edges: Iterator[tuple[int, int]], rounds: int = 10) -> int:
    """Write the app; returns the number of edges."""
    out.write(GRAPH_TYPE)
    out.write(f'  <GraphInstance id="g" graphTypeId="bench">\n'
              f'    <Properties>"rounds": {rounds}</Properties>\n    <DeviceInstances>\n')
    step = 1 << 16
    for lo in range(0, n, step):
        out.write("".join(f'      <DevI id="n{i}" type="cell"/>\n' for i in range(lo, min(n, lo + step))))
    out.write("    </DeviceInstances>\n    <EdgeInstances>\n")
    count = 0
    batch = []
    for src, dst in edges:
        batch.append(f'      <EdgeI path="n{dst}:in-n{src}:out"/>\n')
        if len(batch) >= step:
            out.write("".join(batch))
            count += len(batch)
            batch = []
    out.write("".join(batch))
    count += len(batch)
    out.write("    </EdgeInstances>\n  </GraphInstance>\n</Graphs>\n")
    return count


HEAT_NS = "https://poets-project.org/schemas/virtual-graph-schema-v"
HEAT = """<?xml version="1.0"?>
<Graphs xmlns="{ns}{version}">
  <GraphType id="heat">
    <MessageTypes>
      <MessageType id="temp"><Message>{message}</Message></MessageType>
    </MessageTypes>
    <DeviceTypes>
      <DeviceType id="cell">
        <Properties>{props}</Properties>
        <State>{state}</State>
        <ReadyToSend><![CDATA[ *readyToSend = 0; ]]></ReadyToSend>
        <InputPin name="in" messageTypeId="temp">
          <Properties>{edge}</Properties>
          <OnReceive><![CDATA[ ]]></OnReceive>
        </InputPin>
        <OutputPin name="out" messageTypeId="temp"><OnSend><![CDATA[ ]]></OnSend></OutputPin>
      </DeviceType>
    </DeviceTypes>
  </GraphType>
  <GraphInstance id="g" graphTypeId="heat">
    <DeviceInstances>
"""
HEAT_TYPES = {   # message, device properties, state, edge properties
    3: dict(message='<Scalar name="t" type="float"/>',
            props='<Scalar name="x" type="uint16_t"/><Scalar name="y" type="uint16_t"/>'
                  '<Scalar name="fixed" type="bool"/><Scalar name="init" type="float"/>'
                  '<Array name="k" type="int8_t" length="2"/>',
            state='<Scalar name="t" type="float"/><Scalar name="seen" type="uint32_t"/>',
            edge='<Scalar name="w" type="float"/>'),
    4: dict(message="<![CDATA[ float t; ]]>",
            props="<![CDATA[ uint16_t x; uint16_t y; bool fixed; float init; int8_t k[2]; ]]>",
            state="<![CDATA[ float t; uint32_t seen; ]]>", edge="<![CDATA[ float w; ]]>"),
}


def write_heat(out: TextIO, w: int, h: int, version: int = 3) -> int:
    """The heat mesh with values; returns the number of edges."""
    out.write(HEAT.format(ns=HEAT_NS, version=version, **HEAT_TYPES[4 if version >= 4 else 3]))
    for y in range(h):
        row = []
        for x in range(w):
            fixed, init = x in (0, w - 1), (x * 7 + y * 3) % 100 + 0.5
            if version >= 4:
                row.append(f'      <DevI id="c{y * w + x}" type="cell" P="{{{x}, {y}, {int(fixed)}, {init}f, {{1, -1}}}}" '
                           f'S="{{{init}, 0}}"/>\n')
            else:
                row.append(f'      <DevI id="c{y * w + x}" type="cell"><P>"x": {x}, "y": {y}, "fixed": '
                           f'{"true" if fixed else "false"}, "init": {init}, "k": [1, -1]</P>'
                           f'<S>"t": {init}</S></DevI>\n')
        out.write("".join(row))
    out.write("    </DeviceInstances>\n    <EdgeInstances>\n")
    count, batch = 0, []
    for src, dst in mesh(w, h)[1]:
        weight = 0.25 if (src + dst) % 2 else 0.125
        batch.append(f'      <EdgeI path="c{dst}:in-c{src}:out" P="{{{weight}f}}"/>\n' if version >= 4 else
                     f'      <EdgeI path="c{dst}:in-c{src}:out"><P>"w": {weight}</P></EdgeI>\n')
        if len(batch) >= 1 << 16:
            out.write("".join(batch))
            count, batch = count + len(batch), []
    out.write("".join(batch))
    out.write("    </EdgeInstances>\n  </GraphInstance>\n</Graphs>\n")
    return count + len(batch)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python bench/graphs.py",
                                description="Write a generated graph-schema application to stdout (benchmarks).",
                                epilog="e.g. python bench/graphs.py mesh 1000 1000 > mesh.xml")
    kinds = p.add_subparsers(dest="kind", required=True, metavar="KIND")
    for kind, args, text in (("ring", ["n"], "n devices, each to the next"),
                             ("mesh", ["w", "h"], "w x h 2D grid, 4-neighbour (both directions)"),
                             ("random", ["n", "degree"], "n devices, each with `degree` random out-edges"),
                             ("pairs", ["n"], "2n devices, device i sending to device n + i"),
                             ("heat", ["w", "h"], "w x h heat mesh with P and S values, in schema v3 or v4")):
        sub = kinds.add_parser(kind, help=text)
        for name in args:
            sub.add_argument(name, type=int)
    kinds.choices["heat"].add_argument("version", type=int, nargs="?", choices=(3, 4), default=3)
    return p


def main(argv: list[str]) -> None:
    args = vars(parser().parse_args(argv))
    kind = args.pop("kind")
    if kind == "heat":
        write_heat(sys.stdout, **args)
        return
    graph = {"ring": ring, "mesh": mesh, "random": random_graph, "pairs": pairs}[kind](*args.values())
    write(sys.stdout, *graph)


if __name__ == "__main__":
    main(sys.argv[1:])
