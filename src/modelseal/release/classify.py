"""What each file of a release is: weights, config, tokenizer, card, licence, code, data docs, …

Classification is by name and place only (never by loading anything), in Hugging Face layout
terms. A file gets one *kind* and, for code and documents, a *role* that says what it is for
(``training``, ``inference``, ``architecture``, …). The audit maps kinds and roles to Model
Openness Framework components; the scanner does not need this (it sniffs content).

>>> classify("model.safetensors")
FileKind(kind='weights', role='final')
>>> classify("checkpoints/step-1000/model.safetensors")
FileKind(kind='checkpoint', role='intermediate')
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import NamedTuple

KINDS = (
    "weights",
    "checkpoint",
    "config",
    "tokenizer",
    "card",
    "licence",
    "code",
    "data_card",
    "dataset",
    "eval_results",
    "training_config",
    "paper",
    "other",
)


class FileKind(NamedTuple):
    kind: str  # one of KINDS
    role: str = ""  # code: architecture | training | inference | evaluation | preprocessing
    #                 | library | other; weights: final | intermediate | adapter; …


_WEIGHT_SUFFIXES = (
    ".safetensors",
    ".gguf",
    ".bin",
    ".pt",
    ".pth",
    ".ckpt",
    ".onnx",
    ".h5",
    ".keras",
    ".msgpack",
    ".tflite",
    ".mlmodel",
    ".pb",
    ".npz",
    ".joblib",
    ".pkl",
)
# directories and names that mark intermediate checkpoints (training stages, steps, revisions)
_CHECKPOINT_DIR = re.compile(
    r"(^|/)(checkpoints?|intermediate|ckpts?|stages?|revisions?)(/|[-_])"
    r"|(^|/)(checkpoint|step|global_step|iter|epoch|stage)[-_]?\d+(/|$)",
    re.IGNORECASE,
)
_CONFIG_NAMES = {
    "config.json",
    "generation_config.json",
    "model_config.json",
    "configuration.json",
    "params.json",
    "adapter_config.json",
    "sentence_bert_config.json",
    "config_sentence_transformers.json",
    "modules.json",
    "preprocessor_config.json",
    "processor_config.json",
    "model.safetensors.index.json",
    "pytorch_model.bin.index.json",
}
_TOKENIZER_NAMES = {
    "tokenizer.json",
    "tokenizer_config.json",
    "tokenizer.model",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "special_tokens_map.json",
    "added_tokens.json",
    "spiece.model",
    "sentencepiece.bpe.model",
    "chat_template.jinja",
    "chat_template.json",
}
_TRAINING_CONFIG = re.compile(
    r"(^|/)(training_args\.(bin|json)|trainer_state\.json|optimizer(\.pt|\.bin|_state.*)"
    r"|scheduler\.pt|rng_state.*\.pth|hparams\.(ya?ml|json)|training_config.*\.(json|ya?ml)"
    r"|train(ing)?[-_]?(config|args|params).*\.(json|ya?ml)|.*\.(train|training)\.ya?ml)$",
    re.IGNORECASE,
)
_CARD = re.compile(r"^(readme|model[-_ ]?card)(\.md|\.markdown|\.txt)?$", re.IGNORECASE)
_LICENCE = re.compile(
    r"^(licen[cs]e|copying|notice|use[-_ ]policy|acceptable[-_ ]use[-_ ]policy"
    r"|responsible[-_ ]use[-_ ]guide)([-_.].*)?$",
    re.IGNORECASE,
)
_DATA_CARD = re.compile(
    r"(^|/)(data[-_ ]?card|datasheet|dataset[-_ ]?card|data[-_ ]?sheet|training[-_ ]?data)"
    r"[^/]*\.(md|markdown|txt|pdf|ya?ml|json)$",
    re.IGNORECASE,
)
_EVAL = re.compile(
    r"(^|/)(\.eval_results/.*\.ya?ml|eval(uation)?[-_]?results?[^/]*\.(json|ya?ml|md|csv)"
    r"|results?[-_][^/]*\.(json|csv)|all_results\.json|eval_results\.txt|benchmarks?[^/]*\.(json|md|csv))$",
    re.IGNORECASE,
)
_PAPER = re.compile(r"\.(pdf|tex)$|(^|/)(paper|technical[-_ ]?report|tech[-_]?report)", re.I)
_DATASET_SUFFIXES = (".parquet", ".jsonl", ".arrow", ".csv", ".tsv", ".jsonl.gz", ".json.gz")
_CODE_SUFFIXES = (
    ".py",
    ".ipynb",
    ".sh",
    ".c",
    ".cc",
    ".cpp",
    ".cu",
    ".h",
    ".rs",
    ".go",
    ".js",
    ".ts",
    ".java",
    ".jl",
    ".r",
)
_ROLE_WORDS = (
    ("architecture", "modeling|modelling|model|architecture|configuration", "[^/]*$"),
    ("training", "train|training|finetune|fine_tune|pretrain|sft|dpo|rlhf", "[^/]*(/|$)"),
    ("evaluation", "eval|evaluate|evaluation|benchmark|bench|test_model", "[^/]*(/|$)"),
    (
        "preprocessing",
        "preprocess|prepare|data_?prep|tokeni[sz]e_data|filter|dedup|clean|build_dataset|data",
        "[^/]*(/|$)",
    ),
    (
        "inference",
        "inference|infer|generate|generation|predict|serve|serving|server|run|demo|app"
        "|pipeline|handler|chat",
        "[^/]*(/|$)",
    ),
    ("library", r"requirements[^/]*\.txt|setup\.py|pyproject\.toml|environment\.ya?ml", "$"),
)
_CODE_ROLES = tuple(
    (role, re.compile(rf"(^|/)({words}){tail}", re.IGNORECASE)) for role, words, tail in _ROLE_WORDS
)


def classify(path: str) -> FileKind:
    """The kind (and role) of the release file at relative POSIX ``path``."""
    name = path.rsplit("/", 1)[-1]
    lower = name.lower()
    top_level = "/" not in path
    if top_level and _CARD.match(name):
        return FileKind("card")
    if _LICENCE.match(name):
        return FileKind("licence")
    if _DATA_CARD.search(path):
        return FileKind("data_card")
    if _TRAINING_CONFIG.search(path):
        return FileKind("training_config")
    if lower in _CONFIG_NAMES or (lower.endswith("config.json") and "tokenizer" not in lower):
        return FileKind("config")
    if lower in _TOKENIZER_NAMES:
        return FileKind("tokenizer")
    if _EVAL.search(path):
        return FileKind("eval_results")
    if lower.endswith(_WEIGHT_SUFFIXES):
        if _CHECKPOINT_DIR.search(path):
            return FileKind("checkpoint", "intermediate")
        if "adapter" in lower:
            return FileKind("weights", "adapter")
        return FileKind("weights", "final")
    if lower.endswith(_CODE_SUFFIXES) or lower in {"requirements.txt", "pyproject.toml"}:
        for role, pattern in _CODE_ROLES:
            if pattern.search(path):
                return FileKind("code", role)
        return FileKind("code", "other")
    if _PAPER.search(path):
        return FileKind("paper")
    if lower.endswith(_DATASET_SUFFIXES):
        return FileKind("dataset")
    if lower.endswith((".md", ".markdown", ".rst")):
        return FileKind("other", "document")
    return FileKind("other")


def group(paths: Iterable[str]) -> dict[str, list[str]]:
    """Paths by kind (every kind present as a key only if some path has it), sorted."""
    out: dict[str, list[str]] = {}
    for path in sorted(paths):
        out.setdefault(classify(path).kind, []).append(path)
    return out
