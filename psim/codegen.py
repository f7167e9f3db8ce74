"""C++ source for a graph type: its structs, its handlers, and the dispatch
functions and tables the event loop (core/engine_loop.hpp) is written against.

Instance data never appears here: one module serves every instance of the
graph type.  Handler code carries `#line` directives relative to the
<GraphType> start tag, so the source (and its cache key) does not depend on
where the graph type sits in which file; `Blocks` maps lines back.
"""
from __future__ import annotations

from dataclasses import dataclass

from .errors import Unsupported
from .model import Code, DeviceType, GraphType, InputPin, OutputPin, SupervisorType
from .typed import Layout, Scalar, typedef_decl

LINE_FILE = "@GT@"     # the file name g++ reports for application code


@dataclass
class Block:
    first: int          # relative lines, inclusive
    last: int
    what: str           # "device type 'node', OnReceive of pin 'in'"


class Generator:
    def __init__(self, g: GraphType):
        self.g = g
        self.out: list[str] = []
        self.blocks: list[Block] = []
        self.v2 = g.version == 2

    def source(self) -> str:
        g = self.g
        self.emit('#include "engine_base.hpp"\n')
        if g.supervisor is not None:
            self.emit('#include "supervisor_api.hpp"\n')
        self.types()
        self.emit(f"typedef {g.props.ctype} GRAPH_PROPERTIES_T;\n")
        self.constants()
        self.emit(_ASSERT)
        for code in g.shared_code:
            self.user_code(code, "graph SharedCode")
        for dev in g.devices.values():
            if not dev.external:
                self.device(dev)
        if g.supervisor is not None:
            self.supervisor(g.supervisor)
        self.dispatch()
        self.emit('#include "engine_loop.hpp"\n')
        return "".join(self.out)

    # ---- output helpers -------------------------------------------------------

    def emit(self, text: str) -> None:
        self.out.append(text)

    def user_code(self, code: Code, what: str) -> None:
        rel = code.line - self.g.line + 1
        self.emit(f'#line {rel} "{LINE_FILE}"\n{code.text}\n')
        self.blocks.append(Block(rel, rel + code.text.count("\n"), what))
        self.emit('#line 1 "generated"\n')

    # ---- types and names -------------------------------------------------------

    def layouts(self) -> list[Layout]:
        g = self.g
        out = [g.props] + [m.layout for m in g.messages.values()]
        for d in g.devices.values():
            out += [d.props, d.state]
            out += [x for p in d.inputs for x in (p.props, p.state)]
        return out

    def types(self) -> None:
        self.emit("#pragma pack(push, 1)\n")
        for name, t in self.g.typedefs:
            self.emit(typedef_decl(name, t))
        seen = set()
        for layout in self.layouts():
            if layout.ctype not in seen:
                seen.add(layout.ctype)
                self.emit(layout.c_struct())
                if layout.size:
                    self.emit(f"static_assert(sizeof({layout.ctype}) == {layout.size}, "
                              f"\"layout of {layout.ctype}\");\n")
        self.emit("#pragma pack(pop)\n")

    def constants(self) -> None:
        for d in self.g.devices.values():
            for name, value in self.pin_names(d, qualified=True):
                self.emit(f"static const uint32_t {name} = {value};\n")

    @staticmethod
    def pin_names(d: DeviceType, qualified: bool) -> list[tuple[str, str]]:
        q = f"{d.id}_" if qualified else ""
        names = []
        for p in d.outputs:
            for kind in ("RTS", "OUTPUT"):
                names += [(f"{kind}_FLAG_{q}{p.name}", f"1u << {p.index}"),
                          (f"{kind}_INDEX_{q}{p.name}", str(p.index))]
        for p in d.inputs:
            names += [(f"INPUT_INDEX_{q}{p.name}", str(p.index)), (f"INPUT_FLAG_{q}{p.name}", f"1u << {p.index}")]
        if qualified:
            names += [(f"INPUT_COUNT_{d.id}", str(len(d.inputs))),
                      (f"OUTPUT_COUNT_{d.id}", str(len(d.outputs))),
                      (f"RTC_FLAG_{d.id}", "1u << 31")]
        else:
            names += [("RTC_FLAG", "(1u << 31)")]
        return names

    # ---- one device type --------------------------------------------------------

    def device(self, d: DeviceType) -> None:
        local = self.pin_names(d, qualified=False)
        local += [("DEVICE_PROPERTIES_T", d.props.ctype), ("DEVICE_STATE_T", d.state.ctype)]
        if d.sup_out is not None:       # RTSSUP() sets it (supervisor_api.hpp)
            local.append(("RTS_SUPER_IMPLICIT_SEND_FLAG", f"(1u << {d.sup_out.index})"))
        for name, value in local:
            self.emit(f"#define {name} {value}\n")
        for code in d.shared_code:
            self.user_code(code, f"device type '{d.id}' SharedCode")
        self.emit(_ASSERT)
        c = "" if self.v2 else "const "
        common = (f"{c}GRAPH_PROPERTIES_T* graphProperties, {c}{d.props.ctype}* deviceProperties, "
                  f"{d.state.ctype}* deviceState")
        rts_common = common.replace(f"{d.state.ctype}* deviceState", f"{c}{d.state.ctype}* deviceState")
        extra = "    uint32_t& rts = *readyToSend; (void)rts;\n" if self.v2 else ""
        self.handler(d, "ReadyToSend", d.ready_to_send, f"{rts_common}, uint32_t* readyToSend", extra)
        for what in ("OnInit", "OnHardwareIdle", "OnDeviceIdle"):
            code = getattr(d, {"OnInit": "on_init", "OnHardwareIdle": "on_hardware_idle",
                               "OnDeviceIdle": "on_device_idle"}[what])
            self.handler(d, what, code, common, "")
        for p in d.outputs:
            self.output(d, p, common)
        for p in d.inputs:
            self.input(d, p, common)
        for name, _ in local:
            self.emit(f"#undef {name}\n")

    def handler(self, d: DeviceType, what: str, code: Code | None, params: str, prologue: str,
                fn: str | None = None, label: str | None = None) -> None:
        fn = fn or f"pe_h_{d.id}__{what}"
        self.emit(f"static inline void {fn}({params}) {{\n{prologue}    [&]() {{\n")
        if code is not None:
            self.user_code(code, f"device type '{d.id}', {label or what}")
        self.emit("    }();\n}\n")

    def output(self, d: DeviceType, p: OutputPin, common: str) -> None:
        m = p.message.layout.ctype
        prologue = (f"    typedef {m} MESSAGE_T; (void)sizeof(MESSAGE_T);\n"
                    "    uint32_t* sendEdgeIndex = sendIndex; (void)sendEdgeIndex;\n")
        self.handler(d, "OnSend", p.on_send,
                     f"{common}, {m}* message, bool* doSend, uint32_t* sendIndex", prologue,
                     fn=f"pe_h_{d.id}__OnSend__{p.name}", label=f"OnSend of pin '{p.name}'")

    def input(self, d: DeviceType, p: InputPin, common: str) -> None:
        m = p.message.layout.ctype
        c = "" if self.v2 else "const "
        prologue = (f"    typedef {m} MESSAGE_T; typedef {p.props.ctype} PORT_PROPERTIES_T;"
                    f" typedef {p.state.ctype} PORT_STATE_T;\n")
        if self.v2:     # v2 handlers may write to their message: give them a copy
            prologue += f"    {m} __copy = *__message; {m}* message = &__copy; (void)message;\n"
            msg_param = f"const {m}* __message"
        else:
            msg_param = f"const {m}* message"
        params = (f"{common}, {c}{p.props.ctype}* edgeProperties, {p.state.ctype}* edgeState, {msg_param}")
        self.handler(d, "OnReceive", p.on_receive, params, prologue,
                     fn=f"pe_h_{d.id}__OnReceive__{p.name}", label=f"OnReceive of pin '{p.name}'")

    # ---- the supervisor ----------------------------------------------------------------

    def supervisor(self, s: SupervisorType) -> None:
        """One C++ object (supervisor.hpp makes one per engine): Properties and
        State are structs of the verbatim member declarations, value-initialised
        (zero, then any member initialisers); the handler bodies are member
        functions, so the names of the handler API (supervisor_api.hpp) are in scope."""
        g, what = self.g, f"supervisor '{s.id}'"
        # the device handler API is not the supervisor's (the reference does not compile these there)
        self.emit("".join(f"#undef {name}\n" for name in _DEVICE_ONLY))
        props_t, state_t = f"{g.id}_{s.c_name}_properties_t", f"{g.id}_{s.c_name}_state_t"
        self.user_code(s.code, f"{what} Code")
        self.emit(_ASSERT)       # Code may include <cassert>
        for ctype, code, label in ((props_t, s.props, "Properties"), (state_t, s.state, "State")):
            self.emit(f"struct {ctype} {{\n")
            if code is not None:
                self.user_code(code, f"{what} {label}")
            self.emit("};\n")
        m = s.message.layout
        size = max(m.size, 1)
        self.emit(f"typedef {props_t} SUPERVISOR_PROPERTIES_T;\ntypedef {state_t} SUPERVISOR_STATE_T;\n"
                  "struct pe_supervisor : pe_supervisor_services {\n"
                  "    SUPERVISOR_PROPERTIES_T pe_props{};\n    SUPERVISOR_STATE_T pe_state{};\n"
                  "    const GRAPH_PROPERTIES_T* graphProperties;\n"
                  "    const SUPERVISOR_PROPERTIES_T* supervisorProperties = &pe_props;\n"
                  "    SUPERVISOR_STATE_T* supervisorState = &pe_state;\n"
                  "    explicit pe_supervisor(const uint8_t* g) : graphProperties((const GRAPH_PROPERTIES_T*)g) {}\n")
        self.member("on_init", "", s.on_init, f"{what}, OnInit")
        self.member("on_idle", "", s.on_idle, f"{what}, OnSupervisorIdle")
        prologue = (f"        const {m.ctype}* message = (const {m.ctype}*)pe_msg;\n"
                    f"        alignas(8) uint8_t pe_r[{size}], pe_b[{size}];\n"
                    f"        memset(pe_r, 0xFE, {size}); memset(pe_b, 0xFE, {size});   // as the reference\n"
                    f"        {m.ctype}* reply = ({m.ctype}*)pe_r; {m.ctype}* bcast = ({m.ctype}*)pe_b;\n"
                    "        (void)message; (void)reply; (void)bcast;\n")
        self.member("on_receive", "const uint8_t* pe_msg", s.on_receive,
                    f"{what}, OnReceive of pin '{s.pin_id}'", prologue)
        self.emit("};\n")

    def member(self, name: str, params: str, code: Code | None, label: str, prologue: str = "") -> None:
        """A supervisor handler.  The body runs in a lambda, so a `return x;` is
        accepted anywhere (the reference accepts it only in OnInit)."""
        self.emit(f"    void {name}({params}) {{\n{prologue}        [&]() {{\n")
        if code is not None:
            self.user_code(code, label)
        self.emit("        }();\n    }\n")

    # ---- dispatch and tables -------------------------------------------------------

    def dispatch(self) -> None:
        g = self.g
        devs = list(g.devices.values())
        maxout = g.max_outputs
        maxmsg = max([m.layout.size for m in g.messages.values()] + [1])
        self.emit(f"#define PE_NTYPES {len(devs)}\n#define PE_MAXOUT {maxout}\n#define PE_MAXMSG {maxmsg}\n"
                  f"#define PE_SUPERVISOR {int(g.supervisor is not None)}\n")
        for pins, name in (([d.sup_out for d in devs], "pe_sup_out"), ([d.sup_in for d in devs], "pe_sup_in")):
            self.table(f"uint8_t {name}[PE_NTYPES]", [str(p.index if p else "PE_NO_PIN") for p in pins])
        self.table("uint32_t pe_out_mask[PE_NTYPES]", [f"{(1 << len(d.outputs)) - 1}u" for d in devs])
        self.table("uint8_t pe_has_hwidle[PE_NTYPES]", [str(int(d.on_hardware_idle is not None)) for d in devs])
        self.table("uint8_t pe_is_external[PE_NTYPES]", [str(int(d.external)) for d in devs])
        self.table("uint8_t pe_indexed[PE_NTYPES][PE_MAXOUT]",
                   ["{" + ", ".join(str(int(p.indexed)) for p in d.outputs) + "}" for d in devs])
        self.table("uint16_t pe_msg_size[PE_NTYPES][PE_MAXOUT]",
                   ["{" + ", ".join(str(p.message.layout.size) for p in d.outputs) + "}" for d in devs])
        maxin = max([len(d.inputs) for d in devs] + [1])
        self.table(f"uint16_t pe_in_size[PE_NTYPES][{maxin}]",     # for watchers (debug.hpp, trace.hpp)
                   ["{" + ", ".join([str(p.message.layout.size) for p in d.inputs] or ["0"]) + "}" for d in devs])
        for m in g.messages.values():
            if any(m.layout.default):
                self.emit(f"static const uint8_t pe_msgdef_{m.index}[] = {{{', '.join(map(str, m.layout.default))}}};\n")
        self.dispatcher("uint32_t pe_dispatch_rts(pe_engine* E, uint32_t t, uint32_t slot)",
                        "uint32_t r = 0;", "return r;",
                        {d.index: self.call(d, "ReadyToSend", ", &r") for d in devs if not d.external})
        for what in ("init", "hwidle", "devidle"):
            self.dispatcher(f"void pe_dispatch_{what}(pe_engine* E, uint32_t t, uint32_t slot)", "", "",
                            {d.index: self.idle_call(d, what) for d in devs if not d.external})
        self.dispatcher("bool pe_dispatch_send(pe_engine* E, uint32_t t, uint32_t slot, uint32_t pin, "
                        "uint8_t* msg, uint32_t* sendIndex, uint16_t* size)",
                        "bool doSend = true;", "return doSend;",
                        {d.index: self.pin_switch({p.index: self.send_call(d, p) for p in d.outputs})
                         for d in devs if not d.external})
        self.dispatcher("void pe_dispatch_recv(pe_engine* E, uint32_t t, uint32_t slot, uint32_t pin, "
                        "const uint8_t* msg, uint32_t eslot)", "", "",
                        {d.index: self.pin_switch({p.index: self.recv_call(d, p) for p in d.inputs})
                         for d in devs})

    def table(self, decl: str, rows: list[str]) -> None:
        self.emit(f"static const {decl} = {{{', '.join(rows)}}};\n")

    def dispatcher(self, signature: str, head: str, tail: str, cases: dict[int, str]) -> None:
        body = "".join(f"    case {t}: {{ {code} }} break;\n" for t, code in cases.items())
        self.emit(f"static inline {signature} {{\n    (void)E; (void)slot; {head}\n"
                  f"    switch (t) {{\n{body}    default: break;\n    }}\n    {tail}\n}}\n")

    @staticmethod
    def pin_switch(cases: dict[int, str]) -> str:
        body = " ".join(f"case {i}: {{ {code} }} break;" for i, code in cases.items())
        return f"switch (pin) {{ {body} default: break; }}"

    def args(self, d: DeviceType) -> str:
        c = "" if self.v2 else "const "
        return (f"({c}GRAPH_PROPERTIES_T*)E->graph_props, "
                f"({c}{d.props.ctype}*)(E->props[{d.index}] + (size_t)slot * {d.props.size}), "
                f"({d.state.ctype}*)(E->state[{d.index}] + (size_t)slot * {d.state.size})")

    def call(self, d: DeviceType, what: str, extra: str) -> str:
        return f"pe_h_{d.id}__{what}({self.args(d)}{extra});"

    def idle_call(self, d: DeviceType, what: str) -> str:
        if what == "init" and self.v2 and d.init_pin is not None:
            p = d.init_pin
            size = max(p.message.layout.size, 1)
            return (f"alignas(8) uint8_t m[{size}] = {{}}; "
                    f"pe_h_{d.id}__OnReceive__{p.name}({self.args(d)}, nullptr, nullptr, "
                    f"({p.message.layout.ctype}*)m);")
        name = {"init": "OnInit", "hwidle": "OnHardwareIdle", "devidle": "OnDeviceIdle"}[what]
        return self.call(d, name, "")

    def send_call(self, d: DeviceType, p: OutputPin) -> str:
        m = p.message
        size = m.layout.size
        fill = (f"memcpy(msg, pe_msgdef_{m.index}, {size});" if any(m.layout.default)
                else f"memset(msg, 0, {size});" if size else "")
        return (f"{fill} *size = {size}; pe_h_{d.id}__OnSend__{p.name}({self.args(d)}, "
                f"({m.layout.ctype}*)msg, &doSend, sendIndex);")

    def recv_call(self, d: DeviceType, p: InputPin) -> str:
        m = p.message.layout
        if d.external:
            return self.halt(p)
        if p.kind >= 0:
            c = "" if self.v2 else "const "
            edge = (f"({c}{p.props.ctype}*)(E->eprops[{p.kind}] + (size_t)eslot * {p.props.size}), "
                    f"({p.state.ctype}*)(E->estate[{p.kind}] + (size_t)eslot * {p.state.size})")
        else:
            edge = "nullptr, nullptr"
        return (f"(void)eslot; pe_h_{d.id}__OnReceive__{p.name}({self.args(d)}, {edge}, "
                f"(const {m.ctype}*)msg);")

    @staticmethod
    def halt(p: InputPin) -> str:
        """A message to the __halt__ external ends the run; its first field is the code."""
        members = p.message.layout.spec.members
        if not members:
            return "pe_exit(0);"
        name, t = members[0]
        if not isinstance(t, Scalar):
            raise Unsupported(f"message type '{p.message.id}' sent to __halt__: its first field "
                              f"'{name}' must be a scalar exit code")
        return f"pe_exit((int)((const {p.message.layout.ctype}*)msg)->{name});"


_ASSERT = "#undef assert\n#define assert(c) PE_ASSERT(c)\n"
_DEVICE_ONLY = ("handler_log", "handler_exit", "handler_checkpoint", "handler_export_key_value")


def generate(g: GraphType) -> tuple[str, list[Block]]:
    gen = Generator(g)
    return gen.source(), gen.blocks
