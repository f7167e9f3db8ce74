"""One compiled engine over one instance (or one region of it): the Python
face of core/engine_loop.hpp.  Python only drives it: every call runs many
events in C."""
from __future__ import annotations

import struct
from array import array
from dataclasses import dataclass
from typing import Callable, Iterator

from . import limits
from .build import loader_module
from .reader import Instance
from .topology import RegionCSR, edge_arrays, finish_edges

# pe_status
IDLE, BUDGET, STOPPED, OUTBOX = 0, 1, 2, 3
# pe_stop_kind, pe_fail_kind, pe_handler_kind (engine_base.hpp)
STOP_EXIT, STOP_FAIL = 1, 2
(FAIL_ASSERT, FAIL_SEND_INDEX, FAIL_SIGNAL, FAIL_TIMEOUT, FAIL_STEPS, FAIL_RECORD, FAIL_MEMORY, FAIL_FILE_SIZE,
 FAIL_SUP_STOP, FAIL_INTERRUPT) = range(1, 11)
HANDLERS = {1: "OnInit", 2: "ReadyToSend", 3: "OnSend", 4: "OnReceive", 5: "OnHardwareIdle", 6: "OnDeviceIdle",
            7: "OnInit", 8: "OnSupervisorIdle", 9: "OnReceive", 10: "OnSupervisorIdle (its end-of-run call)"}
SUPERVISOR = "__supervisor__"      # the name of the supervisor in logs
SUP_DEV = 0xFFFFFFFE               # PE_SUP_DEV: the device index that stands for the supervisor
_LOG_HEAD = struct.Struct("<IiI")


@dataclass
class Options:
    level: int = 1
    order: str = "fixed"          # or "random"
    seed: int = 0
    max_steps: int = 0            # 0: no limit
    timeout: float = 0.0          # seconds, 0: none
    region: int | None = None     # run only this region of the region map
    memory_mb: int = 0            # memory for the application beyond the runner's at rest (psim/limits.py); 0: none
    trace: str | bool = False     # record an event trace (psim/trace.py): a file (psim), True (a cluster keeps it)
    threads: int = 1              # engines in threads of this process, one METIS region each (psim/threads.py)

    @classmethod
    def from_dict(cls, d: dict | None) -> "Options":
        d = dict(d or {})
        known = {k: d.pop(k) for k in list(d) if k in cls.__dataclass_fields__}
        if d:
            raise ValueError(f"unknown psim options: {', '.join(sorted(d))}")
        opts = cls(**known)
        if opts.order not in ("fixed", "random"):
            raise ValueError(f"order must be 'fixed' or 'random', not {opts.order!r}")
        if not isinstance(opts.trace, (str, bool)):
            raise ValueError(f"trace must be a file name or True, not {opts.trace!r}")
        if not isinstance(opts.memory_mb, int) or isinstance(opts.memory_mb, bool) or opts.memory_mb < 0:
            raise ValueError(f"memory_mb must be a whole number of MB (0: no limit), not {opts.memory_mb!r}")
        if not isinstance(opts.threads, int) or isinstance(opts.threads, bool) or opts.threads < 1:
            raise ValueError(f"threads must be a whole number from 1, not {opts.threads!r}")
        return opts


class Engine:
    def __init__(self, module, inst: Instance, opts: Options,
                 region: array | None = None, my_region: int = 0, n_regions: int = 1, sup_region: int = 0,
                 csr: RegionCSR | None = None):
        """csr: this region's own edge flags and remote lists, when several
        engines share `inst` (psim/threads.py); without it the instance's CSR
        is indexed for this one engine (finish_edges)."""
        self.lib, self.ffi = module.lib, module.ffi
        self.inst, self.opts = inst, opts
        self.my_region, self.n_regions = my_region, n_regions
        self.region = region
        self.sup_region = sup_region
        self.on_trace: Callable[[bytes], None] | None = None
        self.csr = csr
        if csr is None:
            finish_edges(inst, region, my_region)
        self.engine = self.ffi.gc(self.lib.pe_create(self._init(region, my_region, n_regions)), self.lib.pe_destroy)

    @property
    def runs_supervisor(self) -> bool:
        """Does this engine run the application's supervisor?"""
        return self.inst.graph.supervisor is not None and (self.region is None or self.my_region == self.sup_region)

    def _init(self, region, my_region: int, n_regions: int):
        ffi, inst, opts = self.ffi, self.inst, self.opts
        ll = loader_module()
        L = inst.loader

        def ptr(t: str, p):
            return ffi.cast(t, int(ll.ffi.cast("uintptr_t", p)))

        def blobs(arrays: list[bytearray]):
            for a in arrays:
                if not a:
                    a.append(0)            # a real pointer even for empty types
            return ffi.new("uint8_t*[]", [ffi.from_buffer(a) for a in arrays] or [ffi.NULL])

        self._graph_props = bytearray(inst.graph_props or b"\0")
        keep = self._keep = [blobs(inst.props), blobs(inst.state), blobs(inst.eprops), blobs(inst.estate)]
        init = ffi.new("pe_init*")
        init.n_devices = inst.n_devices
        init.dev_type = ptr("uint16_t*", ll.lib.pl_dev_types(L))
        init.out_off = ptr("uint32_t*", ll.lib.pl_out_off(L))
        edges, rem_off, rem_reg = self.csr.arrays() if self.csr else edge_arrays(inst)
        init.edges = ptr("void*", edges)
        init.rem_off = ptr("uint32_t*", rem_off) if rem_off != ll.ffi.NULL else ffi.NULL
        init.rem_reg = ptr("uint16_t*", rem_reg) if rem_off != ll.ffi.NULL else ffi.NULL
        if region is not None:
            self._region = ffi.from_buffer("uint16_t[]", region)
            init.region = self._region
        init.my_region = my_region
        init.n_regions = n_regions
        init.graph_props = ffi.from_buffer(self._graph_props)
        init.props, init.state, init.eprops, init.estate = keep
        init.halt_dev = inst.halt if inst.halt is not None else 0xFFFFFFFF
        init.sup_region = self.sup_region
        init.random_order = opts.order == "random"
        init.seed = opts.seed
        init.max_steps = opts.max_steps
        init.log_level = opts.level
        return init

    # ---- driving --------------------------------------------------------------------

    def start(self, seconds: float = 0.0) -> int:
        return self.lib.pe_start(self.engine, seconds)

    def run(self, budget: int, seconds: float = 0.0) -> int:
        return self.lib.pe_run(self.engine, budget, seconds)

    def hardware_idle(self, seconds: float = 0.0) -> int:
        return self.lib.pe_hardware_idle(self.engine, seconds)

    def finish(self, seconds: float = 0.0) -> int:
        """The run ended idle: the end-of-run calls (a supervisor's final tick)."""
        return self.lib.pe_finish(self.engine, seconds)

    def interrupt(self) -> None:
        """Ctrl-C for the engines of this module running in other threads
        (psim --threads: the main thread heard it): one in a handler that
        goes on past the grace period (engine_loop.hpp) is left there."""
        self.lib.pe_interrupt()

    def inject(self, records: bytes) -> None:
        """Incoming remote records; raises ValueError if they are malformed."""
        err = self.lib.pe_inject(self.engine, records, len(records))
        if err != self.ffi.NULL:
            raise ValueError(self.ffi.string(err).decode())

    def outbox(self, region: int) -> memoryview | None:
        """The packed records waiting for `region`, as a view of the engine's
        buffer (no copy): use it before the next call into the engine, then
        clear_outbox(region)."""
        p = self.ffi.new("uint8_t**")
        n = self.lib.pe_outbox(self.engine, region, p)
        return memoryview(self.ffi.buffer(p[0], n)) if n else None

    def clear_outbox(self, region: int) -> None:
        self.lib.pe_outbox_clear(self.engine, region)

    def logs(self) -> list[tuple[str, int, str]]:
        """Take the handler_log lines written since the last call."""
        p = self.ffi.new("char**")
        n = self.lib.pe_log_take(self.engine, p)
        if not n:
            return []
        raw = bytes(self.ffi.buffer(p[0], n))
        self.lib.pe_log_clear(self.engine)
        out, at = [], 0
        while at < n:
            dev, level, size = _LOG_HEAD.unpack_from(raw, at)
            at += _LOG_HEAD.size
            out.append((self._dev_id(dev), level, raw[at:at + size].decode(errors="replace")))
            at += size
        return out

    def require_watchers(self, what: str) -> None:
        if not self.lib.pe_has_watchers():
            raise RuntimeError(f"this engine cannot be {what}: its module was built without watchers "
                               "(load it with Loaded(xml, watchers=True))")

    def start_trace(self, on_chunk: Callable[[bytes], None]) -> None:
        """Record every event and input from now on (psim/trace.py); the
        records go to on_chunk in batches, at each drain_trace()."""
        self.require_watchers("traced")
        self.on_trace = on_chunk
        self.lib.pe_trace_start(self.engine)

    def drain_trace(self) -> None:
        """Pass the records traced since the last call to on_chunk (when tracing)."""
        if self.on_trace is None:
            return
        p = self.ffi.new("uint8_t**")
        n = self.lib.pe_trace_take(self.engine, p)
        if n:
            self.on_trace(bytes(self.ffi.buffer(p[0], n)))
            self.lib.pe_trace_clear(self.engine)

    def outcome(self):
        o = self.ffi.new("pe_outcome*")
        self.lib.pe_get_outcome(self.engine, o)
        return o

    # ---- results --------------------------------------------------------------------

    def local(self, dev: int) -> bool:
        return self.region is None or self.region[dev] == self.my_region

    def states(self, everywhere: bool = False) -> dict:
        """Final state of every local device (every device, `everywhere`:
        engines sharing the instance's arrays, once all have run), field by field."""
        inst = self.inst
        types = list(inst.graph.devices.values())
        loader = loader_module()
        dev_types = loader.ffi.unpack(loader.lib.pl_dev_types(inst.loader), inst.n_devices) if len(types) > 1 else None
        decoded = [iter(self._decode(t, dt)) for t, dt in enumerate(types)]
        out = {}
        for i, did in enumerate(inst.ids):
            t = dev_types[i] if dev_types is not None else 0
            state = next(decoded[t])
            if not types[t].external and (everywhere or self.local(i)):
                out[did] = state
        return out

    def _decode(self, t: int, dt) -> Iterator[dict]:
        """The states of every device of type t, in order."""
        layout, data = dt.state, self.inst.state[t]
        return unpack_states(layout, data, len(data) // layout.size if layout.size else self.inst.n_devices)

    def failure(self, o) -> str:
        """A sentence saying why the run failed."""
        g = self.inst.graph
        text = self.ffi.string(o.fail_text).decode(errors="replace")
        where = self._where(o)
        kind = o.fail_kind
        if kind == FAIL_ASSERT:
            return f"assertion '{text}' failed in {where} at {g.file}:{g.line + o.fail_line - 1}"
        if kind == FAIL_SEND_INDEX:
            return f"{text}, in {where}"
        if kind == FAIL_SIGNAL:
            return f"handler crashed ({text}) in {where}" + self._memory_hint()
        if kind == FAIL_TIMEOUT:
            return f"timed out after {self.opts.timeout:g} s" + (f", in {where}" if o.fail_handler else "")
        if kind == FAIL_STEPS:
            return f"step limit of {self.opts.max_steps} reached"
        if kind == FAIL_MEMORY:
            what = f"memory limit of {self.opts.memory_mb} MB exceeded" if self.opts.memory_mb else "out of memory"
            return f"{what} in {where}"
        if kind == FAIL_FILE_SIZE:
            return f"{limits.file_size_text()} exceeded in {where}"
        if kind == FAIL_INTERRUPT:
            return f"interrupted (Ctrl-C) in {where}"
        if kind == FAIL_SUP_STOP:
            return (f"exit requested (code {text}) in {where}: the OnSupervisorIdle body, run once more after "
                    "the run ended idle (the reference's stop call), may not end the run; the reference fails it")
        return f"{text} (device '{self._dev_id(o.fail_dev)}')"

    def _memory_hint(self) -> str:
        if not (self.opts.memory_mb and limits.near_memory_limit()):
            return ""
        return (f", at its memory limit of {self.opts.memory_mb} MB: most likely a malloc the limit "
                "refused returned NULL and the handler used it")

    def _dev_id(self, dev: int) -> str:
        if dev == SUP_DEV:
            return SUPERVISOR
        return self.inst.ids[dev] if dev < self.inst.n_devices else str(dev)

    def _where(self, o) -> str:
        if o.fail_handler == 0:
            return "the psim runtime"
        sup = self.inst.graph.supervisor
        if o.fail_dev == SUP_DEV and sup is not None:
            handler = HANDLERS.get(o.fail_handler, "?")
            pin = f" of pin '{sup.pin_id}'" if handler == "OnReceive" else ""
            return f"supervisor '{sup.id}', handler {handler}{pin}"
        dev = self._dev_id(o.fail_dev)
        handler = HANDLERS.get(o.fail_handler, "?")
        dtype = self._type_of(o.fail_dev)
        if dtype is not None and handler in ("OnSend", "OnReceive"):
            pins = dtype.outputs if handler == "OnSend" else dtype.inputs
            if 0 <= o.fail_pin < len(pins):
                handler += f" of pin '{pins[o.fail_pin].name}'"
        tname = f" (type '{dtype.id}')" if dtype is not None else ""
        return f"device '{dev}'{tname}, handler {handler}"

    def _type_of(self, dev: int):
        if dev >= self.inst.n_devices:
            return None
        t = loader_module().lib.pl_dev_types(self.inst.loader)[dev]
        return list(self.inst.graph.devices.values())[t]


def unpack_states(layout, data: bytes | bytearray | memoryview, count: int) -> Iterator[dict]:
    """`count` packed values of `layout` (a typed.Layout) from `data`, as
    dicts field by field (also pcli's decoding of a region's packed result)."""
    if not layout.size:
        return ({} for _ in range(count))
    spec = layout.spec
    if spec.flat:                    # one C-level pass over the whole array
        names = spec.names
        return (dict(zip(names, values)) for values in spec.struct.iter_unpack(memoryview(data)[:count * layout.size]))
    return (layout.unpack(data, k * layout.size) for k in range(count))
