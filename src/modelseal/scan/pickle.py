"""The pickle scanner: an opcode stream run on a symbolic stack and memo, never unpickled.

What it follows, for every pickle in the stream (several may be concatenated):

- imports: GLOBAL, STACK_GLOBAL (operands resolved through the memo; an operand that is not a
  literal string is ``dangerous``: the scanner cannot know what it names), INST;
  classified by :mod:`modelseal.scan.pickle_rules`;
- calls: REDUCE, OBJ, INST, NEWOBJ, NEWOBJ_EX, and BUILD on an imported object itself;
- extension-registry opcodes (EXT1/2/4: an import whose target the file does not name);
- structure: invalid opcodes, truncation, missing memo keys, stack underflow, misplaced PROTO,
  unknown protocols, trailing bytes, and FRAMEs whose declared length does not end on an opcode
  boundary (CPython's C unpickler and ``pickletools`` read different opcodes there).

A stream that breaks after a dangerous import is reported as both: what came before the break is
kept. Two container conventions are understood so their raw data is skipped, not misread:
legacy ``torch.save`` files (five pickles, then storage bytes) and joblib files (array bytes
right after each ``NumpyArrayWrapper``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import BinaryIO

from modelseal.formats import FormatError
from modelseal.formats.pickle import Big, Op, PickleReader
from modelseal.scan.interface import ScanContext, Scanner
from modelseal.scan.model import Finding, Location, Severity, Verdict
from modelseal.scan.pickle_rules import classify_global

TORCH_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
MAX_STACK = 100_000
MAX_MEMO = 1_000_000
MAX_CONTAINER_ITEMS = 256  # items kept per symbolic list/dict (enough for joblib state)
MAX_FINDINGS = 200
MAX_NESTED_PICKLES = 64


class _Mark:
    def __repr__(self) -> str:
        return "MARK"


MARK = _Mark()


class Global:
    """The result of an import opcode."""

    __slots__ = ("module", "name")

    def __init__(self, module: str, name: str) -> None:
        self.module = module
        self.name = name

    @property
    def dotted(self) -> str:
        return f"{self.module}.{self.name}"


class Call:
    """The result of a call opcode (REDUCE, OBJ, INST, NEWOBJ…) and any state BUILD gave it."""

    __slots__ = ("args", "func", "state")

    def __init__(self, func: object, args: object) -> None:
        self.func = func
        self.args = args
        self.state: object = None


class Container:
    """A list, dict or set under construction (its first items only)."""

    __slots__ = ("items", "kind")

    def __init__(self, kind: str, items: list[object] | None = None) -> None:
        self.kind = kind
        self.items: list[object] = items if items is not None else []


class Opaque:
    """A value the scanner does not track (persistent ids, extension objects, buffers)."""


class _Stop(Exception):
    """Internal: the current pickle cannot be followed any further."""


_DESCR = re.compile(r"^[<>|=]?([a-zA-Z])(\d*)$")
_ITEMSIZE = {"b": 1, "B": 1, "?": 1, "h": 2, "H": 2, "e": 2, "i": 4, "I": 4, "f": 4, "l": 8}
_ITEMSIZE.update({"L": 8, "q": 8, "Q": 8, "d": 8, "g": 16, "F": 8, "D": 16, "G": 32})


def _itemsize(descr: str) -> int | None:
    """Bytes per element of a simple numpy dtype string (``'f8'``, ``'<i4'``, ``'U10'``)."""
    match = _DESCR.match(descr)
    if not match:
        return None
    kind, digits = match.groups()
    if kind == "O":
        return 0
    if digits:
        n = int(digits)
        return n * 4 if kind == "U" else n
    return _ITEMSIZE.get(kind)


class _Machine:
    """Runs one stream of pickles symbolically and collects findings."""

    def __init__(self, reader: PickleReader, origin: int) -> None:
        self.r = reader
        self.origin = origin  # absolute offset of the stream start (for locations)
        self.findings: list[Finding] = []
        self.seen: set[tuple[str, str]] = set()
        self.index = 0  # opcode index across the whole stream
        self.pickles = 0

    # -- findings -----------------------------------------------------------------------

    def add(
        self,
        rule: str,
        verdict: Verdict,
        severity: Severity,
        message: str,
        symbol: str | None,
        op: Op | None,
        offset: int | None = None,
    ) -> None:
        key = (rule, symbol or message)
        if key in self.seen or len(self.findings) >= MAX_FINDINGS:
            return
        self.seen.add(key)
        where = offset if offset is not None else (op.pos if op else self.r.position)
        location = Location(offset=where - self.origin, index=self.index - 1 if op else None)
        self.findings.append(Finding(rule, verdict, severity, message, symbol, location))

    def malformed(self, message: str, op: Op | None = None, offset: int | None = None) -> None:
        self.add("pickle.malformed", Verdict.MALFORMED, Severity.HIGH, message, None, op, offset)

    # -- driving ------------------------------------------------------------------------

    def run(self) -> None:
        legacy_torch = False
        while not self.r.at_end():
            if self.pickles >= MAX_NESTED_PICKLES and not legacy_torch:
                self.malformed(f"more than {MAX_NESTED_PICKLES} pickles in one stream")
                return
            start = self.r.position
            try:
                value = self.run_one()
            except _Stop:
                return
            self.pickles += 1
            if self.pickles == 1 and value == TORCH_LEGACY_MAGIC:
                legacy_torch = True
            if legacy_torch and self.pickles == 5:
                return  # the rest is raw storage data, read by offset, never unpickled
            if self.pickles > 1 and not legacy_torch and self.r.position == start:
                return
        if legacy_torch and self.pickles < 5:
            self.malformed(f"legacy torch file ends after {self.pickles} of 5 pickles")

    def run_one(self) -> object:
        """One pickle from PROTO (or first opcode) to STOP; returns the top value at STOP."""
        stack: list[object] = []
        memo: dict[int, object] = {}
        first = True
        reader = self.r
        next_op = reader.next_op
        push_arg = _PUSH_ARG
        push_new = _PUSH_NEW
        while True:
            try:
                op = next_op()
            except FormatError as exc:
                if first and self.pickles > 0:
                    self.malformed(
                        f"{exc.message} in data after the end of pickle #{self.pickles}",
                        offset=exc.offset,
                    )
                else:
                    self.malformed(f"{exc.message} (stream broken: nothing after it is read)",
                                   offset=exc.offset)  # fmt: skip
                raise _Stop from exc
            self.index += 1
            name = op.name
            frame_end = reader.frame_end
            if frame_end is None or op.end < frame_end:
                # fast paths for the opcodes that make up most of any pickle
                if name == "MEMOIZE" and stack:
                    memo[len(memo)] = stack[-1]
                    first = False
                    continue
                if name in push_arg:
                    stack.append(op.arg)
                    first = False
                    continue
                if name == "MARK":
                    stack.append(MARK)
                    first = False
                    continue
                factory = push_new.get(name)
                if factory is not None:
                    stack.append(factory(op.arg))
                    first = False
                    continue
            else:
                self.check_frame(op)
            try:
                done = self.step(op, stack, memo, first)
            except IndexError:
                self.malformed(f"stack underflow at {op.name}", op)
                raise _Stop from None
            except FormatError as exc:
                self.malformed(exc.message, op, offset=exc.offset)
                raise _Stop from exc
            first = False
            if done:
                return stack[-1] if stack else None
            if len(stack) > MAX_STACK or len(memo) > MAX_MEMO:
                self.add("pickle.resource-limit", Verdict.MALFORMED, Severity.MEDIUM,
                         "stack or memo exceeds the scanner's limits", None, op)  # fmt: skip
                raise _Stop

    def check_frame(self, op: Op) -> None:
        frame_end = self.r.frame_end
        assert frame_end is not None
        if op.pos < frame_end < op.end:
            self.add(
                "pickle.frame-straddle",
                Verdict.DANGEROUS,
                Severity.CRITICAL,
                f"{op.name} at offset {op.pos - self.origin} straddles the end of a FRAME: "
                "CPython's C unpickler and pickletools-based scanners read different opcodes",
                "FRAME",
                op,
            )
        if op.end >= frame_end:
            self.r.frame_end = None

    # -- opcodes ------------------------------------------------------------------------

    def step(self, op: Op, stack: list[object], memo: dict[int, object], first: bool) -> bool:
        name, arg = op.name, op.arg
        if name in _PUSH_ARG:
            stack.append(arg)
            return False
        if name in _MEMO_PUT:
            memo[len(memo) if name == "MEMOIZE" else _as_index(arg)] = stack[-1]
            return False
        factory = _PUSH_NEW.get(name)
        if factory is not None:
            stack.append(factory(arg))
            return False
        if name == "STOP":
            if len(stack) != 1:
                self.malformed(f"STOP with {len(stack)} values on the stack", op)
            return True
        if name == "MARK":
            stack.append(MARK)
        elif name == "POP":
            stack.pop()
        elif name == "POP_MARK":
            self.pop_mark(stack, op)
        elif name == "DUP":
            stack.append(stack[-1])
        elif name in ("GET", "BINGET", "LONG_BINGET"):
            key = _as_index(arg)
            if key not in memo:
                self.malformed(f"{name} of memo key {key} that was never stored", op)
                raise _Stop
            stack.append(memo[key])
        elif name == "PROTO":
            if not first:
                self.add("pickle.misplaced-proto", Verdict.SUSPICIOUS, Severity.LOW,
                         "PROTO opcode inside a pickle (a crafted stream)", None, op)  # fmt: skip
            if not isinstance(arg, int) or arg > 5:
                self.malformed(f"unknown pickle protocol {arg}", op)
                raise _Stop
        elif name == "FRAME":
            self.frame(op)
        elif name in ("TUPLE", "LIST", "DICT", "FROZENSET"):
            items = self.pop_mark(stack, op)
            stack.append(_build(name, items))
        elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
            n = int(name[-1])
            items = stack[-n:]
            if len(items) != n or any(i is MARK for i in items):
                raise IndexError
            del stack[-n:]
            stack.append(tuple(items))
        elif name in ("APPEND", "APPENDS", "SETITEM", "SETITEMS", "ADDITEMS"):
            items = [stack.pop()] if name == "APPEND" else []
            if name == "SETITEM":
                items = [stack.pop(), stack.pop()][::-1]
            elif name in ("APPENDS", "SETITEMS", "ADDITEMS"):
                items = self.pop_mark(stack, op)
            target = stack[-1]
            if isinstance(target, Container) and len(target.items) < MAX_CONTAINER_ITEMS:
                target.items.extend(items[: MAX_CONTAINER_ITEMS - len(target.items)])
        elif name in ("GLOBAL", "INST"):
            module, attr = arg if isinstance(arg, tuple) else ("?", "?")
            target = self.import_(module, attr, op)
            if name == "INST":
                stack.append(Call(target, tuple(self.pop_mark(stack, op))))
            else:
                stack.append(target)
        elif name == "STACK_GLOBAL":
            attr, module = stack.pop(), stack.pop()
            if isinstance(module, str) and isinstance(attr, str):
                stack.append(self.import_(module, attr, op))
            else:
                shown = f"{_describe(module)}, {_describe(attr)}"
                self.add("pickle.unresolved-global", Verdict.DANGEROUS, Severity.CRITICAL,
                         "STACK_GLOBAL operands are not literal strings: the import cannot be "
                         "known without running the pickle", shown, op)  # fmt: skip
                stack.append(Opaque())
        elif name == "REDUCE":
            args = stack.pop()
            func = stack.pop()
            stack.append(self.call(func, args, op))
        elif name == "NEWOBJ":
            args = stack.pop()
            cls = stack.pop()
            stack.append(self.call(cls, args, op))
        elif name == "NEWOBJ_EX":
            kwargs = stack.pop()
            args = stack.pop()
            cls = stack.pop()
            stack.append(self.call(cls, (args, kwargs), op))
        elif name == "OBJ":
            items = self.pop_mark(stack, op)
            if not items:
                raise IndexError
            stack.append(self.call(items[0], tuple(items[1:]), op))
        elif name == "BUILD":
            state = stack.pop()
            self.build(stack[-1], state, op)
        elif name in ("EXT1", "EXT2", "EXT4"):
            self.add("pickle.extension-code", Verdict.SUSPICIOUS, Severity.MEDIUM,
                     f"{name} imports through the copyreg extension registry (code {arg}): "
                     "the file does not say what it loads", f"extension:{arg}", op)  # fmt: skip
            stack.append(Opaque())
        elif name == "BINPERSID":
            stack.pop()
            stack.append(Opaque())
        elif name == "PERSID":
            stack.append(Opaque())
        elif name == "READONLY_BUFFER":
            pass
        else:  # pragma: no cover - every opcode of protocols 0-5 is handled above
            self.malformed(f"unhandled opcode {name}", op)
            raise _Stop
        return False

    def pop_mark(self, stack: list[object], op: Op) -> list[object]:
        for i in range(len(stack) - 1, -1, -1):
            if stack[i] is MARK:
                items = stack[i + 1 :]
                del stack[i:]
                return items
        self.malformed(f"{op.name} without a MARK", op)
        raise _Stop

    def frame(self, op: Op) -> None:
        length = op.arg if isinstance(op.arg, int) else 0
        if self.r.frame_end is not None and op.pos < self.r.frame_end:
            self.add("pickle.nested-frame", Verdict.SUSPICIOUS, Severity.MEDIUM,
                     "a FRAME starts before the previous one ended", "FRAME", op)  # fmt: skip
        if op.end + length > self.r.limit:
            self.malformed(f"FRAME of {length} bytes runs past the end of the data", op)
            raise _Stop
        self.r.frame_end = op.end + length

    def import_(self, module: object, attr: object, op: Op) -> Global:
        module_s = module if isinstance(module, str) else _describe(module)
        attr_s = attr if isinstance(attr, str) else _describe(attr)
        target = Global(module_s, attr_s)
        verdict, reason = classify_global(module_s, attr_s)
        if verdict is Verdict.DANGEROUS:
            self.add("pickle.dangerous-global", Verdict.DANGEROUS, Severity.CRITICAL,
                     f"imports {target.dotted}: {reason}", target.dotted, op)  # fmt: skip
        elif verdict is Verdict.SUSPICIOUS:
            self.add("pickle.unknown-global", Verdict.SUSPICIOUS, Severity.MEDIUM,
                     f"imports {target.dotted}: {reason}", target.dotted, op)  # fmt: skip
        return target

    def call(self, func: object, args: object, op: Op) -> Call:
        if not isinstance(func, Global | Call):
            self.add("pickle.opaque-call", Verdict.SUSPICIOUS, Severity.MEDIUM,
                     f"{op.name} calls a value the scanner cannot identify ({_describe(func)})",
                     _describe(func), op)  # fmt: skip
        return Call(func, args)

    def build(self, target: object, state: object, op: Op) -> None:
        if isinstance(target, Global):
            self.add("pickle.build-on-global", Verdict.SUSPICIOUS, Severity.HIGH,
                     f"BUILD sets state on the imported object {target.dotted} itself",
                     target.dotted, op)  # fmt: skip
            return
        if isinstance(target, Call):
            target.state = state
            cls = target.func
            if isinstance(cls, Global) and cls.name in ("NumpyArrayWrapper", "NDArrayWrapper"):
                self.joblib_array(state, op)

    def joblib_array(self, state: object, op: Op) -> None:
        """Skip the raw array bytes joblib writes right after a NumpyArrayWrapper."""
        fields = _dict_items(state)
        shape = fields.get("shape")
        dtype = fields.get("dtype")
        descr = None
        if isinstance(dtype, Call) and isinstance(dtype.args, tuple) and dtype.args:
            descr = dtype.args[0] if isinstance(dtype.args[0], str) else None
        size = _itemsize(descr) if descr else None
        if (
            not isinstance(shape, tuple)
            or not all(isinstance(n, int) and n >= 0 for n in shape)
            or size is None
        ):
            self.malformed("joblib array of unknown shape or dtype: the bytes after it cannot "
                           "be located", op)  # fmt: skip
            raise _Stop
        if size == 0:  # object array: a complete nested pickle follows
            self.run_one()
            return
        if fields.get("numpy_array_alignment_bytes") is not None:
            pad = self.r.read(1)[0]
            self.r.skip(pad)
        count = 1
        for n in shape:
            count *= n
        self.r.skip(count * size)


_PUSH_ARG = frozenset(
    """INT BININT BININT1 BININT2 LONG LONG1 LONG4 FLOAT BINFLOAT UNICODE SHORT_BINUNICODE
    BINUNICODE BINUNICODE8 BINBYTES SHORT_BINBYTES BINBYTES8 BYTEARRAY8 STRING""".split()
)
_MEMO_PUT = frozenset({"PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"})
_PUSH_NEW: dict[str, Callable[[object], object]] = {
    "BINSTRING": lambda arg: arg.decode("latin-1") if isinstance(arg, bytes) else arg,
    "SHORT_BINSTRING": lambda arg: arg.decode("latin-1") if isinstance(arg, bytes) else arg,
    "NONE": lambda arg: None,
    "NEWTRUE": lambda arg: True,
    "NEWFALSE": lambda arg: False,
    "EMPTY_TUPLE": lambda arg: (),
    "EMPTY_LIST": lambda arg: Container("list"),
    "EMPTY_DICT": lambda arg: Container("dict"),
    "EMPTY_SET": lambda arg: Container("set"),
    "NEXT_BUFFER": lambda arg: Opaque(),
}


def _as_index(arg: object) -> int:
    if isinstance(arg, int):
        return arg
    if isinstance(arg, str) and arg.isdigit():
        return int(arg)
    return -1


def _build(name: str, items: list[object]) -> object:
    if name == "TUPLE":
        return tuple(items)
    kind = {"LIST": "list", "DICT": "dict", "FROZENSET": "set"}[name]
    return Container(kind, items[:MAX_CONTAINER_ITEMS])


def _dict_items(value: object) -> dict[str, object]:
    if isinstance(value, Container) and value.kind == "dict":
        items = value.items
        return {k: v for k, v in zip(items[::2], items[1::2], strict=False) if isinstance(k, str)}
    return {}


def _describe(value: object) -> str:
    if isinstance(value, str):
        return value[:80]
    if isinstance(value, Global):
        return value.dotted
    if isinstance(value, Call):
        return f"result of calling {_describe(value.func)}"
    if isinstance(value, Big):
        return f"<{value.length}-byte {value.kind}>"
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    return type(value).__name__


def scan_pickle_stream(stream: BinaryIO, size: int) -> list[Finding]:
    """Findings for a stream of one or more pickles of ``size`` bytes."""
    origin = stream.tell() if stream.seekable() else 0
    machine = _Machine(PickleReader(stream, size, base=origin), origin)
    try:
        machine.run()
    except FormatError as exc:
        machine.malformed(exc.message, offset=exc.offset)
    return machine.findings


class PickleScanner(Scanner):
    format = "pickle"

    def scan(self, stream: BinaryIO, size: int, ctx: ScanContext) -> list[Finding]:
        return scan_pickle_stream(stream, size)
