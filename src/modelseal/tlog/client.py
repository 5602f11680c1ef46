"""A synchronous client of the log's HTTP API (httpx; inject ``transport`` in tests).

It parses answers and checks their shape, nothing else: verifying checkpoints and proofs is the
caller's job (:mod:`modelseal.tlog.note`, :mod:`modelseal.tlog.merkle`,
:class:`modelseal.tlog.monitor.Monitor`).

Exceptions::

    Error
    └── LogClientError          the log cannot be reached or failed (5xx)
    InputError
    └── LogRejectedError        the log refused the request (400, 401, 404); ``status`` says which
    VerificationError
    └── LogResponseError        the answer is not what the API promises (shape, encoding)
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from typing import Any, Protocol

import httpx

from modelseal.errors import Error, InputError, VerificationError
from modelseal.tlog.hashing import HASH_SIZE

SIGNATURE_HEADER = "X-Modelseal-Signature"


class LogClientError(Error):
    """The log could not be reached, or failed to answer (``status`` None or 5xx)."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class LogRejectedError(InputError):
    """The log refused the request; ``status`` is the HTTP status (400, 401, 404, ...)."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


class LogResponseError(VerificationError):
    """The log's answer does not have the promised shape."""


class EntrySigner(Protocol):
    """Anything that signs bytes (e.g. :class:`modelseal.attest.signers.Ed25519Signer`)."""

    def sign(self, data: bytes) -> bytes: ...


def _b64decode(value: object, what: str) -> bytes:
    if not isinstance(value, str):
        raise LogResponseError(f"log answer: {what} is not a string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise LogResponseError(f"log answer: {what} is not base64") from None


def _int(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise LogResponseError(f"log answer: {what} is not a non-negative integer")
    return value


def _hashes(value: object) -> list[bytes]:
    if not isinstance(value, list):
        raise LogResponseError("log answer: hashes is not a list")
    out = [_b64decode(v, "proof hash") for v in value]
    if any(len(h) != HASH_SIZE for h in out):
        raise LogResponseError(f"log answer: a proof hash is not {HASH_SIZE} bytes")
    return out


class LogClient:
    """The log API at ``base_url`` (e.g. ``http://127.0.0.1:8080``)."""

    def __init__(
        self,
        base_url: str,
        transport: httpx.BaseTransport | None = None,
        *,
        timeout: float = 30.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url, transport=transport, timeout=timeout)

    def __enter__(self) -> LogClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def __repr__(self) -> str:
        return f"LogClient({self.base_url!r})"

    # -- transport ---------------------------------------------------------------------------

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise LogClientError(
                f"cannot reach the log at {self.base_url}: {type(exc).__name__}: {exc}"
            ) from None
        if response.status_code >= 400:
            message = self._error_text(response)
            where = f"log {self.base_url}{path}"
            if response.status_code >= 500:
                raise LogClientError(
                    f"{where} failed ({response.status_code}): {message}",
                    status=response.status_code,
                )
            raise LogRejectedError(
                f"{where} refused ({response.status_code}): {message}",
                status=response.status_code,
            )
        return response

    @staticmethod
    def _error_text(response: httpx.Response) -> str:
        try:
            body = response.json()
        except ValueError:
            return response.text[:200] or response.reason_phrase
        if isinstance(body, dict) and isinstance(body.get("error"), str):
            return str(body["error"])[:500]
        return response.text[:200]

    def _json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        response = self._request(method, path, **kwargs)
        try:
            body = response.json()
        except ValueError:
            raise LogResponseError(f"log answer from {path} is not JSON") from None
        if not isinstance(body, dict):
            raise LogResponseError(f"log answer from {path} is not a JSON object")
        return body

    def _text(self, path: str) -> str:
        response = self._request("GET", path)
        try:
            return response.content.decode("utf-8")
        except UnicodeDecodeError:
            raise LogResponseError(f"log answer from {path} is not UTF-8") from None

    # -- the API -----------------------------------------------------------------------------

    def submit(self, entry: bytes, signer: EntrySigner) -> tuple[int, str]:
        """Add ``entry`` (signed by ``signer``, a submitter key of the log): its index and the
        signed checkpoint of the batch that committed it."""
        signature = base64.b64encode(signer.sign(entry)).decode("ascii")
        body = self._json(
            "POST",
            "/v1/entries",
            json={"entry": base64.b64encode(entry).decode("ascii")},
            headers={SIGNATURE_HEADER: signature},
        )
        checkpoint = body.get("checkpoint")
        if not isinstance(checkpoint, str):
            raise LogResponseError("log answer: checkpoint is not a string")
        return _int(body.get("index"), "index"), checkpoint

    def checkpoint(self) -> str:
        """The latest signed checkpoint note (with any witness cosignatures)."""
        return self._text("/v1/checkpoint")

    def checkpoint_at(self, size: int) -> str:
        """The checkpoint note the log signed at exactly ``size``."""
        return self._text(f"/v1/checkpoints/{int(size)}")

    def entry(self, index: int) -> bytes:
        body = self._json("GET", f"/v1/entries/{int(index)}")
        return _b64decode(body.get("entry"), "entry")

    def inclusion_proof(self, leaf_hash: bytes, tree_size: int) -> tuple[int, list[bytes]]:
        """(index, audit path) of the entry with ``leaf_hash`` in the tree of ``tree_size``."""
        body = self._json(
            "GET",
            "/v1/proof/inclusion",
            params={"leaf_hash": leaf_hash.hex(), "tree_size": int(tree_size)},
        )
        if _int(body.get("tree_size"), "tree_size") != tree_size:
            raise LogResponseError("log answer: the proof is for another tree size")
        return _int(body.get("index"), "index"), _hashes(body.get("hashes"))

    def consistency_proof(self, first: int, second: int) -> list[bytes]:
        body = self._json(
            "GET", "/v1/proof/consistency", params={"first": int(first), "second": int(second)}
        )
        return _hashes(body.get("hashes"))

    def add_cosignature(self, tree_size: int, line: str) -> str:
        """Post a witness cosignature line for the checkpoint of ``tree_size``; the log
        answers with the witness name it verified."""
        body = self._json(
            "POST", "/v1/cosignatures", json={"tree_size": int(tree_size), "cosignature": line}
        )
        witness = body.get("witness")
        if not isinstance(witness, str):
            raise LogResponseError("log answer: witness is not a string")
        return witness

    def healthz(self) -> dict[str, Any]:
        return self._json("GET", "/healthz")


def hashes_b64(hashes: Sequence[bytes]) -> list[str]:
    """Proof hashes as the API writes them (standard base64)."""
    return [base64.b64encode(h).decode("ascii") for h in hashes]
