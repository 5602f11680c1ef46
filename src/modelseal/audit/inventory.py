"""The release's components, in Model Openness Framework terms, with the evidence for each.

Evidence comes from the files (classified by :mod:`modelseal.release.classify`) and from the
model card (metadata and sections). A component the card only *links to* (a paper on arXiv, a
training repository on GitHub, datasets on a hub) is present but its licence is unknown offline:
it is recorded with ``licence=None`` and ``licence_source="external"``, which the MOF scorer
counts as unlicensed; ``--mof FILE.yml`` can supply the facts the directory cannot show.

Licences per component: files under ``LICENSE-CODE`` / ``LICENSE-MODEL`` style pairs govern
code and weights separately; otherwise the release licence covers everything in the directory.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from modelseal.audit.model import Component, Evidence, LicenceResult

if TYPE_CHECKING:
    from modelseal.audit.card import Card
    from modelseal.audit.licence import TextMatch

_ARXIV = re.compile(r"arxiv\.org/(?:abs|pdf)/(\d{4}\.\d{4,5})|\barxiv:\s*(\d{4}\.\d{4,5})", re.I)
_GITHUB = re.compile(r"https?://(?:github\.com|gitlab\.com|codeberg\.org)/[\w.-]+/[\w.-]+", re.I)
_TECH_REPORT = re.compile(r"technical report|tech(?:nical)? report|model report|system card", re.I)
_INTERMEDIATE = re.compile(
    r"intermediate checkpoints?|training checkpoints?|revision=[\"']?step\d+"
    r"|checkpoints? (?:at|every|from) ",
    re.I,
)
_CODE_BLOCK = re.compile(r"```|~~~")
_NUMBER = re.compile(r"\d+(?:\.\d+)?\s*%?")


@dataclass(frozen=True)
class ComponentLicences:
    """The licence (SPDX id or licence name) for each content type of the release."""

    weights: str | None
    code: str | None
    docs: str | None
    data: str | None
    source: str  # where it comes from, e.g. "LICENSE" or "README.md#metadata.license"


def licences_for(release: LicenceResult, per_file: Mapping[str, TextMatch]) -> ComponentLicences:
    """Map the identified licences to content types (``LICENSE-CODE`` / ``LICENSE-MODEL``)."""
    main = _mof_name(release.id, release.name)
    code = model = None
    for path, match in per_file.items():
        upper = path.upper()
        if "CODE" in upper:
            code = _mof_name(match.spdx or match.key, match.name)
        elif "MODEL" in upper or "WEIGHT" in upper:
            model = _mof_name(match.spdx or match.key, match.name)
    source = (
        release.source.source
        if release.source
        else ("README.md#metadata.license" if release.card_tag else "")
    )
    weights = model or main
    return ComponentLicences(weights, code or main, main, weights, source)


def _mof_name(licence_id: str | None, name: str) -> str | None:
    """The licence as MOF expects it: the SPDX id when there is one, else the licence name."""
    from modelseal.audit.spdx import spdx_table

    canonical = spdx_table().canonical(licence_id)
    if canonical:
        return canonical
    return name or licence_id or None


def inventory(
    files: Mapping[str, Sequence[str]],
    roles: Mapping[str, str],
    card: Card | None,
    data_docs: Sequence[Card],
    metadata: Mapping[str, Any],
    licences: ComponentLicences,
) -> dict[int, Component]:
    """Every MOF component (present or not) with evidence; keyed by MOF component id."""
    from modelseal.audit.mof import components as mof_components

    found: dict[int, Component] = {}

    def add(
        cid: int, licence: str | None, source: str, evidence: list[Evidence], detail: str
    ) -> None:
        if cid in found:
            return
        spec_name = names[cid]
        found[cid] = Component(cid, spec_name, True, licence, source, tuple(evidence[:8]), detail)

    names = {spec.id: spec.name for spec in mof_components()}
    lic_src = licences.source or "release licence"

    def files_of(kind: str, role: str | None = None) -> list[str]:
        paths = list(files.get(kind, ()))
        return [p for p in paths if role is None or roles.get(p) == role]

    def ev(paths: Sequence[str]) -> list[Evidence]:
        return [Evidence(p) for p in paths]

    def summary(paths: Sequence[str]) -> str:
        shown = ", ".join(paths[:3])
        return f"{len(paths)} file(s): {shown}" + (" …" if len(paths) > 3 else "")

    # 10 Model parameters (Final) and 24 (Intermediate)
    weights = files_of("weights")
    if weights:
        formats = sorted({p.rsplit(".", 1)[-1].lower() for p in weights})
        add(10, licences.weights, lic_src, ev(weights), f"{', '.join(formats)}: {summary(weights)}")
    checkpoints = files_of("checkpoint")
    if checkpoints:
        add(24, licences.weights, lic_src, ev(checkpoints), summary(checkpoints))

    # 9 Model architecture: modelling code, else the config an open library implements
    arch_code = files_of("code", "architecture")
    if arch_code:
        add(9, licences.code, lic_src, ev(arch_code), summary(arch_code))
    else:
        configs = [p for p in files.get("config", ()) if p.endswith("config.json")]
        config = "config.json" if "config.json" in configs else next(iter(configs), None)
        library = metadata.get("library_name")
        if config is not None and library:
            add(
                9,
                licences.code,
                lic_src,
                [Evidence(config), Evidence("README.md", "metadata.library_name", str(library))],
                f"{config} configures an architecture implemented by the library {library}",
            )

    # code roles
    for cid, role in ((7, "training"), (8, "inference"), (18, "evaluation"), (16, "preprocessing")):
        paths = files_of("code", role)
        if paths:
            add(cid, licences.code, lic_src, ev(paths), summary(paths))
    libraries = files_of("code", "library")
    if libraries:
        add(22, licences.code, lic_src, ev(libraries), summary(libraries))

    # 17 Model metadata: training configuration and optimiser states
    training_config = files_of("training_config")
    if training_config:
        add(17, licences.data, lic_src, ev(training_config), summary(training_config))

    # 13 Model card, 14 Data card
    if card is not None and card.text.strip():
        add(
            13,
            licences.docs,
            lic_src,
            [Evidence(card.source)],
            f"{card.source}, {len(card.sections)} sections",
        )
    data_cards = list(files.get("data_card", ())) + [d.source for d in data_docs]
    data_cards = sorted(set(data_cards))
    if data_cards:
        add(14, licences.docs, lic_src, ev(data_cards), summary(data_cards))

    # 12 Evaluation results and 19 Evaluation data
    results = files_of("eval_results")
    if results:
        add(12, licences.docs, lic_src, ev(results), summary(results))
    elif metadata.get("model-index"):
        add(
            12,
            licences.docs,
            lic_src,
            [Evidence(_src(card), "metadata.model-index")],
            "model-index in the card metadata",
        )
    elif card is not None:
        section = card.find(
            "Results", "Evaluation Results", "Evaluation", "Benchmarks", "Performance"
        )
        if (
            section is not None
            and _NUMBER.search(section.full_text)
            and not _placeholder(section.full_text)
        ):
            add(
                12,
                licences.docs,
                lic_src,
                [Evidence(card.source, f"line {section.line}", " > ".join(section.path))],
                f"results in {card.source} > {' > '.join(section.path)}",
            )
    eval_sets = _model_index_datasets(metadata)
    if eval_sets:
        add(
            19,
            None,
            "external",
            [Evidence(_src(card), "metadata.model-index", ", ".join(eval_sets[:5]))],
            f"evaluated on {', '.join(eval_sets[:5])} (published elsewhere)",
        )

    # 8 Inference code from a usage snippet in the card (the card is released with the model)
    if 8 not in found and card is not None:
        section = card.find(
            "How to Get Started with the Model",
            "How to Get Started",
            "Usage",
            "Quickstart",
            "Quick Start",
            "How to use",
            "Inference",
        )
        if section is not None and _CODE_BLOCK.search(section.full_text):
            add(
                8,
                licences.docs,
                lic_src,
                [Evidence(card.source, f"line {section.line}", " > ".join(section.path))],
                f"usage code in {card.source} > {' > '.join(section.path)}",
            )

    # 15 Datasets: shipped data files, else the datasets the card names
    datasets = files_of("dataset")
    if datasets:
        add(15, licences.data, lic_src, ev(datasets), summary(datasets))
    else:
        named = metadata.get("datasets")
        if isinstance(named, str):
            named = [named]
        if isinstance(named, list) and named:
            shown = ", ".join(str(n) for n in named[:5])
            add(
                15,
                None,
                "external",
                [Evidence(_src(card), "metadata.datasets", shown)],
                f"named in the card, published elsewhere: {shown}",
            )

    # 21 Research paper, 11 Technical report: shipped PDFs, else links in the card
    papers = files_of("paper")
    for path in papers:
        if _TECH_REPORT.search(path.replace("_", " ").replace("-", " ")):
            add(11, licences.docs, lic_src, [Evidence(path)], path)
        else:
            add(21, licences.docs, lic_src, [Evidence(path)], path)
    if card is not None:
        _links_from_card(card, metadata, add)

    # 24 Intermediate checkpoints published elsewhere (revisions on a hub)
    if 24 not in found and card is not None:
        m = _INTERMEDIATE.search(card.text)
        if m:
            add(
                24,
                None,
                "external",
                [
                    Evidence(
                        card.source,
                        f"line {_line(card.text, m.start())}",
                        _quote(card.text, m.start()),
                    )
                ],
                "intermediate checkpoints described in the card (published elsewhere)",
            )

    # training code published elsewhere (a repository link in the card's sources)
    if card is not None and 7 not in found:
        repo = card.field("Repository")
        link = _GITHUB.search(repo[0]) if repo else None
        if repo and link:
            add(
                7,
                None,
                "external",
                [Evidence(card.source, f"line {repo[1]}", repo[0][:200])],
                f"code repository linked: {link.group(0)}",
            )

    return {cid: found.get(cid, Component(cid, name, False)) for cid, name in sorted(names.items())}


def _links_from_card(card: Card, metadata: Mapping[str, Any], add: Any) -> None:
    tags = metadata.get("tags")
    arxiv_ids: list[tuple[str, Evidence]] = []
    if isinstance(tags, list):
        for tag in tags:
            if isinstance(tag, str) and tag.lower().startswith("arxiv:"):
                arxiv_ids.append(
                    (tag.split(":", 1)[1], Evidence(card.source, "metadata.tags", tag))
                )
    for m in _ARXIV.finditer(card.text):
        arxiv_ids.append(
            (
                m.group(1) or m.group(2),
                Evidence(
                    card.source, f"line {_line(card.text, m.start())}", _quote(card.text, m.start())
                ),
            )
        )
    for arxiv_id, evidence in arxiv_ids:
        if _TECH_REPORT.search(evidence.excerpt):
            add(11, None, "external", [evidence], f"technical report linked: arXiv {arxiv_id}")
        else:
            add(21, None, "external", [evidence], f"paper linked: arXiv {arxiv_id}")
    paper = card.field("Paper", "Paper [optional]")
    if paper and not _placeholder(paper[0]) and re.search(r"https?://", paper[0]):
        cid = 11 if _TECH_REPORT.search(paper[0]) else 21
        add(
            cid,
            None,
            "external",
            [Evidence(card.source, f"line {paper[1]}", paper[0][:200])],
            f"linked: {paper[0][:120]}",
        )


def _model_index_datasets(metadata: Mapping[str, Any]) -> list[str]:
    out: list[str] = []
    index = metadata.get("model-index")
    if not isinstance(index, list):
        return out
    for model in index:
        results = model.get("results") if isinstance(model, dict) else None
        for result in results if isinstance(results, list) else []:
            dataset = result.get("dataset") if isinstance(result, dict) else None
            if isinstance(dataset, dict):
                name = dataset.get("name") or dataset.get("type")
                if name and str(name) not in out:
                    out.append(str(name))
    return out


def _placeholder(text: str) -> bool:
    from modelseal.audit.card import is_placeholder

    return is_placeholder(text)


def _src(card: Card | None) -> str:
    return card.source if card is not None else "README.md"


def _line(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def _quote(text: str, pos: int) -> str:
    start = text.rfind("\n", 0, pos) + 1
    end = text.find("\n", pos)
    return text[start : end if end >= 0 else len(text)].strip()[:200]
