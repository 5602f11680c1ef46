"""Model identity: is the upstream serving the sealed bytes, and is the seal still good?

Three checks, each ``closed`` (a failure stops serving: 503) or ``open`` (a failure is reported
but the gateway keeps serving), run at start and then on a schedule:

- ``seal``        the bundle verifies against the release files, offline, as ``modelseal verify``
                  does (signature, statement, chain, validity window, files, log proof)
- ``revocation``  the seal's serial is on no signed revocation list (re-read at every check, so a
                  new list takes effect without a restart) and no revocation follows it in the log
- ``upstream``    the upstream lists the expected model id, and where it exposes the file it
                  loaded (an absolute path in the model id, vLLM's ``root``, llama.cpp's
                  ``/props`` ``model_path``) that file is one of the sealed files, byte for byte
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from modelseal.errors import Error, ModelRefused, UpstreamError
from modelseal.gateway.upstream import Upstream


@dataclass(frozen=True)
class CheckState:
    name: str
    ok: bool
    reason: str
    mode: str
    skipped: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "check": self.name,
            "ok": self.ok,
            "mode": self.mode,
            "skipped": self.skipped,
            "reason": self.reason,
        }


@dataclass
class IdentityStatus:
    checks: list[CheckState] = field(default_factory=list)
    checked_at: str | None = None
    serial: str | None = None
    release: str | None = None
    root: str | None = None
    not_after: str | None = None
    upstream_model: str | None = None

    @property
    def serving(self) -> bool:
        """False when any fail-closed check failed (or nothing was checked yet)."""
        if not self.checks:
            return False
        return all(c.ok or c.mode == "open" for c in self.checks)

    @property
    def problems(self) -> list[CheckState]:
        return [c for c in self.checks if not c.ok]

    def reason(self) -> str:
        failed = [c for c in self.checks if not c.ok and c.mode == "closed"]
        if not self.checks:
            return "the model has not been verified yet"
        return "; ".join(f"{c.name}: {c.reason}" for c in failed) or "ok"

    def to_dict(self) -> dict[str, Any]:
        return {
            "serving": self.serving,
            "checked_at": self.checked_at,
            "serial": self.serial,
            "release": self.release,
            "root": self.root,
            "not_after": self.not_after,
            "upstream_model": self.upstream_model,
            "checks": [c.to_dict() for c in self.checks],
        }


@dataclass
class IdentitySpec:
    release_dir: Path
    bundle_path: Path
    trust_dir: Path
    crl_path: Path | None = None
    log_url: str | None = None
    upstream_id: str | None = None
    mode_seal: str = "closed"
    mode_revocation: str = "closed"
    mode_upstream: str = "closed"
    launched_file: Path | None = None  # the sealed file this gateway started llama.cpp on
    model_id: str | None = None  # the id the gateway serves: the default expected upstream id


SEAL_CHECKS = ("signature", "statement", "chain", "validity", "files", "log")


def verify_release(spec: IdentitySpec, at: datetime | None = None) -> tuple[IdentityStatus, Any]:
    """The seal and revocation checks (blocking: re-hashes the release).

    Returns the status and the sealed manifest (a dict, None when the seal could not be read).
    """
    from modelseal.ca.truststore import load_trust
    from modelseal.seal.bundle import SealBundle
    from modelseal.seal.verify import verify_seal

    status = IdentityStatus(checked_at=_now())
    try:
        bundle = SealBundle.from_json(spec.bundle_path.read_bytes(), str(spec.bundle_path))
        trust = load_trust(spec.trust_dir)
        crl = None
        if spec.crl_path is not None:
            from modelseal.ca.revocation import load_crl

            crl = load_crl(spec.crl_path.read_bytes())
        client = None
        if spec.log_url:
            from modelseal.tlog.client import LogClient

            client = LogClient(spec.log_url)
        result = verify_seal(spec.release_dir, bundle, trust, at=at, crl=crl, log_client=client)
    except OSError as exc:
        status.checks.append(CheckState("seal", False, f"cannot read: {exc}", spec.mode_seal))
        return status, None
    except Error as exc:
        status.checks.append(CheckState("seal", False, exc.message, spec.mode_seal))
        return status, None
    status.serial, status.release = result.serial, result.release
    status.root, status.not_after = result.root, result.not_after
    seal_failed = [c for c in result.checks if c.name != "revocation" and not c.ok]
    if seal_failed:
        reason = "; ".join(f"{c.name}: {c.reason}" for c in seal_failed)
        status.checks.append(CheckState("seal", False, reason, spec.mode_seal))
    else:
        status.checks.append(
            CheckState(
                "seal", True, f"seal {result.serial} verifies for {result.root}", spec.mode_seal
            )
        )
    revocation = [c for c in result.checks if c.name == "revocation"]
    if revocation:
        r = revocation[0]
        status.checks.append(
            CheckState("revocation", r.ok, r.reason, spec.mode_revocation, r.skipped)
        )
    else:
        status.checks.append(
            CheckState("revocation", False, "the seal could not be read", spec.mode_revocation)
        )
    return status, (result.predicate or {}).get("release", {}).get("manifest")


async def check_upstream(
    upstream: Upstream,
    spec: IdentitySpec,
    manifest: Any,
    hash_cache: dict[tuple[str, int, int], str],
) -> tuple[CheckState, str | None]:
    """Does the upstream serve the sealed model? Returns the check and the upstream model id."""
    mode = spec.mode_upstream
    try:
        listing = await upstream.get_json("/v1/models", timeout_s=10)
    except UpstreamError as exc:
        return CheckState("upstream", False, exc.message, mode), None
    entries = listing.get("data") if isinstance(listing, dict) else None
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        return CheckState(
            "upstream", False, "GET /v1/models is not an OpenAI model list", mode
        ), None
    ids = [str(e.get("id")) for e in entries]
    expected = spec.upstream_id or spec.model_id
    matching = [e for e in entries if e.get("id") == expected]
    if matching:
        entry = matching[0]
    elif spec.upstream_id is None and len(entries) == 1 and _exposes_file(entries[0]):
        entry = entries[0]  # e.g. llama.cpp or vLLM naming the model by its path: compared below
    else:
        shown = ", ".join(repr(i) for i in ids[:10]) or "none"
        return (
            CheckState(
                "upstream",
                False,
                f"the upstream does not serve {expected!r} (it lists {shown})",
                mode,
            ),
            None,
        )
    model_id = str(entry.get("id"))
    paths = [
        str(value)
        for value in (entry.get("id"), entry.get("root"), entry.get("path"))
        if isinstance(value, str) and os.path.isabs(value)
    ]
    try:
        props = await upstream.get_json("/props", timeout_s=5)
    except UpstreamError:
        props = None
    if isinstance(props, dict) and isinstance(props.get("model_path"), str):
        paths.append(props["model_path"])
    if not paths and spec.launched_file is not None:
        return (
            CheckState(
                "upstream",
                True,
                f"the upstream serves {model_id!r}: the llama.cpp server this gateway started "
                f"on the sealed file {spec.launched_file.name}",
                mode,
            ),
            model_id,
        )
    if not paths:
        return (
            CheckState(
                "upstream",
                True,
                f"the upstream serves {model_id!r} (it does not expose its model file)",
                mode,
            ),
            model_id,
        )
    for path in dict.fromkeys(paths):
        problem = await asyncio.to_thread(_match_file, Path(path), spec, manifest, hash_cache)
        if problem:
            return CheckState("upstream", False, problem, mode), model_id
    return (
        CheckState(
            "upstream",
            True,
            f"the upstream serves {model_id!r} from a sealed file of the release",
            mode,
        ),
        model_id,
    )


def _exposes_file(entry: dict[str, Any]) -> bool:
    return any(
        isinstance(entry.get(name), str) and os.path.isabs(entry[name])
        for name in ("id", "root", "path")
    )


def _match_file(
    path: Path, spec: IdentitySpec, manifest: Any, cache: dict[tuple[str, int, int], str]
) -> str | None:
    """None when ``path`` holds the bytes of a sealed file, else the reason it does not."""
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), list):
        return "the sealed manifest is not available to compare the upstream's model file with"
    try:
        st = path.stat()
    except OSError:
        return f"the upstream loads {path}, which this machine cannot read to compare"
    algorithm = manifest.get("algorithm", "sha256")
    wanted = {(f.get("size"), f.get("digest")) for f in manifest["files"] if isinstance(f, dict)}
    sizes = {size for size, _ in wanted}
    if st.st_size not in sizes:
        return f"the upstream's model file {path} is not a file of the sealed release"
    key = (str(path), st.st_size, st.st_mtime_ns)
    digest = cache.get(key)
    if digest is None:
        digest = _hash_file(path, algorithm)
        cache[key] = digest
    if (st.st_size, digest) not in wanted:
        return f"the upstream's model file {path} differs from every sealed file"
    return None


def _hash_file(path: Path, algorithm: str) -> str:
    if algorithm == "blake3":
        import blake3

        hasher: Any = blake3.blake3()
    else:
        hasher = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            hasher.update(chunk)
    return str(hasher.hexdigest())


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class IdentityMonitor:
    """Runs the checks at start and every ``interval_s``; ``status`` is always the latest."""

    def __init__(
        self,
        spec: IdentitySpec,
        upstream: Upstream,
        *,
        interval_s: float = 300.0,
        on_change: Callable[[IdentityStatus], None] | None = None,
    ) -> None:
        self.spec = spec
        self.upstream = upstream
        self.interval_s = interval_s
        self.status = IdentityStatus()
        self._on_change = on_change
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._hash_cache: dict[tuple[str, int, int], str] = {}
        self.last_duration_s = 0.0

    async def check_now(self) -> IdentityStatus:
        async with self._lock:
            started = time.perf_counter()
            status, manifest = await asyncio.to_thread(verify_release, self.spec)
            upstream_check, model_id = await check_upstream(
                self.upstream, self.spec, manifest, self._hash_cache
            )
            status.checks.append(upstream_check)
            status.upstream_model = model_id
            self.last_duration_s = time.perf_counter() - started
            self.status = status
            if self._on_change is not None:
                self._on_change(status)
            return status

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            await self.check_now()


GUARD_MODELS_SEAL = "models-seal"


def verify_guard_models(models_dir: Path | None = None) -> str:
    """Verify the shipped guard weights against their seal (dog-fooding) before they are loaded.

    The weights in ``modelseal/guard/models`` are a release certified by ``make train-guards``;
    its bundle and trust root ship beside it in ``modelseal/guard/models-seal``. Returns the
    seal's serial; raises :class:`ModelRefused` naming every failed check (a changed or missing
    weight file, a bad signature, an expired seal).
    """
    from modelseal.ca.truststore import load_trust
    from modelseal.guard.config import MODELS_DIR
    from modelseal.seal.bundle import SealBundle
    from modelseal.seal.verify import verify_seal

    models = models_dir or MODELS_DIR
    seal_dir = models.parent / GUARD_MODELS_SEAL
    bundle_path = seal_dir / "models.seal.json"
    try:
        bundle = SealBundle.from_json(bundle_path.read_bytes(), str(bundle_path))
        trust = load_trust(seal_dir / "trust")
        result = verify_seal(models, bundle, trust)
    except OSError as exc:
        raise ModelRefused(f"guard models: cannot read their seal: {exc}") from None
    except Error as exc:
        raise ModelRefused(f"guard models: {exc.message}") from None
    failed = [c for c in result.checks if not c.ok and not c.skipped]
    if failed:
        reasons = "; ".join(f"{c.name}: {c.reason}" for c in failed)
        raise ModelRefused(
            f"guard models in {models} do not verify against their seal: {reasons}",
            hint="reinstall modelseal, or rebuild and re-seal them with `make train-guards`",
        )
    return str(result.serial)
