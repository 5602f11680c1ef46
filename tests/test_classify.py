"""File classification of a release in Hugging Face layout."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelseal.release.classify import KINDS, classify, group


@pytest.mark.parametrize(
    ("path", "kind", "role"),
    [
        ("README.md", "card", ""),
        ("docs/README.md", "other", "document"),
        ("LICENSE", "licence", ""),
        ("LICENSE-MODEL", "licence", ""),
        ("USE_POLICY.md", "licence", ""),
        ("model.safetensors", "weights", "final"),
        ("model-00001-of-00004.safetensors", "weights", "final"),
        ("pytorch_model.bin", "weights", "final"),
        ("adapter_model.safetensors", "weights", "adapter"),
        ("onnx/model.onnx", "weights", "final"),
        ("checkpoints/step-1000/model.safetensors", "checkpoint", "intermediate"),
        ("checkpoint-500/pytorch_model.bin", "checkpoint", "intermediate"),
        ("training_args.bin", "training_config", ""),
        ("optimizer.pt", "training_config", ""),
        ("config.json", "config", ""),
        ("1_Pooling/config.json", "config", ""),
        ("tokenizer_config.json", "tokenizer", ""),
        ("tokenizer.model", "tokenizer", ""),
        ("modeling_mymodel.py", "code", "architecture"),
        ("train.py", "code", "training"),
        ("scripts/finetune_lora.py", "code", "training"),
        ("eval/run.py", "code", "evaluation"),
        ("preprocess_data.py", "code", "preprocessing"),
        ("inference.py", "code", "inference"),
        ("requirements.txt", "code", "library"),
        ("DATA_CARD.md", "data_card", ""),
        ("docs/datasheet.md", "data_card", ""),
        (".eval_results/mmlu.yaml", "eval_results", ""),
        ("paper.pdf", "paper", ""),
        ("technical_report.pdf", "paper", ""),
        ("data/train.parquet", "dataset", ""),
        ("image.png", "other", ""),
    ],
)
def test_classify(path: str, kind: str, role: str) -> None:
    assert classify(path) == (kind, role)


def test_group_sorts_paths_by_kind() -> None:
    grouped = group(["b.safetensors", "README.md", "a.safetensors"])
    assert grouped == {"weights": ["a.safetensors", "b.safetensors"], "card": ["README.md"]}


@given(st.text(alphabet=st.characters(blacklist_characters="\x00"), min_size=1, max_size=80))
def test_every_path_gets_a_known_kind(path: str) -> None:
    assert classify(path).kind in KINDS
