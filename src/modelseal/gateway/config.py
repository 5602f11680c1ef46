"""The gateway's configuration: one YAML file (``--config``), every key optional.

Unknown keys are refused (a typo must not silently weaken a policy), and every error names the
key at fault::

    model:
      id: gemma-3-270m        # the model id clients ask for (default: the sealed release name)
      upstream_id: null       # the id the upstream serves (default: the only one it lists)
    checks:
      interval_s: 300         # re-verify the seal, revocation and upstream this often
      seal: closed            # closed: stop serving (503) when the check fails; open: warn only
      revocation: closed
      upstream: closed
      trust: null             # trust store (default $MODELSEAL_HOME/trust)
      crl: null               # a signed revocation list file (re-read at every check)
      log: null               # or a log server URL to check revocation against
    upstream:
      timeout_s: 120          # read timeout per upstream request (504 when it passes)
      connect_timeout_s: 5
      max_connections: 512
    guards:
      mode: buffer            # buffer: hold streamed text until checked;
                              # stream: forward at once, cut the stream on a violation
      input: [...]            # guard specs (modelseal.guard.config); default DEFAULT_GUARDS
      output: [...]
    auth:
      admin_token_hash: null  # sha256:<hex> of the admin token (or MODELSEAL_ADMIN_TOKEN)
      anonymous: null         # allow requests without a key (default: only when no keys exist)
      anonymous_limits: {requests_per_minute: null, tokens_per_minute: null}
      default_policy: {...}   # parameter policy for keys without their own
      keys:
        - {id: alice, hash: "sha256:...", requests_per_minute: 60, tokens_per_minute: 20000,
           policy: {max_tokens: 512, max_n: 1, logprobs: strip, logit_bias: refuse}}
    limits:
      redis: null             # redis://host:port/db shares rate-limit state across replicas
      prefix: "modelseal:"    # key prefix in Redis (one per deployment)
    audit:
      path: null              # default $MODELSEAL_HOME/gateway/audit.db; "off" disables
      record_prompts: false   # raw prompts and answers stay out of the audit log unless true
    receipts:
      key: null               # Ed25519 key (default $MODELSEAL_HOME/gateway/receipt.key)
    extraction:               # distillation / extraction defence (modelseal.gateway.extraction)
      enabled: true
      window_s: 3600          # statistics window
      min_requests: 50        # fewer requests in the window scale the score down
      history: 128            # prompt sketches remembered per subject
      max_subjects: 4096      # API keys + client addresses tracked (least recent forgotten)
      trusted_proxies: 0      # reverse proxies whose X-Forwarded-For is trusted (0: the peer)
      exempt_keys: []         # key ids never scored nor acted on (an evaluation harness)
      hysteresis: 0.1         # an action stops below its threshold minus this
      alert_at: 0.5           # audit event, metric, dashboard (null: off)
      strip_logprobs_at: 0.6  # remove logprobs, top_logprobs, logit_bias (null: off)
      tighten_at: 0.7         # scale the subject's rate limits (null: off)
      tighten_factor: 0.25
      tighten_requests_per_minute: 60   # the limit scaled for a subject without one
      refuse_at: 0.85         # 429 extraction_suspected (null: off)
      weights: {}             # feature weights, by name, in [0, 1]
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from modelseal.errors import ConfigError
from modelseal.gateway.extraction import FEATURES, ExtractionSettings

CheckMode = Literal["closed", "open"]
GuardMode = Literal["buffer", "stream"]


@dataclass(frozen=True)
class KeySpec:
    id: str
    hash: str
    requests_per_minute: float | None = None
    tokens_per_minute: float | None = None
    policy: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class GatewayConfig:
    model_id: str | None = None
    upstream_id: str | None = None
    check_interval_s: float = 300.0
    check_seal: CheckMode = "closed"
    check_revocation: CheckMode = "closed"
    check_upstream: CheckMode = "closed"
    trust: Path | None = None
    crl: Path | None = None
    log_url: str | None = None
    timeout_s: float = 120.0
    connect_timeout_s: float = 5.0
    max_connections: int = 512
    guard_mode: GuardMode = "buffer"
    input_guards: tuple[Mapping[str, Any], ...] | None = None
    output_guards: tuple[Mapping[str, Any], ...] | None = None
    admin_token_hash: str | None = None
    anonymous: bool | None = None
    anonymous_rpm: float | None = None
    anonymous_tpm: float | None = None
    default_policy: Mapping[str, Any] = field(default_factory=dict)
    keys: tuple[KeySpec, ...] = ()
    redis_url: str | None = None
    redis_prefix: str = "modelseal:"
    audit_path: Path | None = None
    audit_off: bool = False
    record_prompts: bool = False
    receipt_key: Path | None = None
    extraction: ExtractionSettings = field(default_factory=ExtractionSettings)

    @property
    def allow_anonymous(self) -> bool:
        return not self.keys if self.anonymous is None else self.anonymous


_SECTIONS: dict[str, set[str]] = {
    "model": {"id", "upstream_id"},
    "checks": {"interval_s", "seal", "revocation", "upstream", "trust", "crl", "log"},
    "upstream": {"timeout_s", "connect_timeout_s", "max_connections"},
    "guards": {"mode", "input", "output"},
    "auth": {"admin_token_hash", "anonymous", "anonymous_limits", "default_policy", "keys"},
    "limits": {"redis", "prefix"},
    "audit": {"path", "record_prompts"},
    "receipts": {"key"},
    "extraction": {
        "enabled",
        "window_s",
        "min_requests",
        "history",
        "max_subjects",
        "trusted_proxies",
        "exempt_keys",
        "hysteresis",
        "alert_at",
        "strip_logprobs_at",
        "tighten_at",
        "tighten_factor",
        "tighten_requests_per_minute",
        "refuse_at",
        "weights",
    },
}
_KEY_FIELDS = {"id", "hash", "requests_per_minute", "tokens_per_minute", "policy"}


def load_config(path: str | os.PathLike[str] | None) -> GatewayConfig:
    """Read ``path`` (YAML); ``None`` gives the defaults."""
    if path is None:
        return GatewayConfig()
    import yaml

    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the gateway config {path}: {exc}") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    return parse_config(doc if doc is not None else {}, source=str(path), base=Path(path).parent)


def parse_config(doc: object, *, source: str = "config", base: Path | None = None) -> GatewayConfig:
    """Validate a parsed config document (see the module docstring)."""
    top = _mapping(doc, source)
    for name in top:
        if name not in _SECTIONS:
            raise ConfigError(
                f"{source}: unknown section {name!r}",
                hint=f"known sections: {', '.join(sorted(_SECTIONS))}",
            )
    sec = {name: _section(top, name, source) for name in _SECTIONS}
    where = source

    def path_of(value: object, key: str) -> Path | None:
        text = _opt_str(value, f"{where}: {key}")
        if text is None:
            return None
        candidate = Path(os.path.expanduser(text))
        return candidate if candidate.is_absolute() or base is None else base / candidate

    model, checks, upstream = sec["model"], sec["checks"], sec["upstream"]
    guards, auth, audit = sec["guards"], sec["auth"], sec["audit"]
    anonymous_limits = _mapping(auth.get("anonymous_limits", {}), f"{where}: auth.anonymous_limits")
    for name in anonymous_limits:
        if name not in {"requests_per_minute", "tokens_per_minute"}:
            raise ConfigError(f"{where}: unknown key auth.anonymous_limits.{name}")
    audit_path_raw = audit.get("path")
    audit_off = audit_path_raw in ("off", False)
    return GatewayConfig(
        model_id=_opt_str(model.get("id"), f"{where}: model.id"),
        upstream_id=_opt_str(model.get("upstream_id"), f"{where}: model.upstream_id"),
        check_interval_s=_number(checks.get("interval_s", 300), f"{where}: checks.interval_s", 1),
        check_seal=_mode(checks.get("seal", "closed"), f"{where}: checks.seal"),
        check_revocation=_mode(checks.get("revocation", "closed"), f"{where}: checks.revocation"),
        check_upstream=_mode(checks.get("upstream", "closed"), f"{where}: checks.upstream"),
        trust=path_of(checks.get("trust"), "checks.trust"),
        crl=path_of(checks.get("crl"), "checks.crl"),
        log_url=_opt_str(checks.get("log"), f"{where}: checks.log"),
        timeout_s=_number(upstream.get("timeout_s", 120), f"{where}: upstream.timeout_s", 0.001),
        connect_timeout_s=_number(
            upstream.get("connect_timeout_s", 5), f"{where}: upstream.connect_timeout_s", 0.001
        ),
        max_connections=int(
            _number(upstream.get("max_connections", 512), f"{where}: upstream.max_connections", 1)
        ),
        guard_mode=_guard_mode(guards.get("mode", "buffer"), f"{where}: guards.mode"),
        input_guards=_guard_specs(guards.get("input"), f"{where}: guards.input"),
        output_guards=_guard_specs(guards.get("output"), f"{where}: guards.output"),
        admin_token_hash=_digest(auth.get("admin_token_hash"), f"{where}: auth.admin_token_hash"),
        anonymous=_opt_bool(auth.get("anonymous"), f"{where}: auth.anonymous"),
        anonymous_rpm=_opt_number(
            anonymous_limits.get("requests_per_minute"), f"{where}: auth.anonymous_limits"
        ),
        anonymous_tpm=_opt_number(
            anonymous_limits.get("tokens_per_minute"), f"{where}: auth.anonymous_limits"
        ),
        default_policy=_mapping(auth.get("default_policy", {}), f"{where}: auth.default_policy"),
        keys=_keys(auth.get("keys", []), where),
        redis_url=_opt_str(sec["limits"].get("redis"), f"{where}: limits.redis"),
        redis_prefix=_opt_str(sec["limits"].get("prefix"), f"{where}: limits.prefix")
        or "modelseal:",
        audit_path=None if audit_off else path_of(audit_path_raw, "audit.path"),
        audit_off=audit_off,
        record_prompts=bool(
            _opt_bool(audit.get("record_prompts", False), f"{where}: audit.record_prompts")
        ),
        receipt_key=path_of(sec["receipts"].get("key"), "receipts.key"),
        extraction=_extraction(sec["extraction"], f"{where}: extraction"),
    )


def _mapping(value: object, where: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
    out: dict[str, Any] = {}
    for key, item in value.items():
        if not isinstance(key, str):
            raise ConfigError(f"{where}: keys must be strings, got {key!r}")
        out[key] = item
    return out


def _section(top: Mapping[str, Any], name: str, source: str) -> dict[str, Any]:
    raw = top.get(name)
    if raw is None:
        return {}
    section = _mapping(raw, f"{source}: {name}")
    for key in section:
        if key not in _SECTIONS[name]:
            raise ConfigError(
                f"{source}: unknown key {name}.{key}",
                hint=f"known keys of {name}: {', '.join(sorted(_SECTIONS[name]))}",
            )
    return section


def _opt_str(value: object, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}: expected a non-empty string, got {value!r}")
    return value


def _opt_bool(value: object, where: str) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    raise ConfigError(f"{where}: expected true or false, got {value!r}")


def _number(value: object, where: str, minimum: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if value < minimum:
        raise ConfigError(f"{where}: must be at least {minimum}, got {value}")
    return float(value)


def _opt_number(value: object, where: str) -> float | None:
    return None if value is None else _number(value, where, 0)


def _mode(value: object, where: str) -> CheckMode:
    if value == "closed":
        return "closed"
    if value == "open":
        return "open"
    raise ConfigError(f"{where}: expected 'closed' or 'open', got {value!r}")


def _guard_mode(value: object, where: str) -> GuardMode:
    if value == "buffer":
        return "buffer"
    if value == "stream":
        return "stream"
    raise ConfigError(f"{where}: expected 'buffer' or 'stream', got {value!r}")


def _guard_specs(value: object, where: str) -> tuple[Mapping[str, Any], ...] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise ConfigError(f"{where}: expected a list of guard specs")
    return tuple(_mapping(item, f"{where}[{i}]") for i, item in enumerate(value))


def _digest(value: object, where: str) -> str | None:
    text = _opt_str(value, where)
    if text is None:
        return None
    hexpart = text.removeprefix("sha256:")
    if not text.startswith("sha256:") or len(hexpart) != 64:
        raise ConfigError(f"{where}: expected sha256:<64 hex digits>")
    try:
        bytes.fromhex(hexpart)
    except ValueError:
        raise ConfigError(f"{where}: expected sha256:<64 hex digits>") from None
    return text


def _keys(value: object, where: str) -> tuple[KeySpec, ...]:
    if not isinstance(value, list):
        raise ConfigError(f"{where}: auth.keys must be a list")
    keys: list[KeySpec] = []
    seen: set[str] = set()
    for i, raw in enumerate(value):
        at = f"{where}: auth.keys[{i}]"
        item = _mapping(raw, at)
        for name in item:
            if name not in _KEY_FIELDS:
                raise ConfigError(f"{at}: unknown key {name!r}")
        key_id = _opt_str(item.get("id"), f"{at}.id")
        key_hash = _digest(item.get("hash"), f"{at}.hash")
        if key_id is None or key_hash is None:
            raise ConfigError(f"{at}: every key needs an id and a hash (modelseal gateway key)")
        if key_id in seen:
            raise ConfigError(f"{at}: duplicate key id {key_id!r}")
        seen.add(key_id)
        policy = item.get("policy")
        keys.append(
            KeySpec(
                id=key_id,
                hash=key_hash,
                requests_per_minute=_opt_number(item.get("requests_per_minute"), f"{at}"),
                tokens_per_minute=_opt_number(item.get("tokens_per_minute"), f"{at}"),
                policy=None if policy is None else _mapping(policy, f"{at}.policy"),
            )
        )
    return tuple(keys)


def _integer(value: object, where: str, minimum: int, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
        raise ConfigError(f"{where}: must be {bound}, got {value}")
    return value


def _fraction(value: object, where: str, *, low: float = 0.0, high: float = 1.0) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if not low <= value <= high:
        raise ConfigError(f"{where}: must be between {low:g} and {high:g}, got {value}")
    return float(value)


def _finite(value: object, where: str, minimum: float) -> float:
    number = _number(value, where, minimum)
    if not math.isfinite(number):
        raise ConfigError(f"{where}: expected a finite number, got {value!r}")
    return number


def _extraction(section: Mapping[str, Any], where: str) -> ExtractionSettings:
    default = ExtractionSettings()

    def threshold(name: str) -> float | None:
        value = section.get(name, getattr(default, name))
        return None if value is None else _fraction(value, f"{where}.{name}")

    enabled = _opt_bool(section.get("enabled", True), f"{where}.enabled")
    exempt = section.get("exempt_keys", [])
    if not isinstance(exempt, list) or not all(isinstance(k, str) and k for k in exempt):
        raise ConfigError(f"{where}.exempt_keys: expected a list of key ids, got {exempt!r}")
    weights = _mapping(section.get("weights", {}), f"{where}.weights")
    for name, value in weights.items():
        if name not in FEATURES:
            raise ConfigError(
                f"{where}.weights: unknown feature {name!r}",
                hint=f"features: {', '.join(FEATURES)}",
            )
        _fraction(value, f"{where}.weights.{name}")
    factor = _fraction(
        section.get("tighten_factor", default.tighten_factor), f"{where}.tighten_factor"
    )
    if factor <= 0:
        raise ConfigError(f"{where}.tighten_factor: must be above 0, got {factor:g}")
    return ExtractionSettings(
        enabled=bool(enabled),
        window_s=_finite(section.get("window_s", default.window_s), f"{where}.window_s", 60),
        min_requests=_integer(
            section.get("min_requests", default.min_requests), f"{where}.min_requests", 1
        ),
        history=_integer(section.get("history", default.history), f"{where}.history", 8, 4096),
        max_subjects=_integer(
            section.get("max_subjects", default.max_subjects), f"{where}.max_subjects", 1
        ),
        trusted_proxies=_integer(
            section.get("trusted_proxies", default.trusted_proxies),
            f"{where}.trusted_proxies",
            0,
            16,
        ),
        exempt_keys=tuple(exempt),
        hysteresis=_fraction(
            section.get("hysteresis", default.hysteresis), f"{where}.hysteresis", high=0.5
        ),
        alert_at=threshold("alert_at"),
        strip_logprobs_at=threshold("strip_logprobs_at"),
        tighten_at=threshold("tighten_at"),
        tighten_factor=factor,
        tighten_requests_per_minute=_finite(
            section.get("tighten_requests_per_minute", default.tighten_requests_per_minute),
            f"{where}.tighten_requests_per_minute",
            0.001,
        ),
        refuse_at=threshold("refuse_at"),
        weights={name: float(value) for name, value in weights.items()},
    )
