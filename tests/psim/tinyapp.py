"""A one-device-type v3 application with handler bodies to fill in, for
tests that need a misbehaving, slow or endless handler."""

TEMPLATE = """<?xml version="1.0"?>
<Graphs xmlns="https://poets-project.org/schemas/virtual-graph-schema-v3">
  <GraphType id="tiny_{tag}">
    <SharedCode><![CDATA[ {shared} ]]></SharedCode>
    <MessageTypes><MessageType id="m"><Message><Scalar name="v" type="uint32_t"/></Message></MessageType></MessageTypes>
    <DeviceTypes>
      <DeviceType id="node">
        <State><Scalar name="n" type="uint32_t"/><Scalar name="got" type="uint32_t"/></State>
        <ReadyToSend><![CDATA[ *readyToSend = deviceState->n < 3 ? RTS_FLAG_out : 0; ]]></ReadyToSend>
        <OnInit><![CDATA[ {init} ]]></OnInit>
        <InputPin name="in" messageTypeId="m"><OnReceive><![CDATA[
          deviceState->got++;
          {receive}
        ]]></OnReceive></InputPin>
        <OutputPin name="out" messageTypeId="m"><OnSend><![CDATA[ message->v = deviceState->n++; ]]></OnSend></OutputPin>
      </DeviceType>
    </DeviceTypes>
  </GraphType>
  <GraphInstance id="g" graphTypeId="tiny_{tag}">
    <DeviceInstances>{devices}</DeviceInstances>
    <EdgeInstances>{edges}</EdgeInstances>
  </GraphInstance>
</Graphs>
"""


def ring_app(tag: str, n: int = 4, init: str = "", receive: str = "", shared: str = "", rings: int = 1) -> str:
    """`rings` separate rings of n devices (d<i>, or d<ring>_<i> with several
    rings); each device sends 3 messages to the next in its ring."""
    def name(r: int, i: int) -> str:
        return f"d{i}" if rings == 1 else f"d{r}_{i}"
    devices = "".join(f'<DevI id="{name(r, i)}" type="node"/>' for r in range(rings) for i in range(n))
    edges = "".join(f'<EdgeI path="{name(r, (i + 1) % n)}:in-{name(r, i)}:out"/>'
                    for r in range(rings) for i in range(n))
    return TEMPLATE.format(tag=tag, init=init, receive=receive, shared=shared, devices=devices, edges=edges)


def slow_app(tag: str, seconds: float) -> str:
    """A ring whose first OnInit sleeps `seconds`."""
    ms = int(seconds * 1000)
    return ring_app(tag, shared="#include <thread>\n#include <chrono>\n",
                    init=f"static bool once = false; if (!once) {{ once = true; "
                         f"std::this_thread::sleep_for(std::chrono::milliseconds({ms})); }}")


def endless_app(tag: str) -> str:
    """A ring whose OnInit never returns."""
    return ring_app(tag, init="for (;;) {}")


def forever_app(tag: str) -> str:
    """A ring that passes messages forever: every receipt re-arms the sender."""
    return ring_app(tag, receive="deviceState->n = 0;")
