"""The graph model every reader produces: one GraphType, whatever the version."""
from __future__ import annotations

from dataclasses import dataclass, field

from .typed import Layout, Type


@dataclass
class Code:
    """A C++ fragment and the file line of its first character."""
    text: str
    line: int


@dataclass
class MessageType:
    id: str
    index: int
    layout: Layout


@dataclass
class InputPin:
    name: str
    index: int
    message: MessageType
    on_receive: Code | None
    props: Layout | None = None        # per-edge properties
    state: Layout | None = None        # per-edge state
    kind: int = -1                     # edge data slot table, when props or state exist
    supervisor: bool = False           # the implicit __SUP_IN__ pin: no edges, fed by the supervisor


@dataclass
class OutputPin:
    name: str
    index: int
    message: MessageType
    on_send: Code | None
    indexed: bool = False
    supervisor: bool = False           # the implicit __SUP_OUT__ pin: sends go to the supervisor


@dataclass
class DeviceType:
    id: str
    index: int
    props: Layout
    state: Layout
    inputs: list[InputPin] = field(default_factory=list)
    outputs: list[OutputPin] = field(default_factory=list)
    shared_code: list[Code] = field(default_factory=list)
    ready_to_send: Code | None = None
    on_init: Code | None = None
    on_hardware_idle: Code | None = None
    on_device_idle: Code | None = None
    external: bool = False

    def input(self, name: str) -> InputPin | None:
        return next((p for p in self.inputs if p.name == name), None)

    def output(self, name: str) -> OutputPin | None:
        return next((p for p in self.outputs if p.name == name), None)

    @property
    def sup_in(self) -> InputPin | None:
        return next((p for p in self.inputs if p.supervisor), None)

    @property
    def sup_out(self) -> OutputPin | None:
        return next((p for p in self.outputs if p.supervisor), None)

    @property
    def init_pin(self) -> InputPin | None:
        """The v2 `__init__` pin, delivered once at start."""
        pin = self.input("__init__")
        return pin if pin is not None and pin.message.id == "__init__" else None


@dataclass
class SupervisorType:
    """The v4 supervisor: one implicit instance per graph.  Properties and
    State are C++ member declarations used verbatim (not typed data)."""
    id: str                               # may be ""
    line: int
    props: Code | None
    state: Code
    code: Code
    pin_id: str                           # of its one SupervisorInPin, may be ""
    message: MessageType
    on_receive: Code
    on_init: Code | None = None
    on_idle: Code | None = None           # OnSupervisorIdle: a per-round tick
    on_stop: Code | None = None           # stored, never run (as the reference)

    @property
    def c_name(self) -> str:
        """The id as the reference's generator uses it in C++ names."""
        return self.id or "__SUP__"


@dataclass
class GraphType:
    id: str
    version: int                          # 2, 3 or 4
    file: str
    line: int                             # of the <GraphType> start tag
    props: Layout
    typedefs: list[tuple[str, Type]] = field(default_factory=list)
    shared_code: list[Code] = field(default_factory=list)
    messages: dict[str, MessageType] = field(default_factory=dict)
    devices: dict[str, DeviceType] = field(default_factory=dict)
    supervisor: SupervisorType | None = None

    @property
    def edge_pins(self) -> list[InputPin]:
        """Input pins with edge properties or state, in kind order."""
        pins = [p for d in self.devices.values() for p in d.inputs if p.kind >= 0]
        return sorted(pins, key=lambda p: p.kind)

    @property
    def max_outputs(self) -> int:
        return max([len(d.outputs) for d in self.devices.values()] + [1])
