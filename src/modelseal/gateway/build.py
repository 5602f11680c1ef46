"""Assemble a :class:`~.service.Gateway` from its configuration and the command line."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelseal.errors import ConfigError, InputError
from modelseal.gateway.config import GatewayConfig
from modelseal.gateway.identity import IdentityMonitor, IdentitySpec
from modelseal.gateway.service import Gateway
from modelseal.gateway.upstream import open_upstream


@dataclass
class GatewayPaths:
    receipt_key: Path
    audit: Path | None
    trust: Path


def default_paths(config: GatewayConfig, home: Path | None = None) -> GatewayPaths:
    from modelseal.release.cache import modelseal_home

    base = home or modelseal_home()
    return GatewayPaths(
        receipt_key=config.receipt_key or base / "gateway" / "receipt.key",
        audit=None if config.audit_off else (config.audit_path or base / "gateway" / "audit.db"),
        trust=config.trust or base / "trust",
    )


def sealed_release_name(bundle_path: Path) -> str | None:
    """The release name inside a bundle, read without verifying (only to name the model)."""
    import base64

    try:
        doc = json.loads(bundle_path.read_bytes())
        payload = json.loads(base64.b64decode(doc["envelope"]["payload"]))
        name = payload["predicate"]["release"]["name"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return name if isinstance(name, str) and name else None


def build_gateway(
    config: GatewayConfig,
    *,
    upstream_url: str,
    release_dir: Path,
    bundle_path: Path,
    redis_url: str | None = None,
    admin_token: str | None = None,
    home: Path | None = None,
    transport: Any = None,
    upstream_api_key: str | None = None,
    upstream_id: str | None = None,
    launched_file: Path | None = None,
) -> Gateway:
    from modelseal.gateway.audit import AuditLog
    from modelseal.gateway.extraction import ExtractionMonitor
    from modelseal.gateway.identity import verify_guard_models
    from modelseal.gateway.keys import ApiKey, KeyStore, hash_key
    from modelseal.gateway.limits import open_limits
    from modelseal.gateway.metrics import Metrics
    from modelseal.gateway.policy import ParamPolicy
    from modelseal.gateway.receipts import ReceiptSigner, load_or_create_receipt_key
    from modelseal.guard.config import DEFAULT_GUARDS, TRAINED, build_pipeline

    if not release_dir.is_dir():
        raise InputError(f"not a release directory: {release_dir}")
    if not bundle_path.is_file():
        raise InputError(f"no such seal bundle: {bundle_path}")
    paths = default_paths(config, home)
    input_specs = list(config.input_guards) if config.input_guards is not None else DEFAULT_GUARDS
    output_specs = (
        list(config.output_guards) if config.output_guards is not None else DEFAULT_GUARDS
    )
    if any(
        spec.get("type") in TRAINED and not spec.get("model")
        for spec in [*input_specs, *output_specs]
    ):
        verify_guard_models()  # dog-fooding: the shipped guard weights must match their seal
    model_id = config.model_id or sealed_release_name(bundle_path) or release_dir.name

    def policy(spec: Any, where: str) -> ParamPolicy:
        try:
            return ParamPolicy.from_dict(dict(spec or {}))
        except (InputError, TypeError, ValueError) as exc:
            raise ConfigError(f"{where}: {exc}") from None

    default_policy = policy(config.default_policy, "auth.default_policy")
    keys = [
        ApiKey(
            id=k.id,
            key_hash=k.hash,
            requests_per_minute=k.requests_per_minute,
            tokens_per_minute=k.tokens_per_minute,
            policy=default_policy if k.policy is None else policy(k.policy, f"key {k.id} policy"),
        )
        for k in config.keys
    ]
    admin_hash = config.admin_token_hash or (hash_key(admin_token) if admin_token else None)
    store = KeyStore(keys, admin_hash)
    upstream = open_upstream(
        upstream_url,
        timeout_s=config.timeout_s,
        connect_timeout_s=config.connect_timeout_s,
        max_connections=config.max_connections,
        transport=transport,
        api_key=upstream_api_key,
    )
    spec = IdentitySpec(
        release_dir=release_dir,
        bundle_path=bundle_path,
        trust_dir=paths.trust,
        crl_path=config.crl,
        log_url=config.log_url,
        upstream_id=upstream_id or config.upstream_id,
        mode_seal=config.check_seal,
        mode_revocation=config.check_revocation,
        mode_upstream=config.check_upstream,
        launched_file=launched_file,
        model_id=model_id,
    )
    metrics = Metrics()
    identity = IdentityMonitor(
        spec,
        upstream,
        interval_s=config.check_interval_s,
        on_change=lambda status: metrics.set_seal(
            serial=status.serial,
            model=model_id,
            root=status.root,
            valid=status.serving,
            not_after=status.not_after,
            checks=[c.to_dict() for c in status.checks],
        ),
    )
    signer = ReceiptSigner(load_or_create_receipt_key(paths.receipt_key))
    extraction = ExtractionMonitor(config.extraction) if config.extraction.enabled else None
    return Gateway(
        model_id=model_id,
        upstream=upstream,
        identity=identity,
        keys=store,
        limits=open_limits(redis_url or config.redis_url, config.redis_prefix),
        input_guards=build_pipeline(input_specs),
        output_guards=build_pipeline(output_specs),
        signer=signer,
        metrics=metrics,
        audit=None if paths.audit is None else AuditLog(paths.audit),
        guard_mode=config.guard_mode,
        allow_anonymous=config.allow_anonymous,
        anonymous_policy=default_policy,
        anonymous_rpm=config.anonymous_rpm,
        anonymous_tpm=config.anonymous_tpm,
        upstream_id=upstream_id or config.upstream_id,
        record_prompts=config.record_prompts,
        admin_configured=admin_hash is not None,
        extraction=extraction,
    )
