"""The audit report formats: text, JSON, Markdown, HTML (also in headless Chromium), CycloneDX."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import markupsafe
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelseal._version import __version__
from modelseal.audit.model import (
    AuditReport,
    Citation,
    DocItem,
    DocReport,
    DocStatus,
    Evidence,
    Finding,
    Restriction,
    Severity,
)
from modelseal.audit.render import FORMATS, SCHEMA, md_escape, render, to_cyclonedx
from modelseal.errors import InputError
from tests.audit.sample import (
    apache_open_weights,
    closed_empty,
    llama_restricted,
    olmo_open_source_ai,
    samples,
)

SAMPLES = samples()
HOSTILE = "<script>alert(1)</script>"


def hostile_report() -> AuditReport:
    """The Llama sample with attacker-controlled strings wherever release content lands."""
    base = llama_restricted()
    doc = base.docs[0]
    items = (
        DocItem(
            "HF-CARD-DEVELOPED-BY",
            "Developed by",
            DocStatus.PRESENT,
            f"README.md \u203a {HOSTILE}",
            f"Developed by {HOSTILE} | pipe",
            Citation("x", "y", "javascript:alert(1)"),
        ),
        *doc.items[1:],
    )
    licence = dataclasses.replace(
        base.licence,
        card_tag=HOSTILE,
        restrictions=(
            Restriction(
                "naming",
                "LIC-R-NAMING",
                f"summary {HOSTILE}",
                f'quote "{HOSTILE}" <img src=x onerror=alert(1)>',
                Evidence(f"LICENSE{HOSTILE}", "line 1", HOSTILE),
            ),
        ),
    )
    return dataclasses.replace(
        base,
        release=f"evil {HOSTILE}",
        metadata={**base.metadata, "model_name": HOSTILE, "tags": [HOSTILE]},
        licence=licence,
        docs=(DocReport(doc.pack, doc.title, doc.citation, items), *base.docs[1:]),
        findings=(
            Finding(
                f"rule {HOSTILE}",
                Severity.ERROR,
                f"message {HOSTILE}",
                Citation(HOSTILE, HOSTILE, "https://example.org/a?b=<c>"),
                (Evidence(HOSTILE, HOSTILE, HOSTILE),),
            ),
        ),
    )


# --- every format ---------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_every_format_renders_every_sample(name: str, fmt: str) -> None:
    report = SAMPLES[name]
    out = render(report, fmt)
    assert out.endswith("\n")
    assert report.release in out
    assert "\x1b" not in out


def test_unknown_format_is_an_input_error() -> None:
    with pytest.raises(InputError) as caught:
        render(apache_open_weights(), "pdf")
    assert caught.value.exit_code == 2
    assert "pdf" in caught.value.message
    assert caught.value.hint is not None
    assert "cyclonedx" in caught.value.hint


# --- json -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_json_round_trips_to_the_report_dict(name: str) -> None:
    report = SAMPLES[name]
    data = json.loads(render(report, "json"))
    assert next(iter(data)) == "schema"
    assert data.pop("schema") == SCHEMA
    assert data == report.to_dict()


# --- text -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_text_fits_80_columns(name: str) -> None:
    lines = render(SAMPLES[name], "text").splitlines()
    too_wide = [line for line in lines if len(line) > 80]
    assert not too_wide


def test_text_shows_the_llama_facts() -> None:
    text = render(llama_restricted(), "text")
    flat = " ".join(text.split())
    assert "restricted-weights" in text
    assert "C3 0% C2 0% C1 0%" in flat
    assert "llama3.1 (Llama 3.1 Community License Agreement)" in flat
    for kind, rule in (("user-threshold", "LIC-R-MAU"), ("naming", "LIC-R-NAMING")):
        assert f"{kind} [{rule}]" in flat
    assert "700 million" in flat
    assert "hf-model-card 80% 8/10 present, 1 placeholder, 1 missing" in flat
    assert "8,030,261,248 (8.03 B)" in flat
    assert "BF16 100%" in flat
    assert "7.2e23 FLOP" in flat
    assert "WARNING licence.restrictive-terms" in flat
    assert "not certification or legal advice" in flat
    # quotes are shortened, not printed whole
    assert "expressly grants you such rights" not in flat


def test_text_shows_mof_percentages_of_a_partial_release() -> None:
    flat = " ".join(render(apache_open_weights(), "text").split())
    assert "C3 67% C2 0% C1 0%" in flat
    assert "5 included, 0 present but not openly licensed, 12 missing (of 17)" in flat


# --- markdown -------------------------------------------------------------------------------


def _md_tables(text: str) -> list[list[list[str]]]:
    tables: list[list[list[str]]] = []
    current: list[list[str]] = []
    for line in [*text.splitlines(), ""]:
        if line.startswith("|"):
            cells = re.split(r"(?<!\\)\|", line)[1:-1]
            current.append([c.strip() for c in cells])
        elif current:
            tables.append(current)
            current = []
    return tables


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_markdown_tables_are_well_formed(name: str) -> None:
    md = render(SAMPLES[name], "md")
    tables = _md_tables(md)
    assert len(tables) >= 6
    for table in tables:
        width = len(table[0])
        assert all(len(row) == width for row in table), table
        assert all(re.fullmatch(r"-{3,}", c) for c in table[1])


def test_markdown_has_the_report_tables() -> None:
    md = render(llama_restricted(), "md")
    headers = [table[0] for table in _md_tables(md)]
    assert ["Rule", "Check", "Status", "Reasons", "Evidence"] in headers
    assert ["Component", "Class", "Required", "Status", "Licence", "Detail"] in headers
    assert ["Kind", "Rule", "Summary", "Quote", "Where"] in headers
    assert headers.count(["Rule", "Item", "Status", "Found in", "Citation"]) == 2
    assert ["Severity", "Rule", "Message", "Evidence", "Citation"] in headers
    assert ["Rule", "Title", "Citation", "Used by"] in headers
    assert "| Class III · Open Model | 0 % |" in md
    assert "[Regulation (EU) 2024/1689, Annex XI, Section 1(1)(a)](https://eur-lex" in md


def test_markdown_escapes_hostile_strings() -> None:
    md = render(hostile_report(), "md")
    # a code span shows its text literally; everywhere else markup characters are escaped
    outside_code = re.sub(r"`[^`]*`", "", md)
    assert "<" not in outside_code.replace("<br>", "")
    assert "&lt;script&gt;" in md
    assert "javascript:" not in md
    for table in _md_tables(md):
        assert all(len(row) == len(table[0]) for row in table)


@given(st.text())
def test_md_escape_keeps_a_cell_on_one_line_without_markup(text: str) -> None:
    cell = md_escape(text)
    assert "\n" not in cell
    assert "\r" not in cell
    assert "<" not in cell
    assert ">" not in cell
    assert not re.search(r"(?<!\\)\|", cell)


# --- html (static) --------------------------------------------------------------------------


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.ids: set[str] = set()
        self.title = ""
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.tags.append((tag, attributes))
        if attributes.get("id"):
            self.ids.add(str(attributes["id"]))
        self._in_title = tag == "title"

    def handle_endtag(self, tag: str) -> None:
        self._in_title = False

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data


def _parse(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    return page


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_html_is_self_contained_and_links_resolve(name: str) -> None:
    html = render(SAMPLES[name], "html")
    page = _parse(html)
    assert page.title == f"modelseal audit: {SAMPLES[name].release}"
    assert ("html", {"lang": "en"}) in page.tags
    for tag, attrs in page.tags:
        assert tag not in {"script", "link", "img", "iframe", "object", "embed", "base"}
        for key in ("src", "srcset", "data", "poster"):
            assert key not in attrs
        assert not (attrs.get("href") or "").lower().startswith("javascript:")
    assert "url(" not in html
    assert "@import" not in html
    hrefs = [str(a["href"]) for t, a in page.tags if t == "a" and a.get("href")]
    internal = [h[1:] for h in hrefs if h.startswith("#")]
    assert internal
    assert not [h for h in internal if h not in page.ids]
    rule_links = [h for h in internal if h.startswith("rule-")]
    assert rule_links
    external = [h for h in hrefs if not h.startswith("#")]
    assert all(h.startswith("https://") for h in external)


def test_html_links_every_check_item_restriction_and_finding_to_its_rule() -> None:
    report = llama_restricted()
    page = _parse(render(report, "html"))
    links = {str(a["href"]) for t, a in page.tags if t == "a" and a.get("href")}
    rules = [c.rule for c in report.osaid.checks]
    rules += [i.rule for d in report.docs for i in d.items]
    rules += [r.rule for r in report.licence.restrictions] + [report.licence.rule]
    rules += [f.rule for f in report.findings]
    for rule in rules:
        assert f"#rule-{rule}" in links
        assert f"rule-{rule}" in page.ids


def test_html_grid_bars_and_statuses() -> None:
    html = render(apache_open_weights(), "html")
    page = _parse(html)
    cells = [a for t, a in page.tags if t == "li" and "cell" in (a.get("class") or "").split()]
    assert len(cells) == 17
    statuses = {str(a["data-mof-id"]): a["data-status"] for a in cells}
    assert statuses["10"] == "included"
    assert statuses["14"] == "missing"
    bars = {
        a["data-class"]: a["aria-valuenow"] for t, a in page.tags if a.get("role") == "progressbar"
    }
    assert bars == {"3": "67", "2": "0", "1": "0"}
    assert "Open weights" in html
    assert "verdict-open-weights" in html
    assert "Assessment, not certification or legal advice." in html
    assert "@media print" in html


def test_html_escapes_hostile_strings() -> None:
    html = render(hostile_report(), "html")
    assert "<script" not in html.lower()
    assert "<img" not in html.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "javascript:" not in html
    page = _parse(html)
    assert page.title == f"modelseal audit: evil {HOSTILE}"
    hrefs = [str(a["href"]) for t, a in page.tags if t == "a" and a.get("href")]
    internal = [h[1:] for h in hrefs if h.startswith("#")]
    assert not [h for h in internal if h not in page.ids]


@settings(max_examples=60, deadline=None)
@given(st.text(min_size=1, max_size=40))
def test_html_escapes_any_release_text(text: str) -> None:
    report = dataclasses.replace(
        closed_empty(),
        release=text,
        findings=(Finding("x.y", Severity.INFO, text, None, (Evidence(text, text, text),)),),
    )
    html = render(report, "html")
    assert str(markupsafe.escape(text)) in html
    assert "<script" not in html.lower()


# --- cyclonedx ------------------------------------------------------------------------------


def _cyclonedx_validator() -> Any:
    jsonschema = pytest.importorskip("jsonschema")
    referencing = pytest.importorskip("referencing")
    from referencing.jsonschema import DRAFT7

    spec = importlib.util.find_spec("cyclonedx")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("cyclonedx-python-lib is not installed (it ships the CycloneDX schemas)")
    res = Path(next(iter(spec.submodule_search_locations))) / "schema" / "_res"
    base = "http://cyclonedx.org/schema/"
    schema = json.loads((res / "bom-1.6.SNAPSHOT.schema.json").read_text("utf-8"))
    registry = referencing.Registry().with_resources(
        (
            base + name,
            referencing.Resource.from_contents(json.loads((res / name).read_text("utf-8")), DRAFT7),
        )
        for name in ("spdx.SNAPSHOT.schema.json", "jsf-0.82.SNAPSHOT.schema.json")
    )
    cls = jsonschema.Draft7Validator
    return cls(schema, registry=registry, format_checker=cls.FORMAT_CHECKER)


@pytest.fixture(scope="module")
def cdx_validator() -> Any:
    return _cyclonedx_validator()


def _props(bom: dict[str, Any]) -> dict[str, str]:
    card = bom["components"][0]["modelCard"]
    return {p["name"]: p["value"] for p in card["properties"]}


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_cyclonedx_validates_against_the_1_6_schema(name: str, cdx_validator: Any) -> None:
    bom = json.loads(render(SAMPLES[name], "cyclonedx"))
    errors = sorted(cdx_validator.iter_errors(bom), key=str)
    assert not errors, [e.message for e in errors[:5]]
    assert bom["bomFormat"] == "CycloneDX"
    assert bom["specVersion"] == "1.6"
    assert bom["version"] == 1
    tool = bom["metadata"]["tools"]["components"][0]
    assert (tool["name"], tool["version"]) == ("modelseal", __version__)
    (component,) = bom["components"]
    assert component["type"] == "machine-learning-model"
    assert component["name"] == SAMPLES[name].release


def test_cyclonedx_maps_the_model_card() -> None:
    bom = to_cyclonedx(olmo_open_source_ai())
    component = bom["components"][0]
    assert component["licenses"][0]["license"]["id"] == "Apache-2.0"
    card = component["modelCard"]
    params = card["modelParameters"]
    assert params["task"] == "text-generation"
    assert params["architectureFamily"] == "olmo"
    assert params["modelArchitecture"] == "OLMoForCausalLM"
    assert params["datasets"] == [{"type": "dataset", "name": "allenai/dolma"}]
    assert params["inputs"] == [{"format": "text"}]
    metrics = card["quantitativeAnalysis"]["performanceMetrics"]
    assert {
        "type": "acc",
        "value": "48.5",
        "slice": "text-generation / ARC Challenge / split test",
    } in metrics
    considerations = card["considerations"]
    assert considerations["useCases"] == ["OLMo is intended for research on language models."]
    assert considerations["ethicalConsiderations"][0]["name"].startswith("Like any base")
    env = {
        p["name"]: p["value"] for p in considerations["environmentalConsiderations"]["properties"]
    }
    assert env["modelseal:audit:co2_eq_emissions:emissions"] == "75050000"
    props = _props(bom)
    assert props["modelseal:audit:osaid:verdict"] == "open-source-ai"
    assert props["modelseal:audit:mof:class"] == "1"
    assert props["modelseal:audit:mof:class_1_percent"] == "100"
    assert props["modelseal:audit:params:total"] == "6888095744"
    assert float(props["modelseal:audit:compute:training_flops"]) == pytest.approx(
        1.0167e23, rel=1e-3
    )
    assert props["modelseal:audit:docs:hf-model-card:score"] == "1.0000"


def test_cyclonedx_names_a_model_licence_that_is_not_spdx() -> None:
    bom = to_cyclonedx(llama_restricted())
    licence = bom["components"][0]["licenses"][0]["license"]
    assert "id" not in licence
    assert licence["name"] == "Llama 3.1 Community License Agreement"
    values = [p["value"] for p in licence["properties"]]
    assert "llama3.1" in values
    assert any(v.startswith("user-threshold:") for v in values)
    props = _props(bom)
    assert props["modelseal:audit:osaid:verdict"] == "restricted-weights"
    assert props["modelseal:audit:licence:restricted"] == "true"
    assert props["modelseal:audit:mof:class_3_percent"] == "0"
    considerations = bom["components"][0]["modelCard"]["considerations"]
    assert considerations["technicalLimitations"] == [
        "Use in any manner that violates applicable laws or regulations."
    ]


def test_cyclonedx_of_a_closed_release_has_no_licence_and_no_parameters() -> None:
    bom = to_cyclonedx(closed_empty())
    component = bom["components"][0]
    assert "licenses" not in component
    assert "modelParameters" not in component["modelCard"]
    assert "modelseal:audit:params:total" not in _props(bom)


def test_cyclonedx_serial_is_deterministic_and_timestamp_reproducible(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    one = to_cyclonedx(apache_open_weights())
    two = to_cyclonedx(apache_open_weights())
    assert one == two
    assert one["metadata"]["timestamp"] == "2023-11-14T22:13:20Z"
    assert re.fullmatch(r"urn:uuid:[0-9a-f-]{36}", one["serialNumber"])
    assert to_cyclonedx(llama_restricted())["serialNumber"] != one["serialNumber"]


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=12,
)
_KEYS = st.sampled_from(
    [
        "model-index",
        "datasets",
        "tags",
        "pipeline_tag",
        "model_type",
        "architectures",
        "config",
        "co2_eq_emissions",
        "approach",
    ]
)


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(_KEYS, _JSON, max_size=6))
def test_cyclonedx_survives_any_card_metadata(cdx_validator: Any, metadata: dict[str, Any]) -> None:
    report = dataclasses.replace(olmo_open_source_ai(), metadata=metadata)
    bom = to_cyclonedx(report)
    json.dumps(bom)
    assert not list(cdx_validator.iter_errors(bom))


# --- html in headless Chromium --------------------------------------------------------------


_PAGE_CHECKS = """() => {
  const missing = [...document.querySelectorAll('a[href^="#"]')]
    .map(a => a.getAttribute('href').slice(1))
    .filter(id => !document.getElementById(id));
  const hidden = [...document.querySelectorAll(
      'h1, h2, .verdict, .mof-grid .cell, .bar, #rules tbody tr, .restriction blockquote')]
    .filter(el => { const r = el.getBoundingClientRect(); return r.width <= 0 || r.height <= 0; })
    .map(el => el.outerHTML.slice(0, 80));
  const bars = [...document.querySelectorAll('#mof-bars .bar')].map(el => {
    const track = el.querySelector('.bar-track').getBoundingClientRect().width;
    const fill = el.querySelector('.bar-fill').getBoundingClientRect().width;
    return {cls: el.dataset.class, text: el.querySelector('.bar-value').innerText,
            now: el.getAttribute('aria-valuenow'), ratio: track ? fill / track : -1};
  });
  return {missing, hidden, bars,
          ruleLinks: document.querySelectorAll('a[href^="#rule-"]').length,
          cells: document.querySelectorAll('.mof-grid .cell').length,
          text: document.body.innerText};
}"""


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_html_in_headless_chromium(name: str, browser: Any, tmp_path: Path) -> None:
    report = SAMPLES[name]
    path = tmp_path / f"{name}.html"
    path.write_text(render(report, "html"), encoding="utf-8")
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    requests: list[str] = []
    problems: list[str] = []
    context.route(
        re.compile(r"^(?!file:|data:|about:)"),
        lambda route: (requests.append(route.request.url), route.abort()),
    )
    page = context.new_page()
    page.on("request", lambda req: requests.append(req.url))
    page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    try:
        page.goto(path.as_uri(), wait_until="load")
        assert page.title() == f"modelseal audit: {report.release}"
        result = page.evaluate(_PAGE_CHECKS)
        assert result["cells"] == 17
        assert result["missing"] == []
        assert result["ruleLinks"] > 0
        assert result["hidden"] == []
        expected = {str(k): report.mof.percent(k) for k in (1, 2, 3)}
        assert [b["cls"] for b in result["bars"]] == ["3", "2", "1"]
        for bar in result["bars"]:
            assert bar["now"] == str(expected[bar["cls"]])
            assert bar["text"].startswith(f"{expected[bar['cls']]} %")
            assert bar["ratio"] == pytest.approx(expected[bar["cls"]] / 100, abs=0.02)
        assert report.release in result["text"]
        assert "not certification or legal advice" in result["text"]
        shot = tmp_path / f"{name}.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        page.emulate_media(media="print")
        assert not page.locator("nav.toc").is_visible()
    finally:
        context.close()
    assert problems == []
    assert [u for u in requests if not u.startswith("file:")] == []
