"""Documentation completeness: the shipped rule packs and the engine that evaluates them."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelseal.audit.card import Card, load_card, load_extra_docs, parse_card
from modelseal.audit.docs import (
    FACTS,
    FILE_KINDS,
    PATH_SEP,
    DocContext,
    evaluate,
    evaluate_pack,
    load_pack,
    packs,
)
from modelseal.audit.model import DocItem, DocReport, DocStatus
from modelseal.errors import InputError
from modelseal.release.classify import group

from .test_card import filled_card, minilm_readme, template_card

PACK_IDS = {
    "hf-model-card",
    "eu-ai-act-annex-xi",
    "eu-ai-act-annex-xii",
    "eu-training-content-summary",
    "ca-ab2013",
}


def path(*parts: str) -> str:
    """A ``found_in`` heading path (its parts joined by a single right-pointing angle quote)."""
    return PATH_SEP.join(parts)


def report(ctx: DocContext, pack: str) -> DocReport:
    (found,) = evaluate(ctx, [pack])
    return found


def item(rep: DocReport, rule: str) -> DocItem:
    matches = [i for i in rep.items if i.rule == rule]
    assert matches, f"{rule} not in {rep.pack} (not applicable?)"
    return matches[0]


def status(ctx: DocContext, pack: str, rule: str) -> DocStatus:
    return item(report(ctx, pack), rule).status


def ctx_of(
    text: str | bytes,
    files: Mapping[str, Sequence[str]] | None = None,
    facts: Mapping[str, object] | None = None,
    extra: tuple[Card, ...] = (),
) -> DocContext:
    data = text.encode() if isinstance(text, str) else text
    return DocContext(parse_card(data), extra, files or {}, facts or {})


# --- the packs -----------------------------------------------------------------------------


def test_all_packs_load_with_complete_items() -> None:
    loaded = packs()
    assert {p.id for p in loaded} == PACK_IDS
    assert loaded is packs()  # loaded once
    ids: set[str] = set()
    for pack in loaded:
        assert pack.title
        assert pack.citation.doc
        assert pack.citation.url.startswith("https://")
        for rule in pack.items:
            assert rule.id not in ids, rule.id
            ids.add(rule.id)
            assert rule.title, rule.id
            assert rule.citation.doc, rule.id
            assert rule.citation.provision, rule.id
            assert rule.citation.url.startswith("https://"), rule.id
            assert rule.evidence or rule.parts, rule.id
            assert all(part.evidence for part in rule.parts), rule.id
            assert not rule.not_determinable or rule.reason, rule.id
            for probe in (*rule.evidence, *(p for part in rule.parts for p in part.evidence)):
                assert probe.kind != "file" or set(probe.values) <= FILE_KINDS
                assert probe.kind != "fact" or set(probe.values) <= set(FACTS)


def test_pack_item_lists_follow_their_standards() -> None:
    by_id = {p.id: p for p in packs()}
    xi = [r.id for r in by_id["eu-ai-act-annex-xi"].items]
    assert xi == [f"EU-AIA-XI-1-1-{c}" for c in "abcdef"] + [f"EU-AIA-XI-1-2-{c}" for c in "abcde"]
    xii = [r.id for r in by_id["eu-ai-act-annex-xii"].items]
    assert xii == [f"EU-AIA-XII-1-{c}" for c in "abcdefgh"] + [f"EU-AIA-XII-2-{c}" for c in "abc"]
    tcs = [r.citation.provision for r in by_id["eu-training-content-summary"].items]
    assert [re.search(r"\d\.\d", p).group(0) for p in tcs] == [  # type: ignore[union-attr]
        "1.1", "1.2", "1.3", "2.1", "2.2", "2.3", "2.4", "2.5", "2.6", "3.1", "3.2", "3.3",
    ]  # fmt: skip
    ca = [r.citation.provision for r in by_id["ca-ab2013"].items]
    assert ca == [f"§3111(a)({n})" for n in range(1, 13)]
    assert len(by_id["hf-model-card"].items) >= 35
    # wording the research notes mark [S]/[U] is flagged as such
    assert {r.confidence for r in by_id["eu-ai-act-annex-xii"].items} == {"secondary"}
    assert [r.confidence for r in by_id["ca-ab2013"].items][-3:] == ["secondary"] * 3
    assert by_id["ca-ab2013"].items[0].confidence == "primary"


def test_secondary_wording_is_said_on_each_item() -> None:
    rep = report(DocContext(None), "eu-ai-act-annex-xii")
    assert {i.confidence for i in rep.items} == {"secondary"}
    assert all(i.to_dict()["confidence"] == "secondary" for i in rep.items)
    rep = report(DocContext(None), "eu-ai-act-annex-xi")
    assert {i.confidence for i in rep.items} == {"primary"}


def test_unknown_pack_id_is_an_input_error() -> None:
    with pytest.raises(InputError, match="nope"):
        evaluate(DocContext(None), ["hf-model-card", "nope"])


def test_reports_come_in_pack_order_and_serialise() -> None:
    reports = evaluate(ctx_of(filled_card()))
    assert [r.pack for r in reports] == [p.id for p in packs()]
    assert reports[0].pack == "hf-model-card"
    json.dumps([r.to_dict() for r in reports])


# --- the demo model ------------------------------------------------------------------------


def test_the_demo_model_card() -> None:
    readme = minilm_readme()
    root = readme.parent
    card = load_card(root)
    files = group(str(p.relative_to(root).as_posix()) for p in root.rglob("*") if p.is_file())
    ctx = DocContext(card, tuple(load_extra_docs(root)), files, {"param_count": 22_713_216})
    hf, xi, xii, tcs, ca = (report(ctx, p) for p in (
        "hf-model-card", "eu-ai-act-annex-xi", "eu-ai-act-annex-xii",
        "eu-training-content-summary", "ca-ab2013",
    ))  # fmt: skip
    expected = {
        (hf, "HF-META-license"): DocStatus.PRESENT,
        (hf, "HF-META-datasets"): DocStatus.PRESENT,
        (hf, "HF-META-base-model"): DocStatus.MISSING,  # "We fine-tune" but no base_model
        (hf, "HF-SEC-model-description"): DocStatus.PRESENT,  # the opening text
        (hf, "HF-USES-direct"): DocStatus.PRESENT,  # "Intended uses"
        (hf, "HF-TRAIN-data"): DocStatus.PRESENT,
        (hf, "HF-TRAIN-hyperparameters"): DocStatus.PRESENT,  # "Hyper parameters"
        (hf, "HF-EVAL-results"): DocStatus.MISSING,
        (hf, "HF-ENV"): DocStatus.MISSING,
        (hf, "HF-CITATION"): DocStatus.MISSING,
        (xi, "EU-AIA-XI-1-1-d"): DocStatus.PRESENT,  # config.json + counted parameters
        (xi, "EU-AIA-XI-1-1-f"): DocStatus.PRESENT,
        (xi, "EU-AIA-XI-1-2-e"): DocStatus.NOT_DETERMINABLE,  # energy: nothing said
        (xii, "EU-AIA-XII-2-b"): DocStatus.PRESENT,  # "longer than 256 word pieces"
        (tcs, "EU-TCS-3-1"): DocStatus.MISSING,
        (ca, "CA-AB2013-a-3"): DocStatus.PRESENT,  # 1,170,060,424 pairs
    }
    got = {key: item(key[0], key[1]).status for key in expected}
    assert got == expected
    training = item(hf, "HF-TRAIN-data")
    assert training.found_in == path(
        "README.md", "all-MiniLM-L6-v2", "Training procedure", "Fine-tuning", "Training data"
    )
    assert training.excerpt.startswith("We use the concatenation")
    assert item(hf, "HF-META-datasets").found_in == "metadata.datasets"
    assert item(xi, "EU-AIA-XI-1-1-d").found_in.startswith("architecture: file: config.json")
    assert item(xi, "EU-AIA-XI-1-2-e").reason.startswith("the release does not state")


# --- template versus filled card -----------------------------------------------------------


def test_a_filled_card_scores_higher_than_the_template() -> None:
    template = evaluate(ctx_of(template_card()))
    filled = evaluate(ctx_of(filled_card()))
    for empty, full in zip(template, filled, strict=True):
        assert full.score > empty.score, empty.pack
    hf = template[0]
    assert hf.count(DocStatus.PLACEHOLDER) >= 25
    body = [i for i in hf.items if i.rule.startswith(("HF-SEC", "HF-USES", "HF-TRAIN", "HF-BRL"))]
    assert {i.status for i in body} == {DocStatus.PLACEHOLDER}
    assert filled[0].score > 0.9
    assert item(filled[0], "HF-ENV").status == DocStatus.PRESENT


def test_the_template_found_in_points_at_the_placeholder() -> None:
    hf = report(ctx_of(template_card()), "hf-model-card")
    direct = item(hf, "HF-USES-direct")
    assert direct.status == DocStatus.PLACEHOLDER
    assert direct.found_in == path("README.md", "Model Card for Model ID", "Uses", "Direct Use")
    dev = item(hf, "HF-FIELD-developed-by")
    line = (
        template_card().decode().split("\n").index("- **Developed by:** [More Information Needed]")
    )
    assert (dev.status, dev.found_in) == (
        DocStatus.PLACEHOLDER,
        f"README.md, line {line + 1} (Developed by)",
    )


# --- engine semantics ----------------------------------------------------------------------


def test_applies_if_drops_items_that_do_not_apply() -> None:
    plain = report(ctx_of("---\nlicense: mit\n---\n# M\nA model.\n"), "hf-model-card")
    rules = {i.rule for i in plain.items}
    assert "HF-META-base-model" not in rules
    assert "HF-META-license-name" not in rules
    adapter = ctx_of("---\nlicense: other\n---\n# M\n", facts={"is_adapter": True})
    rep = report(adapter, "hf-model-card")
    assert item(rep, "HF-META-base-model").status == DocStatus.MISSING
    assert item(rep, "HF-META-license-name").status == DocStatus.MISSING
    named = ctx_of("---\nlicense: other\nlicense_name: acme-1\nbase_model: [org/m]\n---\n")
    rep = report(named, "hf-model-card")
    assert item(rep, "HF-META-license-name").status == DocStatus.PRESENT
    assert item(rep, "HF-META-base-model").excerpt == '["org/m"]'


def test_empty_metadata_values_are_placeholders() -> None:
    ctx = ctx_of("---\ndatasets: []\nlanguage: ''\nlicense: '[More Information Needed]'\n---\n")
    rep = report(ctx, "hf-model-card")
    for rule in ("HF-META-datasets", "HF-META-language", "HF-META-license"):
        assert item(rep, rule).status == DocStatus.PLACEHOLDER, rule


def test_dotted_metadata_paths() -> None:
    ctx = ctx_of("---\nco2_eq_emissions:\n  emissions: 120\n---\n")
    assert status(ctx, "eu-ai-act-annex-xi", "EU-AIA-XI-1-2-e") == DocStatus.PRESENT
    env = item(report(ctx, "hf-model-card"), "HF-ENV")
    assert (env.status, env.found_in) == (DocStatus.PRESENT, "metadata.co2_eq_emissions")


def test_not_determinable_unless_the_card_says_it() -> None:
    silent = ctx_of("# M\nA model.\n")
    energy = item(report(silent, "eu-ai-act-annex-xi"), "EU-AIA-XI-1-2-e")
    assert energy.status == DocStatus.NOT_DETERMINABLE
    assert "energy" in energy.reason
    said = ctx_of("# M\n## Environmental Impact\nTraining used 1,200 MWh of electricity.\n")
    energy = item(report(said, "eu-ai-act-annex-xi"), "EU-AIA-XI-1-2-e")
    assert energy.status == DocStatus.PRESENT
    assert energy.found_in == path("README.md", "M", "Environmental Impact (line 3)")
    assert "1,200 MWh" in energy.excerpt


def test_all_of_needs_every_part() -> None:
    arch_only = ctx_of("# M\n", files={"config": ["config.json"]})
    d = item(report(arch_only, "eu-ai-act-annex-xi"), "EU-AIA-XI-1-1-d")
    assert d.status == DocStatus.MISSING
    assert d.found_in == "architecture: file: config.json"
    assert d.reason.startswith("not found: number of parameters")
    both = ctx_of("# M\nA 7B parameters model.\n", files={"config": ["config.json"]})
    assert status(both, "eu-ai-act-annex-xi", "EU-AIA-XI-1-1-d") == DocStatus.PRESENT
    counted = ctx_of("# M\n", files={"config": ["config.json"]}, facts={"param_count": 7})
    assert status(counted, "eu-ai-act-annex-xi", "EU-AIA-XI-1-1-d") == DocStatus.PRESENT


def test_data_cards_count_as_evidence() -> None:
    data_card = parse_card(
        b"# Dataset Card\n## Personal and Sensitive Information\nNames were removed.\n"
        b"## Synthetic data\nNone was used.\n",
        "DATA_CARD.md",
    )
    ctx = ctx_of("# M\n", files={"data_card": ["DATA_CARD.md"]}, extra=(data_card,))
    ca = report(ctx, "ca-ab2013")
    pii = item(ca, "CA-AB2013-a-7")
    assert (pii.status, pii.found_in) == (
        DocStatus.PRESENT,
        path("DATA_CARD.md", "Dataset Card", "Personal and Sensitive Information"),
    )
    assert item(ca, "CA-AB2013-a-12").status == DocStatus.PRESENT
    train = item(report(ctx, "hf-model-card"), "HF-TRAIN-data")
    assert (train.status, train.found_in) == (DocStatus.PRESENT, "file: DATA_CARD.md")


def test_no_card_at_all() -> None:
    ctx = DocContext(None, files={"licence": ["LICENSE"]}, facts={"licence_identified": True})
    for rep in evaluate(ctx):
        assert rep.count(DocStatus.PLACEHOLDER) == 0
        assert sum(rep.count(s) for s in DocStatus) == len(rep.items)
    xi = report(ctx, "eu-ai-act-annex-xi")
    assert item(xi, "EU-AIA-XI-1-1-f").found_in == "fact: licence_identified"
    assert item(xi, "EU-AIA-XI-1-1-a").status == DocStatus.MISSING


def test_an_unreadable_card_is_like_no_card() -> None:
    rep = report(ctx_of(bytes(range(256)) * 50), "hf-model-card")
    assert rep.count(DocStatus.PRESENT) == 0


def test_big_hostile_cards_evaluate_in_bounded_time() -> None:
    import time

    cards = [
        b"## Training Data\n[More Information Needed]\n" * 10_000,
        b"".join(b"#" * (1 + i % 6) + b" Heading %d\n\nbody %d\n" % (i, i) for i in range(10_000)),
        b"a" * (20 * 1024 * 1024),
    ]
    for data in cards:
        start = time.perf_counter()
        reports = evaluate(ctx_of(data))
        assert time.perf_counter() - start < 4.0
        assert all(sum(r.count(s) for s in DocStatus) == len(r.items) for r in reports)


# --- user packs ----------------------------------------------------------------------------


def test_a_user_pack_loads_and_evaluates(tmp_path: Path) -> None:
    path = tmp_path / "org.yaml"
    path.write_text(
        "id: org\ntitle: Org policy\ncitation: {doc: Org AI policy, url: 'https://org.example'}\n"
        "items:\n"
        "  - id: ORG-1\n    title: Security contact\n    provision: '§1'\n"
        "    evidence: [{section: [Security]}, {field: [Security contact]}]\n"
        "  - id: ORG-2\n    title: Red teaming\n    provision: '§2'\n"
        "    not_determinable: true\n    reason: done elsewhere\n"
        "    evidence: [{regex: 'red[- ]team'}]\n"
    )
    pack = load_pack(path)
    rep = evaluate_pack(ctx_of("# M\n- **Security contact:** sec@org.example\n"), pack)
    assert [(i.rule, i.status) for i in rep.items] == [
        ("ORG-1", DocStatus.PRESENT),
        ("ORG-2", DocStatus.NOT_DETERMINABLE),
    ]
    assert rep.items[0].citation.doc == "Org AI policy"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("[1, 2]", "not a mapping"),
        ("id: x\ntitle: t\ncitation: {doc: d}\nitems: []", "non-empty"),
        (
            "id: x\ntitle: t\ncitation: {doc: d}\nitems:\n"
            "  - {id: A, title: t, provision: p, evidence: [{fact: [nope]}]}",
            "unknown facts",
        ),
        (
            "id: x\ntitle: t\ncitation: {doc: d}\nitems:\n"
            "  - {id: A, title: t, provision: p, evidence: [{file: [weights], section: [x]}]}",
            "one of",
        ),
        (
            "id: x\ntitle: t\ncitation: {doc: d}\nitems:\n"
            "  - {id: A, title: t, provision: p, evidence: [{regex: '('}]}",
            "bad regex",
        ),
        (
            "id: x\ntitle: t\ncitation: {doc: d}\nitems:\n"
            "  - {id: A, title: t, provision: p, not_determinable: true,\n"
            "     evidence: [{fact: [param_count]}]}",
            "reason",
        ),
        ("id: x\n  bad: [", "cannot read"),
    ],
)
def test_malformed_user_packs_are_input_errors(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(body)
    with pytest.raises(InputError, match=message):
        load_pack(path)


# --- properties ----------------------------------------------------------------------------


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.binary(max_size=2048),
    kinds=st.lists(st.sampled_from(sorted(FILE_KINDS)), max_size=3),
    facts=st.dictionaries(st.sampled_from(sorted(FACTS)), st.sampled_from([None, 0, 1, "x", True])),
)
def test_evaluate_never_raises_and_counts_add_up(
    data: bytes, kinds: list[str], facts: dict[str, object]
) -> None:
    files = {k: [f"{k}.bin"] for k in kinds}
    for rep in evaluate(
        DocContext(parse_card(data), (parse_card(data, "DATA_CARD.md"),), files, facts)
    ):
        assert sum(rep.count(s) for s in DocStatus) == len(rep.items)
        assert 0.0 <= rep.score <= 1.0
        for i in rep.items:
            assert i.status in DocStatus
            assert i.status != DocStatus.PRESENT or i.found_in
            assert len(i.excerpt) <= 200
