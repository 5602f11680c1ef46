"""``modelseal card init``: a draft model card pre-filled with what the audit detected.

The draft has the Hugging Face template's metadata and sections plus the headings the EU AI Act
Annexes XI/XII, the AI Office training-content summary and California AB 2013 look for, so the
documentation check turns every item from *missing* into *placeholder* until the publisher
fills it in. Detected facts (licence, architecture, parameter count, context length, compute
estimate, files) are filled in; everything else is the literal ``[More Information Needed]``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from modelseal._version import __version__
from modelseal.audit.api import read_json
from modelseal.audit.model import AuditReport, LicenceCategory

CARD_NAME = "README.md"
_HF_MODEL_TAGS = {
    "llama2",
    "llama3",
    "llama3.1",
    "llama3.2",
    "llama3.3",
    "llama4",
    "gemma",
    "openrail",
    "bigscience-openrail-m",
    "creativeml-openrail-m",
    "bigscience-bloom-rail-1.0",
    "bigcode-openrail-m",
    "openmdw-1.0",
    "openmdw-1.1",
}
_CONTEXT_KEYS = ("max_position_embeddings", "n_positions", "n_ctx", "max_seq_len", "seq_length")


def draft_card(report: AuditReport, root: Path) -> str:
    """The Markdown text of a draft card for the audited release at ``root``."""
    import jinja2

    config = read_json(root / "config.json")
    metadata = _metadata(report, root, config)
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("modelseal.audit", "templates"),
        autoescape=False,  # Markdown, not HTML
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
    )
    template = env.get_template("draft_card.md.j2")
    return template.render(
        metadata_yaml=yaml.safe_dump(metadata, sort_keys=False, allow_unicode=True),
        name=report.release,
        version=__version__,
        model_type=_model_type(config),
        licence=_licence_line(report),
        base_model=metadata.get("base_model"),
        params=_params_line(report),
        aup=_aup_line(report),
        architecture=_architecture(config),
        context=_context(config),
        compute=_compute_line(report),
        files=[
            (kind, ", ".join(paths[:6]) + (f" (+{len(paths) - 6} more)" if len(paths) > 6 else ""))
            for kind, paths in sorted(report.files.items())
        ],
    )


def _metadata(report: AuditReport, root: Path, config: Mapping[str, Any]) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    lic = report.licence
    tag = lic.card_tag
    open_spdx = lic.category in (LicenceCategory.OSI, LicenceCategory.OPEN_DATA)
    if not tag and lic.id and (lic.id.lower() in _HF_MODEL_TAGS or open_spdx):
        tag = lic.id.lower()
    meta["license"] = tag or "other"
    if meta["license"] == "other":
        meta["license_name"] = lic.id or "[More Information Needed]"
        meta["license_link"] = lic.source.source if lic.source else "LICENSE"
    library = report.metadata.get("library_name") or _guess_library(report.files)
    if library:
        meta["library_name"] = library
    for key in ("pipeline_tag", "language", "datasets", "base_model", "tags"):
        if key in report.metadata:
            meta[key] = report.metadata[key]
    meta.setdefault("language", [])
    meta.setdefault("datasets", [])
    meta.setdefault("tags", [])
    return meta


def _guess_library(files: Mapping[str, list[str]]) -> str | None:
    configs = set(files.get("config", []))
    if {"modules.json", "config_sentence_transformers.json"} & configs:
        return "sentence-transformers"
    if "adapter_config.json" in configs:
        return "peft"
    if "config.json" in configs:
        return "transformers"
    if any(p.endswith(".gguf") for p in files.get("weights", [])):
        return "gguf"
    return None


def _model_type(config: Mapping[str, Any]) -> str | None:
    arch = config.get("architectures")
    model_type = config.get("model_type")
    parts = []
    if isinstance(arch, list) and arch:
        parts.append(", ".join(str(a) for a in arch))
    if model_type:
        parts.append(f"model_type `{model_type}`")
    return " — ".join(parts) or None


def _architecture(config: Mapping[str, Any]) -> str | None:
    keys = (
        "hidden_size",
        "num_hidden_layers",
        "num_attention_heads",
        "intermediate_size",
        "vocab_size",
    )
    shown = [f"{k} = {config[k]}" for k in keys if isinstance(config.get(k), int)]
    kind = _model_type(config)
    if not shown and not kind:
        return None
    return (f"{kind}; " if kind else "") + ", ".join(shown) + " (from config.json)"


def _context(config: Mapping[str, Any]) -> str | None:
    for key in _CONTEXT_KEYS:
        value = config.get(key)
        if isinstance(value, int) and value > 0:
            return f"{value:,} tokens (config.json `{key}`)"
    return None


def _licence_line(report: AuditReport) -> str | None:
    lic = report.licence
    if lic.method == "none":
        return None
    text = lic.name or lic.id or ""
    if lic.source is not None:
        text += f" (see {lic.source.source})"
    if lic.restrictions:
        kinds = sorted({r.kind for r in lic.restrictions})
        text += f"; restricts: {', '.join(kinds)}"
    return text


def _params_line(report: AuditReport) -> str | None:
    params = report.params
    if not params.total:
        return None
    split = ", ".join(f"{d}: {n:,}" for d, n in sorted(params.by_dtype.items()))
    return f"{params.total:,} ({split}; read from {params.method})"


def _compute_line(report: AuditReport) -> str | None:
    params = report.params
    if params.compute_flops is None:
        return None
    return (
        f"about {params.compute_flops:.2e} FLOP (6 x {params.total:,} parameters x "
        f"{params.training_tokens:,} tokens)"
    )


def _aup_line(report: AuditReport) -> str | None:
    aups = [r for r in report.licence.restrictions if r.kind == "acceptable-use"]
    if not aups:
        return None
    r = aups[0]
    where = f"{r.evidence.source}, {r.evidence.location}"
    return f'The licence passes an acceptable use policy downstream ({where}): "{r.quote}"'


def write_draft(root: Path, text: str, *, force: bool = False) -> Path:
    """Write ``text`` as ``root/README.md``; never replaces an existing card unless ``force``."""
    from modelseal.errors import InputError

    target = root / CARD_NAME
    existing = [p for p in root.iterdir() if p.name.lower() in ("readme.md", "model_card.md")]
    if existing and not force:
        raise InputError(
            f"{existing[0]} exists; not overwriting it",
            hint="pass --force to replace it, or -o FILE to write the draft elsewhere",
        )
    tmp = target.with_name(f".{CARD_NAME}.modelseal-tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(target)
    return target
