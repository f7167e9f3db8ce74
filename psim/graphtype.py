"""Reading a <GraphType> element (v2, v3 or v4) into the graph model."""
from __future__ import annotations

import re

from .errors import BadInput, Unsupported
from .model import Code, DeviceType, GraphType, InputPin, MessageType, OutputPin, SupervisorType
from .typed import Layout, Tuple
from .typespec import c_members, xml_member, xml_members

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_IGNORED_IF_EMPTY = ("OnThreadIdle", "OnCompute", "SupervisorCompute")


class GraphTypeReader:
    def __init__(self, el, ns: str, version: int, file: str):
        self.ns = ns
        self.version = version
        self.file = file
        self.typedefs: dict = {}
        self.sup_out_lines: list[tuple[str, int]] = []     # (device type, line) of each <SupervisorOutPin>
        self.gid = self._ident(el, "id")
        self.graph = GraphType(id=self.gid, version=version, file=file, line=el.sourceline,
                               props=Layout(f"{self.gid}_properties_t", None))

    def read(self, el) -> GraphType:
        g = self.graph
        types = el.find(self.ns + "Types")
        if types is not None:
            for td in types.findall(self.ns + "TypeDef"):
                self._typedef(td)
        g.props = self._layout(el.find(self.ns + "Properties"), f"{self.gid}_properties_t")
        g.shared_code = [self._code(c) for c in el.findall(self.ns + "SharedCode")]
        for m in self._section(el, "MessageTypes"):
            if self._local(m) == "MessageType":
                self._message(m)
        for d in self._section(el, "DeviceTypes"):
            kind = self._local(d)
            if kind in ("DeviceType", "ExternalType"):
                self._device(d, external=kind == "ExternalType")
            elif kind == "SupervisorType":
                self._supervisor(d)
        self._check_supervisor_links()
        return g

    # ---- pieces -------------------------------------------------------------

    def _section(self, el, name: str):
        sec = el.find(self.ns + name)
        return [] if sec is None else [c for c in sec if isinstance(c.tag, str)]

    def _typedef(self, td) -> None:
        name = self._ident(td, "id")
        members = xml_members(td, self.ns, self.typedefs)
        if len(members) != 1:
            raise BadInput(f"<TypeDef id='{name}'> must hold exactly one type", self.file, td.sourceline)
        t = members[0][1]
        self.typedefs[name] = t
        self.graph.typedefs.append((name, t))

    def _message(self, m) -> None:
        mid = self._ident(m, "id")
        if mid in self.graph.messages:
            raise BadInput(f"duplicate message type '{mid}'", self.file, m.sourceline)
        layout = self._layout(m.find(self.ns + "Message"), f"{self.gid}_{mid}_message_t")
        self.graph.messages[mid] = MessageType(mid, len(self.graph.messages), layout)

    def _supervisor(self, s) -> None:
        g = self.graph
        if self.version < 4:
            raise BadInput("<SupervisorType> in a v3 graph: only the v4 supervisor design is run (no tool runs "
                           "the v3 one)", self.file, s.sourceline)
        if g.supervisor is not None:
            raise BadInput("there is more than one <SupervisorType> (a graph type has at most one)",
                           self.file, s.sourceline)
        sid = s.get("id")
        if sid is None or (sid and not _IDENT.match(sid)):
            raise BadInput(f"<SupervisorType> id={sid!r} is not a valid identifier (nor empty)",
                           self.file, s.sourceline)
        what = f"<SupervisorType id='{sid}'>"
        pins = s.findall(self.ns + "SupervisorInPin")
        if len(pins) != 1:
            raise BadInput(f"{what} has {len(pins)} <SupervisorInPin>s: it needs exactly one", self.file, s.sourceline)
        rtcl = s.find(self.ns + "OnRTCL")
        if rtcl is not None and (rtcl.text or "").strip():
            raise Unsupported(f"{what}: <OnRTCL> handlers are not supported", self.file, rtcl.sourceline)
        pin = pins[0]
        pin_id = pin.get("id")
        if pin_id is None:
            raise BadInput(f"the <SupervisorInPin> of {what} has no id attribute (it may be empty)",
                           self.file, pin.sourceline)
        g.supervisor = SupervisorType(
            id=sid, line=s.sourceline, pin_id=pin_id,
            props=self._optional_code(s, "Properties"),
            state=self._required_code(s, "State", what), code=self._required_code(s, "Code", what),
            message=self._pin_message(pin, f"the <SupervisorInPin> of {what}"),
            on_receive=self._required_code(pin, "OnReceive", f"the <SupervisorInPin> of {what}"),
            on_init=self._optional_code(s, "OnInit"), on_idle=self._optional_code(s, "OnSupervisorIdle"),
            on_stop=self._optional_code(s, "OnStop"))

    def _check_supervisor_links(self) -> None:
        """Device-to-supervisor pins need a supervisor; externals cannot share a graph with one."""
        g = self.graph
        if g.supervisor is None and self.sup_out_lines:
            dev, line = self.sup_out_lines[0]
            raise BadInput(f"device type '{dev}' has a <SupervisorOutPin>, but the graph type has no "
                           "<SupervisorType>", self.file, line)
        ext = next((d for d in g.devices.values() if d.external), None)
        if g.supervisor is not None and ext is not None:
            raise BadInput(f"the graph type has both a <SupervisorType> and an <ExternalType> ('{ext.id}'): "
                           "a graph may have one or the other", self.file, g.supervisor.line)

    def _optional_code(self, el, tag: str) -> Code | None:
        c = el.find(self.ns + tag)
        return None if c is None else self._code(c)

    def _required_code(self, el, tag: str, what: str) -> Code:
        c = el.find(self.ns + tag)
        if c is None:
            raise BadInput(f"{what} has no <{tag}> (it may be empty)", self.file, el.sourceline)
        return self._code(c)

    def _device(self, d, external: bool) -> None:
        g = self.graph
        did = self._ident(d, "id")
        if did in g.devices:
            raise BadInput(f"duplicate device type '{did}'", self.file, d.sourceline)
        dev = DeviceType(
            id=did, index=len(g.devices), external=external,
            props=self._layout(d.find(self.ns + "Properties"), f"{self.gid}_{did}_properties_t"),
            state=self._layout(d.find(self.ns + "State"), f"{self.gid}_{did}_state_t"))
        sup_pins = []
        for c in d:
            tag = self._local(c)
            if tag in ("SupervisorInPin", "SupervisorOutPin"):
                sup_pins.append(c)
            elif tag in ("SharedCode", "DeviceSharedCode"):
                dev.shared_code.append(self._code(c))
            elif tag == "InputPin":
                self._input(dev, c)
            elif tag == "OutputPin":
                self._output(dev, c)
            elif tag in ("ReadyToSend", "OnInit", "OnHardwareIdle", "OnDeviceIdle"):
                attr = re.sub(r"(?<!^)([A-Z])", r"_\1", tag).lower()
                setattr(dev, attr, self._code(c))
            elif tag in _IGNORED_IF_EMPTY and (c.text or "").strip():
                raise Unsupported(f"<{tag}> handlers are not supported", self.file, c.sourceline)
        for c in sup_pins:      # after the ordinary pins, whatever the file order (as the reference)
            self._sup_pin(dev, c)
        if not external and dev.ready_to_send is None and self.version >= 3:
            raise BadInput(f"device type '{did}' has no <ReadyToSend>", self.file, d.sourceline)
        if len(dev.outputs) > 31:
            raise BadInput(f"device type '{did}' has {len(dev.outputs)} output pins; at most 31 fit in readyToSend",
                           self.file, d.sourceline)
        g.devices[did] = dev

    def _pin_common(self, dev: DeviceType, el, name: str | None = None) -> tuple[str, MessageType]:
        name = name or self._ident(el, "name")
        if dev.input(name) or dev.output(name):
            raise BadInput(f"duplicate pin name '{name}' in device type '{dev.id}'", self.file, el.sourceline)
        return name, self._pin_message(el, f"pin '{name}' of device type '{dev.id}'")

    def _pin_message(self, el, what: str) -> MessageType:
        mid = el.get("messageTypeId")
        if mid not in self.graph.messages:
            raise BadInput(f"{what} has unknown message type '{mid}'", self.file, el.sourceline)
        return self.graph.messages[mid]

    def _sup_pin(self, dev: DeviceType, el) -> None:
        """<SupervisorOutPin> / <SupervisorInPin>: the implicit pins __SUP_OUT__
        (last output) and __SUP_IN__ (last input), wired to the supervisor, never by edges."""
        out = self._local(el) == "SupervisorOutPin"
        name, msg = self._pin_common(dev, el, "__SUP_OUT__" if out else "__SUP_IN__")
        if out:
            self.sup_out_lines.append((dev.id, el.sourceline))
            dev.outputs.append(OutputPin(name, len(dev.outputs), msg, self._handler(el, "OnSend", dev, name),
                                         supervisor=True))
            return
        prefix = f"{self.gid}_{dev.id}_{name}"
        dev.inputs.append(InputPin(name, len(dev.inputs), msg, self._handler(el, "OnReceive", dev, name),
                                   Layout(f"{prefix}_properties_t", None), Layout(f"{prefix}_state_t", None),
                                   supervisor=True))

    def _input(self, dev: DeviceType, el) -> None:
        name, msg = self._pin_common(dev, el)
        prefix = f"{self.gid}_{dev.id}_{name}"
        pin = InputPin(name, len(dev.inputs), msg, self._handler(el, "OnReceive", dev),
                       self._layout(el.find(self.ns + "Properties"), f"{prefix}_properties_t"),
                       self._layout(el.find(self.ns + "State"), f"{prefix}_state_t"))
        if pin.props.size or pin.state.size:
            # numbered across the graph: the earlier types' pins, then this type's so far
            # (the type joins graph.devices only once all its pins are read)
            pin.kind = len(self.graph.edge_pins) + sum(p.kind >= 0 for p in dev.inputs)
        dev.inputs.append(pin)

    def _output(self, dev: DeviceType, el) -> None:
        name, msg = self._pin_common(dev, el)
        indexed = (el.get("indexed") or "false").strip().lower() in ("true", "1")
        dev.outputs.append(OutputPin(name, len(dev.outputs), msg, self._handler(el, "OnSend", dev), indexed))

    def _handler(self, el, tag: str, dev: DeviceType, name: str | None = None) -> Code | None:
        h = el.find(self.ns + tag)
        if h is None:
            if not dev.external:
                raise BadInput(f"pin '{name or el.get('name')}' of device type '{dev.id}' has no <{tag}>",
                               self.file, el.sourceline)
            return None
        return self._code(h)

    def _layout(self, el, default_name: str) -> Layout:
        if el is None:
            return Layout(default_name, None)
        ctype = el.get("cTypeName") or default_name
        try:
            if self.version >= 4:
                members = c_members(el.text)
            else:
                members = [xml_member(c, self.ns, self.typedefs) for c in el
                           if self._local(c) in ("Scalar", "Array", "Tuple", "Union")]
            return Layout(ctype, Tuple(members))
        except BadInput as e:
            line = el.sourceline + e.line - 1 if self.version >= 4 and e.line else e.line or el.sourceline
            raise BadInput(e.detail, self.file, line) from None

    def _code(self, el) -> Code:
        return Code(el.text or "", el.sourceline)

    def _ident(self, el, attr: str) -> str:
        value = el.get(attr)
        if value is None or not _IDENT.match(value):
            raise BadInput(f"<{self._local(el)}> {attr}={value!r} is not a valid identifier",
                           self.file, el.sourceline)
        return value

    @staticmethod
    def _local(el) -> str:
        return el.tag.rsplit("}", 1)[-1] if isinstance(el.tag, str) else ""
