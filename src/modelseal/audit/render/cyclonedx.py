"""The report as a CycloneDX 1.6 ML-BOM: one ``machine-learning-model`` with a ``modelCard``.

The audit verdicts travel as ``properties`` named ``modelseal:audit:…``.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
import uuid
from typing import Any

from modelseal._version import __version__
from modelseal.audit.model import AuditReport, DocStatus, LicenceResult
from modelseal.audit.render._common import class_bars, dtype_rows, shorten
from modelseal.audit.spdx import spdx_table

# Hugging Face pipeline tags -> (input formats, output formats) for modelParameters.inputs/outputs
_TASK_IO: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "text-generation": (("text",), ("text",)),
    "text2text-generation": (("text",), ("text",)),
    "fill-mask": (("text",), ("text",)),
    "translation": (("text",), ("text",)),
    "summarization": (("text",), ("text",)),
    "question-answering": (("text",), ("text",)),
    "text-classification": (("text",), ("label",)),
    "token-classification": (("text",), ("label",)),
    "zero-shot-classification": (("text",), ("label",)),
    "sentence-similarity": (("text",), ("embedding",)),
    "feature-extraction": (("text",), ("embedding",)),
    "text-to-image": (("text",), ("image",)),
    "image-to-text": (("image",), ("text",)),
    "image-text-to-text": (("image", "text"), ("text",)),
    "image-classification": (("image",), ("label",)),
    "automatic-speech-recognition": (("audio",), ("text",)),
    "text-to-speech": (("text",), ("audio",)),
    "text-to-audio": (("text",), ("audio",)),
}
_LEARNING_TYPES = (
    "supervised",
    "unsupervised",
    "reinforcement-learning",
    "semi-supervised",
    "self-supervised",
)
# Documentation items (by title) whose present text fills a modelCard consideration; the first
# pattern that matches wins.
_CONSIDERATIONS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("technicalLimitations", re.compile(r"out[- ]of[- ]scope|misuse", re.IGNORECASE)),
    ("ethicalConsiderations", re.compile(r"\bbias|\brisk|ethic", re.IGNORECASE)),
    ("technicalLimitations", re.compile(r"limitation", re.IGNORECASE)),
    ("environmental", re.compile(r"environment|carbon|energy|co2|emission", re.IGNORECASE)),
    ("useCases", re.compile(r"\buses?\b|intended|use case|purpose", re.IGNORECASE)),
)
_PROP = "modelseal:audit:"


def _bom_timestamp() -> str:
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "")
    when = (
        _dt.datetime.fromtimestamp(int(epoch), _dt.UTC)
        if epoch.isdigit()
        else _dt.datetime.now(_dt.UTC)
    )
    return when.replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value] if value.strip() else []
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str) and v.strip()]
    return []


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _first_string(metadata: dict[str, Any], *keys: str) -> str | None:
    for key in keys:
        found = _strings(metadata.get(key))
        if found:
            return found[0]
    return None


def _scalar(value: Any) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float | str):
        text = str(value).strip()
        return text or None
    return None


def _performance_metrics(metadata: dict[str, Any]) -> list[dict[str, Any]]:
    """``model-index`` results (Papers-with-Code format) as CycloneDX performance metrics."""
    metrics: list[dict[str, Any]] = []
    index = metadata.get("model-index")
    if not isinstance(index, list):
        return metrics
    for model in index:
        results = model.get("results") if isinstance(model, dict) else None
        if not isinstance(results, list):
            continue
        for result in results:
            if not isinstance(result, dict):
                continue
            dataset = _dict(result.get("dataset"))
            task = _dict(result.get("task"))
            where = _scalar(dataset.get("name")) or _scalar(dataset.get("type"))
            split = _scalar(dataset.get("split"))
            task_name = _scalar(task.get("type")) or _scalar(task.get("name"))
            slice_text = " / ".join(
                s for s in (task_name, where, f"split {split}" if split else None) if s
            )
            for metric in result.get("metrics") or ():
                if not isinstance(metric, dict):
                    continue
                kind = _scalar(metric.get("type")) or _scalar(metric.get("name"))
                value = _scalar(metric.get("value"))
                if kind is None or value is None:
                    continue
                entry: dict[str, Any] = {"type": kind, "value": value}
                if slice_text:
                    entry["slice"] = slice_text
                metrics.append(entry)
    return metrics


def _considerations(report: AuditReport) -> dict[str, Any]:
    found: dict[str, list[str]] = {}
    for doc in report.docs:
        for item in doc.items:
            if item.status != DocStatus.PRESENT or not item.excerpt.strip():
                continue
            for key, pattern in _CONSIDERATIONS:
                if pattern.search(item.title):
                    texts = found.setdefault(key, [])
                    text = shorten(item.excerpt, 1000)
                    if text not in texts:
                        texts.append(text)
                    break
    out: dict[str, Any] = {}
    for key in ("useCases", "technicalLimitations"):
        if key in found:
            out[key] = found[key]
    if "ethicalConsiderations" in found:
        out["ethicalConsiderations"] = [{"name": t} for t in found["ethicalConsiderations"]]
    env_props = [
        {"name": f"{_PROP}environment:statement", "value": t}
        for t in found.get("environmental", [])
    ]
    co2 = report.metadata.get("co2_eq_emissions")
    if isinstance(co2, dict):
        for key, value in sorted(co2.items(), key=lambda kv: str(kv[0])):
            shown = _scalar(value)
            if shown is not None and isinstance(key, str):
                env_props.append({"name": f"{_PROP}co2_eq_emissions:{key}", "value": shown})
    elif _scalar(co2) is not None:
        env_props.append({"name": f"{_PROP}co2_eq_emissions:emissions", "value": str(co2)})
    if env_props:
        out["environmentalConsiderations"] = {"properties": env_props}
    return out


def _model_parameters(report: AuditReport) -> dict[str, Any]:
    meta = report.metadata
    config = _dict(meta.get("config"))
    params: dict[str, Any] = {}
    approach = _first_string(meta, "approach", "learning_type")
    if approach in _LEARNING_TYPES:
        params["approach"] = {"type": approach}
    task = _first_string(meta, "pipeline_tag")
    if task:
        params["task"] = task
    family = _first_string(meta, "model_type") or _first_string(config, "model_type")
    if family:
        params["architectureFamily"] = family
    arch = _first_string(meta, "architectures") or _first_string(config, "architectures")
    if arch:
        params["modelArchitecture"] = arch
    datasets = [{"type": "dataset", "name": name} for name in _strings(meta.get("datasets"))]
    if datasets:
        params["datasets"] = datasets
    if task in _TASK_IO:
        inputs, outputs = _TASK_IO[task]
        params["inputs"] = [{"format": f} for f in inputs]
        params["outputs"] = [{"format": f} for f in outputs]
    return params


def _licences(lic: LicenceResult) -> list[dict[str, Any]]:
    if lic.method == "none" and not lic.id:
        return []
    spdx_id = spdx_table().canonical(lic.id)
    entry: dict[str, Any] = {"id": spdx_id} if spdx_id else {"name": lic.name or lic.id}
    if not (entry.get("id") or entry.get("name")):
        return []
    entry["acknowledgement"] = "concluded"
    props = [{"name": f"{_PROP}licence:category", "value": str(lic.category)}]
    if lic.id and not spdx_id:
        props.append({"name": f"{_PROP}licence:key", "value": lic.id})
    props += [
        {"name": f"{_PROP}licence:restriction", "value": f"{r.kind}: {r.summary}"}
        for r in lic.restrictions
    ]
    entry["properties"] = props
    return [{"license": entry}]


def _audit_properties(report: AuditReport) -> list[dict[str, str]]:
    props: list[tuple[str, str]] = [
        ("osaid:verdict", str(report.osaid.verdict)),
        ("osaid:summary", report.osaid.summary),
        ("mof:class", str(report.mof.classification)),
        ("mof:label", report.mof.label),
    ]
    props += [(f"mof:class_{b.mof_class}_percent", str(b.percent)) for b in class_bars(report)]
    props += [
        ("licence:category", str(report.licence.category)),
        ("licence:restricted", "true" if report.licence.restricted else "false"),
    ]
    p = report.params
    if p.total is not None:
        props.append(("params:total", str(p.total)))
        props += [(f"params:dtype:{d}", str(n)) for d, n, _ in dtype_rows(report)]
    if p.training_tokens is not None:
        props.append(("compute:training_tokens", str(p.training_tokens)))
    if p.compute_flops is not None:
        props.append(("compute:training_flops", f"{p.compute_flops:.3e}"))
    for doc in report.docs:
        props.append((f"docs:{doc.pack}:score", f"{doc.score:.4f}"))
        props += [(f"docs:{doc.pack}:{s}", str(doc.count(s))) for s in DocStatus]
    props.append(("findings", str(len(report.findings))))
    return [{"name": _PROP + k, "value": v} for k, v in props]


def to_cyclonedx(report: AuditReport) -> dict[str, Any]:
    """The report as a CycloneDX 1.6 BOM (a dict) with one ``machine-learning-model``."""
    digest_source = json.dumps(report.to_dict(), sort_keys=True, separators=(",", ":"))
    serial = uuid.uuid5(uuid.NAMESPACE_URL, "modelseal:audit:" + digest_source)
    model_card: dict[str, Any] = {}
    parameters = _model_parameters(report)
    if parameters:
        model_card["modelParameters"] = parameters
    metrics = _performance_metrics(report.metadata)
    if metrics:
        model_card["quantitativeAnalysis"] = {"performanceMetrics": metrics}
    considerations = _considerations(report)
    if considerations:
        model_card["considerations"] = considerations
    model_card["properties"] = _audit_properties(report)
    component: dict[str, Any] = {
        "type": "machine-learning-model",
        "bom-ref": "model",
        "name": report.release,
    }
    licences = _licences(report.licence)
    if licences:
        component["licenses"] = licences
    tags = _strings(report.metadata.get("tags"))
    if tags:
        component["tags"] = tags
    component["modelCard"] = model_card
    return {
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "serialNumber": serial.urn,
        "version": 1,
        "metadata": {
            "timestamp": _bom_timestamp(),
            "tools": {
                "components": [
                    {
                        "type": "application",
                        "name": "modelseal",
                        "version": __version__,
                        "description": "open-weight model release audit (modelseal audit)",
                    }
                ]
            },
        },
        "components": [component],
    }


def to_cyclonedx_json(report: AuditReport) -> str:
    """:func:`to_cyclonedx` as indented JSON text."""
    return json.dumps(to_cyclonedx(report), indent=2, ensure_ascii=False) + "\n"
