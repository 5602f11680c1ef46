"""Request-parameter policy per API key: caps and strip/refuse/allow rules.

:func:`apply_policy` takes a parsed request body (chat or legacy completions) and returns the
body to send upstream plus short, stable notes of what it changed. It never mutates its input
and raises only :class:`~modelseal.errors.PolicyViolation` (``.param`` names the parameter).

Caps (when set):

- ``max_tokens``: every output-length parameter present (``max_tokens``,
  ``max_completion_tokens`` and llama.cpp's ``n_predict``) is capped; ``max_tokens`` is set when
  the request has none, so an upstream that ignores the newer name is still bounded. A value that
  is not a positive integer is refused: several servers read ``0`` or ``-1`` as "no limit", and
  lenient parsers turn ``"9999"`` into a number.
- ``max_n``: ``n`` and ``best_of`` are capped (``best_of >= n`` is kept).

Rules (``allow``, ``strip`` or ``refuse``) for ``logprobs``, ``top_logprobs``, ``logit_bias`` and
``echo``: ``strip`` removes the parameter, ``refuse`` raises when the request uses it. A value that
asks for nothing (``null``, ``false``, an empty object) is never refused; ``strip`` still removes
it, silently. Stripping ``logprobs`` also strips ``top_logprobs``, which needs it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Literal, cast

from modelseal.errors import ConfigError, PolicyViolation

__all__ = ["ACTIONS", "Action", "ParamPolicy", "apply_policy"]

Action = Literal["allow", "strip", "refuse"]
ACTIONS: tuple[str, ...] = ("allow", "strip", "refuse")

# output-length parameters, capped together; the first is the one set when none is present
_LENGTH_PARAMS = ("max_tokens", "max_completion_tokens", "n_predict")
_COUNT_PARAMS = ("n", "best_of")
_RULE_PARAMS = ("logprobs", "top_logprobs", "logit_bias", "echo")


@dataclass(frozen=True)
class ParamPolicy:
    """What one API key may ask of the model.

    ``max_tokens`` and ``max_n`` are caps (``None``: no cap); the other fields are the action for
    the parameter of the same name.
    """

    max_tokens: int | None = None
    max_n: int | None = None
    logprobs: Action = "strip"
    top_logprobs: Action = "strip"
    logit_bias: Action = "refuse"
    echo: Action = "strip"

    def __post_init__(self) -> None:
        for name in ("max_tokens", "max_n"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < 1
            ):
                raise ConfigError(f"policy {name}: expected a positive integer, got {value!r}")
        for name in _RULE_PARAMS:
            value = getattr(self, name)
            if value not in ACTIONS:
                raise ConfigError(
                    f"policy {name}: expected one of {', '.join(ACTIONS)}, got {value!r}"
                )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ParamPolicy:
        """Build from configuration (ConfigError naming an unknown key or a bad value)."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"policy: expected a mapping, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(str(k) for k in data if k not in known)
        if unknown:
            raise ConfigError(
                f"policy: unknown key(s) {', '.join(unknown)}",
                hint=f"known keys: {', '.join(sorted(known))}",
            )
        return cls(**{str(k): v for k, v in data.items()})

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _inactive(value: Any) -> bool:
    """True when the value asks for nothing (absent, null, false, empty)."""
    if value is None or value is False:
        return True
    return isinstance(value, dict | list | str) and len(value) == 0


def _as_count(param: str, value: Any) -> int:
    """A positive integer (an integral float is accepted), else PolicyViolation."""
    if isinstance(value, bool):
        number: int | None = None
    elif isinstance(value, int):
        number = value
    elif isinstance(value, float) and math.isfinite(value) and value.is_integer():
        number = int(value)
    else:
        number = None
    if number is None or number < 1:
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
        raise PolicyViolation(
            f"'{param}' must be a positive integer under this API key's policy (got {shown})",
            param=param,
        )
    return number


def _cap(body: dict[str, Any], param: str, cap: int, notes: list[str]) -> int | None:
    """Cap ``body[param]`` if present (not null); returns the value left, or None if absent."""
    if body.get(param) is None:
        return None
    original = body[param]
    value = _as_count(param, original)
    if value > cap:
        notes.append(f"{param}: capped {value} -> {cap}")
        value = cap
    body[param] = value
    return value


def apply_policy(body: dict[str, Any], policy: ParamPolicy) -> tuple[dict[str, Any], list[str]]:
    """Return ``(body to send upstream, notes)``; raise PolicyViolation on a refused parameter.

    The input is not modified. Notes are stable strings such as ``"max_tokens: capped 4096 ->
    512"``, ``"max_tokens: set to 512"``, ``"logprobs: stripped"``, in a fixed order.
    """
    if not isinstance(body, dict):
        raise PolicyViolation("the request body must be a JSON object", param=None)
    out = dict(body)
    notes: list[str] = []

    # refusals first: a refused request is refused whatever else it asks
    for param in _RULE_PARAMS:
        action = cast(str, getattr(policy, param))
        if action == "refuse" and param in out and not _inactive(out[param]):
            raise PolicyViolation(f"'{param}' is not allowed for this API key", param=param)

    for param in _RULE_PARAMS:
        action = cast(str, getattr(policy, param))
        if action != "strip" or param not in out:
            continue
        value = out.pop(param)
        if not _inactive(value):
            notes.append(f"{param}: stripped")
    if policy.logprobs == "strip" and "top_logprobs" in out:
        value = out.pop("top_logprobs")
        if not _inactive(value):
            notes.append("top_logprobs: stripped (needs logprobs)")

    if policy.max_tokens is not None:
        cap = policy.max_tokens
        left = {param: _cap(out, param, cap, notes) for param in _LENGTH_PARAMS}
        if left["max_tokens"] is None:
            # bound upstreams that only read max_tokens; keep the client's smaller limit
            others = [v for v in left.values() if v is not None]
            value = min(others) if others else cap
            out["max_tokens"] = value
            notes.append(f"max_tokens: set to {value}")

    if policy.max_n is not None:
        for param in _COUNT_PARAMS:
            _cap(out, param, policy.max_n, notes)

    return out, notes
