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
"""
from __future__ import annotations

import random
import sys
from typing import Iterator, TextIO

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


def main(argv: list[str]) -> None:
    kind, *args = argv
    nums = [int(a) for a in args]
    graph = {"ring": ring, "mesh": mesh, "random": random_graph, "pairs": pairs}[kind](*nums)
    write(sys.stdout, *graph)


if __name__ == "__main__":
    main(sys.argv[1:])
