"""Model cards: YAML front matter, markdown sections, ``**Label:** value`` fields, placeholders.

>>> card = parse_card(b"---\\nlicense: mit\\n---\\n# My model\\n## Uses\\nSearch.\\n")
>>> card.metadata, card.find("uses").text, card.find("Uses").path
({'license': 'mit'}, 'Search.', ('My model', 'Uses'))

Any bytes give a :class:`Card`: what could not be read (binary junk, odd encodings, broken or
hostile YAML, oversized input) becomes a :class:`~modelseal.audit.model.Finding` on the card and
the parse goes on with what is left.

Conventions a reader of :attr:`Card.text` can rely on:

- line *n* of ``Card.text`` is line *n* of the file: the front matter lines are blank and HTML
  comments (``<!-- … -->``, where Hugging Face templates keep their guidance) are cut out with
  their newlines kept;
- every :attr:`Section.text` and :attr:`Section.full_text` is a substring of ``Card.text``;
- headings inside fenced code blocks (````` and ``~~~``) are not headings.

Placeholders (:func:`is_placeholder`): empty or punctuation-only text, ``[More Information
Needed]`` in any spelling, ``{{ … }}`` template leftovers, TODO/TBD/TBA/"coming soon", the Hugging
Face template's boilerplate sentences (the default Recommendations text, "Use the code below to
get started with the model.", the carbon-calculator sentence), links to ``#`` and field lines
whose value is one of those. ``N/A``, ``None`` and ``Unknown`` are answers, not placeholders: a
card that says "N/A" has said something.
"""

from __future__ import annotations

import base64
import codecs
import datetime
import functools
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped, unused-ignore]

from modelseal.audit.model import Citation, Evidence, Finding, Severity
from modelseal.errors import ReleaseError

MAX_CARD_BYTES = 5 * 1024 * 1024  # a card is parsed up to here
MAX_FRONT_MATTER_BYTES = 1024 * 1024
MAX_YAML_NODES = 100_000  # after alias expansion: a billion-laughs document is refused
MAX_YAML_DEPTH = 64
MAX_EXTRA_DOCS = 32

CARD_NAMES = ("readme.md", "model_card.md", "model-card.md", "modelcard.md", "readme.markdown")

_CITATION = Citation(
    "Hugging Face Hub documentation", "Model Cards", "https://huggingface.co/docs/hub/model-cards"
)
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


# --- the card ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Section:
    """One heading of the card and the text under it."""

    title: str
    level: int  # 1..6
    path: tuple[str, ...]  # titles from the top, this one included
    line: int  # 1-based line of the heading in the file
    text: str  # the body up to the next heading of any level, stripped
    full_text: str  # the body with every sub-section, stripped


@dataclass(frozen=True)
class Field:
    """One ``Label: value`` line of the card (``- **Developed by:** ACME``)."""

    label: str
    value: str
    line: int


@dataclass(frozen=True)
class Card:
    """A parsed model card (or data card)."""

    source: str  # the path it was read from, relative to the release root
    metadata: dict[str, Any]  # the YAML front matter, JSON-able
    sections: tuple[Section, ...]
    text: str  # the markdown, decoded; same line numbers as the file (see module docstring)
    findings: tuple[Finding, ...] = ()

    def find(self, *titles: str) -> Section | None:
        """The first section (in the order of ``titles``, then of the card) with that title.

        Matching ignores case, punctuation, ``[optional]``, parentheses and a plural "s";
        ``"Training Details > Training Data"`` matches the end of a section's path.
        """
        found = self.find_all(*titles)
        return found[0] if found else None

    def find_all(self, *titles: str) -> list[Section]:
        """Every section matching any of ``titles``: title order first, then card order."""
        out: list[Section] = []
        seen: set[int] = set()
        keys, by_last = self._title_index
        for title in titles:
            wanted = tuple(title_key(p) for p in _PATH_SEP.split(title))
            n = len(wanted)
            for i in by_last.get(wanted[-1], ()):
                if i not in seen and keys[i][-n:] == wanted:
                    seen.add(i)
                    out.append(self.sections[i])
        return out

    def field(self, *labels: str) -> tuple[str, int] | None:
        """``(value, line)`` of the first field line with one of ``labels``; None if absent.

        Reads ``- **Developed by:** X``, ``**License**: X``, ``Developed by: X`` and two-column
        table rows; placeholders come back as they are written.
        """
        for found in self.fields(*labels):
            return found.value, found.line
        return None

    def fields(self, *labels: str) -> list[Field]:
        """Every field line with one of ``labels`` (card order)."""
        index = self._field_index
        keys = {title_key(label) for label in labels}
        found = [f for key in keys for f in index.get(key, ())]
        return sorted(found, key=lambda f: f.line) if len(keys) > 1 else found

    @functools.cached_property
    def _title_index(self) -> tuple[list[tuple[str, ...]], dict[str, list[int]]]:
        """The key path of each section, and section indices by the key of their title."""
        keys: list[tuple[str, ...]] = []
        by_last: dict[str, list[int]] = {}
        known: dict[str, str] = {}  # title -> key: each distinct title normalised once
        for i, section in enumerate(self.sections):
            path = tuple(known.get(t) or known.setdefault(t, title_key(t)) for t in section.path)
            keys.append(path)
            by_last.setdefault(path[-1], []).append(i)
        return keys, by_last

    @functools.cached_property
    def _field_index(self) -> dict[str, list[Field]]:
        """The field lines outside code blocks, by the key of their label."""
        lines = self.text.split("\n")
        fenced = _fence_flags(lines)
        out: dict[str, list[Field]] = {}
        for i, line in enumerate(lines):
            if fenced[i] or (":" not in line and "|" not in line):
                continue
            parsed = _parse_field(line)
            if parsed is not None:
                label, value = parsed
                key = title_key(label)
                if key:
                    out.setdefault(key, []).append(Field(label, value, i + 1))
        return out


def parse_card(data: bytes, source: str = "README.md") -> Card:
    """Parse a model card from its bytes; never raises on any content."""
    findings: list[Finding] = []
    if len(data) > MAX_CARD_BYTES:
        findings.append(
            _finding(
                "card.truncated",
                Severity.WARNING,
                f"the card is {len(data)} bytes; only the first {MAX_CARD_BYTES} were read",
                source,
            )
        )
        data = data[:MAX_CARD_BYTES]
        truncated = True
    else:
        truncated = False
    text = _decode(data, source, truncated, findings)
    if text is None:
        return Card(source, {}, (), "", tuple(findings))
    lines = text.split("\n")
    metadata: dict[str, Any] = {}
    end = _front_matter_end(lines)
    if end is None and lines and lines[0].rstrip() == "---" and len(lines) > 1:
        findings.append(
            _finding(
                "card.front-matter-invalid",
                Severity.WARNING,
                "the card starts with `---` but no closing `---` line ends the front matter; "
                "it is read as markdown",
                source,
                "line 1",
            )
        )
    elif end is not None:
        metadata = _metadata("\n".join(lines[1:end]), source, findings)
        lines[: end + 1] = [""] * (end + 1)
    clean, fenced, html = _strip_comments(lines)
    body = "\n".join(clean)
    sections = _sections(clean, fenced, html, body)
    return Card(source, metadata, sections, body, tuple(findings))


def load_card(root: Path) -> Card | None:
    """The model card of the release at ``root`` (README.md, MODEL_CARD.md, …), or None."""
    by_name = {p.name.casefold(): p for p in _listdir(root) if _is_file(p)}
    for name in CARD_NAMES:
        path = by_name.get(name)
        if path is not None:
            return _read(path, path.name)
    return None


_EXTRA_NAME = re.compile(
    r"(data[-_ ]?card|datasheet|data[-_ ]?sheet|dataset[-_ ]?card|training[-_ ]?data"
    r"|training[-_ ]?content)[^/]*\.(md|markdown)$",
    re.IGNORECASE,
)
_DOCS_DATA_NAME = re.compile(r"data[^/]*\.(md|markdown)$", re.IGNORECASE)


def load_extra_docs(root: Path) -> list[Card]:
    """Data cards and datasheets of the release (``DATA_CARD.md``, ``datasheet*.md``, …).

    Looks at the top level and at ``docs/`` (names containing "data" there); at most
    :data:`MAX_EXTRA_DOCS` files, in path order.
    """
    found: list[tuple[str, Path]] = []
    for path in _listdir(root):
        if _is_file(path) and _EXTRA_NAME.search(path.name):
            found.append((path.name, path))
        elif path.name.casefold() == "docs" and path.is_dir() and not path.is_symlink():
            for sub in _listdir(path):
                if _is_file(sub) and (
                    _EXTRA_NAME.search(sub.name) or _DOCS_DATA_NAME.search(sub.name)
                ):
                    found.append((f"{path.name}/{sub.name}", sub))
    found.sort()
    return [_read(path, rel) for rel, path in found[:MAX_EXTRA_DOCS]]


def _listdir(root: Path) -> list[Path]:
    try:
        return sorted(root.iterdir())
    except OSError as e:
        raise ReleaseError(f"cannot list {root}: {e.strerror or e}") from e


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()  # regular files only: never open a FIFO or a device
    except OSError:
        return False


def _read(path: Path, source: str) -> Card:
    try:
        with path.open("rb") as f:
            data = f.read(MAX_CARD_BYTES + 1)
    except OSError as e:
        finding = _finding(
            "card.unreadable", Severity.WARNING, f"cannot read the card: {e.strerror or e}", source
        )
        return Card(source, {}, (), "", (finding,))
    return parse_card(data, source)


def _finding(
    rule: str, severity: Severity, message: str, source: str, location: str = "", excerpt: str = ""
) -> Finding:
    return Finding(rule, severity, message, _CITATION, (Evidence(source, location, excerpt),))


# --- decoding ------------------------------------------------------------------------------

_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")
_C1 = re.compile(r"[\x80-\x9f]")


def _decode(data: bytes, source: str, truncated: bool, findings: list[Finding]) -> str | None:
    """The text of ``data``, or None (with a ``card.unreadable`` finding) for binary junk."""
    encoding = "utf-8"
    if data.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        encoding, text = "utf-32", data.decode("utf-32", "replace")
    elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding, text = "utf-16", data.decode("utf-16", "replace")
    else:
        raw = data.removeprefix(codecs.BOM_UTF8)
        try:
            text = codecs.getincrementaldecoder("utf-8")().decode(raw, final=not truncated)
        except UnicodeDecodeError:
            encoding, text = "latin-1", raw.decode("latin-1")
    if text:
        controls = _CONTROL.subn("", text)[1]
        if encoding == "latin-1":
            controls += _C1.subn("", text)[1]
        if controls > len(text) / 10 or text.count("\x00") > len(text) / 100:
            findings.append(
                _finding(
                    "card.unreadable",
                    Severity.WARNING,
                    f"the card is not text ({controls} control characters in {len(text)}); "
                    "it is ignored",
                    source,
                )
            )
            return None
    if encoding == "latin-1":
        findings.append(
            _finding(
                "card.encoding",
                Severity.INFO,
                "the card is not valid UTF-8; it was read as Latin-1 (Hugging Face expects UTF-8)",
                source,
            )
        )
    text = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    return text.replace("\x00", "\ufffd")


# --- front matter --------------------------------------------------------------------------


def _front_matter_end(lines: list[str]) -> int | None:
    """The index of the closing ``---`` line of the front matter, or None."""
    if not lines or lines[0].rstrip() != "---":
        return None
    for i in range(1, len(lines)):
        if lines[i].rstrip() == "---":
            return i
    return None


def _metadata(text: str, source: str, findings: list[Finding]) -> dict[str, Any]:
    """The front matter as a JSON-able dict; problems become findings and give ``{}``."""
    size = len(text.encode("utf-8", "replace"))
    if size > MAX_FRONT_MATTER_BYTES:
        findings.append(
            _finding(
                "card.front-matter-too-large",
                Severity.WARNING,
                f"the YAML front matter is {size} bytes (limit {MAX_FRONT_MATTER_BYTES}); "
                "it was not read",
                source,
                "line 1",
            )
        )
        return {}
    try:
        problem = _shape_problem(text)
        value: Any = None if problem else _construct(text)
    except (yaml.YAMLError, ValueError, TypeError, OverflowError, RecursionError) as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        line = 2 + int(mark.line) if mark is not None else 1
        reason = str(getattr(e, "problem", None) or e).strip().splitlines()[0][:200]
        findings.append(
            _finding(
                "card.front-matter-invalid",
                Severity.WARNING,
                f"the YAML front matter does not parse ({reason}); the metadata is ignored",
                source,
                f"line {line}",
            )
        )
        return {}
    if problem:
        findings.append(
            _finding(
                "card.front-matter-too-complex",
                Severity.WARNING,
                f"the YAML front matter was refused: {problem}",
                source,
                "line 1",
            )
        )
        return {}
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        findings.append(
            _finding(
                "card.front-matter-not-mapping",
                Severity.WARNING,
                f"the YAML front matter is a {type(value).__name__}, not a mapping; "
                "the metadata is ignored",
                source,
                "line 2",
            )
        )
        return {}
    out = _jsonable(value)
    assert isinstance(out, dict)
    return out


def _shape_problem(text: str) -> str | None:
    """Why the document must not be built (too deep, too big once aliases expand), or None.

    The event stream is read first (the parser is iterative, the composer is not), then the
    node graph is walked without recursion, each shared node counted once per reference.
    """
    loader = _Loader(text)
    try:
        depth = events = 0
        while loader.check_event():
            event = loader.get_event()
            events += 1
            if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                depth += 1
                if depth > MAX_YAML_DEPTH:
                    return f"nested more than {MAX_YAML_DEPTH} levels deep"
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                depth -= 1
            if events > 4 * MAX_YAML_NODES:
                return f"more than {MAX_YAML_NODES} nodes"
    finally:
        loader.dispose()
    loader = _Loader(text)
    try:
        root = loader.get_single_node()
    finally:
        loader.dispose()
    if root is None:
        return None
    return _graph_problem(root)


def _children(node: Any) -> list[Any]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def _graph_problem(root: Any) -> str | None:
    memo: dict[int, tuple[int, int]] = {}  # id(node) -> (expanded size, expanded depth)
    open_: set[int] = set()
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            kids = [memo[id(c)] for c in _children(node)]
            memo[key] = (1 + sum(k[0] for k in kids), 1 + max((k[1] for k in kids), default=0))
            open_.discard(key)
            continue
        if key in memo:
            continue
        open_.add(key)
        stack.append((node, True))
        for child in _children(node):
            if id(child) in open_:
                return "a recursive alias (an anchor that contains itself)"
            if id(child) not in memo:
                stack.append((child, False))
    size, depth = memo[id(root)]
    if size > MAX_YAML_NODES:
        return f"aliases expand it to {size} nodes (limit {MAX_YAML_NODES})"
    if depth > MAX_YAML_DEPTH:
        return f"aliases nest it {depth} levels deep (limit {MAX_YAML_DEPTH})"
    return None


def _construct(text: str) -> Any:
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        return None if node is None else loader.construct_document(node)
    finally:
        loader.dispose()


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, Mapping):
        return {_key(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (set, frozenset)):
        return sorted((_jsonable(v) for v in value), key=str)
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return str(value)


def _key(key: Any) -> str:
    if isinstance(key, str):
        return key
    if isinstance(key, bool) or key is None:
        return {True: "true", False: "false", None: "null"}[key]
    if isinstance(key, (datetime.date, datetime.time)):
        return key.isoformat()
    return str(key)


# --- markdown ------------------------------------------------------------------------------

_FENCE = re.compile(r" {0,3}(`{3,}|~{3,})(.*)")
_FENCE_CLOSE = re.compile(r" {0,3}(`{3,}|~{3,})[ \t]*")
_ATX = re.compile(r" {0,3}(#{1,6})(?:[ \t]+(.*)|[ \t]*)")
_SETEXT = re.compile(r" {0,3}(=+|-+)[ \t]*")
_BREAK = re.compile(r" {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*")
_BLOCK_START = re.compile(r" {0,3}(?:[-+*](?:[ \t]|$)|\d{1,9}[.)](?:[ \t]|$)|>|<|\|)")
_HTML_HEADING = re.compile(r"\s{0,3}<h([1-6])(?:\s[^<>]*)?>(.*?)</h\1\s*>", re.IGNORECASE)
_TAG = re.compile(r"</?[A-Za-z][\w-]{0,30}(?:\s[^<>\n]{0,300})?/?>")  # not <https://…> autolinks


def _fence_opener(line: str) -> tuple[str, int] | None:
    m = _FENCE.fullmatch(line)
    if m is None or (m.group(1)[0] == "`" and "`" in m.group(2)):
        return None
    return m.group(1)[0], len(m.group(1))


def _closes(line: str, fence: tuple[str, int]) -> bool:
    m = _FENCE_CLOSE.fullmatch(line)
    return m is not None and m.group(1)[0] == fence[0] and len(m.group(1)) >= fence[1]


def _fence_flags(lines: list[str]) -> list[bool]:
    """For each line, whether it belongs to a fenced code block (fence lines included)."""
    flags = [False] * len(lines)
    fence: tuple[str, int] | None = None
    for i, line in enumerate(lines):
        if fence is not None:
            flags[i] = True
            if _closes(line, fence):
                fence = None
        elif "```" in line or "~~~" in line:
            fence = _fence_opener(line)
            flags[i] = fence is not None
    return flags


def _strip_comments(lines: list[str]) -> tuple[list[str], list[bool], list[bool]]:
    """Cut HTML comments out of ``lines`` (outside code fences), keeping the line count.

    Returns the clean lines, which lines are fenced code, and which are (part of) an HTML
    comment block and so cannot start a heading. An ``<!--`` never closed stays as text.
    """
    last = (-1, -1)  # (line, column) of the last "-->" of the document
    for i in range(len(lines) - 1, -1, -1):
        col = lines[i].rfind("-->")
        if col >= 0:
            last = (i, col)
            break
    clean: list[str] = []
    fenced = [False] * len(lines)
    html = [False] * len(lines)
    fence: tuple[str, int] | None = None
    in_comment = False
    for i, line in enumerate(lines):
        if in_comment:
            html[i] = True
            end = line.find("-->")
            if end < 0:
                clean.append("")
                continue
            in_comment = False
            line = line[end + 3 :]
        elif fence is not None:
            fenced[i] = True
            if _closes(line, fence):
                fence = None
            clean.append(line)
            continue
        elif ("```" in line or "~~~" in line) and (opener := _fence_opener(line)) is not None:
            fence = opener
            fenced[i] = True
            clean.append(line)
            continue
        if "<!--" not in line:
            clean.append(line)
            continue
        if line.lstrip(" ").startswith("<!--"):
            html[i] = True
        pieces: list[str] = []
        pos = 0
        while True:
            start = line.find("<!--", pos)
            if start < 0:
                pieces.append(line[pos:])
                break
            end = line.find("-->", start + 4)
            if end >= 0:
                pieces.append(line[pos:start])
                pos = end + 3
            elif (i, start + 4) <= last:
                pieces.append(line[pos:start])
                in_comment = True
                break
            else:  # never closed: literal text, as CommonMark renders it
                pieces.append(line[pos:])
                break
        clean.append("".join(pieces))
    return clean, fenced, html


@dataclass(frozen=True)
class _Heading:
    level: int
    title: str
    first: int  # 0-based index of the heading's first line
    body: int  # 0-based index of the first body line


def _headings(lines: list[str], fenced: list[bool], html: list[bool]) -> list[_Heading]:
    out: list[_Heading] = []
    para: int | None = None  # first line of the paragraph being read
    for i, line in enumerate(lines):
        if fenced[i] or html[i] or not line.strip():
            para = None
            continue
        if para is not None and (m := _SETEXT.fullmatch(line)) is not None:
            title = " ".join(s.strip() for s in lines[para:i])
            out.append(
                _Heading(1 if m.group(1)[0] == "=" else 2, _heading_text(title), para, i + 1)
            )
            para = None
            continue
        if (m := _ATX.fullmatch(line)) is not None:
            out.append(_Heading(len(m.group(1)), _heading_text(_atx_title(m.group(2))), i, i + 1))
            para = None
            continue
        if (m := _HTML_HEADING.match(line)) is not None:
            out.append(_Heading(int(m.group(1)), _heading_text(_TAG.sub("", m.group(2))), i, i + 1))
            para = None
            continue
        if _BREAK.fullmatch(line) or _BLOCK_START.match(line):
            para = None
        elif para is None and not line.startswith("    "):
            para = i
    return out


def _atx_title(raw: str | None) -> str:
    title = (raw or "").strip()
    bare = title.rstrip("#")
    if bare != title and (not bare or bare[-1] in " \t"):
        title = bare.strip()
    return title


def _heading_text(title: str) -> str:
    return " ".join(title.split())


def _sections(
    lines: list[str], fenced: list[bool], html: list[bool], body: str
) -> tuple[Section, ...]:
    heads = _headings(lines, fenced, html)
    if not heads:
        return ()
    offsets = [0] * (len(lines) + 1)
    for i, line in enumerate(lines):
        offsets[i + 1] = offsets[i] + len(line) + 1

    def span(first: int, stop: int) -> str:
        return body[offsets[min(first, stop)] : max(offsets[stop] - 1, 0)].strip()

    ends = [len(lines)] * len(heads)  # where each section's full text stops
    open_: list[int] = []
    for j, head in enumerate(heads):
        while open_ and heads[open_[-1]].level >= head.level:
            ends[open_.pop()] = head.first
        open_.append(j)
    out: list[Section] = []
    stack: list[tuple[int, str]] = []
    for j, head in enumerate(heads):
        while stack and stack[-1][0] >= head.level:
            stack.pop()
        stack.append((head.level, head.title))
        stop = heads[j + 1].first if j + 1 < len(heads) else len(lines)
        out.append(
            Section(
                head.title,
                head.level,
                tuple(t for _, t in stack),
                head.first + 1,
                span(head.body, stop),
                span(head.body, ends[j]),
            )
        )
    return tuple(out)


# --- titles and fields ---------------------------------------------------------------------

_PATH_SEP = re.compile(r"\s*(?:>|\u203a)\s*")  # "A > B", also with U+203A
_OPTIONAL = re.compile(r"\[\s*optional\s*\]|\(\s*optional\s*\)", re.IGNORECASE)
_PARENS = re.compile(r"\([^()\n]{0,80}\)")
_LINK = re.compile(r"!?\[([^\]\n]{0,300})\]\([^)\n]{0,500}\)")
_WORD = re.compile(r"[^\W_]+")
_STOP = frozenset({"and", "the", "a", "of"})


@functools.lru_cache(maxsize=4096)
def title_key(title: str) -> str:
    """The key headings and labels are matched by: case, punctuation, "and"/"the"/"of",
    ``[optional]``, parenthesised parts, leading numbering and plural "s" do not count.

    >>> title_key("2.1 Bias, Risks, and Limitations [optional]")
    'biarisklimitation'
    """
    text = _TAG.sub(" ", _LINK.sub(r"\1", title[:500]))
    text = _PARENS.sub(" ", _OPTIONAL.sub(" ", text)).replace("&", " and ")
    words = _WORD.findall(text.casefold())
    while words and words[0].isdigit():
        words.pop(0)
    return "".join(w[:-1] if len(w) > 3 and w.endswith("s") else w for w in words if w not in _STOP)


_LIST_PREFIX = re.compile(r"\s{0,3}(?:[-*+]|\d{1,9}[.)])\s+")
_LABEL_BAD = re.compile(r"\]\(|https?$|`|\|")
_MARKERS = "*_ \t"


def _parse_field(line: str) -> tuple[str, str] | None:
    """``(label, value)`` of a field line, or None."""
    stripped = line.strip()
    if stripped.startswith("|"):
        cells = [c.strip() for c in stripped.strip("|").split("|")]
        if len(cells) >= 2 and cells[0]:
            label = cells[0].strip(_MARKERS).removesuffix(":").strip(_MARKERS)
            if label and not set(cells[1]) <= set("-: "):
                return label, cells[1].strip(_MARKERS)
        return None
    m = _LIST_PREFIX.match(line)
    rest = line[m.end() :] if m else stripped
    colon = rest.find(":", 0, 160)
    if colon <= 0:
        return None
    after = rest[colon + 1 : colon + 2]
    if after and after not in " \t*_":
        return None
    label = rest[:colon].strip(_MARKERS)
    if not label or not label[0].isalpha() or _LABEL_BAD.search(label):
        return None
    value = rest[colon + 1 :].lstrip("*_").strip()
    return label, value


# --- placeholders --------------------------------------------------------------------------

_PLACEHOLDER_PHRASE = re.compile(
    r"\[?\s*(?<!\w)(?:more\s+info(?:rmation)?\s+(?:is\s+)?needed|needs?\s+more\s+info(?:rmation)?"
    r"|todo|to\s*do|tbd|tba|tbc|to\s+be\s+(?:added|determined|announced|completed|confirmed)"
    r"|coming\s+soon|work\s+in\s+progress|wip|fill\s+(?:me\s+)?in|placeholder"
    r"|insert\s+[^\n]{0,60}\s+here"
    r"|lorem\s+ipsum\b[^\n]*)(?!\w)\s*\]?[.!:]*",
    re.IGNORECASE,
)
_TEMPLATE_VAR = re.compile(r"\{\{[^{}\n]{0,500}\}\}|\{%[^{}\n]{0,500}%\}")
_HASH_LINK = re.compile(r"\[[^\]\n]{0,300}\]\(\s*#\s*\)")
_BOILERPLATE = tuple(
    re.compile(r"\s+".join(re.escape(w) for w in sentence.split()), re.IGNORECASE)
    for sentence in (
        "Users (both direct and downstream) should be made aware of the risks, biases and "
        "limitations of the model. More information needed for further recommendations.",
        "Use the code below to get started with the model.",
        "Carbon emissions can be estimated using the [Machine Learning Impact calculator]"
        "(https://mlco2.github.io/impact#compute) presented in [Lacoste et al. (2019)]"
        "(https://arxiv.org/abs/1910.09700).",
        "Click to expand",
    )
)
_LINE_DECOR = re.compile(r"\s{0,3}(?:#{1,6}\s|>\s?|[-*+]\s|\d{1,9}[.)]\s)*")
_FENCE_LINE = re.compile(r"\s*(?:`{3,}|~{3,})[\w+.-]*\s*")


def is_placeholder(text: str) -> bool:
    """True if ``text`` says nothing: empty, template guidance or a placeholder phrase.

    Headings, field labels and template boilerplate are not content; a field line counts only
    through its value. ``N/A`` is an answer (not a placeholder).
    """
    text = _strip_comment_text(text)
    if "{" in text:
        text = _TEMPLATE_VAR.sub(" ", text)
    for pattern in _BOILERPLATE:
        text = pattern.sub(" ", text)
    return not any(_is_content(line) for line in text.split("\n"))


def _strip_comment_text(text: str) -> str:
    pieces: list[str] = []
    pos = 0
    while (start := text.find("<!--", pos)) >= 0:
        end = text.find("-->", start + 4)
        if end < 0:
            break
        pieces.append(text[pos:start])
        pos = end + 3
    pieces.append(text[pos:])
    return "".join(pieces)


_ALNUM = re.compile(r"[^\W_]")
_LONG_LINE = 2000  # a line this long with letters or digits in it is content


def _is_content(line: str) -> bool:
    if _ALNUM.search(line) is None:
        return False
    if len(line) > _LONG_LINE:
        return True
    if _FENCE_LINE.fullmatch(line) or _ATX.fullmatch(line):
        return False  # a code fence or a sub-heading: structure, not content
    if "<" in line:
        line = _TAG.sub(" ", line)
    decor = _LINE_DECOR.match(line)
    line = line[decor.end() :] if decor else line
    if "](" in line:
        line = _HASH_LINK.sub(" ", line)
    parsed = _parse_field(line)
    if parsed is not None:
        line = parsed[1]
    return _ALNUM.search(_PLACEHOLDER_PHRASE.sub(" ", line)) is not None
