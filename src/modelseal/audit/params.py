"""Parameter count and dtype breakdown from weight-file headers, and a training-compute estimate.

Only headers are read (safetensors: 8 + N bytes; GGUF: the key/value and tensor-info sections),
never the weights. Sharded checkpoints are summed over their shards; when a release carries the
same weights in several formats (``model.safetensors`` and ``model.gguf``, or ``onnx/``), the
count comes from one format only, in the order safetensors > GGUF, so nothing is counted twice.

The compute estimate is the dense-transformer approximation C ≈ 6·N·D (N parameters, D training
tokens) that the Commission's GPAI guidelines accept for Art. 51 thresholds; D comes from the
model card ("trained on 2T tokens", "15 trillion tokens"), and the estimate is left out when the
card does not state it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from modelseal.audit.model import Evidence, Finding, ParamStats, Severity
from modelseal.formats import FormatError

_UNITS = {
    "k": 10**3,
    "thousand": 10**3,
    "m": 10**6,
    "million": 10**6,
    "b": 10**9,
    "bn": 10**9,
    "billion": 10**9,
    "t": 10**12,
    "trillion": 10**12,
}
_TOKENS = re.compile(
    r"(?P<num>\d{1,3}(?:[,\s]\d{3})+|\d+(?:\.\d+)?)\s*(?P<unit>trillion|billion|million|thousand|bn|[tbmk])?"
    r"\s*(?:training\s+|pre-?training\s+|high-quality\s+|text\s+)?tokens\b",
    re.IGNORECASE,
)
_TRAIN_CONTEXT = re.compile(r"train|pre-?train|corpus|data", re.IGNORECASE)


def count_parameters(
    root: Path, weight_files: Iterable[str]
) -> tuple[ParamStats, tuple[Finding, ...]]:
    """Count parameters over ``weight_files`` (paths relative to ``root``) by their headers."""
    files = sorted(weight_files)
    safetensors = [f for f in files if f.lower().endswith(".safetensors")]
    gguf = [f for f in files if f.lower().endswith(".gguf")]
    findings: list[Finding] = []
    for chosen, reader, method in (
        (safetensors, _safetensors_params, "safetensors headers"),
        (gguf, _gguf_params, "GGUF headers"),
    ):
        if not chosen:
            continue
        total = 0
        by_dtype: dict[str, int] = {}
        counted: list[str] = []
        for rel in chosen:
            try:
                per_dtype = reader(root / rel)
            except (FormatError, OSError) as exc:
                findings.append(
                    Finding(
                        "params.unreadable-header",
                        Severity.WARNING,
                        f"could not read the header of {rel}: {exc}; it is left out of the "
                        "parameter count (`modelseal scan` tells whether the file is malformed)",
                        evidence=(Evidence(rel),),
                    )
                )
                continue
            counted.append(rel)
            for dtype, n in per_dtype.items():
                by_dtype[dtype] = by_dtype.get(dtype, 0) + n
                total += n
        if counted:
            return ParamStats(total, by_dtype, tuple(counted), method=method), tuple(findings)
    return ParamStats(None, method="no safetensors or GGUF weights"), tuple(findings)


def _safetensors_params(path: Path) -> dict[str, int]:
    from modelseal.formats.safetensors import parse_header, tensor_stats

    with path.open("rb") as stream:
        header = parse_header(stream, path.stat().st_size)
    return dict(tensor_stats(header).params_by_dtype)


def _gguf_params(path: Path) -> dict[str, int]:
    from modelseal.formats.gguf import parse_gguf

    with path.open("rb") as stream:
        parsed = parse_gguf(stream, path.stat().st_size)
    out: dict[str, int] = {}
    for t in parsed.tensors:
        n = 1
        for d in t.dims:
            n *= d
        out[t.type_name] = out.get(t.type_name, 0) + n
    return out


def training_tokens(text: str, source: str = "README.md") -> tuple[int, Evidence] | None:
    """The number of training tokens a card states (the largest such mention), with its line."""
    best: tuple[int, Evidence] | None = None
    for lineno, line in enumerate(text.splitlines(), 1):
        for m in _TOKENS.finditer(line):
            context = line[max(0, m.start() - 120) : m.end() + 40]
            if not _TRAIN_CONTEXT.search(context):
                continue
            value = _number(m.group("num"), m.group("unit"))
            if value is None or value < 10**6:  # "2048 tokens" is a context length
                continue
            if best is None or value > best[0]:
                best = (value, Evidence(source, f"line {lineno}", line.strip()[:300]))
    return best


def _number(digits: str, unit: str | None) -> int | None:
    cleaned = re.sub(r"[,\s]", "", digits)
    try:
        value = float(cleaned)
    except ValueError:
        return None
    scale = _UNITS.get(unit.lower(), 1) if unit else 1
    return int(value * scale)


def with_compute(stats: ParamStats, card_text: str | None, source: str) -> ParamStats:
    """``stats`` plus the card's training tokens and the 6·N·D estimate when both are known."""
    found = training_tokens(card_text, source) if card_text else None
    if found is None:
        return stats
    tokens, evidence = found
    flops = 6.0 * stats.total * tokens if stats.total else None
    return ParamStats(
        stats.total,
        stats.by_dtype,
        stats.files,
        training_tokens=tokens,
        training_tokens_source=evidence,
        compute_flops=flops,
        method=stats.method + ("; compute = 6 * N * D" if flops else ""),
    )
