"""Shared fixtures of the gateway tests: a sealed release, a fake upstream, gateway builders."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from safetensors.numpy import save_file

import modelseal.ca.keys
from modelseal._cli.main import main
from modelseal.gateway.build import build_gateway
from modelseal.gateway.config import parse_config
from modelseal.gateway.service import Gateway
from tests.gateway.fakes import FakeUpstream

PASS = "gateway test passphrase"


@dataclass
class Sealed:
    home: Path
    release: Path
    bundle: Path

    @property
    def trust(self) -> Path:
        return self.home / "trust"

    def cli(self, *args: object) -> int:
        return main([str(a) for a in args])


def _seal(base: Path) -> Sealed:
    home, release = base / "home", base / "release"
    release.mkdir(parents=True)
    save_file(
        {"w": np.arange(64, dtype=np.float32).reshape(8, 8)}, str(release / "model.safetensors")
    )
    (release / "config.json").write_text(json.dumps({"architectures": ["Tiny"]}))
    (release / "README.md").write_text("---\nlicense: apache-2.0\n---\n# tiny-gateway\n")
    bundle = base / "release.seal.json"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(modelseal.ca.keys, "KDF_ROUNDS", 1000)
        mp.setenv("MODELSEAL_PASSPHRASE", PASS)
        assert main(["init", "--home", str(home)]) == 0
        assert main(["certify", str(release), "-o", str(bundle), "--home", str(home)]) == 0
    return Sealed(home, release, bundle)


@pytest.fixture(scope="module")
def sealed_module(tmp_path_factory: pytest.TempPathFactory) -> Sealed:
    return _seal(tmp_path_factory.mktemp("sealed"))


@pytest.fixture
def sealed(tmp_path: Path) -> Sealed:
    """A release of its own (for tests that tamper with it or revoke its seal)."""
    return _seal(tmp_path / "own")


@pytest.fixture
def fake() -> FakeUpstream:
    return FakeUpstream("tiny-upstream")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def make_gateway(
    sealed: Sealed,
    fake: FakeUpstream | None,
    tmp_path: Path,
    config: dict[str, Any] | None = None,
    *,
    upstream_url: str = "http://upstream.test",
    in_process: bool = True,
    **kwargs: Any,
) -> Gateway:
    doc: dict[str, Any] = {"checks": {"trust": str(sealed.trust)}}
    if fake is not None:
        doc["model"] = {"upstream_id": fake.model_id}
    for section, values in (config or {}).items():
        doc.setdefault(section, {}).update(values)
    doc.setdefault("audit", {}).setdefault("path", str(tmp_path / "audit.db"))
    doc.setdefault("receipts", {}).setdefault("key", str(tmp_path / "receipt.key"))
    transport = httpx.ASGITransport(app=fake.app) if fake is not None and in_process else None
    return build_gateway(
        parse_config(doc),
        upstream_url=upstream_url,
        release_dir=sealed.release,
        bundle_path=sealed.bundle,
        home=sealed.home,
        transport=transport,
        **kwargs,
    )
