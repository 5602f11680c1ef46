"""The HTTP API end to end: a real uvicorn server on 127.0.0.1 and LogClient."""

from __future__ import annotations

import base64
import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelseal.attest.signers import EcdsaP256Signer, Ed25519Signer
from modelseal.tlog import merkle
from modelseal.tlog.client import LogClient, LogClientError, LogRejectedError, LogResponseError
from modelseal.tlog.hashing import leaf_hash
from modelseal.tlog.log import Log
from modelseal.tlog.note import Checkpoint, Cosigner, NoteSigner, open_checkpoint
from modelseal.tlog.server import SIGNATURE_HEADER, bind, create_app
from modelseal.tlog.store import open_store

ORIGIN = "log.example/server-test"


@contextlib.contextmanager
def serving(app: FastAPI) -> Iterator[str]:
    """Run ``app`` with uvicorn in a thread on a free 127.0.0.1 port; yield its base URL."""
    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test log server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(20)
        sock.close()


class Setup:
    def __init__(self, tmp_path: Path) -> None:
        self.log_signer = NoteSigner(ORIGIN, Ed25519PrivateKey.generate())
        self.witness = Cosigner("witness.example/w", Ed25519PrivateKey.generate())
        self.ed = Ed25519Signer.generate()
        self.ec = EcdsaP256Signer.generate()
        self.log = Log(
            open_store(f"sqlite://{tmp_path / 'log.db'}"),
            ORIGIN,
            self.log_signer,
            witnesses=[self.witness.verifier()],
        )

    def verify(self, note: str) -> Checkpoint:
        return open_checkpoint(note, self.log_signer.verifier(), origin=ORIGIN)


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    s = Setup(tmp_path)
    yield s
    s.log.close()


@pytest.fixture
def api(setup: Setup) -> Iterator[tuple[str, LogClient]]:
    app = create_app(setup.log, [setup.ed.public_key, setup.ec.public_key], max_entry_bytes=4096)
    with serving(app) as url, LogClient(url) as client:
        yield url, client


def test_the_api_end_to_end(setup: Setup, api: tuple[str, LogClient]) -> None:
    _, client = api
    assert client.healthz() == {"status": "ok", "tree_size": 0}
    assert setup.verify(client.checkpoint()).size == 0

    acks = [client.submit(f"entry {i}".encode(), setup.ed) for i in range(5)]
    acks.append(client.submit(b"by the ECDSA key", setup.ec))
    assert [index for index, _ in acks] == list(range(6))
    for i, (index, note) in enumerate(acks):
        entry = f"entry {i}".encode() if i < 5 else b"by the ECDSA key"
        cp = setup.verify(note)
        assert cp.size > index
        got_index, proof = client.inclusion_proof(leaf_hash(entry), cp.size)
        assert got_index == index
        merkle.verify_inclusion(index, cp.size, leaf_hash(entry), proof, cp.root_hash)
        assert client.entry(index) == entry
        assert setup.verify(client.checkpoint_at(cp.size)) == cp

    first, last = setup.verify(acks[0][1]), setup.verify(client.checkpoint())
    proof = client.consistency_proof(first.size, last.size)
    merkle.verify_consistency(first.size, last.size, proof, first.root_hash, last.root_hash)
    # resubmitting returns the first index, commits nothing new
    assert client.submit(b"entry 2", setup.ec) == (2, setup.log.latest_note)
    assert setup.verify(client.checkpoint()).size == 6


def test_submissions_must_be_signed_by_a_submitter(
    setup: Setup, api: tuple[str, LogClient]
) -> None:
    url, client = api
    stranger = Ed25519Signer.generate()
    with pytest.raises(LogRejectedError, match="not signed by an authorised submitter") as info:
        client.submit(b"sneaky", stranger)
    assert info.value.status == 401

    body = {"entry": base64.b64encode(b"sneaky").decode()}
    right_sig = base64.b64encode(setup.ed.sign(b"sneaky")).decode()
    other_sig = base64.b64encode(setup.ed.sign(b"something else")).decode()
    cases: list[tuple[dict[str, str], str]] = [
        ({}, "missing X-Modelseal-Signature"),
        ({SIGNATURE_HEADER: other_sig}, "not signed by an authorised submitter"),
        ({SIGNATURE_HEADER: "!!not base64!!"}, "not valid base64"),
        ({SIGNATURE_HEADER: ""}, "not signed by an authorised submitter"),
    ]
    for headers, message in cases:
        response = httpx.post(f"{url}/v1/entries", json=body, headers=headers)
        assert response.status_code == 401, headers
        assert message in response.json()["error"]
    assert setup.log.size() == 0
    response = httpx.post(f"{url}/v1/entries", json=body, headers={SIGNATURE_HEADER: right_sig})
    assert response.status_code == 200
    assert response.json()["index"] == 0


def test_bad_requests_are_json_errors(setup: Setup, api: tuple[str, LogClient]) -> None:
    url, client = api
    client.submit(b"one", setup.ed)
    signed = {SIGNATURE_HEADER: base64.b64encode(setup.ed.sign(b"x")).decode()}
    cases: list[tuple[str, str, dict[str, Any], int, str]] = [
        ("POST", "/v1/entries", {"content": b"not json", "headers": signed}, 400, "not JSON"),
        ("POST", "/v1/entries", {"json": [1], "headers": signed}, 400, "JSON object"),
        ("POST", "/v1/entries", {"json": {"entry": 5}, "headers": signed}, 400, "base64 string"),
        ("POST", "/v1/entries", {"json": {"entry": "%%"}, "headers": signed}, 400, "not valid"),
        ("POST", "/v1/entries", {"json": {"entry": ""}, "headers": signed}, 400, "empty"),
        (
            "POST",
            "/v1/entries",
            {"json": {"entry": base64.b64encode(b"x" * 5000).decode()}, "headers": signed},
            400,
            "exceeds",
        ),
        ("GET", "/v1/entries/abc", {}, 400, "non-negative integer"),
        ("GET", "/v1/entries/-1", {}, 400, "non-negative integer"),
        ("GET", "/v1/entries/1", {}, 404, "no entry at index 1"),
        ("GET", "/v1/entries/99999999999999999999", {}, 404, "no entry"),
        ("GET", "/v1/checkpoints/7", {}, 404, "no checkpoint of size 7"),
        ("GET", "/v1/proof/inclusion?tree_size=1", {}, 400, "missing query parameter leaf_hash"),
        ("GET", "/v1/proof/inclusion?leaf_hash=zz&tree_size=1", {}, 400, "must be hex"),
        ("GET", "/v1/proof/inclusion?leaf_hash=00&tree_size=1", {}, 400, "32 bytes"),
        ("GET", f"/v1/proof/inclusion?leaf_hash={'00' * 32}&tree_size=1", {}, 404, "no entry"),
        (
            "GET",
            f"/v1/proof/inclusion?leaf_hash={leaf_hash(b'one').hex()}&tree_size=2",
            {},
            400,
            "exceeds the log's current size 1",
        ),
        (
            "GET",
            f"/v1/proof/inclusion?leaf_hash={leaf_hash(b'one').hex()}&tree_size=0",
            {},
            400,
            "at least 1",
        ),
        ("GET", "/v1/proof/consistency?first=0&second=1", {}, 400, "between 1 and"),
        ("GET", "/v1/proof/consistency?first=1&second=1e9", {}, 400, "non-negative integer"),
        ("GET", "/v1/proof/consistency?first=1", {}, 400, "missing query parameter second"),
        ("POST", "/v1/cosignatures", {"json": {"tree_size": 1}}, 400, "cosignature"),
        (
            "POST",
            "/v1/cosignatures",
            {"json": {"tree_size": 1, "cosignature": "— x AAAA"}},
            400,
            "does not verify",
        ),
        ("GET", "/v1/nothing-here", {}, 404, "Not Found"),
        ("DELETE", "/v1/checkpoint", {}, 405, "Method Not Allowed"),
    ]
    for method, path, kwargs, status, message in cases:
        response = httpx.request(method, url + path, **kwargs)
        assert response.status_code == status, (path, response.text)
        assert message in response.json()["error"], (path, response.text)
    assert setup.log.size() == 1


def test_concurrent_submissions_are_batched_and_all_acknowledged(
    setup: Setup, api: tuple[str, LogClient]
) -> None:
    url, _ = api
    threads, each = 16, 40

    def worker(t: int) -> list[tuple[bytes, int, str]]:
        out = []
        with LogClient(url) as client:
            for i in range(each):
                entry = f"thread {t} entry {i}".encode()
                index, note = client.submit(entry, setup.ed if i % 2 else setup.ec)
                out.append((entry, index, note))
        return out

    with ThreadPoolExecutor(threads) as pool:
        acks = [a for chunk in pool.map(worker, range(threads)) for a in chunk]
    assert len(acks) == threads * each
    assert sorted(index for _, index, _ in acks) == list(range(threads * each))
    checkpoints = {note for _, _, note in acks}
    assert len(checkpoints) < len(acks), "concurrent submissions should share batches"
    with LogClient(url) as client:
        final = setup.verify(client.checkpoint())
        assert final.size == threads * each
        for entry, index, note in acks:
            cp = setup.verify(note)
            assert index < cp.size
            got, proof = client.inclusion_proof(leaf_hash(entry), cp.size)
            assert got == index
            merkle.verify_inclusion(index, cp.size, leaf_hash(entry), proof, cp.root_hash)
        for note in checkpoints:
            cp = setup.verify(note)
            if cp.size < final.size:
                proof = client.consistency_proof(cp.size, final.size)
                merkle.verify_consistency(cp.size, final.size, proof, cp.root_hash, final.root_hash)


def test_cosignatures_are_served_with_the_checkpoint(
    setup: Setup, api: tuple[str, LogClient]
) -> None:
    _, client = api
    client.submit(b"cosign me", setup.ed)
    note = client.checkpoint()
    cp = setup.verify(note)
    line = setup.witness.cosign(cp.to_text(), 1_750_000_000)
    assert client.add_cosignature(cp.size, line) == "witness.example/w"
    served = client.checkpoint()
    assert served.startswith(note)
    assert served.endswith(line)
    assert setup.verify(served) == cp
    setup.witness.verifier().verify(cp.to_text(), served.splitlines()[-1])
    stranger = Cosigner("witness.example/w", Ed25519PrivateKey.generate())
    with pytest.raises(LogRejectedError, match="does not verify") as info:
        client.add_cosignature(cp.size, stranger.cosign(cp.to_text(), 1))
    assert info.value.status == 400


def test_an_unreachable_log_is_a_client_error() -> None:
    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    sock.close()
    with (
        LogClient(f"http://127.0.0.1:{port}", timeout=2) as client,
        pytest.raises(LogClientError, match="cannot reach the log") as info,
    ):
        client.checkpoint()
    assert info.value.status is None


# -- parsers (hypothesis) ---------------------------------------------------------------------

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


def _fake(body: object) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=body)

    return httpx.MockTransport(handler)


@given(
    body=st.one_of(
        _json,
        st.fixed_dictionaries(
            {"index": _json, "checkpoint": _json, "entry": _json, "hashes": _json, "witness": _json}
        ),
        st.fixed_dictionaries(
            {
                "index": st.integers(-2, 5),
                "tree_size": st.integers(0, 5),
                "hashes": st.lists(
                    st.binary(min_size=31, max_size=33).map(lambda b: base64.b64encode(b).decode()),
                    max_size=3,
                ),
            }
        ),
    )
)
def test_client_parses_any_answer_into_values_or_a_response_error(body: object) -> None:
    signer = Ed25519Signer.generate()
    calls: list[Callable[[LogClient], object]] = [
        lambda c: c.submit(b"x", signer),
        lambda c: c.entry(0),
        lambda c: c.inclusion_proof(b"\0" * 32, 3),
        lambda c: c.consistency_proof(1, 2),
        lambda c: c.add_cosignature(1, "line"),
    ]
    with LogClient("http://log.invalid", transport=_fake(body)) as client:
        for call in calls:
            try:
                result = call(client)
            except LogResponseError:
                continue
            assert result is not None


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    raw=st.one_of(st.binary(max_size=200), _json.map(lambda v: json.dumps(v).encode())),
    header=st.one_of(
        st.none(),
        st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=100),
        st.binary(max_size=72).map(lambda b: base64.b64encode(b).decode()),
    ),
    query=st.dictionaries(
        st.sampled_from(["leaf_hash", "tree_size", "first", "second"]),
        st.text(max_size=70),
        max_size=4,
    ),
)
def test_the_server_answers_garbage_with_4xx_json(
    api: tuple[str, LogClient], raw: bytes, header: str | None, query: dict[str, str]
) -> None:
    url, _ = api
    headers = {} if header is None else {SIGNATURE_HEADER: header}
    with httpx.Client(base_url=url) as http:
        responses = [
            http.post("/v1/entries", content=raw, headers=headers),
            http.post("/v1/cosignatures", content=raw),
            http.get("/v1/proof/inclusion", params=query),
            http.get("/v1/proof/consistency", params=query),
        ]
    for response in responses:
        assert response.status_code in (200, 400, 401, 404), response.text
        if response.status_code != 200:
            assert isinstance(response.json()["error"], str)
