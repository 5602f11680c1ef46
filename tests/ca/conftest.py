from __future__ import annotations

import pytest

import modelseal.ca.keys

REAL_KDF_ROUNDS = modelseal.ca.keys.KDF_ROUNDS


@pytest.fixture(autouse=True)
def fast_kdf(monkeypatch: pytest.MonkeyPatch) -> None:
    """Key files use a cheap PBKDF2 work factor in tests (one test checks the real one)."""
    monkeypatch.setattr(modelseal.ca.keys, "KDF_ROUNDS", 1000)
