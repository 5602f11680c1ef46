"""Jinja2 AST walking for :mod:`modelseal.scan.templates` (imports jinja2: loaded on demand)."""

from __future__ import annotations

import re

import jinja2
from jinja2 import nodes
from jinja2.ext import Extension
from jinja2.parser import Parser

from modelseal.scan.templates import MAX_TEMPLATE, UNPARSABLE

MAX_MARKERS = 20

# Names that reach Python internals or the OS when a template is rendered unsandboxed, or that
# are classic SSTI globals (Flask's request/config). Attributes starting with "_" are all flagged.
DANGEROUS_NAMES = frozenset(
    {
        "os",
        "sys",
        "subprocess",
        "popen",
        "eval",
        "exec",
        "importlib",
        "builtins",
        "__builtins__",
        "__import__",
        "request",
        "config",
    }
)
DANGEROUS_ATTRS = DANGEROUS_NAMES | frozenset(
    {
        "mro",
        "system",
        "import_module",
        "globals",
        "func_globals",
        "f_globals",
        "f_locals",
        "f_back",
        "gi_frame",
        "gi_code",
        "cr_frame",
        "tb_frame",
        "co_code",
        "check_output",
        "getoutput",
        "load_module",
        "environ",
        "modules",
    }
)
DUNDERS = frozenset(
    {
        "__class__",
        "__globals__",
        "__subclasses__",
        "__builtins__",
        "__import__",
        "__mro__",
        "__base__",
        "__bases__",
        "__init__",
        "__dict__",
        "__getattribute__",
        "__code__",
        "__func__",
        "__self__",
        "__reduce__",
        "__reduce_ex__",
        "__loader__",
        "__spec__",
    }
)
GADGETS = frozenset({"cycler", "joiner", "namespace", "lipsum", "range", "dict", "self"})
_PRIVATE_CONTEXT = "_TemplateReference__context"
_DUNDER_STRING = re.compile(r"__\w+?__|" + _PRIVATE_CONTEXT)


class _Generation(Extension):
    """Parse-only ``{% generation %}…{% endgeneration %}`` (transformers' AssistantTracker)."""

    tags = {"generation"}  # noqa: RUF012 (jinja2's Extension API declares it a class attribute)

    def parse(self, parser: Parser) -> nodes.Node:
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return nodes.Scope(body, lineno=lineno)


# The extensions Hugging Face transformers enables for chat templates, so valid ones parse.
_ENV = jinja2.Environment(extensions=["jinja2.ext.loopcontrols", "jinja2.ext.do", _Generation])


def _attr_marker(attr: str, base: nodes.Node) -> tuple[str, str] | None:
    if attr.startswith("_") or attr in DANGEROUS_ATTRS:
        marker = f"{base.name}.{attr}" if isinstance(base, nodes.Name) else attr
        if isinstance(base, nodes.Name) and base.name in GADGETS and attr.startswith("_"):
            return marker, f"{marker} is a known Jinja2 sandbox-escape gadget"
        if attr.startswith("_"):
            return marker, f"access to the private/dunder attribute {attr} (sandbox escape)"
        return marker, f"access to {attr}, which reaches the OS or Python internals"
    return None


def _node_marker(node: nodes.Node) -> tuple[str, str] | None:
    if isinstance(node, nodes.Getattr):
        return _attr_marker(node.attr, node.node)
    if isinstance(node, nodes.Getitem):
        key = node.arg.value if isinstance(node.arg, nodes.Const) else None
        return _attr_marker(key, node.node) if isinstance(key, str) else None
    if isinstance(node, nodes.Name) and node.name in DANGEROUS_NAMES:
        return node.name, f"the name {node.name} reaches the OS, Python internals or app state"
    if isinstance(node, nodes.Const) and isinstance(node.value, str):
        for found in _DUNDER_STRING.finditer(node.value):
            name = found.group()
            if name in DUNDERS or name == _PRIVATE_CONTEXT:
                return name, f"the string {name!r} names an internal attribute (|attr escape)"
    if isinstance(node, nodes.Filter) and node.name == "attr" and node.node is not None:
        arg = node.args[0] if node.args else None
        if isinstance(arg, nodes.Const) and isinstance(arg.value, str):
            return _attr_marker(arg.value, node.node)
        return "|attr", "the attr filter with a computed attribute name"
    return None


def find_markers(text: str) -> list[tuple[str, str]]:
    """Sandbox-escape markers in a Jinja2 template, as (marker, explanation); [] when clean.

    The template is parsed, never compiled or rendered. A template Jinja2 cannot parse gives
    the single marker :data:`UNPARSABLE`, and so does one longer than :data:`MAX_TEMPLATE`.
    """
    if len(text) > MAX_TEMPLATE:
        return [(UNPARSABLE, f"{len(text)} characters: too large to check (cap {MAX_TEMPLATE})")]
    try:
        tree = _ENV.parse(text)
    except Exception as e:  # noqa: BLE001 (third-party parser fed attacker text: any failure)
        return [(UNPARSABLE, f"Jinja2 cannot parse it: {type(e).__name__}: {str(e)[:200]}")]
    found: dict[str, str] = {}
    stack: list[nodes.Node] = [tree]
    while stack and len(found) < MAX_MARKERS:
        node = stack.pop()
        hit = _node_marker(node)
        if hit is not None:
            found.setdefault(*hit)
        stack.extend(node.iter_child_nodes())
    return list(found.items())
