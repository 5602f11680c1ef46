"""End-to-end tests with a real model server: only under ``make test-e2e``.

They need ``llama-cpp-python[server]`` (built from source by ``make e2e-deps``) and the Gemma 3
270M release it lays out in ``.cache/gemma-release``, so the plain ``make test`` run skips them:
they run only when ``MODELSEAL_E2E=1`` (``make test-e2e`` sets it, and fails rather than skips
when something they need is missing).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelseal.gateway.launch import LaunchedServer, launch_llama_cpp, llama_cpp_available

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
GEMMA_ALIAS = "gemma-3-270m"
GEMMA_GGUF = "gemma-3-270m-q4_k_m.gguf"


def e2e_enabled() -> bool:
    return os.environ.get("MODELSEAL_E2E", "") not in ("", "0")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if e2e_enabled():
        return
    skip = pytest.mark.skip(reason="end-to-end test: run `make test-e2e` (sets MODELSEAL_E2E=1)")
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def gemma_release() -> Path:
    """The Gemma 3 270M release directory that ``make e2e-deps`` lays out."""
    release = Path(os.environ.get("MODELSEAL_GEMMA_RELEASE", ROOT / ".cache" / "gemma-release"))
    if not (release / GEMMA_GGUF).is_file():
        pytest.fail(f"no Gemma release at {release} (run `make e2e-deps`)")
    return release


@pytest.fixture(scope="session")
def gemma_server(
    gemma_release: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LaunchedServer]:
    """``llama_cpp.server`` serving the release's GGUF, one thread, alias ``gemma-3-270m``."""
    missing = llama_cpp_available()
    if missing is not None:
        pytest.fail(
            f"llama-cpp-python[server] is not installed (missing: {missing}): run `make e2e-deps`"
        )
    log = tmp_path_factory.mktemp("llama-cpp") / "server.log"
    server = launch_llama_cpp(
        gemma_release / GEMMA_GGUF, alias=GEMMA_ALIAS, threads=1, chat_format="gemma", log=log
    )
    try:
        yield server
    finally:
        server.stop()
