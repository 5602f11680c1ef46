"""Model Openness Framework (MOF) 1.0: read a model description, score it, classify it.

A *MOF model description* is the YAML file the Model Openness Tool (MOT, the framework's
reference implementation) reads and writes: a ``release`` with global licences per content type
(``distribution``, ``code``, ``data``, ``document``) and a list of ``components``, each naming one
of the 17 MOF components and, optionally, its own licence. :func:`parse_mof` reads one into a
:class:`MofRelease`; :func:`score` turns that into a :class:`~modelseal.audit.model.MofResult`:
the progress towards each class (percentage of its cumulative requirements met) and the class
reached.

The engine holds no component, class or licence list of its own: all of them are in
``rules/mof.yaml``, with the documents they come from. How it scores:

* each listed component's licence is its own ``license`` (an empty one means *no licence*),
  else the global licence of its first content type, else the global ``distribution`` licence;
* a listed component is *included* when that licence is open: OSI-approved or FSF-libre in
  the SPDX table, or on the open-data or open-model list;
* progress(class k) = included required components of classes III..k / their number * 100,
  where a substitute (the research paper for the technical report) counts in place of a
  missing requirement, and is 100 when every requirement is met;
* the classification is the best class whose progress is 100.

``parse_mof`` raises :class:`~modelseal.errors.InputError` (naming every problem at once) for a
file that is not a model description at all; oddities inside a usable one (unknown component
names, numeric licence names, duplicates) become warnings, so all the MOT's own model files load.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, NoReturn

import yaml

from modelseal.audit.model import MofComponentResult, MofResult
from modelseal.audit.spdx import spdx_table
from modelseal.errors import InputError

__all__ = [
    "GLOBAL_LICENCE_TYPES",
    "MAX_BYTES",
    "MofComponentSpec",
    "MofListed",
    "MofRelease",
    "MofRules",
    "component_spec",
    "components",
    "is_open_licence",
    "is_type_appropriate",
    "load_mof",
    "parse_mof",
    "resolve_licence",
    "rules",
    "score",
]

MAX_BYTES = 2 * 1024 * 1024  # a MOF description is a few kilobytes; refuse anything this big
GLOBAL_LICENCE_TYPES = ("distribution", "code", "data", "document")
_MAX_LISTED = 50  # errors and warnings listed per file; the rest are counted

_SafeLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


# --- the rules -----------------------------------------------------------------------------


@dataclass(frozen=True)
class MofComponentSpec:
    """One of the 17 MOF components, as rules/mof.yaml defines it."""

    id: int
    name: str
    mof_class: int  # 1, 2 or 3: the class that first requires (or lists) it
    required: bool
    content_types: tuple[str, ...]  # the first names the global licence it inherits
    description: str
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class MofSubstitute:
    """``component`` counts in place of ``replaces`` when that one is not met."""

    component: int
    replaces: int
    citation: str


@dataclass(frozen=True)
class MofRules:
    """rules/mof.yaml, loaded."""

    version: str
    citation: dict[str, str]
    reference_tool: dict[str, str]
    class_labels: dict[int, str]  # 1, 2, 3 -> label
    unclassified_label: str
    components: tuple[MofComponentSpec, ...]
    substitutes: tuple[MofSubstitute, ...]
    no_licence_values: frozenset[str]  # folded
    not_included_pattern: re.Pattern[str]
    spdx_flags: tuple[str, ...]
    open_lists: dict[str, frozenset[str]]  # list name -> casefolded ids
    type_appropriate: dict[str, frozenset[str]]  # content type -> casefolded ids

    @property
    def classes(self) -> tuple[int, ...]:
        """Class numbers from the most to the least demanding (1, 2, 3)."""
        return tuple(sorted(self.class_labels))

    def required_for(self, mof_class: int) -> tuple[MofComponentSpec, ...]:
        """The required components of ``mof_class`` and of every class below it (cumulative)."""
        return tuple(c for c in self.components if c.required and c.mof_class >= mof_class)


def _fold(text: str) -> str:
    return " ".join(text.split()).casefold()


def _name_key(text: str) -> str:
    """Case, spacing and punctuation folded: ``"Model  Parameters (final)"`` -> ``model
    parameters final``."""
    words = re.sub(r"[^0-9a-z&]+", " ", text.casefold()).replace("&", " and ")
    return " ".join(words.split())


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


@functools.cache
def rules() -> MofRules:
    """The shipped rules (rules/mof.yaml), loaded once."""
    text = resources.files("modelseal.audit").joinpath("rules/mof.yaml").read_text("utf-8")
    raw = yaml.load(text, Loader=_SafeLoader)
    specs = tuple(
        MofComponentSpec(
            id=int(c["id"]),
            name=str(c["name"]),
            mof_class=int(c["class"]),
            required=bool(c["required"]),
            content_types=tuple(str(t) for t in _as_list(c["content_types"])),
            description=str(c.get("description", "")),
            aliases=tuple(str(a) for a in _as_list(c.get("aliases"))),
        )
        for c in raw["components"]
    )
    open_raw = raw["open_licences"]
    open_lists = {
        name: frozenset(_fold(str(x)) for x in _as_list(values))
        for name, values in open_raw.items()
        if name != "spdx_flags"
    }
    type_appropriate: dict[str, frozenset[str]] = {}
    for ctype, entry in raw["type_appropriate"].items():
        ids = {_fold(str(x)) for x in _as_list(entry.get("licences"))}
        for included in _as_list(entry.get("include")):
            ids |= open_lists[str(included)]
        type_appropriate[str(ctype)] = frozenset(ids)
    return MofRules(
        version=str(raw["version"]),
        citation={k: str(v) for k, v in raw["citation"].items()},
        reference_tool={k: str(v) for k, v in raw["reference_tool"].items()},
        class_labels={int(c["class"]): str(c["label"]) for c in raw["classes"]},
        unclassified_label=str(raw["unclassified_label"]),
        components=specs,
        substitutes=tuple(
            MofSubstitute(int(s["component"]), int(s["replaces"]), str(s.get("citation", "")))
            for s in _as_list(raw.get("substitutes"))
        ),
        no_licence_values=frozenset(_fold(str(v)) for v in _as_list(raw["no_licence_values"])),
        not_included_pattern=re.compile(str(raw["not_included_pattern"])),
        spdx_flags=tuple(str(f) for f in _as_list(open_raw.get("spdx_flags"))),
        open_lists=open_lists,
        type_appropriate=type_appropriate,
    )


def components() -> tuple[MofComponentSpec, ...]:
    """The 17 MOF components, Class III first (rules/mof.yaml order)."""
    return rules().components


@functools.cache
def _by_name() -> dict[str, MofComponentSpec]:
    index: dict[str, MofComponentSpec] = {}
    for spec in components():
        for spelling in (spec.name, *spec.aliases):
            index.setdefault(_name_key(spelling), spec)
    return index


def component_spec(name_or_id: str | int) -> MofComponentSpec | None:
    """The component named (or numbered) ``name_or_id``; spelling is matched leniently.

    Case, spacing and punctuation do not matter (``"model parameters (final)"``), and the
    aliases of rules/mof.yaml are accepted (``"Model parameters"`` is the final parameters).
    """
    if isinstance(name_or_id, bool):
        return None
    if isinstance(name_or_id, int):
        return next((c for c in components() if c.id == name_or_id), None)
    key = _name_key(name_or_id)
    if key.isdigit():
        return component_spec(int(key))
    return _by_name().get(key)


# --- licences ------------------------------------------------------------------------------


def is_open_licence(licence: str | None) -> bool:
    """Whether the MOF counts ``licence`` (an SPDX id or a listed model licence) as open."""
    if not licence or not licence.strip():
        return False
    r = rules()
    name = licence.strip()
    entry = spdx_table().get(name)
    if entry is not None and any(bool(getattr(entry, flag)) for flag in r.spdx_flags):
        return True
    folded = _fold(name)
    return any(folded in ids for ids in r.open_lists.values())


def is_type_appropriate(licence: str | None, content_types: tuple[str, ...]) -> bool:
    """Whether ``licence`` is one the MOF lists for any of ``content_types``."""
    if not licence or not licence.strip():
        return False
    folded = _fold(licence)
    table = rules().type_appropriate
    return any(folded in table.get(ctype, frozenset()) for ctype in content_types)


def _spdx_suggestion(licence: str) -> str | None:
    """An SPDX id a free-text licence name probably means (``"Apache 2.0"`` -> Apache-2.0)."""
    text = re.sub(r"(?i)\b(licen[cs]e|version|v(?=\d))\b", " ", licence)
    candidate = "-".join(text.split())
    return spdx_table().canonical(candidate)


# --- the description -----------------------------------------------------------------------


@dataclass(frozen=True)
class MofListed:
    """One component as a MOF description lists it."""

    mof_id: int
    name: str  # the MOF spelling
    licence: str | None  # the component's own licence (stripped); None when absent or empty
    licence_given: bool  # the key `license` was present, even if empty
    description: str
    component_path: str
    license_path: str


@dataclass(frozen=True)
class MofRelease:
    """A MOF model description (``release`` of the MOT's YAML format)."""

    name: str
    version: str
    producer: str
    type: str
    architecture: str
    repository: str
    huggingface: str
    date: str
    global_licences: dict[str, str | None]  # distribution/code/data/document -> licence name
    components: dict[int, MofListed]
    warnings: tuple[str, ...]
    source: str

    @classmethod
    def of_components(cls, components: dict[int, MofListed], source: str) -> MofRelease:
        """A description with nothing but ``components`` (no global licences, no metadata)."""
        return cls("", "", "", "", "", "", "", "", {}, components, (), source)


def load_mof(path: Path) -> MofRelease:
    """Read and parse the MOF description at ``path``."""
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise _too_big(str(path), size)
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(
            f"cannot read MOF description {path}: {exc.strerror or exc}",
            hint="pass the path of a MOF model description (.yml)",
        ) from exc
    return parse_mof(data, str(path))


def _too_big(source: str, size: int) -> InputError:
    return InputError(
        f"{source}: {size / 1e6:.1f} MB is too large for a MOF model description "
        f"(at most {MAX_BYTES // (1024 * 1024)} MiB)",
        hint="a MOF description is a short YAML file; is this the right file?",
    )


def _scalar(value: Any) -> str | None:
    """A YAML scalar as text (numbers, booleans and dates too); None for null/mappings/lists."""
    if value is None or isinstance(value, dict | list):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).strip()


def _decode(data: bytes | str, source: str) -> str:
    if isinstance(data, str):
        if len(data) > MAX_BYTES:
            raise _too_big(source, len(data.encode("utf-8", "surrogatepass")))
        return data
    if len(data) > MAX_BYTES:
        raise _too_big(source, len(data))
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{source}: not a MOF model description: not UTF-8 text "
            f"(byte {exc.start}: {data[exc.start : exc.start + 1]!r})",
            hint="a MOF description is a UTF-8 YAML file",
        ) from exc


def _load_yaml(text: str, source: str) -> Any:
    try:
        return yaml.load(text, Loader=_SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = exc.problem or exc.context or "invalid YAML"
        raise InputError(
            f"{source}: not a MOF model description: YAML error{where}: {problem}",
            hint="check the YAML syntax (indentation, quotes, colons)",
        ) from exc
    except (yaml.YAMLError, ValueError, TypeError, OverflowError, RecursionError) as exc:
        # ValueError: e.g. an impossible date (2024-02-30); RecursionError: absurd nesting
        raise InputError(
            f"{source}: not a MOF model description: cannot read the YAML: {exc}",
            hint="check the YAML syntax and values",
        ) from exc


def _type_name(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return "text" if isinstance(value, str) else f"a {type(value).__name__}"


class _Problems:
    """Errors (the file is unusable) and warnings (the file is odd), collected in one pass.

    At most :data:`_MAX_LISTED` of each are kept (a hostile file may hold thousands); the rest
    are counted.
    """

    def __init__(self, source: str) -> None:
        self.source = source
        self.errors: list[str] = []
        self.warnings: list[str] = []
        self.more_errors = 0
        self.more_warnings = 0

    def error(self, message: str) -> None:
        if len(self.errors) < _MAX_LISTED:
            self.errors.append(message)
        else:
            self.more_errors += 1

    def warn(self, message: str) -> None:
        if len(self.warnings) < _MAX_LISTED:
            self.warnings.append(message)
        else:
            self.more_warnings += 1

    def all_warnings(self) -> tuple[str, ...]:
        more = [f"… and {self.more_warnings} more warning(s)"] if self.more_warnings else []
        return (*self.warnings, *more)

    def raise_if_any(self) -> None:
        if self.errors:
            self.fail()

    def fail(self) -> NoReturn:
        total = len(self.errors) + self.more_errors
        listed = "\n".join(f"  - {e}" for e in self.errors)
        if self.more_errors:
            listed += f"\n  … and {self.more_errors} more"
        raise InputError(
            f"{self.source}: not a usable MOF model description ({total} problem(s)):\n{listed}",
            hint="see schema/mof_schema.json of the Model Openness Tool for the format",
        )


def _text_field(release: dict[str, Any], key: str, problems: _Problems) -> str:
    value = release.get(key)
    if value is None:
        return ""
    if isinstance(value, dict | list):
        problems.warn(f"release.{key} is {_type_name(value)}, not text; ignored")
        return ""
    return _scalar(value) or ""


def _licence_name(value: Any, where: str, problems: _Problems) -> str | None:
    """A licence name as written (stripped), or None; warns about odd types."""
    if value is None:
        return None
    if isinstance(value, dict | list):
        problems.error(f"{where} is {_type_name(value)}; expected a licence name")
        return None
    text = _scalar(value)
    if not isinstance(value, str):
        problems.warn(
            f"{where} is the {type(value).__name__} {text!r}, not a licence name; "
            "quote SPDX ids in YAML"
        )
    return text or None


def _global_licences(value: Any, problems: _Problems) -> dict[str, str | None]:
    found: dict[str, str | None] = dict.fromkeys(GLOBAL_LICENCE_TYPES)
    if value is None or value == [] or value == {}:
        return found
    if isinstance(value, str):
        problems.warn(
            "release.license is text, not a mapping; read as the distribution-wide licence"
        )
        found["distribution"] = value.strip() or None
        return found
    if not isinstance(value, dict):
        problems.error(
            f"release.license is {_type_name(value)}; expected a mapping of "
            "distribution/code/data/document to {name, path}"
        )
        return found
    for key, entry in value.items():
        kind = str(key)
        if kind not in found:
            problems.warn(f"release.license.{kind}: unknown licence type; ignored")
            continue
        where = f"release.license.{kind}.name"
        if isinstance(entry, dict):
            found[kind] = _licence_name(entry.get("name"), where, problems)
        elif entry is None:
            found[kind] = None
        else:
            problems.warn(
                f"release.license.{kind} is {_type_name(entry)}, not {{name, path}}; "
                "read as the licence name"
            )
            found[kind] = _licence_name(entry, f"release.license.{kind}", problems)
    return found


def _components(value: Any, problems: _Problems) -> dict[int, MofListed]:
    listed: dict[int, MofListed] = {}
    if value is None:
        return listed
    if not isinstance(value, list):
        problems.error(f"release.components is {_type_name(value)}; expected a list")
        return listed
    for index, entry in enumerate(value):
        where = f"release.components[{index}]"
        if not isinstance(entry, dict):
            problems.error(f"{where} is {_type_name(entry)}; expected a mapping")
            continue
        raw_name = _scalar(entry.get("name"))
        if not raw_name:
            problems.error(f"{where} has no name")
            continue
        spec = component_spec(raw_name)
        if spec is None or raw_name.isdigit():
            problems.warn(
                f"{where}: {raw_name!r} is not a MOF component; skipped "
                "(the 17 components are listed in rules/mof.yaml)"
            )
            continue
        if raw_name != spec.name:
            problems.warn(f"{where}: {raw_name!r} read as the MOF component {spec.name!r}")
        if spec.id in listed:
            problems.warn(
                f"{where}: {spec.name!r} is listed more than once; the first entry counts"
            )
            continue
        given = "license" in entry
        licence = _licence_name(entry.get("license"), f"{where}.license", problems)
        listed[spec.id] = MofListed(
            mof_id=spec.id,
            name=spec.name,
            licence=licence,
            licence_given=given,
            description=_scalar(entry.get("description")) or "",
            component_path=_scalar(entry.get("component_path")) or "",
            license_path=_scalar(entry.get("license_path")) or "",
        )
    return listed


def parse_mof(data: bytes | str, source: str) -> MofRelease:
    """Parse a MOF model description; :class:`InputError` lists every problem of an unusable one."""
    text = _decode(data, source)
    doc = _load_yaml(text, source)
    problems = _Problems(source)
    if not isinstance(doc, dict):
        problems.error(
            f"the document is {_type_name(doc)}; expected a mapping with `framework` and `release`"
        )
        problems.fail()
    framework = doc.get("framework")
    if isinstance(framework, dict):
        fname = _scalar(framework.get("name"))
        if fname and fname != "Model Openness Framework":
            problems.warn(f"framework.name is {fname!r}, not 'Model Openness Framework'")
        fversion = _scalar(framework.get("version"))
        if fversion and fversion != rules().version:
            problems.warn(
                f"framework.version is {fversion!r}; scored against MOF {rules().version}"
            )
    elif framework is not None:
        problems.warn(f"framework is {_type_name(framework)}, not a mapping; ignored")
    release = doc.get("release")
    if not isinstance(release, dict):
        problems.error(
            "no `release` mapping"
            if release is None
            else f"`release` is {_type_name(release)}; expected a mapping"
        )
        problems.fail()
    name_value = release.get("name")
    name = "" if isinstance(name_value, dict | list) else _scalar(name_value) or ""
    if not name:
        problems.error("release.name is missing or empty")
    elif not isinstance(name_value, str):
        problems.warn(f"release.name is the {type(name_value).__name__} {name!r}")
    globals_ = _global_licences(release.get("license"), problems)
    listed = _components(release.get("components"), problems)
    problems.raise_if_any()
    return MofRelease(
        name=name,
        version=_text_field(release, "version", problems),
        producer=_text_field(release, "producer", problems),
        type=_text_field(release, "type", problems),
        architecture=_text_field(release, "architecture", problems),
        repository=_text_field(release, "repository", problems),
        huggingface=_text_field(release, "huggingface", problems),
        date=_text_field(release, "date", problems),
        global_licences=globals_,
        components=listed,
        warnings=problems.all_warnings(),
        source=source,
    )


# --- scoring -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Judged:
    spec: MofComponentSpec
    status: str  # included | invalid | unlicensed | missing
    licence: str | None
    origin: str  # "component", "global:code", "global:distribution", ""


def resolve_licence(release: MofRelease, spec: MofComponentSpec) -> tuple[str | None, str]:
    """The licence a listed component is released under, and where it comes from.

    Returns ``(licence, origin)``; origin is ``"component"``, ``"global:<type>"`` or ``""``
    (no licence). The licence is as written (stripped), sentinels like ``unlicensed`` included.
    """
    listed = release.components[spec.id]
    if listed.licence_given:
        return listed.licence, "component"
    kinds = (spec.content_types[0], "distribution") if spec.content_types else ("distribution",)
    for kind in kinds:
        name = release.global_licences.get(kind)
        if name:
            return name, f"global:{kind}"
    return None, ""


def _judge(release: MofRelease, spec: MofComponentSpec) -> _Judged:
    if spec.id not in release.components:
        return _Judged(spec, "missing", None, "")
    licence, origin = resolve_licence(release, spec)
    r = rules()
    if licence is None or _fold(licence) in r.no_licence_values:
        return _Judged(spec, "unlicensed", None, origin)
    if r.not_included_pattern.search(licence):
        return _Judged(spec, "missing", None, origin)
    status = "included" if is_open_licence(licence) else "invalid"
    return _Judged(spec, status, licence, origin)


def _progress(judged: dict[int, _Judged], mof_class: int) -> float:
    r = rules()
    required = r.required_for(mof_class)
    required_ids = {c.id for c in required}
    included = {cid for cid, j in judged.items() if j.status == "included"}
    count = len(required_ids & included)
    met = set(required_ids & included)
    for sub in r.substitutes:
        if (
            sub.replaces in required_ids
            and sub.replaces not in included
            and sub.component in included
        ):
            met.add(sub.replaces)
            if sub.component not in required_ids:
                count += 1  # the substitute counts in place of the missing requirement
    if not required_ids or met >= required_ids:
        return 100.0
    return count / len(required_ids) * 100


def score(release: MofRelease) -> MofResult:
    """Score ``release`` against the MOF classes (see the module docstring for the rule)."""
    r = rules()
    judged = {spec.id: _judge(release, spec) for spec in r.components}
    warnings = list(release.warnings)
    results: list[MofComponentResult] = []
    unknown_names: set[str] = set()
    for spec in r.components:
        j = judged[spec.id]
        appropriate = is_type_appropriate(j.licence, spec.content_types)
        results.append(
            MofComponentResult(
                mof_id=spec.id,
                name=spec.name,
                mof_class=spec.mof_class,
                required=spec.required,
                status=j.status,
                licence=j.licence,
                type_appropriate=appropriate,
            )
        )
        if j.status == "included" and not appropriate:
            warnings.append(
                f"{spec.name}: {j.licence} is open but not among the MOF's licences for "
                f"{'/'.join(spec.content_types)}"
            )
        if (
            j.status == "invalid"
            and j.licence
            and spdx_table().get(j.licence) is None
            and j.licence.casefold() not in unknown_names
        ):
            unknown_names.add(j.licence.casefold())
            hint = _spdx_suggestion(j.licence)
            note = f" (did you mean the SPDX id {hint}?)" if hint else ""
            warnings.append(
                f"{spec.name}: licence {j.licence!r} is not an SPDX id nor on the MOF's open "
                f"lists, so it counts as not open{note}"
            )
    progress = {k: _progress(judged, k) for k in r.classes}
    for sub in r.substitutes:
        if judged[sub.replaces].status != "included" and judged[sub.component].status == "included":
            warnings.append(
                f"{judged[sub.component].spec.name} stands in for the "
                f"{judged[sub.replaces].spec.name} ({sub.citation})"
            )
    reached = [k for k in r.classes if progress[k] >= 100.0]
    classification = min(reached) if reached else 0
    label = r.class_labels.get(classification, r.unclassified_label)
    return MofResult(
        progress=progress,
        classification=classification,
        label=label,
        components=tuple(results),
        warnings=tuple(warnings),
        source=f"mof:{release.source}",
    )
