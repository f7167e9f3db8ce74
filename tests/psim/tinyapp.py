"""A one-device-type v3 application with handler bodies to fill in, for
tests that need a misbehaving handler."""

TEMPLATE = """<?xml version="1.0"?>
<Graphs xmlns="https://poets-project.org/schemas/virtual-graph-schema-v3">
  <GraphType id="tiny_{tag}">
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


def ring_app(tag: str, n: int = 4, init: str = "", receive: str = "") -> str:
    """n devices in a ring; each sends 3 messages to the next."""
    devices = "".join(f'<DevI id="d{i}" type="node"/>' for i in range(n))
    edges = "".join(f'<EdgeI path="d{(i + 1) % n}:in-d{i}:out"/>' for i in range(n))
    return TEMPLATE.format(tag=tag, init=init, receive=receive, devices=devices, edges=edges)
