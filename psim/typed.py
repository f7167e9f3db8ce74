"""Typed data: the graph-schema type system, its packed C layout, and the
conversion of values (JSON-like Python values) to and from packed bytes.

Layout rules (spec): packed, no padding, fields in declaration order, little
endian; a union is its largest member followed by one tag byte.
"""
from __future__ import annotations

import struct
from abc import ABC, abstractmethod
from typing import Any

from .errors import BadInput

# scalar type name -> (struct format, C type)
SCALARS: dict[str, str] = {
    "int8_t": "b", "uint8_t": "B", "char": "b",
    "int16_t": "h", "uint16_t": "H",
    "int32_t": "i", "uint32_t": "I",
    "int64_t": "q", "uint64_t": "Q",
    "float": "f", "double": "d", "half": "e",
    "bool": "?",
}
INT_FORMATS = frozenset("bBhHiIqQ?")


class Type(ABC):
    """Base of all typed-data types.  `size` is the packed size in bytes."""
    size: int = 0
    default: Any = None

    @abstractmethod
    def c_decl(self, name: str) -> str:
        """The C declaration of a member `name` of this type."""

    def fill_defaults(self, buf: bytearray, off: int) -> None:
        """Write this type's default value (and its members') into buf."""
        if self.default is not None:
            self.encode(buf, off, self.default, "default")

    @abstractmethod
    def encode(self, buf: bytearray, off: int, value: Any, path: str) -> None:
        """Pack `value` at buf[off:]; `path` names it in errors."""

    @abstractmethod
    def decode(self, buf, off: int) -> Any:
        """The value packed at buf[off:]."""


class Scalar(Type):
    def __init__(self, kind: str, default: Any = None):
        self.kind = kind
        self.fmt = "<" + SCALARS[kind]
        self.size = struct.calcsize(self.fmt)
        self.is_int = SCALARS[kind] in INT_FORMATS
        self.default = default

    def c_decl(self, name: str) -> str:
        return f"{self.kind} {name}"

    def check(self, value: Any, path: str) -> Any:
        if isinstance(value, bool):
            return int(value)
        if isinstance(value, str) and self.kind == "char" and len(value) == 1:
            return ord(value)
        if isinstance(value, int) or (isinstance(value, float) and not self.is_int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise BadInput(f"value {value!r} for '{path}' is not a {self.kind}")

    def encode(self, buf: bytearray, off: int, value: Any, path: str) -> None:
        try:
            struct.pack_into(self.fmt, buf, off, self.check(value, path))
        except (struct.error, OverflowError):
            raise BadInput(f"value {value!r} for '{path}' does not fit in {self.kind}") from None

    def decode(self, buf, off: int) -> Any:
        return struct.unpack_from(self.fmt, buf, off)[0]


class Array(Type):
    def __init__(self, elem: Type, length: int, default: Any = None):
        if length <= 0:
            raise BadInput(f"array length {length} must be positive")
        self.elem = elem
        self.length = length
        self.size = elem.size * length
        self.default = default

    def c_decl(self, name: str) -> str:
        return self.elem.c_decl(f"{name}[{self.length}]")

    def fill_defaults(self, buf: bytearray, off: int) -> None:
        for i in range(self.length):
            self.elem.fill_defaults(buf, off + i * self.elem.size)
        super().fill_defaults(buf, off)

    def _is_text(self) -> bool:
        return isinstance(self.elem, Scalar) and self.elem.kind in ("char", "int8_t", "uint8_t")

    def encode(self, buf: bytearray, off: int, value: Any, path: str) -> None:
        if isinstance(value, str) and self._is_text():
            value = list(value.encode())
        if isinstance(value, dict):
            items = []
            for k, v in value.items():
                try:
                    items.append((int(k), v))
                except ValueError:
                    raise BadInput(f"sparse index {k!r} of array '{path}' is not an integer") from None
        elif isinstance(value, (list, tuple)):
            items = list(enumerate(value))
        else:
            raise BadInput(f"value {value!r} for array '{path}' is not a list")
        for i, v in items:
            if not 0 <= i < self.length:
                raise BadInput(f"index {i} is outside array '{path}' of length {self.length}")
            self.elem.encode(buf, off + i * self.elem.size, v, f"{path}[{i}]")

    def decode(self, buf, off: int) -> Any:
        es = self.elem.size
        if isinstance(self.elem, Scalar):
            return list(struct.unpack_from(f"<{self.length}{self.elem.fmt[1:]}", buf, off))
        return [self.elem.decode(buf, off + i * es) for i in range(self.length)]


class Tuple(Type):
    """A struct.  Also the type of every Properties/State/Message block."""

    def __init__(self, members: list[tuple[str, Type]], default: Any = None):
        names = [n for n, _ in members]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise BadInput(f"duplicate member name '{sorted(dup)[0]}'")
        self.members = members
        self.default = default
        self.offsets: dict[str, tuple[int, Type]] = {}
        off = 0
        for name, t in members:
            self.offsets[name] = (off, t)
            off += t.size
        self.size = off
        self.flat = all(isinstance(t, Scalar) for _, t in members)
        if self.flat:
            self.struct = struct.Struct("<" + "".join(t.fmt[1:] for _, t in members))
            self.index = {n: i for i, n in enumerate(names)}
            self.names = names

    def c_decl(self, name: str) -> str:
        return "struct {\n" + self.c_body() + "} " + name

    def c_body(self) -> str:
        return "".join(_member_decl(n, t) for n, t in self.members)

    def fill_defaults(self, buf: bytearray, off: int) -> None:
        for o, t in self.offsets.values():
            t.fill_defaults(buf, off + o)
        super().fill_defaults(buf, off)

    def encode(self, buf: bytearray, off: int, value: Any, path: str) -> None:
        prefix = f"{path}." if path else ""
        if isinstance(value, (list, tuple)):     # positional (v4 initialiser lists)
            if len(value) > len(self.members):
                raise BadInput(f"{len(value)} values given for '{path or 'struct'}' of {len(self.members)} members")
            for (name, t), v in zip(self.members, value):
                t.encode(buf, off + self.offsets[name][0], v, prefix + name)
            return
        if not isinstance(value, dict):
            raise BadInput(f"value {value!r} for '{path}' is not a set of members")
        for key, v in value.items():
            name, _, member = key.partition(".")
            if name not in self.offsets:
                raise BadInput(f"unknown field '{prefix}{name}'")
            o, t = self.offsets[name]
            if member:                            # "u.member": value selects a union member
                v = {member: v}
            t.encode(buf, off + o, v, prefix + name)

    def decode(self, buf, off: int) -> Any:
        if self.flat:
            return dict(zip(self.names, self.struct.unpack_from(buf, off)))
        return {n: t.decode(buf, off + o) for n, (o, t) in self.offsets.items()}


class Union(Type):
    """A tagged union: the largest member, then a uint8_t tag (member index)."""

    def __init__(self, members: list[tuple[str, Type]], tag_name: str | None, default: Any = None):
        """tag_name None: a plain C union (v4 declarations), no tag byte."""
        self.members = members
        self.tag_name = tag_name
        self.index = {n: i for i, (n, _) in enumerate(members)}
        self.body = max(t.size for _, t in members)
        self.size = self.body + (tag_name is not None)
        self.default = default

    def c_decl(self, name: str) -> str:
        return "union {\n" + "".join(_member_decl(n, t) for n, t in self.members) + "} " + name

    def c_wrapped(self, name: str) -> str:
        """As a self-contained type (array element, typedef): the tag inside."""
        if self.tag_name is None:
            return self.c_decl(name)
        return f"struct {{\n{self.c_decl('')};\nuint8_t {self.tag_name};\n}} {name}"

    def fill_defaults(self, buf: bytearray, off: int) -> None:
        self.members[0][1].fill_defaults(buf, off)   # the first member is the default
        super().fill_defaults(buf, off)

    def encode(self, buf: bytearray, off: int, value: Any, path: str) -> None:
        if isinstance(value, (list, tuple)):          # positional: the first member
            value = {self.members[0][0]: value[0] if len(value) == 1 else value}
        if not isinstance(value, dict) or len(value) != 1:
            raise BadInput(f"value {value!r} for union '{path}' must name exactly one member")
        (member, v), = value.items()
        if member not in self.index:
            raise BadInput(f"unknown member '{path}.{member}' of union")
        i = self.index[member]
        self.members[i][1].encode(buf, off, v, f"{path}.{member}")
        if self.tag_name is not None:
            buf[off + self.body] = i

    def decode(self, buf, off: int) -> Any:
        tag = buf[off + self.body] if self.tag_name is not None else 0
        if tag >= len(self.members):
            return {self.tag_name: tag}
        name, t = self.members[tag]
        return {name: t.decode(buf, off)}


class Ref(Type):
    """A use of a named TypeDef: the C type name, the typedef's layout."""

    def __init__(self, name: str, target: Type, default: Any = None):
        self.name = name
        self.target = target
        self.size = target.size
        self.default = default

    def c_decl(self, name: str) -> str:
        return f"{self.name} {name}"

    def fill_defaults(self, buf: bytearray, off: int) -> None:
        self.target.fill_defaults(buf, off)
        super().fill_defaults(buf, off)

    def encode(self, buf: bytearray, off: int, value: Any, path: str) -> None:
        self.target.encode(buf, off, value, path)

    def decode(self, buf, off: int) -> Any:
        return self.target.decode(buf, off)


def _member_decl(name: str, t: Type) -> str:
    if isinstance(t, Union) and t.tag_name is not None:
        return f"{t.c_decl(name)};\nuint8_t {t.tag_name};\n"
    if isinstance(t, Array) and _innermost(t).__class__ is Union:
        return f"{_wrap_unions(t, name)};\n"
    return f"{t.c_decl(name)};\n"


def _innermost(t: Type) -> Type:
    while isinstance(t, Array):
        t = t.elem
    return t


def _wrap_unions(t: Type, name: str) -> str:
    if isinstance(t, Array):
        return _wrap_unions(t.elem, f"{name}[{t.length}]")
    return t.c_wrapped(name)


def typedef_decl(name: str, t: Type) -> str:
    """C typedef for a v3 TypeDef."""
    if isinstance(t, Union):
        return f"typedef {t.c_wrapped(name)};\n"
    return f"typedef {t.c_decl(name)};\n"


class Layout:
    """A properties/state/message block: its type, C name and default image."""

    def __init__(self, ctype: str, spec: Tuple | None):
        self.ctype = ctype
        self.spec = spec or Tuple([])
        self.size = self.spec.size
        image = bytearray(self.size)
        self.spec.fill_defaults(image, 0)
        self.default = bytes(image)

    def c_struct(self) -> str:
        return f"typedef struct {{\n{self.spec.c_body()}}} {self.ctype};\n"

    def pack(self, value: Any) -> bytes:
        """Bytes of `value` laid over the defaults.  Raises BadInput."""
        spec = self.spec
        if spec.flat and isinstance(value, dict):
            return self._pack_flat(value)
        buf = bytearray(self.default)
        spec.encode(buf, 0, value, "")
        return bytes(buf)

    def _pack_flat(self, value: dict) -> bytes:
        spec = self.spec
        vals = list(spec.struct.unpack(self.default))
        index = spec.index
        try:
            for k, v in value.items():
                vals[index[k]] = v
            return spec.struct.pack(*vals)
        except (KeyError, struct.error, OverflowError, TypeError):
            buf = bytearray(self.default)        # slow path names the culprit
            spec.encode(buf, 0, value, "")
            return bytes(buf)

    def unpack(self, buf, off: int = 0) -> dict:
        return self.spec.decode(buf, off)

    def description(self) -> str:
        """The layout as the C instance reader decodes values into it
        (core/value_layout.hpp): one node a line, children before their
        parents, the root last; offsets and sizes are this module's, so the
        layout rules live here only.
            S <size> <code>                    scalar (struct code; 'c' = char)
            A <size> <length> <elem>           array of node <elem>
            T <size> <n> {<offset> <node> <name>}   tuple
            U <size> <tag offset|-1> <n> {<node> <name>}   union"""
        lines: list[str] = []
        _describe(self.spec, lines, {})
        return "\n".join(lines) + "\n"


def _describe(t: Type, lines: list[str], seen: dict[int, int]) -> int:
    """Append t's node (after its children's) to lines; its index."""
    while isinstance(t, Ref):
        t = t.target
    if id(t) in seen:
        return seen[id(t)]
    if isinstance(t, Scalar):
        line = f"S {t.size} {'c' if t.kind == 'char' else SCALARS[t.kind]}"
    elif isinstance(t, Array):
        line = f"A {t.size} {t.length} {_describe(t.elem, lines, seen)}"
    elif isinstance(t, Tuple):
        kids = [(t.offsets[n][0], _describe(m, lines, seen), n) for n, m in t.members]
        line = f"T {t.size} {len(kids)}" + "".join(f" {o} {k} {n}" for o, k, n in kids)
    else:
        kids = [(_describe(m, lines, seen), n) for n, m in t.members]
        tag = t.body if t.tag_name is not None else -1
        line = f"U {t.size} {tag} {len(kids)}" + "".join(f" {k} {n}" for k, n in kids)
    lines.append(line)
    seen[id(t)] = len(lines) - 1
    return len(lines) - 1
