"""``audit_release``: the whole audit of one release directory, offline.

Steps: walk the directory (never following links out of it) and classify the files; parse the
model card and any data cards; identify the licence from its text; inventory the MOF components;
count parameters from headers; then the verdicts: OSI OSAID 1.0, MOF classes (optionally merged
with a ``--mof`` description), documentation completeness per rule pack.

Broken or hostile release content (bad YAML, binary README, odd encodings, unreadable headers)
becomes findings in the report; only an unusable *argument* (no such directory, an invalid
``--mof`` file) raises :class:`~modelseal.errors.InputError`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from modelseal._version import __version__
from modelseal.audit.model import (
    AuditReport,
    Component,
    Evidence,
    Finding,
    MofResult,
    Severity,
)

ENGINE = {"name": "modelseal.audit", "version": __version__}

ProgressHook = Callable[[str], None]


def audit_release(
    root: str | os.PathLike[str],
    *,
    mof: str | os.PathLike[str] | None = None,
    progress: ProgressHook | None = None,
) -> AuditReport:
    """Audit the release directory ``root``; ``mof`` adds facts from a MOF description file."""
    from modelseal.audit import card as card_mod
    from modelseal.audit import docs as docs_mod
    from modelseal.audit import licence as licence_mod
    from modelseal.audit import mof as mof_mod
    from modelseal.audit import osaid as osaid_mod
    from modelseal.audit.inventory import inventory, licences_for
    from modelseal.audit.params import count_parameters, with_compute
    from modelseal.release.classify import classify
    from modelseal.release.ignore import IgnoreRules
    from modelseal.release.walk import walk_collect

    def step(text: str) -> None:
        if progress is not None:
            progress(text)

    root_path = Path(root)
    mof_release = mof_mod.load_mof(Path(mof)) if mof is not None else None
    findings: list[Finding] = []

    step("walking the release")
    walked, problems = walk_collect(root_path, IgnoreRules.default())
    for path, reason in problems:
        findings.append(
            Finding(
                "release.unsafe-path",
                Severity.WARNING,
                f"{path}: {reason}; left out of the audit",
                evidence=(Evidence(path),),
            )
        )
    paths = sorted(w.path for w in walked)
    kinds = {p: classify(p) for p in paths}
    files: dict[str, list[str]] = {}
    for p in paths:
        files.setdefault(kinds[p].kind, []).append(p)
    roles = {p: k.role for p, k in kinds.items()}

    step("reading the model card")
    card = card_mod.load_card(root_path)
    data_docs = card_mod.load_extra_docs(root_path)
    if card is not None:
        findings.extend(card.findings)
    for doc in data_docs:
        findings.extend(doc.findings)
    metadata: dict[str, Any] = dict(card.metadata) if card is not None else {}
    if card is None:
        findings.append(
            Finding(
                "card.missing",
                Severity.WARNING,
                "the release has no model card (README.md); `modelseal card init DIR` writes a "
                "draft from what this audit detected",
            )
        )

    step("identifying the licence")
    texts = licence_mod.find_licence_files(root_path)
    licence, licence_findings = licence_mod.identify_release(
        texts,
        _str(metadata.get("license")),
        _str(metadata.get("license_name")),
        _str(metadata.get("license_link")),
    )
    findings.extend(licence_findings)
    per_file = licence_mod.identify_component_licences(texts)
    component_licences = licences_for(licence, per_file)

    step("taking inventory")
    components = inventory(files, roles, card, data_docs, metadata, component_licences)

    if mof_release is not None:
        components = _with_mof_facts(components, mof_release, os.fspath(mof or ""))

    step("counting parameters from the weight headers")
    params, param_findings = count_parameters(root_path, files.get("weights", []))
    findings.extend(param_findings)
    params = with_compute(params, card.text if card is not None else None, _src(card))

    step("scoring openness")
    mof_result = _score_mof(components, mof_release, mof)
    osaid_result = osaid_mod.evaluate(
        osaid_mod.OsaidFacts(components, licence, card, data_docs, metadata)
    )

    step("checking documentation")
    config = read_json(root_path / "config.json")
    st_config = read_json(root_path / "sentence_bert_config.json")
    facts: dict[str, object] = {
        "param_count": params.total,
        "licence_identified": licence.method != "none",
        "weights_format": components[10].detail if components[10].present else None,
        "training_tokens": params.training_tokens,
        "compute_flops": params.compute_flops,
        "is_adapter": "adapter_config.json" in files.get("config", [])
        or any(r == "adapter" for r in roles.values()),
        "context_length": _first_int(
            config, "max_position_embeddings", "n_positions", "n_ctx", "max_seq_len"
        )
        or _first_int(st_config, "max_seq_length"),
        "software_versions": _software_versions(root_path, config),
        "acceptable_use_policy": any(r.kind == "acceptable-use" for r in licence.restrictions)
        or any("policy" in p.lower() for p in files.get("licence", [])),
    }
    docs = docs_mod.evaluate(docs_mod.DocContext(card, tuple(data_docs), files, facts))

    name = _release_name(root_path, metadata, card, mof_release)
    return AuditReport(
        release=name,
        root=str(root_path),
        engine=dict(ENGINE),
        files=files,
        metadata=metadata,
        components=tuple(components.values()),
        licence=licence,
        osaid=osaid_result,
        mof=mof_result,
        docs=docs,
        params=params,
        findings=tuple(findings),
    )


def _score_mof(
    components: Mapping[int, Component],
    described: Any,
    mof_path: str | os.PathLike[str] | None,
) -> MofResult:
    """MOF scoring of the detected components, merged with a MOF description when given.

    A component the description lists keeps the description's licence (its own or inherited
    from the description's global licences, as the reference tool resolves it); a component
    only the directory shows is added with the licence the audit found for it.
    """
    from dataclasses import replace

    from modelseal.audit import mof as mof_mod

    detected = {
        cid: mof_mod.MofListed(
            mof_id=cid,
            name=c.name,
            licence=c.licence,
            licence_given=True,
            description=c.detail,
            component_path=c.evidence[0].source if c.evidence else "",
            license_path="",
        )
        for cid, c in components.items()
        if c.present
    }
    if described is None:
        release = mof_mod.MofRelease.of_components(detected, "release")
    else:
        shown = os.fspath(mof_path) if mof_path is not None else "?"
        merged = dict(detected)
        merged.update(described.components)
        release = replace(
            described,
            components=merged,
            source=f"release + mof:{shown}" if detected else f"mof:{shown}",
        )
    return mof_mod.score(release)


def _with_mof_facts(
    components: Mapping[int, Component], described: Any, shown: str
) -> dict[int, Component]:
    """``components`` with the facts a MOF description gives: a listed component is present,
    under the licence the description resolves for it (its own, else a global one)."""
    from modelseal.audit import mof as mof_mod

    judged = {c.mof_id: c for c in mof_mod.score(described).components}
    merged = dict(components)
    for cid, listed in described.components.items():
        result = judged.get(cid)
        spec = mof_mod.component_spec(cid)
        if result is None or spec is None or result.status == "missing":
            continue
        origin = mof_mod.resolve_licence(described, spec)[1]
        where = listed.component_path or listed.description
        merged[cid] = Component(
            cid,
            result.name,
            True,
            result.licence,
            f"mof:{shown}" + (f" ({origin})" if origin else ""),
            (Evidence(f"mof:{shown}", listed.name, where[:200]),),
            listed.description[:200] or "listed in the MOF description",
        )
    return merged


def _release_name(root: Path, metadata: Mapping[str, Any], card: Any, described: Any) -> str:
    if described is not None and described.name:
        return str(described.name)
    for key in ("model_name", "pretty_name", "name"):
        value = metadata.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    index = metadata.get("model-index")
    if isinstance(index, list) and index and isinstance(index[0], dict) and index[0].get("name"):
        return str(index[0]["name"])
    if card is not None:
        for section in card.sections:
            if section.level == 1 and section.title.strip():
                return str(section.title.strip())[:120]
    return root.resolve().name


def read_json(path: Path) -> dict[str, Any]:
    """A small JSON object from the release (config files); {} when absent, huge or broken."""
    import json

    try:
        if not path.is_file() or path.stat().st_size > 4 << 20:
            return {}
        data = json.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}


def _first_int(config: Mapping[str, Any], *keys: str) -> int | None:
    for key in keys:
        value = config.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def _software_versions(root: Path, config: Mapping[str, Any]) -> dict[str, str] | None:
    versions: dict[str, str] = {}
    if isinstance(config.get("transformers_version"), str):
        versions["transformers"] = config["transformers_version"]
    st = read_json(root / "config_sentence_transformers.json").get("__version__")
    if isinstance(st, dict):
        versions.update({str(k): str(v) for k, v in st.items() if isinstance(v, str)})
    return versions or None


def _str(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, list):
        value = value[0] if value else None
    return str(value) if value is not None else None


def _src(card: Any) -> str:
    return str(card.source) if card is not None else "README.md"
