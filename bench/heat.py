"""A benchmark application with real handlers: heat diffusion on a w x h
grid (4-neighbour), message-driven, no global barrier.  Each cell sends
its value for round t, and once it has every neighbour's value for round t
it relaxes (fixed point, so the answer does not depend on the order of
arrival) and sends round t + 1; a neighbour's round t + 1 value may come
first and is kept for the next round.  deliveries = rounds x edges.

    python bench/heat.py 1000 1000 20 > heat.xml        # w h rounds
"""
from __future__ import annotations

import sys
from typing import TextIO

GRAPH_TYPE = """<?xml version="1.0"?>
<Graphs xmlns="https://poets-project.org/schemas/virtual-graph-schema-v3">
  <GraphType id="heatgrid">
    <Properties><Scalar name="rounds" type="uint32_t" default="10"/></Properties>
    <SharedCode><![CDATA[
      // after its round-t send and every neighbour's round-t value: relax, go to round t + 1
      static inline void advance(const heatgrid_cell_properties_t* p, heatgrid_cell_state_t* s, uint32_t rounds) {
        if (s->pending || s->got < p->degree || s->t >= rounds) return;
        int32_t mean = (int32_t)(s->acc / (int64_t)p->degree);
        s->v = p->fixed ? s->v : (s->v + mean) / 2 + (int32_t)(s->t & 1);
        s->t++;
        s->acc = s->acc_next; s->got = s->got_next;
        s->acc_next = 0; s->got_next = 0;
        s->pending = s->t < rounds;
      }
    ]]></SharedCode>
    <MessageTypes>
      <MessageType id="heat"><Message>
        <Scalar name="v" type="int32_t"/><Scalar name="t" type="uint32_t"/>
      </Message></MessageType>
    </MessageTypes>
    <DeviceTypes>
      <DeviceType id="cell">
        <Properties>
          <Scalar name="degree" type="uint32_t"/><Scalar name="init" type="int32_t"/>
          <Scalar name="fixed" type="uint8_t"/>
        </Properties>
        <State>
          <Scalar name="t" type="uint32_t"/><Scalar name="v" type="int32_t"/>
          <Scalar name="acc" type="int64_t"/><Scalar name="got" type="uint32_t"/>
          <Scalar name="acc_next" type="int64_t"/><Scalar name="got_next" type="uint32_t"/>
          <Scalar name="pending" type="uint8_t"/>
        </State>
        <OnInit><![CDATA[
          deviceState->v = deviceProperties->init;
          deviceState->pending = graphProperties->rounds > 0;
        ]]></OnInit>
        <ReadyToSend><![CDATA[
          *readyToSend = deviceState->pending ? RTS_FLAG_out : 0;
        ]]></ReadyToSend>
        <InputPin name="in" messageTypeId="heat">
          <OnReceive><![CDATA[
            if (message->t == deviceState->t) { deviceState->acc += message->v; deviceState->got++; }
            else { deviceState->acc_next += message->v; deviceState->got_next++; }
            advance(deviceProperties, deviceState, graphProperties->rounds);
          ]]></OnReceive>
        </InputPin>
        <OutputPin name="out" messageTypeId="heat">
          <OnSend><![CDATA[
            message->v = deviceState->v;
            message->t = deviceState->t;
            deviceState->pending = 0;
            advance(deviceProperties, deviceState, graphProperties->rounds);
          ]]></OnSend>
        </OutputPin>
      </DeviceType>
    </DeviceTypes>
  </GraphType>
"""


def write(out: TextIO, w: int, h: int, rounds: int) -> int:
    """Write the app; returns the number of edges."""
    out.write(GRAPH_TYPE)
    out.write(f'  <GraphInstance id="g" graphTypeId="heatgrid">\n'
              f'    <Properties>"rounds": {rounds}</Properties>\n    <DeviceInstances>\n')
    for y in range(h):
        row = []
        for x in range(w):
            degree = (x > 0) + (x + 1 < w) + (y > 0) + (y + 1 < h)
            edge = x in (0, w - 1) or y in (0, h - 1)
            init = 1000 * ((x * 7 + y * 13) % 100)
            row.append(f'      <DevI id="c{y * w + x}" type="cell"><P>"degree": {degree}, "init": {init}, '
                       f'"fixed": {int(edge)}</P></DevI>\n')
        out.write("".join(row))
    out.write("    </DeviceInstances>\n    <EdgeInstances>\n")
    count = 0
    for y in range(h):
        batch = []
        for x in range(w):
            i = y * w + x
            for j, ok in ((i + 1, x + 1 < w), (i - 1, x > 0), (i + w, y + 1 < h), (i - w, y > 0)):
                if ok:
                    batch.append(f'      <EdgeI path="c{j}:in-c{i}:out"/>\n')
        out.write("".join(batch))
        count += len(batch)
    out.write("    </EdgeInstances>\n  </GraphInstance>\n</Graphs>\n")
    return count


if __name__ == "__main__":
    write(sys.stdout, *(int(a) for a in sys.argv[1:4]))
