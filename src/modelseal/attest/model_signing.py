"""Interop with OpenSSF model signing (``model_signing`` 1.x) key-based bundles.

A model-signing signature is a Sigstore bundle (media type
``application/vnd.dev.sigstore.bundle.v0.3+json``) holding a DSSE envelope of an in-toto
Statement v1::

    {"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
     "verificationMaterial": {"publicKey": {"hint": HEX}, "tlogEntries": []},
     "dsseEnvelope": {"payload": B64, "payloadType": "application/vnd.in-toto+json",
                      "signatures": [{"sig": B64, "keyid": ""}]}}

    statement = {"_type": "https://in-toto.io/Statement/v1",
                 "subject": [{"name": DIR_BASENAME, "digest": {"sha256": ROOT}}],
                 "predicateType": "https://model_signing/signature/v1.0",
                 "predicate": {"serialization": {"method": "files", "hash_type": "sha256",
                                                 "allow_symlinks": false,
                                                 "ignore_paths": [...]},
                               "resources": [{"name": PATH, "algorithm": "sha256",
                                              "digest": HEX}, ...]}}

- ``HEX`` (the key hint) is the hex SHA-256 of the *PEM* SubjectPublicKeyInfo;
- ``resources`` are sorted by path component (``pathlib.PurePosixPath`` order, which differs
  from plain string order: ``a/b`` sorts before ``a-b``);
- ``ROOT`` is SHA-256 over the concatenated raw per-file digests in that order (file names are
  *not* covered by ROOT, only by the resource list);
- the signature is ECDSA over the DSSE PAE, with the hash matching the curve (SHA-256 for P-256);
- ``ignore_paths`` are paths relative to the model directory, each excluding itself and
  everything under it; the git paths ``.git``, ``.gitattributes``, ``.github`` and
  ``.gitignore`` are ignored by default, as the ``model_signing`` CLI does.

Only the ``files`` serialization is supported (what ``model_signing sign key`` writes); hash
types ``sha256``, ``blake2b`` and ``blake3``. Symbolic links inside the model are hashed through
their target (model-signing needs ``--allow_symlinks`` for those); links leaving the directory,
devices and FIFOs are refused.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from modelseal.attest.dsse import PAYLOAD_TYPE, Envelope, EnvelopeError, Signature, pae
from modelseal.attest.signers import SignatureError, verify_signature
from modelseal.attest.statement import StatementError, canonical_json, parse_statement
from modelseal.errors import InputError, ManifestMismatch, VerificationError

BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
PREDICATE_TYPE = "https://model_signing/signature/v1.0"
LEGACY_PREDICATE_TYPE = "https://model_signing/Digests/v0.1"
GIT_PATHS: tuple[str, ...] = (".git", ".gitattributes", ".github", ".gitignore")
HASH_TYPES: tuple[str, ...] = ("sha256", "blake2b", "blake3")
MAX_BUNDLE_BYTES = 128 * 1024 * 1024
_HEX_LENGTH = {"sha256": 64, "blake2b": 128, "blake3": 64}

__all__ = [
    "BUNDLE_MEDIA_TYPE",
    "GIT_PATHS",
    "PREDICATE_TYPE",
    "OmsBundleError",
    "OmsSignature",
    "key_hint",
    "read_oms_bundle",
    "verify_oms_bundle",
    "write_oms_bundle",
]


class OmsBundleError(VerificationError):
    """A model-signing bundle that is malformed or does not fit the supported format."""


@dataclass(frozen=True, slots=True)
class OmsSignature:
    """What a verified model-signing bundle says about the model."""

    model_name: str
    root_digest: str  # hex SHA-256 over the raw per-file digests
    hash_type: str
    resources: tuple[tuple[str, str], ...]  # (path, hex digest), in the bundle's order
    ignore_paths: tuple[str, ...]


def key_hint(public_key: ec.EllipticCurvePublicKey) -> str:
    """model-signing's ``publicKey.hint``: hex SHA-256 of the PEM SubjectPublicKeyInfo."""
    pem = public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(pem).hexdigest()


def _check_ec_key(key: object, what: str) -> None:
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        if key.curve.name in ("secp256r1", "secp384r1", "secp521r1"):
            return
        raise InputError(
            f"model-signing needs a P-256, P-384 or P-521 {what}, not {key.curve.name}"
        )
    raise InputError(f"model-signing key bundles need an elliptic-curve {what}")


def _ec_hash_for(key: ec.EllipticCurvePrivateKey) -> hashes.HashAlgorithm:
    size = key.curve.key_size
    if size == 384:
        return hashes.SHA384()
    if size == 521:
        return hashes.SHA512()
    return hashes.SHA256()


# -- hashing a model directory the way model-signing does -----------------------------------------


def _normalise_ignore(paths: Iterable[str | os.PathLike[str]]) -> list[str]:
    out: list[str] = []
    for p in paths:
        text = os.fspath(p).replace(os.sep, "/").strip("/")
        parts = [c for c in text.split("/") if c not in ("", ".")]
        if not parts:
            raise InputError(f"ignore path {os.fspath(p)!r} would ignore the whole model")
        if ".." in parts:
            continue  # outside the model: nothing to ignore (as model-signing does)
        out.append("/".join(parts))
    return sorted(set(out))


def _hash_model(model_dir: Path, ignore: Sequence[str], hash_type: str) -> dict[str, str]:
    """path -> hex digest of every file under ``model_dir`` that ``ignore`` does not exclude."""
    from modelseal.release import paths as release_paths
    from modelseal.release.hashing import hash_files
    from modelseal.release.ignore import IgnoreRules, escape
    from modelseal.release.walk import walk

    rules = IgnoreRules(escape(p) for p in ignore)
    files = walk(model_dir, rules)
    for f in files:
        if not release_paths.is_utf8(f.path):
            raise InputError(f"file name {release_paths.display(f.path)!r} is not valid UTF-8")
    if hash_type in ("sha256", "blake3"):
        digests = hash_files(files, hash_type)
    elif hash_type == "blake2b":
        digests = []
        for f in files:
            h = hashlib.blake2b()
            try:
                with open(f.real, "rb") as fh:
                    while chunk := fh.read(1 << 20):
                        h.update(chunk)
            except OSError as exc:
                raise InputError(f"cannot read {f.path!r}: {exc.strerror}") from exc
            digests.append(h.hexdigest())
    else:
        raise OmsBundleError(f"unsupported model-signing hash_type {hash_type!r}")
    return {f.path: d for f, d in zip(files, digests, strict=True)}


def _oms_sort_key(name: str) -> tuple[str, ...]:
    # model-signing sorts manifest keys as PurePosixPath objects: by path component
    return tuple(name.split("/"))


def _root_of(hex_digests: Iterable[str]) -> str:
    h = hashlib.sha256()
    for d in hex_digests:
        h.update(bytes.fromhex(d))
    return h.hexdigest()


# -- writing -------------------------------------------------------------------------------------


def write_oms_bundle(
    model_dir: str | os.PathLike[str],
    private_key: ec.EllipticCurvePrivateKey,
    ignore: Iterable[str | os.PathLike[str]] = (),
    *,
    ignore_git_paths: bool = True,
    hash_type: str = "sha256",
) -> dict[str, Any]:
    """Hash ``model_dir`` and return a model-signing key bundle (a JSON-ready dict).

    ``ignore`` holds paths relative to the model directory (a file written into the model, such
    as the signature itself, must be listed). ``model_signing verify key MODEL --signature FILE
    --public_key KEY`` accepts the result.
    """
    _check_ec_key(private_key, "private key")
    if hash_type not in HASH_TYPES:
        choices = ", ".join(HASH_TYPES)
        raise InputError(f"unsupported hash type {hash_type!r} (choose from {choices})")
    model = Path(model_dir)
    if not model.is_dir():
        raise InputError(f"not a directory: {model}")
    ignored = _normalise_ignore([*(GIT_PATHS if ignore_git_paths else ()), *ignore])
    digests = _hash_model(model, ignored, hash_type)
    names = sorted(digests, key=_oms_sort_key)
    resources = [{"name": n, "algorithm": hash_type, "digest": digests[n]} for n in names]
    name = model.resolve().name
    statement = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": name, "digest": {"sha256": _root_of(digests[n] for n in names)}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "serialization": {
                "method": "files",
                "hash_type": hash_type,
                "allow_symlinks": any(_is_link(model, n) for n in names),
                "ignore_paths": ignored,
            },
            "resources": resources,
        },
    }
    payload = canonical_json(statement)
    sig = private_key.sign(pae(PAYLOAD_TYPE, payload), ec.ECDSA(_ec_hash_for(private_key)))
    # model-signing leaves the DSSE keyid empty; the key is named by publicKey.hint
    envelope = Envelope(PAYLOAD_TYPE, payload, (Signature(keyid="", sig=sig),))
    return {
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": {
            "publicKey": {"hint": key_hint(private_key.public_key())},
            "tlogEntries": [],
        },
        "dsseEnvelope": envelope.to_dict(),
    }


def _is_link(model: Path, name: str) -> bool:
    return (model / name).is_symlink()


# -- reading and verifying -----------------------------------------------------------------------


def read_oms_bundle(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a bundle file as JSON (InputError if unreadable, OmsBundleError if not JSON)."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_BUNDLE_BYTES + 1)
    except OSError as exc:
        raise InputError(
            f"cannot read model-signing bundle {os.fspath(path)}: {exc.strerror}"
        ) from exc
    if len(data) > MAX_BUNDLE_BYTES:
        raise OmsBundleError(f"model-signing bundle {os.fspath(path)} is too large")
    try:
        obj = json.loads(data)
    except RecursionError:
        raise OmsBundleError("model-signing bundle JSON is nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise OmsBundleError(f"model-signing bundle is not valid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise OmsBundleError("model-signing bundle is not a JSON object")
    return obj


def verify_oms_bundle(
    model_dir: str | os.PathLike[str],
    bundle: Mapping[str, Any],
    public_key: ec.EllipticCurvePublicKey,
    *,
    ignore: Iterable[str | os.PathLike[str]] = (),
    ignore_git_paths: bool = True,
) -> OmsSignature:
    """Check a model-signing key bundle against ``model_dir`` and ``public_key``.

    Raises :class:`OmsBundleError` for a malformed bundle, :class:`SignatureError` when the
    signature (or the key hint) does not match the key, and
    :class:`~modelseal.errors.ManifestMismatch` naming every modified, added or removed file.
    ``ignore`` adds paths to skip (e.g. the signature file when it lies inside the model).
    """
    _check_ec_key(public_key, "public key")
    signed = _open_bundle(bundle, public_key)
    model = Path(model_dir)
    if not model.is_dir():
        raise InputError(f"not a directory: {model}")
    ignored = _normalise_ignore(
        [*(GIT_PATHS if ignore_git_paths else ()), *signed.ignore_paths, *ignore]
    )
    actual = _hash_model(model, ignored, signed.hash_type)
    expected = dict(signed.resources)
    lines = [f"modified: {p}" for p in sorted(expected) if p in actual and actual[p] != expected[p]]
    lines += [f"removed: {p}" for p in sorted(expected) if p not in actual]
    lines += [f"added: {p}" for p in sorted(actual) if p not in expected]
    if lines:
        raise ManifestMismatch(lines, subject=f"{model} (model-signing signature)")
    return signed


def _open_bundle(bundle: Mapping[str, Any], public_key: ec.EllipticCurvePublicKey) -> OmsSignature:
    if not isinstance(bundle, Mapping):
        raise OmsBundleError("model-signing bundle is not a JSON object")
    media = bundle.get("mediaType")
    if media != BUNDLE_MEDIA_TYPE:
        raise OmsBundleError(
            f"unsupported bundle media type {_show(media)} (expected {BUNDLE_MEDIA_TYPE})"
        )
    material = bundle.get("verificationMaterial")
    if not isinstance(material, dict):
        raise OmsBundleError("model-signing bundle has no verificationMaterial")
    public = material.get("publicKey")
    if public is not None:
        if not isinstance(public, dict):
            raise OmsBundleError("model-signing bundle publicKey is not an object")
        hint = public.get("hint")
        if hint is not None and hint != "":
            expected_hint = key_hint(public_key)
            if hint != expected_hint:
                raise SignatureError(
                    f"model-signing bundle was signed for another key (hint {_show(hint)}, "
                    f"the given key is {expected_hint})"
                )
    elif "x509CertificateChain" in material or "certificate" in material:
        raise OmsBundleError(
            "certificate-based model-signing bundles are not supported; use a key-based bundle"
        )
    raw_env = bundle.get("dsseEnvelope")
    if raw_env is None:
        raise OmsBundleError("model-signing bundle has no dsseEnvelope")
    try:
        envelope = Envelope.from_dict(raw_env)
    except EnvelopeError as exc:
        raise OmsBundleError(f"model-signing bundle: {exc.message}") from None
    if envelope.payload_type != PAYLOAD_TYPE:
        raise OmsBundleError(
            f"model-signing payloadType is {_show(envelope.payload_type)}, expected {PAYLOAD_TYPE}"
        )
    message = pae(PAYLOAD_TYPE, envelope.payload)
    failures: list[str] = []
    for signature in envelope.signatures:
        try:
            verify_signature(public_key, message, signature.sig)
            break
        except SignatureError as exc:
            failures.append(exc.message)
    else:
        raise SignatureError(f"model-signing bundle {failures[0]}")
    try:
        statement = parse_statement(envelope.payload)
    except StatementError as exc:
        raise OmsBundleError(f"model-signing bundle: {exc.message}") from None
    return _read_statement(statement)


def _read_statement(statement: dict[str, Any]) -> OmsSignature:
    predicate_type = statement["predicateType"]
    if predicate_type == LEGACY_PREDICATE_TYPE:
        raise OmsBundleError(
            "model-signing v0.2 (Digests/v0.1) signatures are not supported; re-sign with 1.x"
        )
    if predicate_type != PREDICATE_TYPE:
        raise OmsBundleError(f"predicateType is {_show(predicate_type)}, expected {PREDICATE_TYPE}")
    subjects = statement["subject"]
    if len(subjects) != 1:
        raise OmsBundleError(f"expected one subject, got {len(subjects)}")
    subject = subjects[0]
    root = subject["digest"].get("sha256")
    if not isinstance(root, str):
        raise OmsBundleError("subject has no sha256 digest")
    name = subject.get("name", "")
    predicate = statement.get("predicate")
    if not isinstance(predicate, dict):
        raise OmsBundleError("statement has no predicate")
    ser = predicate.get("serialization")
    if not isinstance(ser, dict):
        raise OmsBundleError("predicate has no serialization")
    method = ser.get("method")
    if method != "files":
        raise OmsBundleError(
            f"model-signing serialization method {_show(method)} is not supported (only 'files')"
        )
    hash_type = ser.get("hash_type")
    if hash_type not in HASH_TYPES:
        raise OmsBundleError(f"unsupported model-signing hash_type {_show(hash_type)}")
    raw_ignore = ser.get("ignore_paths", [])
    if not isinstance(raw_ignore, list) or not all(isinstance(p, str) for p in raw_ignore):
        raise OmsBundleError("serialization ignore_paths must be a list of strings")
    try:
        ignore_paths = tuple(_normalise_ignore(raw_ignore))
    except InputError:
        raise OmsBundleError(
            "the bundle's ignore_paths exclude the whole model directory"
        ) from None
    raw_resources = predicate.get("resources")
    if not isinstance(raw_resources, list):
        raise OmsBundleError("predicate resources must be a list")
    resources: list[tuple[str, str]] = []
    seen: set[str] = set()
    for i, item in enumerate(raw_resources):
        if not isinstance(item, dict):
            raise OmsBundleError(f"resources[{i}] is not an object")
        rname, alg, digest = item.get("name"), item.get("algorithm"), item.get("digest")
        if not isinstance(rname, str) or not rname:
            raise OmsBundleError(f"resources[{i}] has no name")
        if alg != hash_type:
            raise OmsBundleError(
                f"resources[{i}] ({_show(rname)}) algorithm {_show(alg)} differs from "
                f"the serialization hash_type {hash_type}"
            )
        if not isinstance(digest, str) or not _is_hex(digest, _HEX_LENGTH[hash_type]):
            raise OmsBundleError(f"resources[{i}] ({_show(rname)}) digest is not hex")
        if rname in seen:
            raise OmsBundleError(f"resource {_show(rname)} is listed twice")
        seen.add(rname)
        resources.append((rname, digest.lower()))
    computed = _root_of(d for _, d in resources)
    if computed != root.lower():
        raise OmsBundleError(
            f"manifest is inconsistent: subject digest is {_show(root)} but the resources hash "
            f"to {computed}"
        )
    return OmsSignature(
        model_name=name if isinstance(name, str) else "",
        root_digest=computed,
        hash_type=hash_type,
        resources=tuple(resources),
        ignore_paths=ignore_paths,
    )


def _is_hex(text: str, length: int) -> bool:
    return len(text) == length and all(c in "0123456789abcdefABCDEF" for c in text)


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
