"""Guard pipelines from configuration data: a list of ``{"type": ..., options...}`` mappings.

    build_pipeline([
        {"type": "size", "max_input_chars": 20000},
        {"type": "secrets", "ignore": ["jwt"]},
        {"type": "pii", "email": "off", "phone": "off"},
        {"type": "patterns", "name": "no-rm", "deny": ["rm -rf /"], "stages": ["output"]},
    ])

Types map to factories in a registry; :func:`register_guard` adds one (the trained classifiers
plug in this way). A factory takes the options (everything but ``type``) and returns a guard; it
raises :class:`~modelseal.errors.InputError` for options it cannot use, and
:class:`GuardOptions` makes that one line per option. Every error names the guard by its index
and type, and the option at fault.

Common options of the built-in guards: ``name`` (default: the type; names must be unique in a
pipeline) and ``stages`` (``["input", "output"]`` by default).

Trained guards (:mod:`~modelseal.guard.trained`): ``injection`` (prompt injection and jailbreak,
input), ``harm`` (harmful request with an MLCommons hazard category, input), ``harm_output``
(harmful content, output). Options: ``threshold`` (0-1; default: the one calibrated at training
and stored in the model), ``flag_threshold`` (flag at or above it), ``action``, ``stages``,
``decode`` (score base64 / hex / percent / rot13 payloads too; default true),
``system_messages`` (also judge the request's system and developer messages; default false:
the operator's instructions are not an attack), ``second_stage`` (``harm``: also run its
fine-tuned encoder where the first stage is unsure; default true; false keeps the same
threshold and about 6 ms off the slowest checks) and ``model`` (a
model file of your own; default: the sealed model shipped in ``modelseal/guard/models``).

``leak`` (output): the answer repeats ``min_words`` (8) consecutive words of the request's system
prompt, or a planted string from ``canaries``; ``announce_action`` (``flag``) for answers that
announce their instructions.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from modelseal.errors import InputError
from modelseal.guard.base import ACTIONS, STAGES, Action, Guard
from modelseal.guard.leak import DEFAULT_MIN_WORDS, LeakGuard
from modelseal.guard.patterns import DEFAULT_MAX_SPAN, PatternGuard
from modelseal.guard.pii import CATEGORIES, DEFAULT_ACTIONS, PiiGuard
from modelseal.guard.pipeline import GuardPipeline
from modelseal.guard.secrets import DEFAULT_MIN_ENTROPY, KNOWN, SecretsGuard
from modelseal.guard.size import SizeGuard
from modelseal.guard.trained import load_guard_file

GuardFactory = Callable[[Mapping[str, Any]], Guard]

DEFAULT_GUARDS: list[dict[str, Any]] = [
    {"type": "size", "max_input_chars": 100_000, "max_output_chars": 100_000},
    {"type": "secrets"},
    {"type": "pii"},  # cards, IBANs and SSNs block; emails and phone numbers are flagged
    {"type": "injection"},  # the trained classifiers, at their calibrated thresholds
    {"type": "harm"},
    {"type": "harm_output"},
    {"type": "leak"},  # the request's system prompt repeated in the answer
]

MODELS_DIR = Path(__file__).resolve().parent / "models"
TRAINED = {"injection": "injection", "harm": "harm", "harm_output": "harm_output"}

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_REGISTRY: dict[str, GuardFactory] = {}


def _listing(items: Iterable[str]) -> str:
    return ", ".join(sorted(items))


class GuardOptions:
    """Typed, validated access to one guard's options.

    Each getter marks its option as known; :meth:`done` then refuses any option nobody asked
    for, so a typo (``max_imput_chars``) is an error instead of a silently ignored setting.
    """

    def __init__(self, options: Mapping[str, Any]) -> None:
        self._options = options
        self._known: set[str] = set()

    def _get(self, key: str) -> Any:
        self._known.add(key)
        return self._options.get(key)

    def has(self, key: str) -> bool:
        self._known.add(key)
        return key in self._options

    def get_str(self, key: str, default: str, choices: Iterable[str] | None = None) -> str:
        value = self._get(key)
        if value is None:
            return default
        if not isinstance(value, str):
            raise InputError(f"option {key!r} must be a string, not {type(value).__name__}")
        if choices is not None and value not in set(choices):
            raise InputError(f"option {key!r} must be one of {_listing(choices)}, not {value!r}")
        return value

    def get_int(self, key: str, default: int | None, minimum: int = 0) -> int | None:
        value = self._get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise InputError(f"option {key!r} must be a whole number >= {minimum}, not {value!r}")
        return value

    def get_float(self, key: str, default: float, low: float, high: float) -> float:
        value = self._get(key)
        if value is None:
            return default
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not low <= value <= high  # also refuses NaN
        ):
            raise InputError(f"option {key!r} must be a number from {low} to {high}, not {value!r}")
        return float(value)

    def get_bool(self, key: str, default: bool) -> bool:
        value = self._get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise InputError(f"option {key!r} must be true or false, not {value!r}")
        return value

    def get_str_list(self, key: str, default: Sequence[str] = ()) -> list[str]:
        value = self._get(key)
        if value is None:
            return list(default)
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list | tuple):
            raise InputError(f"option {key!r} must be a list of strings, not {value!r}")
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise InputError(
                    f"option {key!r}: item {i} must be a string, not {type(item).__name__}"
                )
        return list(value)

    def get_action(self, key: str = "action", default: Action = "block") -> Action:
        value = self.get_str(key, default, ACTIONS)
        return "block" if value == "block" else "flag"

    def get_stages(self, default: Iterable[str] = ("input", "output")) -> frozenset[str]:
        stages = self.get_str_list("stages", list(default))
        if not stages:
            raise InputError("option 'stages' must name at least one of input, output")
        for stage in stages:
            if stage not in STAGES:
                raise InputError(f"option 'stages': unknown stage {stage!r} (known: input, output)")
        return frozenset(stages)

    def get_name(self, default: str) -> str:
        name = self.get_str("name", default)
        if not _NAME.fullmatch(name):
            raise InputError(
                f"option 'name' must be 1-64 letters, digits, '_', '.' or '-', not {name!r}"
            )
        return name

    def done(self) -> None:
        unknown = [k for k in self._options if k not in self._known]
        if unknown:
            raise InputError(
                f"unknown option {unknown[0]!r} (known: {_listing(self._known)})",
            )


def register_guard(type_name: str, factory: GuardFactory, *, replace: bool = False) -> None:
    """Make ``{"type": type_name, ...}`` build a guard with ``factory(options)``."""
    if not isinstance(type_name, str) or not _NAME.fullmatch(type_name):
        raise InputError(f"guard type must be 1-64 letters, digits, '_', '.' or '-': {type_name!r}")
    if type_name in _REGISTRY and not replace:
        raise InputError(f"guard type {type_name!r} is already registered")
    _REGISTRY[type_name] = factory


def guard_types() -> list[str]:
    """The registered guard types."""
    return sorted(_REGISTRY)


def build_pipeline(spec: Sequence[Mapping[str, Any]]) -> GuardPipeline:
    """Build a pipeline from guard specs; any unusable spec raises InputError naming it."""
    if isinstance(spec, str | bytes | Mapping) or not isinstance(spec, Sequence):
        raise InputError(f"guards must be a list of mappings, not {type(spec).__name__}")
    guards: list[Guard] = []
    names: dict[str, int] = {}
    for i, item in enumerate(spec):
        if not isinstance(item, Mapping):
            raise InputError(f"guard {i}: expected a mapping with a 'type', not {item!r}")
        kind = item.get("type")
        if not isinstance(kind, str):
            raise InputError(f"guard {i}: missing 'type' (known: {_listing(_REGISTRY)})")
        factory = _REGISTRY.get(kind)
        if factory is None:
            raise InputError(f"guard {i}: unknown type {kind!r} (known: {_listing(_REGISTRY)})")
        options = {k: v for k, v in item.items() if k != "type"}
        try:
            guard = factory(options)
        except InputError as exc:
            raise InputError(f"guard {i} ({kind}): {exc.message}", hint=exc.hint) from None
        if guard.name in names:
            raise InputError(
                f"guard {i} ({kind}): name {guard.name!r} is already used by guard "
                f"{names[guard.name]}; give one of them another 'name'"
            )
        names[guard.name] = i
        guards.append(guard)
    return GuardPipeline(guards)


def _size(options: Mapping[str, Any]) -> Guard:
    opts = GuardOptions(options)
    max_input = opts.get_int("max_input_chars", None)
    max_output = opts.get_int("max_output_chars", None)
    name = opts.get_name("size")
    opts.done()
    if max_input is None and max_output is None:
        raise InputError("set 'max_input_chars' and/or 'max_output_chars'")
    return SizeGuard(max_input_chars=max_input, max_output_chars=max_output, name=name)


def _patterns(options: Mapping[str, Any]) -> Guard:
    opts = GuardOptions(options)
    deny = opts.get_str_list("deny")
    allow = opts.get_str_list("allow")
    case_insensitive = opts.get_bool("case_insensitive", False)
    action = opts.get_action()
    stages = opts.get_stages()
    max_span = opts.get_int("max_span", DEFAULT_MAX_SPAN, minimum=1)
    name = opts.get_name("patterns")
    opts.done()
    if not deny:
        raise InputError("option 'deny' must list at least one pattern")
    return PatternGuard(
        deny=deny,
        allow=allow,
        case_insensitive=case_insensitive,
        action=action,
        stages=stages,
        max_span=max_span if max_span is not None else DEFAULT_MAX_SPAN,
        name=name,
    )


def _secrets(options: Mapping[str, Any]) -> Guard:
    opts = GuardOptions(options)
    ignore = opts.get_str_list("ignore")
    for kind in ignore:
        if kind not in KNOWN:
            raise InputError(
                f"option 'ignore': unknown secret kind {kind!r} (known: {_listing(KNOWN)})"
            )
    guard = SecretsGuard(
        action=opts.get_action(),
        ignore=ignore,
        min_entropy=opts.get_float("min_entropy", DEFAULT_MIN_ENTROPY, 0.0, 8.0),
        stages=opts.get_stages(),
        name=opts.get_name("secrets"),
    )
    opts.done()
    return guard


def _pii(options: Mapping[str, Any]) -> Guard:
    opts = GuardOptions(options)
    actions = {
        category: opts.get_str(category, DEFAULT_ACTIONS[category], ("block", "flag", "off"))
        for category in CATEGORIES
    }
    guard = PiiGuard(actions=actions, stages=opts.get_stages(), name=opts.get_name("pii"))
    opts.done()
    return guard


def _leak(options: Mapping[str, Any]) -> Guard:
    opts = GuardOptions(options)
    min_words = opts.get_int("min_words", DEFAULT_MIN_WORDS, minimum=3)
    guard = LeakGuard(
        min_words=min_words if min_words is not None else DEFAULT_MIN_WORDS,
        canaries=opts.get_str_list("canaries"),
        action=opts.get_action(),
        announce_action=opts.get_str("announce_action", "flag", ("block", "flag", "off")),
        name=opts.get_name("leak"),
    )
    opts.done()
    return guard


def shipped_model(type_name: str) -> Path:
    """The path of a shipped trained model (``modelseal/guard/models/NAME.safetensors``)."""
    return MODELS_DIR / f"{TRAINED[type_name]}.safetensors"


def _trained(type_name: str) -> GuardFactory:
    def factory(options: Mapping[str, Any]) -> Guard:
        opts = GuardOptions(options)
        model = opts.get_str("model", "")
        threshold = opts.get_float("threshold", -1.0, -1.0, 1.0)
        flag = opts.get_float("flag_threshold", -1.0, -1.0, 1.0)
        for key_, value in (("threshold", threshold), ("flag_threshold", flag)):
            if opts.has(key_) and value < 0:
                raise InputError(f"option {key_!r} must be a number from 0 to 1, not {value!r}")
        action = opts.get_action()
        stages = opts.get_stages(()) if opts.has("stages") else None
        decode = opts.get_bool("decode", True)
        system_messages = opts.get_bool("system_messages", False)
        second_stage = opts.get_bool("second_stage", True)
        name = opts.get_name(type_name)
        opts.done()
        if flag >= 0 and threshold >= 0 and flag > threshold:
            raise InputError("option 'flag_threshold' must not be above 'threshold'")
        path = Path(model).expanduser() if model else shipped_model(type_name)
        return load_guard_file(
            path,
            name=name,
            threshold=threshold if threshold >= 0 else None,
            flag_threshold=flag if flag >= 0 else None,
            action=action,
            stages=stages,
            decode=decode,
            system_messages=system_messages,
            second_stage=second_stage,
        )

    return factory


for _type, _factory in (
    ("size", _size),
    ("patterns", _patterns),
    ("secrets", _secrets),
    ("pii", _pii),
    ("leak", _leak),
    *((t, _trained(t)) for t in TRAINED),
):
    register_guard(_type, _factory)
