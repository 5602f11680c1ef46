"""Parameter counts from real safetensors and GGUF headers; training tokens; the 6·N·D estimate."""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from safetensors.numpy import save_file

from modelseal.audit.params import count_parameters, training_tokens, with_compute


def _safetensors(path: Path, tensors: dict[str, np.ndarray]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path))


def test_safetensors_count_and_dtype_split(tmp_path: Path) -> None:
    _safetensors(
        tmp_path / "model.safetensors",
        {
            "a": np.zeros((4, 8), np.float32),
            "b": np.zeros(10, np.float16),
            "c": np.zeros(3, np.int64),
        },
    )
    stats, findings = count_parameters(tmp_path, ["model.safetensors"])
    assert stats.total == 32 + 10 + 3
    assert stats.by_dtype == {"F32": 32, "F16": 10, "I64": 3}
    assert stats.files == ("model.safetensors",)
    assert findings == ()


def test_shards_are_summed_and_other_formats_not_double_counted(tmp_path: Path) -> None:
    _safetensors(tmp_path / "model-00001-of-00002.safetensors", {"a": np.zeros((5, 5), np.float32)})
    _safetensors(tmp_path / "model-00002-of-00002.safetensors", {"b": np.zeros(7, np.float32)})
    w = gguf.GGUFWriter(str(tmp_path / "model.gguf"), "llama")
    w.add_tensor("x", np.zeros((100, 32), np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    files = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", "model.gguf"]
    stats, _ = count_parameters(tmp_path, files)
    assert stats.total == 32
    assert stats.method == "safetensors headers"
    gguf_only, _ = count_parameters(tmp_path, ["model.gguf"])
    assert gguf_only.total == 3200
    assert gguf_only.by_dtype == {"F32": 3200}


def test_a_broken_header_is_a_finding_not_a_crash(tmp_path: Path) -> None:
    (tmp_path / "model.safetensors").write_bytes(b"\xff" * 16)
    _safetensors(tmp_path / "ok.safetensors", {"a": np.zeros(4, np.float32)})
    stats, findings = count_parameters(tmp_path, ["model.safetensors", "ok.safetensors"])
    assert stats.total == 4
    assert [f.rule for f in findings] == ["params.unreadable-header"]
    assert "model.safetensors" in findings[0].message


def test_no_weights() -> None:
    stats, findings = count_parameters(Path("/nonexistent"), [])
    assert stats.total is None
    assert findings == ()


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("The model was pretrained on 15 trillion tokens of data.", 15 * 10**12),
        ("Trained on 2T tokens from public sources", 2 * 10**12),
        ("training corpus of 300B tokens", 300 * 10**9),
        ("We train on 1,000,000,000 tokens.", 10**9),
        ("trained for 1.5 trillion training tokens", int(1.5 * 10**12)),
    ],
)
def test_training_tokens_are_read_from_the_card(text: str, tokens: int) -> None:
    found = training_tokens("intro\n" + text, "README.md")
    assert found is not None
    assert found[0] == tokens
    assert found[1].location == "line 2"


@pytest.mark.parametrize(
    "text",
    [
        "context length of 8192 tokens",  # a context window, not training data
        "The tokenizer has 32000 tokens in its vocabulary",
        "no numbers here",
    ],
)
def test_non_training_token_counts_are_ignored(text: str) -> None:
    assert training_tokens(text) is None


def test_compute_estimate_is_six_n_d(tmp_path: Path) -> None:
    _safetensors(tmp_path / "model.safetensors", {"a": np.zeros(1000, np.float32)})
    stats, _ = count_parameters(tmp_path, ["model.safetensors"])
    estimated = with_compute(stats, "Pretrained on 2 trillion tokens.", "README.md")
    assert estimated.training_tokens == 2 * 10**12
    assert estimated.compute_flops == 6.0 * 1000 * 2 * 10**12
    assert with_compute(stats, "nothing stated", "README.md").compute_flops is None


@given(st.text(max_size=2000))
def test_training_tokens_never_raises(text: str) -> None:
    found = training_tokens(text)
    if found is not None:
        assert found[0] >= 10**6
        assert found[1].excerpt in text
