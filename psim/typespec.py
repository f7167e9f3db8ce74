"""Reading type declarations and values as each graph-schema version writes them.

v2/v3: `<Scalar>`, `<Array>`, `<Tuple>`, `<Union>` elements (v3 `<TypeDef>`s),
       values as JSON without the outer braces.
v4:    C declarations in CDATA (parsed with pycparser), values as C
       initialiser lists.
"""
from __future__ import annotations

import re
from typing import Any

import orjson
from pycparser import c_ast, c_parser

from .errors import BadInput
from .typed import SCALARS, Array, Ref, Scalar, Tuple, Type, Union

# --------------------------------------------------------------------------
# JSON values (v2, v3)


def json_value(text: str | None) -> dict:
    """`"a": 1, "b": [2]` (JSON without the outer braces) -> dict."""
    if text is None or not text.strip():
        return {}
    try:
        return orjson.loads("{" + text + "}")
    except orjson.JSONDecodeError as e:
        raise BadInput(f"malformed value {_clip(text)}: {e}") from None


def json_default(text: str, t: Type) -> Any:
    """A `default` attribute or `<Default>` element, read the way the v3
    schema describes: dense arrays start with '[', sparse ones with '{' or a
    key, tuples and unions are members without braces, scalars are bare."""
    s = text.strip()
    base = t.target if isinstance(t, Ref) else t
    try:
        if isinstance(base, (Tuple, Union)) or (isinstance(base, Array) and s[:1] not in "[{\""):
            return orjson.loads(s if s.startswith("{") else "{" + s + "}")
        if isinstance(base, Array) and s.startswith('"') and ":" in s:
            return orjson.loads("{" + s + "}")
        return orjson.loads(s)
    except orjson.JSONDecodeError:
        if isinstance(base, Array):
            return s                       # a char array's default is its text
        raise BadInput(f"malformed default {_clip(s)}") from None


def _clip(s: str) -> str:
    s = " ".join(s.split())
    return repr(s if len(s) < 60 else s[:57] + "...")


# --------------------------------------------------------------------------
# XML type elements (v2, v3)


def xml_members(parent, ns: str, typedefs: dict[str, Type]) -> list[tuple[str, Type]]:
    """The typed-data members declared under `parent`."""
    members = []
    for el in parent:
        local = _local(el.tag)
        if local in ("Scalar", "Array", "Tuple", "Union"):
            members.append(xml_member(el, ns, typedefs))
    return members


def xml_member(el, ns: str, typedefs: dict[str, Type]) -> tuple[str, Type]:
    local = _local(el.tag)
    name = el.get("name")
    try:
        if name is None:
            raise BadInput(f"<{local}> has no name")
        t = _xml_type(el, local, name, ns, typedefs)
        dflt = el.get("default")
        dflt_el = el.find(ns + "Default")
        if dflt_el is not None:
            dflt = dflt_el.text or ""
        if dflt is not None and dflt.strip():
            t.default = json_default(dflt, t)
            probe = bytearray(t.size)      # check the default fits now, with a line number
            t.encode(probe, 0, t.default, name)
        return name, t
    except BadInput as e:
        raise e.located(line=el.sourceline) from None


def _xml_type(el, local: str, name: str, ns: str, typedefs: dict[str, Type]) -> Type:
    if local == "Scalar":
        return _named_type(el.get("type"), typedefs)
    if local == "Array":
        length = _int_attr(el, "length")
        if el.get("type"):
            elem = _named_type(el.get("type"), typedefs)
        else:
            inner = xml_members(el, ns, typedefs)
            if len(inner) != 1:
                raise BadInput(f"array '{name}' needs a type attribute or one member element")
            elem = inner[0][1]
        return Array(elem, length)
    members = xml_members(el, ns, typedefs)
    if not members:
        raise BadInput(f"<{local} name='{name}'> has no members")
    if local == "Tuple":
        return Tuple(members)
    return Union(members, el.get("tagName") or f"{name}_tag")


def _named_type(type_name: str | None, typedefs: dict[str, Type]) -> Type:
    if type_name in SCALARS:
        return Scalar(type_name)
    if type_name in typedefs:
        t = typedefs[type_name]
        return Ref(type_name, t)
    raise BadInput(f"unknown type '{type_name}'")


def _int_attr(el, attr: str) -> int:
    try:
        return int(el.get(attr))
    except (TypeError, ValueError):
        raise BadInput(f"attribute {attr}={el.get(attr)!r} is not an integer") from None


def _local(tag) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


# --------------------------------------------------------------------------
# C declarations (v4)

_C_SCALARS = {
    "char": "char", "signed char": "int8_t", "unsigned char": "uint8_t",
    "short": "int16_t", "short int": "int16_t", "unsigned short": "uint16_t",
    "unsigned short int": "uint16_t", "int": "int32_t", "signed": "int32_t",
    "signed int": "int32_t", "unsigned": "uint32_t", "unsigned int": "uint32_t",
    "long": "int64_t", "long int": "int64_t", "unsigned long": "uint64_t",
    "long long": "int64_t", "unsigned long long": "uint64_t",
    "float": "float", "double": "double", "bool": "bool", "_Bool": "bool",
}
_C_PREAMBLE = "".join(f"typedef int {n};\n" for n in SCALARS if n not in ("char", "float", "double", "bool"))
_C_PREAMBLE += "typedef int bool;\n"
_PREAMBLE_LINES = _C_PREAMBLE.count("\n") + 1
_COMMENTS = re.compile(r"//[^\n]*|/\*.*?\*/", re.S)


def c_members(text: str | None) -> list[tuple[str, Type]]:
    """`uint32_t a; int8_t x[4]; struct { ... } s;` -> members.  Raises BadInput
    with `line` relative to the start of `text` (1-based)."""
    if text is None or not text.strip():
        return []
    src = _COMMENTS.sub(lambda m: "\n" * m.group().count("\n"), text)
    try:
        ast = c_parser.CParser().parse(_C_PREAMBLE + "struct __pstack_block {\n" + src + "\n};", "decl")
    except Exception as e:   # pycparser: "decl:line:col: msg", or no line at all
        m = re.match(r"decl:(\d+):(?:\d+:)?\s*(.*)", str(e))
        if m:
            raise BadInput(f"cannot read C declaration: {m.group(2)}",
                           line=max(1, int(m.group(1)) - _PREAMBLE_LINES)) from None
        raise _unknown_type(src) or BadInput(f"cannot read C declaration: {e}") from None
    block = ast.ext[-1].type
    return [_c_decl(d) for d in (block.decls or [])]


_C_WORDS = set(SCALARS) | {w for k in _C_SCALARS for w in k.split()} | {"struct", "union", "const"}


def _unknown_type(src: str) -> BadInput | None:
    """pycparser reports an unknown type name without a line: find it."""
    for n, line in enumerate(src.splitlines(), 1):
        m = re.match(r"\s*([A-Za-z_]\w*)", line)
        if m and m.group(1) not in _C_WORDS:
            return BadInput(f"unknown type '{m.group(1)}' in C declaration", line=n)
    return None


def _c_decl(d) -> tuple[str, Type]:
    try:
        return d.name, _c_type(d.type, d.name)
    except BadInput as e:
        line = d.coord.line - _PREAMBLE_LINES if d.coord else None
        raise e.located(line=line) from None


def _c_type(node, name: str) -> Type:
    if isinstance(node, c_ast.ArrayDecl):
        dim = node.dim
        if not isinstance(dim, c_ast.Constant):
            raise BadInput(f"array '{name}' needs a constant length")
        return Array(_c_type(node.type, name), int(dim.value.rstrip("uUlL"), 0))
    if isinstance(node, c_ast.TypeDecl):
        inner = node.type
        if isinstance(inner, c_ast.IdentifierType):
            words = " ".join(inner.names)
            kind = words if words in SCALARS else _C_SCALARS.get(words)
            if kind is None:
                raise BadInput(f"unknown type '{words}' for '{name}'")
            return Scalar(kind)
        if isinstance(inner, (c_ast.Struct, c_ast.Union)) and inner.decls:
            members = [_c_decl(d) for d in inner.decls]
            return Tuple(members) if isinstance(inner, c_ast.Struct) else Union(members, None)
    raise BadInput(f"unsupported declaration of '{name}'")


# --------------------------------------------------------------------------
# C initialiser lists (v4)

_INIT_TOKEN = re.compile(r"\s*(?:([{},])|('(?:\\.|[^'])*')|([^\s{},]+))")


def c_value(text: str | None) -> Any:
    """`{4,{1,2}, -3.5f}` -> [4, [1, 2], -3.5].  Missing trailing members stay
    at their defaults."""
    if text is None or not text.strip():
        return []
    stack: list[list] = []
    top: list | None = None
    pos, end = 0, len(text.rstrip())
    while pos < end:
        m = _INIT_TOKEN.match(text, pos)
        if not m:
            raise BadInput(f"malformed initialiser {_clip(text)} near {_clip(text[pos:pos + 12])}")
        pos = m.end()
        punct, char, atom = m.groups()
        if punct == "{":
            new: list = []
            if top is not None:
                top.append(new)
            stack.append(new)
            top = new
        elif punct == "}":
            if not stack:
                raise BadInput(f"unbalanced '}}' in initialiser {_clip(text)}")
            done = stack.pop()
            top = stack[-1] if stack else None
            if top is None:
                if text[pos:].strip():
                    raise BadInput(f"text after initialiser {_clip(text)}")
                return done
        elif punct == ",":
            continue
        elif top is None:
            return _c_atom(char or atom, text)    # a bare scalar
        else:
            top.append(_c_atom(char or atom, text))
    raise BadInput(f"unbalanced '{{' in initialiser {_clip(text)}")


def _c_atom(tok: str, text: str) -> Any:
    if tok.startswith("'"):
        body = tok[1:-1]
        return ord(body.encode().decode("unicode_escape"))
    if tok in ("true", "false"):
        return int(tok == "true")
    t = tok.rstrip("uUlL")
    try:
        return int(t, 0)
    except ValueError:
        pass
    try:
        return float(t.rstrip("fF") if not t.lower().startswith(("0x", "-0x")) else t)
    except ValueError:
        raise BadInput(f"'{tok}' in initialiser {_clip(text)} is not a number") from None
