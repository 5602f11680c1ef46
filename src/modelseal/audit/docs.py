"""Documentation completeness: which items a standard asks for are in the release, and where.

Each standard is a rule pack, ``rules/docs/<pack>.yaml``; this module is only the engine. A pack
item names its citation and lists ``evidence`` alternatives, each one of:

``section: [titles]``    a card heading (case/punctuation-insensitive; ``"A > B"`` matches the
                         end of a heading path), its text and its sub-sections' texts
``field: [labels]``      a ``- **Label:** value`` line
``metadata: [keys]``     a dotted key of the YAML front matter with a non-empty value
``metadata_is: {k: [v]}`` a front-matter key with one of the values (case-insensitive)
``regex: pattern``       a match in the card text (case-insensitive, multi-line)
``file: [kinds]``        a file of that kind in the release (``files`` of the context)
``fact: name``           a truthy fact the audit computed (``facts`` of the context)
``intro: true``          the card's opening text (before the first heading, and the text of a
                         leading top-level heading such as the model's name)

``section``, ``field`` and ``regex`` look in the model card and the data cards (``scope: card``
or ``scope: extra`` narrows that); ``metadata`` looks in the model card only unless
``scope`` says otherwise.

An item is *present* if any alternative finds content that is not a placeholder, a
*placeholder* if only placeholders were found, else *missing* — or *not determinable* when
the item says the evidence usually lies outside a release (``not_determinable: true`` with a
``reason``). ``applies_if`` (alternatives of the same kinds) drops an item that does not apply
to this release (``base_model`` for a model that is not a fine-tune). ``all_of`` splits an
item into parts that must all be present (architecture *and* number of parameters).
"""

from __future__ import annotations

import bisect
import functools
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped, unused-ignore]

from modelseal.audit.card import Card, Section, is_placeholder
from modelseal.audit.model import Citation, DocItem, DocReport, DocStatus
from modelseal.errors import Error, InputError
from modelseal.release import classify

FILE_KINDS = frozenset(classify.KINDS)
FACTS: Mapping[str, str] = {
    "param_count": "total number of parameters, counted from the weight-file headers",
    "licence_identified": "the release licence was identified from its text or its tag",
    "weights_format": "the format of the released weights",
    "training_tokens": "the number of training tokens the card states",
    "compute_flops": "the training compute estimated as 6 x parameters x tokens",
    "is_adapter": "the release is an adapter or fine-tune (adapter_config.json, adapter weights)",
    "context_length": "the maximum input length from config.json (max_position_embeddings, …)",
    "software_versions": "software versions recorded in the release (transformers_version, …)",
    "acceptable_use_policy": "an acceptable-use policy ships with the release or its licence",
}
KINDS = ("section", "field", "metadata", "metadata_is", "regex", "file", "fact", "intro")
SCOPES = ("card", "extra", "all")
CONFIDENCE = ("primary", "secondary")
EXCERPT_CHARS = 200
MAX_SECTION_MATCHES = 64  # headings of one name looked at per alternative (hostile cards)
REGEX_WINDOW = 512 * 1024  # regex evidence is looked for in the first 512 KiB of a card
PATH_SEP = " \u203a "  # between the parts of a heading path


@dataclass(frozen=True)
class Probe:
    """One evidence alternative of an item."""

    kind: str  # one of KINDS
    values: tuple[str, ...] = ()  # titles, labels, keys, kinds or the fact name
    expected: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # metadata_is
    pattern: re.Pattern[str] | None = None  # regex
    scope: str = "all"


@dataclass(frozen=True)
class Part:
    """One part of an ``all_of`` item."""

    title: str
    evidence: tuple[Probe, ...]


@dataclass(frozen=True)
class DocRule:
    """One documentation item of a pack."""

    id: str
    title: str
    citation: Citation
    evidence: tuple[Probe, ...]
    parts: tuple[Part, ...] = ()  # all_of
    applies_if: tuple[Probe, ...] = ()
    not_determinable: bool = False
    reason: str = ""
    confidence: str = "primary"  # "secondary": the wording comes from a secondary source
    note: str = ""


@dataclass(frozen=True)
class DocPack:
    """A standard's documentation items (one YAML file of ``rules/docs``)."""

    id: str
    title: str
    citation: Citation
    items: tuple[DocRule, ...]
    order: int = 100
    note: str = ""


@dataclass(frozen=True)
class DocContext:
    """What the documentation checks look at."""

    card: Card | None
    extra: tuple[Card, ...] = ()  # data cards, datasheets
    files: Mapping[str, Sequence[str]] = field(default_factory=dict)  # kind -> relative paths
    facts: Mapping[str, object] = field(default_factory=dict)  # see FACTS


# --- loading -------------------------------------------------------------------------------

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class PackError(Error):
    """A shipped rule pack is malformed (a bug in modelseal's data)."""


@functools.cache
def packs() -> tuple[DocPack, ...]:
    """Every shipped pack, ordered by its ``order`` then id (loaded once)."""
    folder = resources.files("modelseal.audit").joinpath("rules/docs")
    loaded = [
        _pack(yaml.load(entry.read_text("utf-8"), Loader=_Loader), entry.name, PackError)
        for entry in folder.iterdir()
        if entry.name.endswith(".yaml")
    ]
    return tuple(sorted(loaded, key=lambda p: (p.order, p.id)))


def load_pack(path: Path) -> DocPack:
    """A pack from a YAML file of the user's (an organisation's own standard)."""
    try:
        raw = yaml.load(path.read_text("utf-8"), Loader=_Loader)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise InputError(f"cannot read the rule pack {path}: {e}") from e
    return _pack(raw, str(path), InputError)


def _pack(raw: Any, origin: str, error: type[Error]) -> DocPack:
    def need(cond: bool, what: str) -> None:
        if not cond:
            raise error(f"rule pack {origin}: {what}")

    need(isinstance(raw, Mapping), "not a mapping")
    for key in ("id", "title", "citation", "items"):
        need(key in raw, f"no `{key}`")
    cit = raw["citation"]
    need(isinstance(cit, Mapping) and bool(cit.get("doc")), "`citation` needs a `doc`")
    base = Citation(str(cit["doc"]), str(cit.get("provision", "")), str(cit.get("url", "")))
    default_conf = str(raw.get("confidence", "primary"))
    need(default_conf in CONFIDENCE, f"confidence must be one of {CONFIDENCE}")
    items = raw["items"]
    need(isinstance(items, list) and bool(items), "`items` must be a non-empty list")
    rules: list[DocRule] = []
    seen: set[str] = set()
    for n, item in enumerate(items):
        where = f"item {n + 1}"
        need(isinstance(item, Mapping), f"{where} is not a mapping")
        rid = str(item.get("id", ""))
        need(bool(rid) and rid not in seen, f"{where}: missing or duplicate id {rid!r}")
        seen.add(rid)
        where = rid
        need(bool(item.get("title")), f"{where}: no title")
        need(bool(item.get("provision")), f"{where}: no provision")
        conf = str(item.get("confidence", default_conf))
        need(conf in CONFIDENCE, f"{where}: confidence must be one of {CONFIDENCE}")
        evidence = _probes(item.get("evidence", []), f"{where} evidence", need)
        parts: list[Part] = []
        for part in item.get("all_of", []):
            need(isinstance(part, Mapping) and bool(part.get("title")), f"{where}: bad all_of")
            parts.append(
                Part(str(part["title"]), _probes(part.get("evidence"), f"{where} all_of", need))
            )
        need(bool(evidence) != bool(parts), f"{where}: give either `evidence` or `all_of`")
        nd = bool(item.get("not_determinable", False))
        need(not nd or bool(item.get("reason")), f"{where}: not_determinable needs a reason")
        rules.append(
            DocRule(
                id=rid,
                title=str(item["title"]),
                citation=Citation(
                    str(item.get("doc", base.doc)),
                    str(item["provision"]),
                    str(item.get("url", base.url)),
                ),
                evidence=evidence,
                parts=tuple(parts),
                applies_if=_probes(item.get("applies_if", []), f"{where} applies_if", need),
                not_determinable=nd,
                reason=str(item.get("reason", "")),
                confidence=conf,
                note=str(item.get("note", "")),
            )
        )
    return DocPack(
        str(raw["id"]),
        str(raw["title"]),
        base,
        tuple(rules),
        int(raw.get("order", 100)),
        str(raw.get("note", "")),
    )


def _probes(raw: Any, where: str, need: Any) -> tuple[Probe, ...]:
    need(isinstance(raw, list), f"{where} must be a list")
    out: list[Probe] = []
    for alt in raw:
        need(isinstance(alt, Mapping), f"{where}: an alternative is not a mapping")
        kinds = [k for k in alt if k in KINDS]
        extra = [k for k in alt if k not in KINDS and k != "scope"]
        need(len(kinds) == 1 and not extra, f"{where}: one of {KINDS} per alternative: {alt}")
        kind = kinds[0]
        value = alt[kind]
        scope = str(alt.get("scope", "card" if kind == "metadata" else "all"))
        need(scope in SCOPES, f"{where}: scope must be one of {SCOPES}")
        if kind == "regex":
            need(isinstance(value, str) and bool(value), f"{where}: regex must be a string")
            try:
                pattern = re.compile(value, re.IGNORECASE | re.MULTILINE)
            except re.error as e:
                need(False, f"{where}: bad regex {value!r}: {e}")
            out.append(Probe(kind, pattern=pattern, scope=scope))
            continue
        if kind == "intro":
            need(value is True, f"{where}: intro takes `true`")
            out.append(Probe(kind, scope=scope))
            continue
        if kind == "metadata_is":
            need(isinstance(value, Mapping) and bool(value), f"{where}: metadata_is: a mapping")
            expected = {
                str(k): tuple(str(x).casefold() for x in (v if isinstance(v, list) else [v]))
                for k, v in value.items()
            }
            out.append(Probe(kind, expected=expected, scope=scope))
            continue
        values = (value,) if isinstance(value, str) else value
        need(
            isinstance(values, (list, tuple)) and bool(values),
            f"{where}: {kind} needs a name or a list of names",
        )
        values = tuple(str(v) for v in values)
        if kind == "file":
            bad = [v for v in values if v not in FILE_KINDS]
            need(not bad, f"{where}: unknown file kinds {bad}")
        if kind == "fact":
            bad = [v for v in values if v not in FACTS]
            need(not bad, f"{where}: unknown facts {bad}")
        out.append(Probe(kind, values, scope=scope))
    return tuple(out)


# --- evaluation ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Hit:
    status: DocStatus  # PRESENT or PLACEHOLDER
    found_in: str
    excerpt: str


def evaluate(ctx: DocContext, pack_ids: Sequence[str] | None = None) -> tuple[DocReport, ...]:
    """One report per pack (all shipped packs, or those named), in pack order."""
    available = {p.id: p for p in packs()}
    if pack_ids is None:
        chosen = list(available.values())
    else:
        unknown = [p for p in pack_ids if p not in available]
        if unknown:
            raise InputError(
                f"unknown documentation pack(s): {', '.join(unknown)}",
                hint=f"available: {', '.join(available)}",
            )
        chosen = [available[p] for p in pack_ids]
    return tuple(evaluate_pack(ctx, pack) for pack in chosen)


def evaluate_pack(ctx: DocContext, pack: DocPack) -> DocReport:
    """The report of one pack (shipped or loaded with :func:`load_pack`)."""
    looker = _Looker(ctx)
    items: list[DocItem] = []
    for rule in pack.items:
        if rule.applies_if and not any(looker.hits(p) for p in rule.applies_if):
            continue
        items.append(_item(rule, looker))
    return DocReport(pack.id, pack.title, pack.citation, tuple(items))


def _item(rule: DocRule, looker: _Looker) -> DocItem:
    citation = rule.citation
    confidence = rule.confidence
    if rule.parts:
        outcomes = [(part.title, _best(looker, part.evidence)) for part in rule.parts]
        status = _combine([hit.status if hit else DocStatus.MISSING for _, hit in outcomes])
        found = "; ".join(f"{t}: {hit.found_in}" for t, hit in outcomes if hit)
        lacking = [t for t, hit in outcomes if hit is None or hit.status != DocStatus.PRESENT]
        excerpt = " | ".join(hit.excerpt for _, hit in outcomes if hit and hit.excerpt)
        reason = (
            f"not found: {', '.join(lacking)}" if lacking and status != DocStatus.PRESENT else ""
        )
        if not found:
            return _absent(rule, citation)
        if status == DocStatus.MISSING and rule.not_determinable:
            status, reason = DocStatus.NOT_DETERMINABLE, f"{reason}; {rule.reason}".lstrip("; ")
        return DocItem(
            rule.id, rule.title, status, found, _cut(excerpt), citation, _cut(reason), confidence
        )
    best = _best(looker, rule.evidence)
    if best is None:
        return _absent(rule, citation)
    return DocItem(
        rule.id, rule.title, best.status, best.found_in, best.excerpt, citation, "", confidence
    )


def _absent(rule: DocRule, citation: Citation) -> DocItem:
    if rule.not_determinable:
        return DocItem(
            rule.id,
            rule.title,
            DocStatus.NOT_DETERMINABLE,
            "",
            "",
            citation,
            rule.reason,
            rule.confidence,
        )
    return DocItem(rule.id, rule.title, DocStatus.MISSING, "", "", citation, "", rule.confidence)


def _combine(statuses: list[DocStatus]) -> DocStatus:
    if all(s == DocStatus.PRESENT for s in statuses):
        return DocStatus.PRESENT
    if all(s in (DocStatus.PRESENT, DocStatus.PLACEHOLDER) for s in statuses):
        return DocStatus.PLACEHOLDER
    return DocStatus.MISSING


def _best(looker: _Looker, probes: Sequence[Probe]) -> _Hit | None:
    """The first present hit over ``probes``, else the first placeholder hit, else None."""
    placeholder: _Hit | None = None
    for probe in probes:
        for hit in looker.hits(probe):
            if hit.status == DocStatus.PRESENT:
                return hit
            placeholder = placeholder or hit
    return placeholder


class _Looker:
    """Runs probes over one context (regex results cached: packs share patterns)."""

    def __init__(self, ctx: DocContext) -> None:
        self.ctx = ctx
        self._regex: dict[tuple[int, str], _Hit | None] = {}
        self._index: dict[int, dict[int, int]] = {}  # id(card) -> {id(section): position}

    def cards(self, scope: str) -> list[Card]:
        main = [self.ctx.card] if self.ctx.card is not None and scope != "extra" else []
        return main + (list(self.ctx.extra) if scope != "card" else [])

    def hits(self, probe: Probe) -> list[_Hit]:
        """Hits in order; a present one ends the list early."""
        return list(_until_present(self._hits(probe)))

    def _hits(self, probe: Probe) -> Iterator[_Hit]:
        kind = probe.kind
        if kind == "file":
            for k in probe.values:
                paths = sorted((str(p) for p in self.ctx.files.get(k, ())), key=_top_first)
                if paths:
                    more = f" (+{len(paths) - 1} more)" if len(paths) > 1 else ""
                    yield _Hit(DocStatus.PRESENT, f"file: {paths[0]}{more}", _cut(", ".join(paths)))
            return
        if kind == "fact":
            for name in probe.values:
                value = self.ctx.facts.get(name)
                if value is not None and value is not False and value != "" and value != 0:
                    yield _Hit(DocStatus.PRESENT, f"fact: {name}", _cut(_show(value)))
            return
        for card in self.cards(probe.scope):
            if kind == "section":
                index = self._index.get(id(card))
                if index is None:
                    index = self._index[id(card)] = {id(s): i for i, s in enumerate(card.sections)}
                yield from _section_hits(card, probe.values, index)
            elif kind == "intro":
                yield from _intro_hits(card)
            elif kind == "field":
                yield from _field_hits(card, probe.values)
            elif kind == "metadata":
                yield from _metadata_hits(card, probe.values, card is self.ctx.card)
            elif kind == "metadata_is":
                yield from _metadata_is_hits(card, probe.expected, card is self.ctx.card)
            elif kind == "regex" and probe.pattern is not None:
                key = (id(card), probe.pattern.pattern)
                if key not in self._regex:
                    self._regex[key] = _regex_hit(card, probe.pattern)
                hit = self._regex[key]
                if hit is not None:
                    yield hit


def _top_first(path: str) -> tuple[int, str]:
    return path.count("/"), path


def _until_present(hits: Iterator[_Hit]) -> Iterator[_Hit]:
    for hit in hits:
        yield hit
        if hit.status == DocStatus.PRESENT:
            return


def _section_hits(card: Card, titles: Sequence[str], index: Mapping[int, int]) -> Iterator[_Hit]:
    for section in card.find_all(*titles)[:MAX_SECTION_MATCHES]:
        content = _content(card, index[id(section)])
        status = DocStatus.PLACEHOLDER if is_placeholder(content) else DocStatus.PRESENT
        excerpt = "" if status == DocStatus.PLACEHOLDER else _cut(content)
        yield _Hit(status, _where(card, section), excerpt)


def _content(card: Card, i: int) -> str:
    """The text of section ``i`` and of its sub-sections (without their headings)."""
    sections = card.sections
    level = sections[i].level
    texts = [sections[i].text]
    for j in range(i + 1, len(sections)):
        if sections[j].level <= level:
            break
        texts.append(sections[j].text)
    return "\n\n".join(t for t in texts if t)


def _where(card: Card, section: Section) -> str:
    return PATH_SEP.join((card.source, *section.path))


def _intro_hits(card: Card) -> Iterator[_Hit]:
    sections = card.sections
    first = sections[0].line if sections else card.text.count("\n") + 2
    cut = -1
    for _ in range(first - 1):
        cut = card.text.find("\n", cut + 1)
        if cut < 0:
            cut = len(card.text)
            break
    texts = [card.text[: max(cut, 0)].strip()]
    where = card.source
    if sections and sections[0].level == 1:
        texts.append(sections[0].text)
        where = _where(card, sections[0])
    content = "\n\n".join(t for t in texts if t)
    if not sections and not content:
        return
    if is_placeholder(content):
        yield _Hit(DocStatus.PLACEHOLDER, where, "")
    else:
        yield _Hit(DocStatus.PRESENT, f"{where} (opening text)", _cut(content))


def _field_hits(card: Card, labels: Sequence[str]) -> Iterator[_Hit]:
    for f in card.fields(*labels):
        status = DocStatus.PLACEHOLDER if is_placeholder(f.value) else DocStatus.PRESENT
        excerpt = _cut(f"{f.label}: {f.value}") if status == DocStatus.PRESENT else ""
        yield _Hit(status, f"{card.source}, line {f.line} ({f.label})", excerpt)


def _lookup(metadata: Mapping[str, Any], dotted: str) -> list[Any]:
    """Every value at ``dotted`` (lists along the way are searched element by element)."""
    current: list[Any] = [metadata]
    for part in dotted.split("."):
        nxt: list[Any] = []
        for value in current:
            for v in value if isinstance(value, list) else [value]:
                if isinstance(v, Mapping) and part in v:
                    nxt.append(v[part])
        current = nxt
    return current


def _empty(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return is_placeholder(value)
    if isinstance(value, (list, tuple, Mapping)):
        return not value or all(
            _empty(v) for v in (value.values() if isinstance(value, Mapping) else value)
        )
    return False


def _metadata_hits(card: Card, keys: Sequence[str], main: bool) -> Iterator[_Hit]:
    for key in keys:
        for value in _lookup(card.metadata, key):
            where = f"metadata.{key}" if main else f"{card.source} metadata.{key}"
            if _empty(value):
                yield _Hit(DocStatus.PLACEHOLDER, where, "")
            else:
                yield _Hit(DocStatus.PRESENT, where, _cut(_show(value)))


def _metadata_is_hits(
    card: Card, expected: Mapping[str, tuple[str, ...]], main: bool
) -> Iterator[_Hit]:
    for key, wanted in expected.items():
        for value in _lookup(card.metadata, key):
            values = value if isinstance(value, list) else [value]
            if any(str(v).casefold() in wanted for v in values if not isinstance(v, Mapping)):
                where = f"metadata.{key}" if main else f"{card.source} metadata.{key}"
                yield _Hit(DocStatus.PRESENT, where, _cut(_show(value)))


def _regex_hit(card: Card, pattern: re.Pattern[str]) -> _Hit | None:
    m = pattern.search(card.text, 0, REGEX_WINDOW)
    if m is None:
        return None
    line = card.text.count("\n", 0, m.start()) + 1
    start = card.text.rfind("\n", 0, m.start()) + 1
    end = card.text.find("\n", m.end())
    quote = card.text[start : end if end >= 0 else len(card.text)]
    lines = [s.line for s in card.sections]
    i = bisect.bisect_right(lines, line) - 1
    where = _where(card, card.sections[i]) if i >= 0 else card.source
    return _Hit(DocStatus.PRESENT, f"{where} (line {line})", _cut(quote))


def _show(value: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return str(value)


def _cut(text: str) -> str:
    text = " ".join(text[: EXCERPT_CHARS * 4].split())
    return text if len(text) <= EXCERPT_CHARS else text[: EXCERPT_CHARS - 1] + "…"
