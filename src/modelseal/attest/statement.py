"""in-toto Statement v1 (https://github.com/in-toto/attestation/blob/main/spec/v1/statement.md).

::

    {"_type": "https://in-toto.io/Statement/v1",
     "subject": [{"name": "...", "digest": {"sha256": "<hex>"}}],
     "predicateType": "<URI>",
     "predicate": {...}}

:func:`canonical_json` is the one serialisation modelseal signs: sorted keys, no insignificant
whitespace, UTF-8 (not ASCII-escaped), no NaN or infinities. :func:`parse_statement` accepts
only JSON shaped like a Statement v1 and raises :class:`StatementError` (a
:class:`~modelseal.errors.VerificationError`: a statement that does not parse does not verify)
with one reason otherwise.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from modelseal.errors import InputError, VerificationError

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
MAX_STATEMENT_BYTES = 64 * 1024 * 1024
MAX_SUBJECTS = 100_000

# Hex lengths of the digest algorithms in the in-toto digest set that we check strictly;
# other algorithm names are accepted with any non-empty string value.
DIGEST_HEX_LENGTHS: dict[str, int] = {
    "sha256": 64,
    "sha384": 96,
    "sha512": 128,
    "sha1": 40,
    "sha224": 56,
    "sha512_224": 56,
    "sha512_256": 64,
    "sha3_224": 56,
    "sha3_256": 64,
    "sha3_384": 96,
    "sha3_512": 128,
    "blake2b": 128,
    "blake2s": 64,
    "blake3": 64,
    "md5": 32,
}
_LOWER_HEX = re.compile(r"\A[0-9a-f]+\Z")

__all__ = [
    "MAX_STATEMENT_BYTES",
    "STATEMENT_TYPE",
    "StatementError",
    "canonical_json",
    "make_statement",
    "parse_statement",
]


class StatementError(VerificationError):
    """A payload that is not a well-formed in-toto Statement v1."""


def canonical_json(obj: Any) -> bytes:
    """Sorted keys, separators ``(",", ":")``, UTF-8, no NaN/Infinity (InputError if not JSON)."""
    try:
        return json.dumps(
            obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        ).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise InputError(f"value cannot be written as canonical JSON: {exc}") from None
    except UnicodeEncodeError:
        raise InputError("value cannot be written as canonical JSON: lone surrogate") from None


def make_statement(
    subjects: Sequence[Mapping[str, Any]], predicate_type: str, predicate: Mapping[str, Any]
) -> dict[str, Any]:
    """A Statement v1 dict; ``subjects`` are ``{"name": ..., "digest": {alg: hex}}``.

    The result is checked with the same rules :func:`parse_statement` applies (InputError on a
    malformed argument), so anything made here parses back.
    """
    statement: dict[str, Any] = {
        "_type": STATEMENT_TYPE,
        "subject": [dict(s) for s in subjects],
        "predicateType": predicate_type,
        "predicate": dict(predicate),
    }
    try:
        _check_statement(statement)
    except StatementError as exc:
        raise InputError(f"cannot make statement: {exc.message}") from None
    return statement


def parse_statement(payload: bytes) -> dict[str, Any]:
    """Parse and validate a Statement v1 (StatementError naming the first problem)."""
    if not isinstance(payload, bytes | bytearray | memoryview):
        raise StatementError("statement payload must be bytes")
    if len(payload) > MAX_STATEMENT_BYTES:
        raise StatementError(
            f"statement is too large ({len(payload)} bytes; limit {MAX_STATEMENT_BYTES})"
        )
    try:
        text = bytes(payload).decode("utf-8")
    except UnicodeDecodeError:
        raise StatementError("statement is not UTF-8") from None
    try:
        obj = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except RecursionError:
        raise StatementError("statement JSON is nested too deeply") from None
    except ValueError as exc:
        raise StatementError(f"statement is not valid JSON: {exc}") from None
    _check_statement(obj)
    result: dict[str, Any] = obj
    return result


class _DuplicateKey(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(f"duplicate key {key!r}")
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def _check_statement(obj: object) -> None:
    if not isinstance(obj, dict):
        raise StatementError("statement is not a JSON object")
    kind = obj.get("_type")
    if kind != STATEMENT_TYPE:
        raise StatementError(f"statement _type is {_show(kind)}, expected {STATEMENT_TYPE}")
    subjects = obj.get("subject")
    if not isinstance(subjects, list) or not subjects:
        raise StatementError("statement subject must be a non-empty list")
    if len(subjects) > MAX_SUBJECTS:
        raise StatementError(f"statement has too many subjects ({len(subjects)})")
    for i, subject in enumerate(subjects):
        _check_subject(i, subject)
    predicate_type = obj.get("predicateType")
    if not isinstance(predicate_type, str) or not predicate_type:
        raise StatementError("statement predicateType must be a non-empty string")
    if "predicate" in obj and not isinstance(obj["predicate"], dict):
        raise StatementError("statement predicate must be a JSON object")


def _check_subject(index: int, subject: object) -> None:
    where = f"statement subject[{index}]"
    if not isinstance(subject, dict):
        raise StatementError(f"{where} is not a JSON object")
    name = subject.get("name")
    if "name" in subject and not isinstance(name, str):
        raise StatementError(f"{where} name must be a string")
    digest = subject.get("digest")
    if not isinstance(digest, dict) or not digest:
        raise StatementError(f"{where} digest must be a non-empty object")
    for alg, value in digest.items():
        if not alg or not isinstance(value, str) or not value:
            raise StatementError(f"{where} digest {_show(alg)} must be a non-empty string")
        length = DIGEST_HEX_LENGTHS.get(alg)
        if length is not None and (len(value) != length or not _LOWER_HEX.match(value)):
            raise StatementError(
                f"{where} digest {alg} must be {length} lowercase hex digits, got {_show(value)}"
            )


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
