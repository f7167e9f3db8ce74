"""Generators of applications that look like real ones, for benchmarks.

bench/graphs.py's apps have trivial handlers and no values; real
graph-schema applications carry properties and state initialisers on every
device, properties on every edge, do floating-point work in their handlers
and log at levels 2-4 in every handler.  These do, on a w x h torus (4
neighbours each, both directions), round by round: each device sends its
value once per round, and when it has its own and all its neighbours'
values of the round it updates and starts the next round (a neighbour can
be at most one round ahead, so two slots of partial sums suffice).

    heat   diffusion: t += alpha * sum(w * (t_n - t)), edge property w
    ising  Metropolis spins: an xorshift random number per update, edge
           property J, flips accepted by exp(-beta * dE)

    python bench/realapps.py heat 200 200 [rounds] > heat.xml
"""
from __future__ import annotations

import math
import sys
from typing import TextIO

GRAPH_TYPE = """<?xml version="1.0"?>
<Graphs xmlns="https://poets-project.org/schemas/virtual-graph-schema-v3">
  <GraphType id="{app}">
    <Properties>
      <Scalar name="rounds" type="uint32_t" default="10"/>
      <Scalar name="beta" type="float" default="0.4"/>
    </Properties>
    <SharedCode><![CDATA[
      static inline uint32_t xorshift(uint32_t x) {{ x ^= x << 13; x ^= x >> 17; x ^= x << 5; return x; }}
    ]]></SharedCode>
    <MessageTypes>
      <MessageType id="value"><Message>
        <Scalar name="v" type="float"/><Scalar name="round" type="uint32_t"/>
      </Message></MessageType>
    </MessageTypes>
    <DeviceTypes>
      <DeviceType id="cell">
        <Properties>
          <Scalar name="x" type="uint32_t"/><Scalar name="y" type="uint32_t"/>
          <Scalar name="alpha" type="float" default="0.1"/>
          <Scalar name="neighbours" type="uint32_t" default="4"/>
          <Scalar name="seed" type="uint32_t" default="1"/>
        </Properties>
        <State>
          <Scalar name="v" type="float"/>
          <Scalar name="round" type="uint32_t"/>
          <Scalar name="sent" type="uint32_t"/>
          <Scalar name="rng" type="uint32_t"/>
          <Scalar name="flips" type="uint32_t"/>
          <Array name="got" type="uint32_t" length="2"/>
          <Array name="acc" type="float" length="2"/>
          <Array name="weight" type="float" length="2"/>
        </State>
        <SharedCode><![CDATA[
          static void update(const {app}_cell_properties_t* p, {app}_cell_state_t* s, const {app}_properties_t* g) {{
            int k = s->round & 1;
{update}
            s->got[k] = 0; s->acc[k] = 0; s->weight[k] = 0;
            s->round++;
            handler_log(3, "cell %u,%u round %u v=%f", p->x, p->y, s->round, s->v);
            if (s->round == g->rounds) handler_log(2, "cell %u,%u done: v=%f", p->x, p->y, s->v);
          }}
          // The round is complete when this device has sent its value and has
          // every neighbour's.
          static void advance(const {app}_cell_properties_t* p, {app}_cell_state_t* s, const {app}_properties_t* g) {{
            while (s->round < g->rounds && s->sent > s->round && s->got[s->round & 1] == p->neighbours)
              update(p, s, g);
          }}
        ]]></SharedCode>
        <ReadyToSend><![CDATA[
          *readyToSend = deviceState->sent == deviceState->round && deviceState->round < graphProperties->rounds
                         ? RTS_FLAG_out : 0;
        ]]></ReadyToSend>
        <OnInit><![CDATA[
          deviceState->rng = deviceProperties->seed;
          handler_log(3, "cell %u,%u starts at v=%f", deviceProperties->x, deviceProperties->y, deviceState->v);
        ]]></OnInit>
        <InputPin name="in" messageTypeId="value">
          <Properties><Scalar name="w" type="float" default="1"/></Properties>
          <OnReceive><![CDATA[
            int k = message->round & 1;
            deviceState->got[k]++;
            deviceState->acc[k] += edgeProperties->w * message->v;
            deviceState->weight[k] += edgeProperties->w;
            handler_log(4, "cell %u,%u got v=%f of round %u", deviceProperties->x, deviceProperties->y,
                        message->v, message->round);
            advance(deviceProperties, deviceState, graphProperties);
          ]]></OnReceive>
        </InputPin>
        <OutputPin name="out" messageTypeId="value">
          <OnSend><![CDATA[
            message->v = deviceState->v;
            message->round = deviceState->round;
            deviceState->sent = deviceState->round + 1;
            handler_log(4, "cell %u,%u sends v=%f", deviceProperties->x, deviceProperties->y, deviceState->v);
            advance(deviceProperties, deviceState, graphProperties);
          ]]></OnSend>
        </OutputPin>
      </DeviceType>
    </DeviceTypes>
  </GraphType>
"""

UPDATES = {
    "heat": """
            s->v += p->alpha * (s->acc[k] - s->weight[k] * s->v);""",
    "ising": """
            float dE = 2.0f * s->v * s->acc[k];
            s->rng = xorshift(s->rng);
            if (dE <= 0 || (s->rng >> 8) * (1.0f / 16777216.0f) < expf(-g->beta * dE)) {
              s->v = -s->v;
              s->flips++;
              handler_log(4, "cell %u,%u flips to %f (dE=%f)", p->x, p->y, s->v, dE);
            }""",
}


def start_value(app: str, x: int, y: int, w: int, h: int) -> float:
    if app == "ising":
        return 1.0 if (x * 7 + y * 13) % 3 else -1.0
    return round(100.0 * math.exp(-((x - w / 2) ** 2 + (y - h / 2) ** 2) / (w * h / 16)), 3)


def write(out: TextIO, app: str, w: int, h: int, rounds: int) -> int:
    """Write the app; returns devices + edges."""
    out.write(GRAPH_TYPE.format(app=app, update=UPDATES[app]))
    out.write(f'  <GraphInstance id="{app}_{w}x{h}" graphTypeId="{app}">\n'
              f'    <Properties>"rounds": {rounds}</Properties>\n    <DeviceInstances>\n')
    for y in range(h):
        out.write("".join(f'      <DevI id="c{x}_{y}" type="cell"><P>"x": {x}, "y": {y}, "alpha": 0.1{(x + y) % 9}, '
                          f'"seed": {1 + x * h + y}</P><S>"v": {start_value(app, x, y, w, h)}</S></DevI>\n'
                          for x in range(w)))
    out.write("    </DeviceInstances>\n    <EdgeInstances>\n")
    for y in range(h):
        rows = []
        for x in range(w):
            for dx, dy in ((1, 0), (-1, 0), (0, 1), (0, -1)):
                nx, ny = (x + dx) % w, (y + dy) % h
                weight = 0.5 + ((nx * 31 + ny * 17 + x) % 10) / 20
                rows.append(f'      <EdgeI path="c{x}_{y}:in-c{nx}_{ny}:out"><P>"w": {weight}</P></EdgeI>\n')
        out.write("".join(rows))
    out.write("    </EdgeInstances>\n  </GraphInstance>\n</Graphs>\n")
    return w * h * 5


def main(argv: list[str]) -> int:
    if len(argv) not in (3, 4) or argv[0] not in UPDATES:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    app, w, h, *rest = argv
    write(sys.stdout, app, int(w), int(h), int(rest[0]) if rest else 10)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
