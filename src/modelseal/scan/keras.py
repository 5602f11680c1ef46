"""Keras model configs: Lambda bytecode, foreign modules and loader gadgets (scanning.md §2.2 #13).

A Keras v3 ``.keras`` file is a zip whose ``config.json`` is the serialized model; a legacy
``.h5`` file keeps the same JSON in its ``model_config`` attribute. :func:`check_keras_config`
walks the *whole* JSON tree (nested Functional/Sequential models included, where modelscan
only looks at top-level layers) and reports:

- ``keras.lambda-layer`` (dangerous): a ``Lambda`` layer: marshalled Python bytecode
  (CVE-2024-3660; ignored ``safe_mode`` in ``.h5``, CVE-2025-9905).
- ``keras.lambda-function`` (dangerous): a ``__lambda__`` function dict or a Keras 2
  ``function_type: "lambda"``: the bytecode itself, wherever it sits.
- ``keras.foreign-module`` (dangerous): a ``module``/``registered_name``/function path in a
  deny-listed module (``os``, ``subprocess``, ``builtins``…): arbitrary import (CVE-2025-1550).
- ``keras.unknown-module`` (suspicious): any other module outside Keras' own packages.
- ``keras.gadget`` (dangerous): ``enable_unsafe_deserialization`` (CVE-2025-9906), ``get_file``
  (CVE-2025-8747), ``load_model`` or ``TFSMLayer`` named as a class or function.
- ``keras.tf-op-lambda`` (suspicious): Keras 2 ``TFOpLambda``/``SlicingOpLambda``, which call a
  TensorFlow function named in the config.
- ``keras.bad-config`` (malformed): not JSON, too large or too deep.

:class:`KerasH5Scanner` never links an HDF5 library against untrusted bytes: it reads at most the
first 64 MiB and decodes the JSON objects that start with ``{"class_name"`` or ``{"module"``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from modelseal.scan.interface import ScanContext, Scanner
from modelseal.scan.model import Finding, Location, Severity, Verdict

MAX_CONFIG = 64 << 20  # bytes of JSON we are willing to parse
H5_SCAN_BYTES = 64 << 20  # bytes of an HDF5 file searched for configs
MAX_FINDINGS = 1000
H5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_CANDIDATES = (b'{"class_name"', b'{"module"')

KERAS_PACKAGES = frozenset({"keras", "keras_hub", "keras_nlp", "keras_cv", "keras_rs", "tf_keras"})
DENIED_MODULES = frozenset(
    {
        "os", "posix", "nt", "posixpath", "ntpath", "subprocess", "_posixsubprocess", "builtins",
        "__builtin__", "sys", "shutil", "socket", "pty", "runpy", "importlib", "pickle",
        "_pickle", "marshal", "ctypes", "_ctypes", "webbrowser", "code", "codeop", "pdb",
        "bdb", "timeit", "cProfile", "profile", "trace", "pydoc", "pkgutil", "multiprocessing",
        "asyncio", "types", "tempfile", "pathlib", "io", "_io", "glob", "signal", "dill",
        "cloudpickle", "joblib", "urllib", "http", "requests", "ftplib", "smtplib", "telnetlib",
        "imaplib", "xmlrpc", "zipimport", "site", "ensurepip", "pip", "setuptools",
        "distutils", "platform", "uuid", "operator", "functools", "torch", "numpy",
    }
)  # fmt: skip
GADGETS = frozenset({"enable_unsafe_deserialization", "get_file", "load_model", "TFSMLayer"})
TF_OP_LAMBDAS = frozenset({"TFOpLambda", "SlicingOpLambda"})
_GADGET_KEYS = ("class_name", "module", "registered_name", "function", "config")
_SPLIT = re.compile(r"[.>:]")


@dataclass(frozen=True, slots=True)
class _Path:
    """A JSON path kept as a parent link, turned into text only for a finding."""

    parent: _Path | None
    token: str

    def text(self) -> str:
        tokens: list[str] = []
        node: _Path | None = self
        while node is not None:
            tokens.append(node.token)
            node = node.parent
        return "".join(reversed(tokens))


def _top(module: str) -> str:
    return module.split(".", 1)[0]


def _is_keras(module: str) -> bool:
    return _top(module) in KERAS_PACKAGES


def _last(name: str) -> str:
    return _SPLIT.split(name)[-1]


class _Walker:
    def __init__(self, member: str | None, offset: int | None) -> None:
        self.findings: list[Finding] = []
        self.where = Location(member, offset)

    def add(self, rule: str, verdict: Verdict, message: str, symbol: str, path: _Path) -> None:
        if len(self.findings) >= MAX_FINDINGS:
            return
        severity = Severity.CRITICAL if verdict is Verdict.DANGEROUS else Severity.MEDIUM
        line = f"{message} at {path.text()[:300]}"
        self.findings.append(Finding(rule, verdict, severity, line, symbol[:200], self.where))

    def walk(self, root: Any) -> None:
        stack: list[tuple[Any, _Path]] = [(root, _Path(None, "$"))]
        while stack and len(self.findings) < MAX_FINDINGS:
            node, path = stack.pop()
            if isinstance(node, dict):
                self.check_dict(node, path)
                children: Iterator[tuple[str, Any]] = (
                    (f".{key}", value) for key, value in node.items()
                )
            elif isinstance(node, list):
                children = ((f"[{index}]", value) for index, value in enumerate(node))
            else:
                continue
            for token, value in children:
                if isinstance(value, (dict, list)):
                    stack.append((value, _Path(path, token)))

    def check_dict(self, node: dict[str, Any], path: _Path) -> None:
        cls = node.get("class_name")
        cls = cls if isinstance(cls, str) else ""
        if cls == "Lambda" or cls.endswith(".Lambda"):
            self.add("keras.lambda-layer", Verdict.DANGEROUS, "Lambda layer", cls, path)
        if cls == "__lambda__" or "__lambda__" in node or node.get("function_type") == "lambda":
            message = "marshalled Python lambda (runs on load)"
            self.add("keras.lambda-function", Verdict.DANGEROUS, message, "__lambda__", path)
        if cls in TF_OP_LAMBDAS:
            function = node.get("config", {})
            target = function.get("function") if isinstance(function, dict) else None
            symbol = f"{cls}:{target}" if isinstance(target, str) else cls
            message = "TFOpLambda calls a TensorFlow function named in the config"
            self.add("keras.tf-op-lambda", Verdict.SUSPICIOUS, message, symbol, path)
        self.check_module(node, cls, path)
        for key in _GADGET_KEYS:
            value = node.get(key)
            if isinstance(value, str) and _last(value) in GADGETS:
                message = f"loader gadget {_last(value)!r} named in {key!r}"
                self.add("keras.gadget", Verdict.DANGEROUS, message, value, path)
                break

    def check_module(self, node: dict[str, Any], cls: str, path: _Path) -> None:
        module = node.get("module")
        registered = node.get("registered_name")
        config = node.get("config")
        targets: list[tuple[str, str]] = []  # (module, symbol shown)
        if isinstance(module, str):
            name = config if cls == "function" and isinstance(config, str) else cls
            targets.append((module, f"{module}.{name}" if name else module))
        elif "." in cls:
            targets.append((cls.rsplit(".", 1)[0], cls))
        if isinstance(registered, str):
            if ">" in registered:
                targets.append((registered.split(">", 1)[0], registered))
            elif "." in registered:
                targets.append((registered.rsplit(".", 1)[0], registered))
        for target, symbol in targets:
            if _is_keras(target):
                continue
            if _top(target) in DENIED_MODULES:
                message = f"config imports from module {target[:100]!r}"
                self.add("keras.foreign-module", Verdict.DANGEROUS, message, symbol, path)
            else:
                message = f"module {target[:100]!r} is not part of Keras"
                self.add("keras.unknown-module", Verdict.SUSPICIOUS, message, symbol, path)
            return  # one module finding per object


def _bad_config(message: str, member: str | None, offset: int | None) -> Finding:
    return Finding(
        "keras.bad-config", Verdict.MALFORMED, Severity.MEDIUM, message, None,
        Location(member, offset),
    )  # fmt: skip


def check_tree(tree: Any, member: str | None = None, offset: int | None = None) -> list[Finding]:
    """Findings for an already decoded Keras config tree."""
    walker = _Walker(member, offset)
    walker.walk(tree)
    return walker.findings


def check_keras_config(
    data: bytes, member: str | None = None, *, offset: int | None = None
) -> list[Finding]:
    """Findings for a Keras ``config.json`` / ``model_config`` JSON document."""
    if len(data) > MAX_CONFIG:
        return [_bad_config(f"Keras config larger than {MAX_CONFIG} bytes", member, offset)]
    try:
        tree = json.loads(data)
    except RecursionError:
        return [_bad_config("Keras config nested too deeply", member, offset)]
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        return [_bad_config(f"Keras config is not valid JSON: {exc}"[:300], member, offset)]
    return check_tree(tree, member, offset)


class KerasConfigScanner(Scanner):
    """A Keras ``config.json`` on its own (a ``.keras`` zip member)."""

    format = "keras-config"

    def scan(self, stream: BinaryIO, size: int, ctx: ScanContext) -> list[Finding]:
        if size > MAX_CONFIG:
            return [_bad_config(f"Keras config larger than {MAX_CONFIG} bytes", None, None)]
        return check_keras_config(stream.read(size))


def find_configs(buf: bytes, budget: int) -> tuple[list[tuple[int, Any]], bool]:
    """JSON objects in ``buf`` that start like a Keras config: ([(offset, tree)], complete).

    ``complete`` is False when the decoding work exceeded ``budget`` characters (a file built
    to make every candidate parse far and then fail).
    """
    text = buf.decode("latin-1")  # one char per byte: offsets stay byte offsets
    decoder = json.JSONDecoder()
    found: list[tuple[int, Any]] = []
    pos = 0
    while True:
        hits = [hit for hit in (buf.find(c, pos) for c in _CANDIDATES) if hit >= 0]
        if not hits:
            return found, True
        start = min(hits)
        try:
            tree, end = decoder.raw_decode(text, start)
        except json.JSONDecodeError as exc:
            budget -= max(exc.pos - start, 1)
            pos = start + 1
        except (RecursionError, ValueError):  # too deep; an int over the digit limit
            budget -= len(text) - start
            pos = start + 1
        else:
            budget -= end - start
            found.append((start, tree))
            pos = end
        if budget < 0:
            return found, False


class KerasH5Scanner(Scanner):
    """Legacy Keras ``.h5``: the ``model_config``/``training_config`` JSON in the first 64 MiB."""

    format = "hdf5"

    def scan(self, stream: BinaryIO, size: int, ctx: ScanContext) -> list[Finding]:
        buf = stream.read(min(size, H5_SCAN_BYTES))
        if not buf.startswith(H5_SIGNATURE):
            return [
                Finding(
                    "keras.bad-hdf5", Verdict.MALFORMED, Severity.MEDIUM,
                    "no HDF5 signature at offset 0", None, Location(offset=0),
                )
            ]  # fmt: skip
        configs, complete = find_configs(buf, 2 * len(buf) + (1 << 20))
        findings: list[Finding] = []
        for offset, tree in configs:
            findings.extend(check_tree(tree, None, offset))
        if not complete:
            findings.append(
                Finding(
                    "keras.h5-scan-limit", Verdict.MALFORMED, Severity.MEDIUM,
                    "too many unterminated JSON candidates: the search for Keras configs stopped",
                    None, Location(offset=0),
                )
            )  # fmt: skip
        return findings[:MAX_FINDINGS]


__all__ = [
    "DENIED_MODULES",
    "GADGETS",
    "KerasConfigScanner",
    "KerasH5Scanner",
    "check_keras_config",
    "check_tree",
    "find_configs",
]
