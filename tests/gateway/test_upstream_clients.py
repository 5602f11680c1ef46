"""Every upstream client behaves the same over real sockets: answers, streams, 502 and 504."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from modelseal.errors import UpstreamError
from modelseal.gateway._http import RawUpstream
from modelseal.gateway.upstream import AiohttpUpstream, HttpxUpstream, open_upstream
from tests.gateway.fakes import FakeUpstream
from tests.tlog.test_server import serving

pytestmark = pytest.mark.anyio

CLIENTS: dict[str, Callable[..., Any]] = {
    "raw": RawUpstream,
    "aiohttp": AiohttpUpstream,
    "httpx": HttpxUpstream,
}
BODY = json.dumps(
    {"model": "m", "messages": [{"role": "user", "content": "x"}], "stream": False}
).encode()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def test_open_upstream_picks_the_client() -> None:
    assert isinstance(open_upstream("http://127.0.0.1:1"), RawUpstream)
    assert isinstance(open_upstream("https://models.example"), AiohttpUpstream)
    assert isinstance(open_upstream("http://x", transport=object()), HttpxUpstream)


@pytest.mark.parametrize("name", sorted(CLIENTS))
async def test_answers_streams_and_failures(name: str) -> None:
    fake = FakeUpstream("m")
    fake.reply = "one two three four five six"
    with serving(fake.app) as url:
        client = CLIENTS[name](url + "/v1", timeout_s=0.5, connect_timeout_s=1)
        try:
            models = await client.get_json("/v1/models")
            assert models["data"][0]["id"] == "m"
            status, content = await client.post("/v1/chat/completions", BODY)
            assert status == 200
            assert json.loads(content)["choices"][0]["message"]["content"] == fake.reply

            stream = await client.open_stream(
                "/v1/chat/completions", BODY.replace(b'"stream": false', b'"stream": true')
            )
            assert stream.status == 200
            raw = b"".join([chunk async for chunk in stream.chunks()])
            await stream.close()
            assert raw.endswith(b"data: [DONE]\n\n")
            assert raw.count(b"data: ") > 5

            fake.status = 503
            status, _ = await client.post("/v1/chat/completions", BODY)
            assert status == 503  # statuses are passed up; the gateway decides

            fake.status, fake.delay_s = 200, 1.5
            with pytest.raises(UpstreamError) as caught:
                await client.post("/v1/chat/completions", BODY)
            assert caught.value.status == 504
        finally:
            await client.close()
    refused = CLIENTS[name](url, timeout_s=0.5, connect_timeout_s=1)
    try:
        with pytest.raises(UpstreamError) as caught:
            await refused.post("/v1/chat/completions", BODY)
        assert caught.value.status == 502
    finally:
        await refused.close()
