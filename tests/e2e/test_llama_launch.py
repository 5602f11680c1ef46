"""The real model end to end: Gemma 3 270M (GGUF) served by llama_cpp.server, called with the
official ``openai`` SDK. Greedy decoding (temperature 0) makes the answers repeatable, so the
streamed text can be compared with the whole one. Small ``max_tokens``: this machine is slow.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from modelseal.gateway.launch import LaunchedServer

from .conftest import GEMMA_ALIAS, GEMMA_GGUF

pytestmark = pytest.mark.e2e

PROMPT = "The capital of France is"
MESSAGES: list[ChatCompletionMessageParam] = [
    {"role": "user", "content": "Write one short sentence about the sea."}
]
MAX_TOKENS = 8


@pytest.fixture
def client(gemma_server: LaunchedServer) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=gemma_server.base_url, api_key="unused", max_retries=0, timeout=120
    )


def test_release_holds_the_gguf_and_its_terms(gemma_release: Path) -> None:
    names = sorted(p.name for p in gemma_release.iterdir())
    assert names == ["LICENSE-GEMMA-TERMS.html", "NOTICE.md", "README.md", GEMMA_GGUF]
    assert (gemma_release / GEMMA_GGUF).read_bytes()[:4] == b"GGUF"
    assert b"Gemma Terms of Use" in (gemma_release / "LICENSE-GEMMA-TERMS.html").read_bytes()
    assert "license: gemma" in (gemma_release / "README.md").read_text(encoding="utf-8")


def test_models_lists_the_alias_and_not_the_path(gemma_server: LaunchedServer) -> None:
    # What the gateway can learn about the upstream: the alias it was launched with, nothing
    # else (no path, no digest). The gateway matches the upstream by this id.
    response = httpx.get(gemma_server.base_url + "/models", timeout=10, trust_env=False)
    assert response.status_code == 200
    body = response.json()
    assert [model["id"] for model in body["data"]] == [GEMMA_ALIAS]
    text = json.dumps(body)
    assert GEMMA_GGUF not in text
    assert str(gemma_server.model_path.parent) not in text


def test_models_through_the_sdk(client: openai.OpenAI) -> None:
    assert [model.id for model in client.models.list()] == [GEMMA_ALIAS]


def test_completion_and_its_stream_agree(client: openai.OpenAI) -> None:
    whole = client.completions.create(
        model=GEMMA_ALIAS, prompt=PROMPT, max_tokens=MAX_TOKENS, temperature=0
    )
    assert whole.model == GEMMA_ALIAS
    assert whole.object == "text_completion"
    [choice] = whole.choices
    assert choice.text.strip()
    assert choice.finish_reason in ("length", "stop")
    assert whole.usage is not None
    assert whole.usage.prompt_tokens > 0
    assert 0 < whole.usage.completion_tokens <= MAX_TOKENS
    assert whole.usage.total_tokens == whole.usage.prompt_tokens + whole.usage.completion_tokens
    if choice.finish_reason == "length":
        assert whole.usage.completion_tokens == MAX_TOKENS

    stream = client.completions.create(
        model=GEMMA_ALIAS, prompt=PROMPT, max_tokens=MAX_TOKENS, temperature=0, stream=True
    )
    parts: list[str] = []
    reasons: list[str] = []
    for chunk in stream:
        for part in chunk.choices:
            parts.append(part.text)
            if part.finish_reason is not None:
                reasons.append(part.finish_reason)
    assert len(parts) > 1  # really streamed, not one block
    assert "".join(parts) == choice.text
    assert reasons == [choice.finish_reason]


def test_streamed_chat_completion(client: openai.OpenAI) -> None:
    whole = client.chat.completions.create(
        model=GEMMA_ALIAS,
        messages=MESSAGES,
        max_tokens=MAX_TOKENS,
        temperature=0,
    )
    [choice] = whole.choices
    assert choice.message.role == "assistant"
    assert choice.message.content
    assert choice.finish_reason in ("length", "stop")
    assert whole.usage is not None
    assert whole.usage.prompt_tokens > 0
    assert 0 < whole.usage.completion_tokens <= MAX_TOKENS

    stream = client.chat.completions.create(
        model=GEMMA_ALIAS,
        messages=MESSAGES,
        max_tokens=MAX_TOKENS,
        temperature=0,
        stream=True,
    )
    content: list[str] = []
    reasons: list[str] = []
    chunks = 0
    for chunk in stream:
        chunks += 1
        assert chunk.object == "chat.completion.chunk"
        for part in chunk.choices:
            if part.delta.content:
                content.append(part.delta.content)
            if part.finish_reason is not None:
                reasons.append(part.finish_reason)
    assert chunks > 2
    assert "".join(content) == choice.message.content
    assert reasons == [choice.finish_reason]


def test_upstream_answers_whatever_model_is_asked_for(client: openai.OpenAI) -> None:
    # llama_cpp.server answers a request for any model name with its one model and echoes the
    # name back: the gateway, not the upstream, must refuse a model it did not verify.
    answer = client.completions.create(
        model="some-other-model", prompt=PROMPT, max_tokens=1, temperature=0
    )
    assert answer.model == "some-other-model"
    assert answer.choices[0].text
