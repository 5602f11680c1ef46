"""MOF scoring against the Model Openness Tool's own test files and model descriptions.

The reference data (lfai/model_openness_tool, commit 8b5d30e, MIT) lives outside the repository:
``../shared/testdata/mof`` from the repository root, or the folder ``MODELSEAL_MOF_TESTDATA``
names. Tests that need it skip with a reason when it is absent.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelseal.audit import mof
from modelseal.audit.mof import (
    MofListed,
    MofRelease,
    component_spec,
    components,
    is_open_licence,
    is_type_appropriate,
    load_mof,
    parse_mof,
    score,
)
from modelseal.audit.spdx import spdx_table
from modelseal.errors import InputError

_ROOT = Path(__file__).resolve().parents[2]
MOF_DATA = Path(os.environ.get("MODELSEAL_MOF_TESTDATA") or _ROOT.parent / "shared/testdata/mof")
HAVE_DATA = (MOF_DATA / "testfiles").is_dir()
needs_data = pytest.mark.skipif(
    not HAVE_DATA,
    reason=f"MOT reference data not found at {MOF_DATA} (set MODELSEAL_MOF_TESTDATA)",
)
_NAME = re.compile(r"C1_(\d+)%-C2_(\d+)%-C3_(\d+)%")

# Two of the MOT's test files were renamed by hand after they were generated, and their names
# now mix two different rules; no single rule gives all fourteen names (see component 22 in
# rules/mof.yaml). We keep the rule the other twelve agree on and keep these two as strict xfails,
# so a change of the scorer that "fixes" them (and so breaks the rule) is noticed.
_KNOWN_INCONSISTENT = {
    "Class2TTestFile_": (
        "11 of the 15 Class I requirements are met (9,10,11,12,13,14,7,8,18,19,22): 11/15 = 73%, "
        "as RandomTestFile_C1_73% (also 11 of 15) expects; the name says 71% = 10/14, the MOT's "
        "own result when 'Supporting libraries and tools' is optional (Test_Data/"
        "expected_results.json: 71.43), while the release.name inside the file says 67% = 10/15 "
        "(the generator's Class I list, which omits the technical report)"
    ),
    "Class3TTestFile_": (
        "6 required components met: Class II 6/11 = 55% (the release.name inside the file says "
        "C2_55%) and Class I 6/15 = 40%; the name says C2 60% = 6/10 (22 optional, as in the "
        "MOT's expected_results.json) but C1 33% = 5/15 (the generator's Class I list without "
        "the technical report): two incompatible rules in one name"
    ),
}


def _test_files() -> list[Any]:
    if not HAVE_DATA:
        return [pytest.param(None, marks=needs_data, id="no-data")]
    params = []
    for path in sorted((MOF_DATA / "testfiles").glob("*.yml")):
        marks = [
            pytest.mark.xfail(strict=True, reason=reason)
            for prefix, reason in _KNOWN_INCONSISTENT.items()
            if path.name.startswith(prefix)
        ]
        params.append(pytest.param(path, marks=marks, id=path.name.split("_C1")[0][:40]))
    return params


# --- the MOT's test files --------------------------------------------------------------------


@pytest.mark.parametrize("path", _test_files())
def test_reference_test_file_percentages(path: Path) -> None:
    match = _NAME.search(path.name)
    assert match, path.name
    expected = tuple(int(x) for x in match.groups())
    result = score(load_mof(path))
    assert (result.percent(1), result.percent(2), result.percent(3)) == expected


@needs_data
def test_reference_test_files_are_all_there() -> None:
    names = sorted(p.name for p in (MOF_DATA / "testfiles").glob("*.yml"))
    assert len(names) == 14
    assert all(_NAME.search(n) for n in names)


@needs_data
def test_class1_test_file_is_class_1() -> None:
    path = next((MOF_DATA / "testfiles").glob("Class1TestFile_*.yml"))
    result = score(load_mof(path))
    assert result.classification == 1
    assert result.label == "Class I - Open Science Model"
    # 15 components: every requirement but the technical report, for which the paper stands in
    status = {c.mof_id: c.status for c in result.components if c.required}
    assert status.pop(11) == "missing"
    assert set(status.values()) == {"included"}


@needs_data
def test_no_licence_file_is_unclassified_and_unlicensed() -> None:
    path = next((MOF_DATA / "testfiles").glob("NoLicenseFile_*_16C_*.yml"))
    release = load_mof(path)
    result = score(release)
    assert result.classification == 0
    assert result.label == "Unclassified"
    listed = [c for c in result.components if c.mof_id in release.components]
    assert len(listed) == 16
    assert {c.status for c in listed} == {"unlicensed"}


# --- the MOT's 273 model descriptions ------------------------------------------------------


@needs_data
def test_all_real_models_load_and_score() -> None:
    paths = sorted((MOF_DATA / "models").glob("*.yml"))
    assert len(paths) == 273
    classes: dict[int, int] = {}
    for path in paths:
        release = load_mof(path)
        assert release.name
        assert release.components, path.name
        result = score(release)
        assert len(result.components) == 17
        assert all(0.0 <= p <= 100.0 for p in result.progress.values())
        classes[result.classification] = classes.get(result.classification, 0) + 1
    # every class occurs, and most real models are not open enough for any class
    assert classes[0] > classes.get(1, 0) + classes.get(2, 0) + classes.get(3, 0)
    assert classes[1] >= 1
    assert classes[3] >= 1


def _model(name: str) -> MofRelease:
    path = MOF_DATA / "models" / f"{name}.yml"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    return load_mof(path)


@needs_data
def test_olmo_7b_by_hand() -> None:
    # Everything inherits Apache-2.0 (distribution) except the paper (CC-BY-4.0); no technical
    # report (the paper stands in) and no "Supporting libraries and tools".
    release = _model("OLMo-7B")
    assert release.global_licences["distribution"] == "Apache-2.0"
    assert 11 not in release.components
    assert 22 not in release.components
    result = score(release)
    assert result.progress[3] == 100.0  # 5 of 6 + the paper for the technical report
    assert result.progress[2] == pytest.approx(10 / 11 * 100)  # 22 missing
    assert result.progress[1] == pytest.approx(13 / 15 * 100)  # 22 and 11 missing
    assert (result.percent(1), result.percent(2), result.percent(3)) == (87, 91, 100)
    assert result.classification == 3
    assert result.label == "Class III - Open Model"
    by_id = {c.mof_id: c for c in result.components}
    assert by_id[21].licence == "CC-BY-4.0"
    assert by_id[10].licence == "Apache-2.0"
    assert by_id[11].status == "missing"
    assert any("stands in for the Technical report" in w for w in result.warnings)


@needs_data
def test_llama_3_1_8b_by_hand() -> None:
    # The Llama 3.1 Community License is not open; "unlicensed" components have no licence.
    release = _model("Llama-3.1-8B")
    result = score(release)
    assert result.progress == {1: 0.0, 2: 0.0, 3: 0.0}
    assert result.classification == 0
    by_id = {c.mof_id: c for c in result.components}
    assert by_id[10].status == "invalid"
    assert by_id[10].licence == "Llama 3.1 Community License Agreement"
    assert by_id[11].status == "unlicensed"
    assert by_id[11].licence is None
    assert by_id[14].status == "missing"  # not listed
    assert any("Llama 3.1 Community License Agreement" in w for w in result.warnings)


@needs_data
def test_pythia_is_class_1_through_the_paper() -> None:
    result = score(_model("Pythia-6.9B"))
    assert result.classification == 1
    by_id = {c.mof_id: c for c in result.components}
    assert by_id[11].status == "missing"
    assert by_id[21].status == "included"


@needs_data
def test_sample_model_parses_cleanly() -> None:
    path = MOF_DATA / "schema" / "sample_model.yml"
    release = load_mof(path)
    assert release.warnings == ()
    assert len(release.components) == 17  # every MOF component name as the MOT spells it
    assert {c.name for c in components()} == {c.name for c in release.components.values()}
    assert release.global_licences == {
        "distribution": "Apache-2.0",
        "code": "MIT",
        "data": None,
        "document": None,
    }
    by_id = release.components
    assert by_id[9].licence == "unlicensed"  # "Component is included, but has no license."
    assert by_id[16].licence == "Apache-2.0"
    assert by_id[16].license_path == "/path/to/LICENSE"
    assert by_id[16].component_path == "/path/to/component"
    assert not by_id[7].licence_given
    result = {c.mof_id: c for c in score(release).components}
    assert result[9].status == "unlicensed"
    assert result[7].licence == "MIT"  # inherits release.license.code
    assert result[24].licence == "Apache-2.0"  # data is empty: the distribution licence


# --- the shipped lists agree with the MOT's --------------------------------------------------


@needs_data
def test_type_appropriate_lists_match_mof_licenses_json() -> None:
    raw = json.loads((MOF_DATA / "mof-licenses.json").read_text("utf-8"))
    for ctype in ("code", "data", "document"):
        listed = {lic["licenseId"] for lic in raw["licenses"] if lic["ContentType"] == ctype}
        assert listed
        for licence in listed:
            assert is_type_appropriate(licence, (ctype,)), (licence, ctype)
    rules_text = Path(mof.__file__).parent.joinpath("rules", "mof.yaml").read_text("utf-8")
    shipped_yaml = yaml.safe_load(rules_text)["type_appropriate"]
    for ctype, entry in shipped_yaml.items():
        expected = [lic["licenseId"] for lic in raw["licenses"] if lic["ContentType"] == ctype]
        assert entry["licences"] == expected, ctype


@needs_data
def test_spdx_flags_match_the_mot_licence_list() -> None:
    raw = json.loads((MOF_DATA / "licenses.json").read_text("utf-8"))
    table = spdx_table()
    assert len(raw["licenses"]) == len(table.licences)
    for lic in raw["licenses"]:
        lid = lic["licenseId"]
        assert table.is_osi_approved(lid) == bool(lic.get("isOsiApproved")), lid
        assert table.is_fsf_libre(lid) == bool(lic.get("isFsfLibre")), lid
        assert is_open_licence(lid) == (
            bool(lic.get("isOsiApproved"))
            or bool(lic.get("isFsfLibre"))
            or lid.casefold() in mof.rules().open_lists["open_data"]
        ), lid


def test_open_lists() -> None:
    lists = mof.rules().open_lists
    assert len(lists["open_data"]) == 31
    assert lists["open_model"] == frozenset({"openmdw-1.0"})
    for licence in ("CC-BY-4.0", "CC0-1.0", "CDLA-Permissive-2.0", "ODbL-1.0", "OGL-UK-3.0"):
        assert is_open_licence(licence)
    assert is_open_licence("OpenMDW-1.0")
    assert is_open_licence("  apache-2.0 ")  # SPDX ids are matched case-insensitively
    for licence in ("CC-BY-NC-4.0", "Llama 3.1 Community License Agreement", "Proprietary", ""):
        assert not is_open_licence(licence)
    assert not is_open_licence(None)
    # every open-data entry but ODC-PDDL-1.0 (SPDX spells it PDDL-1.0) is an SPDX id
    missing = [x for x in lists["open_data"] if spdx_table().get(x) is None]
    assert missing == ["odc-pddl-1.0"]


def test_type_appropriate() -> None:
    assert is_type_appropriate("Apache-2.0", ("code",))
    assert not is_type_appropriate("Apache-2.0", ("data",))
    assert is_type_appropriate("Apache-2.0", ("data", "code"))
    assert is_type_appropriate("CC-BY-4.0", ("document",))
    assert is_type_appropriate("CC-BY-4.0", ("data",))  # open data list counts for data
    assert not is_type_appropriate("CC-BY-4.0", ("code",))
    assert not is_type_appropriate(None, ("code",))
    assert not is_type_appropriate("MIT", ())


# --- the component table ---------------------------------------------------------------------


def test_component_table() -> None:
    specs = components()
    assert len(specs) == 17
    assert len({c.id for c in specs}) == 17
    required = {k: {c.id for c in mof.rules().required_for(k)} for k in (1, 2, 3)}
    assert required[3] == {9, 10, 11, 12, 13, 14}
    assert required[2] == required[3] | {7, 8, 18, 19, 22}
    assert required[1] == required[2] | {15, 16, 21, 24}
    optional = {c.id for c in specs if not c.required}
    assert optional == {17, 20}
    assert all(c.content_types and c.description for c in specs)
    assert mof.rules().class_labels == {
        1: "Class I - Open Science Model",
        2: "Class II - Open Tooling Model",
        3: "Class III - Open Model",
    }


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("Model parameters (Final)", 10),
        ("model parameters (final)", 10),
        ("  Model   Parameters  (FINAL) ", 10),
        ("Model parameters", 10),
        ("Model parameters final", 10),
        ("Model parameters (Intermediate)", 24),
        ("Intermediate model parameters", 24),
        ("DATA CARD", 14),
        ("data-card", 14),
        ("Supporting libraries & tools", 22),
        (21, 21),
        ("21", 21),
        ("Model weights", 10),
        ("Modelcard", None),
        ("Tokenizer", None),
        ("", None),
        (99, None),
    ],
)
def test_component_spec_matching(query: str | int, expected: int | None) -> None:
    spec = component_spec(query)
    assert (spec.id if spec else None) == expected


# --- scoring rules on small descriptions -----------------------------------------------------


def _doc(components_: list[dict[str, Any]], licence: Any = None, **release: Any) -> str:
    body: dict[str, Any] = {"name": "test-model", "producer": "me", "components": components_}
    if licence is not None:
        body["license"] = licence
    body.update(release)
    return yaml.safe_dump({"framework": {"name": "Model Openness Framework"}, "release": body})


def _comp(name: str, licence: Any = ..., **extra: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": name, "description": "x", **extra}
    if licence is not ...:
        entry["license"] = licence
    return entry


CLASS3 = [
    "Model architecture",
    "Model parameters (Final)",
    "Technical report",
    "Evaluation results",
    "Model card",
    "Data card",
]


def test_licence_resolution_order() -> None:
    text = _doc(
        [
            _comp("Model architecture"),  # code global
            _comp("Model parameters (Final)"),  # data global missing -> distribution
            _comp("Model card", ""),  # empty own licence: no licence, no inheritance
            _comp("Data card", " CC-BY-4.0 "),  # own licence, stripped
        ],
        {"distribution": {"name": " MIT "}, "code": {"name": "Apache-2.0"}, "data": {"name": ""}},
    )
    release = parse_mof(text, "t.yml")
    assert release.global_licences == {
        "distribution": "MIT",
        "code": "Apache-2.0",
        "data": None,
        "document": None,
    }
    assert release.components[13].licence_given
    assert release.components[13].licence is None
    by_id = {c.mof_id: c for c in score(release).components}
    assert (by_id[9].licence, by_id[9].status) == ("Apache-2.0", "included")
    assert (by_id[10].licence, by_id[10].status) == ("MIT", "included")
    assert (by_id[13].licence, by_id[13].status) == (None, "unlicensed")
    assert (by_id[14].licence, by_id[14].status) == ("CC-BY-4.0", "included")
    assert by_id[11].status == "missing"


def test_statuses_and_sentinels() -> None:
    text = _doc(
        [
            _comp("Model architecture", "unlicensed"),
            _comp("Model parameters (Final)", "Component not included"),
            _comp("Technical report", "CC-BY-NC-4.0"),
            _comp("Evaluation results", "Undisclosed"),
            _comp("Model card", "Component Component not included"),
            _comp("Data card", "Apache 2.0"),
        ]
    )
    result = score(parse_mof(text, "t.yml"))
    by_id = {c.mof_id: c for c in result.components}
    assert by_id[9].status == "unlicensed"
    assert by_id[10].status == "missing"
    assert by_id[11].status == "invalid"
    assert by_id[12].status == "unlicensed"
    assert by_id[13].status == "missing"
    assert by_id[14].status == "invalid"  # not an SPDX id: the MOT would not accept it either
    assert any("did you mean the SPDX id Apache-2.0" in w for w in result.warnings)
    assert result.progress == {1: 0.0, 2: 0.0, 3: 0.0}


def test_class_3_exactly_and_the_paper_substitution() -> None:
    licences = dict.fromkeys(CLASS3, "CC-BY-4.0")
    licences["Model architecture"] = "Apache-2.0"
    result = score(parse_mof(_doc([_comp(n, lic) for n, lic in licences.items()]), "t"))
    assert result.classification == 3
    assert result.progress[3] == 100.0
    assert result.progress[2] == pytest.approx(6 / 11 * 100)
    assert result.progress[1] == pytest.approx(6 / 15 * 100)

    # the research paper stands in for a missing technical report
    names = [n for n in CLASS3 if n != "Technical report"] + ["Research paper"]
    result = score(parse_mof(_doc([_comp(n, "CC0-1.0") for n in names]), "t"))
    assert result.classification == 3
    assert result.progress[2] == pytest.approx(6 / 11 * 100)
    assert result.progress[1] == pytest.approx(6 / 15 * 100)  # the paper, not the report

    # a paper that is not open does not
    names = [*(n for n in CLASS3 if n != "Technical report")]
    comps = [_comp(n, "CC0-1.0") for n in names] + [_comp("Research paper", "CC-BY-NC-4.0")]
    result = score(parse_mof(_doc(comps), "t"))
    assert result.classification == 0
    assert result.progress[3] == pytest.approx(5 / 6 * 100)


def test_type_inappropriate_open_licence_is_included_with_a_warning() -> None:
    comps = [_comp("Model parameters (Final)", "MIT"), _comp("Model card", "CC-BY-4.0")]
    result = score(parse_mof(_doc(comps), "t"))
    by_id = {c.mof_id: c for c in result.components}
    assert by_id[10].status == "included"
    assert by_id[10].type_appropriate  # MIT is a code licence and parameters may be code
    comps = [_comp("Evaluation data", "MIT")]
    result = score(parse_mof(_doc(comps), "t"))
    by_id = {c.mof_id: c for c in result.components}
    assert by_id[19].status == "included"
    assert not by_id[19].type_appropriate
    assert any(w.startswith("Evaluation data: MIT is open but not") for w in result.warnings)


def test_result_to_dict_is_json() -> None:
    result = score(parse_mof(_doc([_comp(n, "MIT") for n in CLASS3]), "x.yml"))
    data = json.loads(json.dumps(result.to_dict()))
    assert data["classification"] == 3
    assert data["source"] == "mof:x.yml"
    assert len(data["components"]) == 17


# --- hostile and broken input ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"release: [unclosed", "YAML error"),
        (b"key: value\n  bad indent: x\n", "YAML error"),
        (b"- just\n- a list\n", "the document is a list"),
        (b"42\n", "the document is a int"),
        (b"", "the document is a NoneType"),
        (b"framework: {name: Model Openness Framework}\n", "no `release` mapping"),
        (b"release: hello\n", "`release` is text"),
        (b"release: {producer: me}\n", "release.name is missing or empty"),
        (b"release: {name: ''}\n", "release.name is missing or empty"),
        (b"\xff\xfe\x00garbage", "not UTF-8"),
        (b"release:\n  name: x\n  date: 2024-02-30\n", "cannot read the YAML"),
        (b"release: !!python/object:os.system {}\n", "YAML error"),
        (b"release: {name: x, components: {a: 1}}\n", "release.components is a mapping"),
        (b"release: {name: x, components: [1, [2]]}\n", "release.components[0] is a int"),
        (b"release: {name: x, components: [{description: d}]}\n", "has no name"),
        (b"release: {name: x, license: 7}\n", "release.license is a int"),
        (b"release: {name: x, components: [{name: Datasets, license: [MIT]}]}\n", "is a list"),
        (b"[" * 100_000, "YAML"),
    ],
)
def test_unusable_input_is_an_input_error(data: bytes, message: str) -> None:
    with pytest.raises(InputError) as info:
        parse_mof(data, "bad.yml")
    assert message in info.value.message
    assert "bad.yml" in info.value.message
    assert info.value.exit_code == 2


def test_every_problem_is_listed_at_once() -> None:
    data = b"release:\n  license: 5\n  components: [3, {description: d}]\n"
    with pytest.raises(InputError) as info:
        parse_mof(data, "bad.yml")
    text = info.value.message
    assert "(4 problem(s))" in text
    for part in ("release.name", "release.license", "components[0]", "components[1]"):
        assert part in text


def test_alias_bomb_is_cheap() -> None:
    # "billion laughs": nine levels of nine aliases; PyYAML shares the nodes, and the parser
    # never walks more than one level of `components`, so this is quick and bounded.
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, cur in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{cur}: &{cur} [{', '.join(['*' + prev] * 9)}]")
    lines.append("release: {name: *i, license: *i, components: *i}")
    with pytest.raises(InputError) as info:
        parse_mof("\n".join(lines), "bomb.yml")
    text = info.value.message
    assert "release.name is missing or empty" in text
    assert "release.license is a list" in text
    assert "(11 problem(s))" in text  # name, licence and the 9 entries of the top list only


def test_thousands_of_problems_are_capped() -> None:
    entries = "".join(f"  - {{name: 'Thing {i}'}}\n" for i in range(5000))
    release = parse_mof(f"release:\n name: m\n components:\n{entries}".replace("\n ", "\n  "), "t")
    assert len(release.warnings) == 51
    assert release.warnings[-1] == "… and 4950 more warning(s)"
    with pytest.raises(InputError) as info:
        parse_mof("release:\n  components: [" + ", ".join(["1"] * 5000) + "]\n", "t")
    assert "(5001 problem(s))" in info.value.message
    assert "… and 4951 more" in info.value.message


def test_ten_megabyte_file_is_refused(tmp_path: Path) -> None:
    big = b"# padding\n" * 1_048_576  # 10 MiB of valid YAML comments
    with pytest.raises(InputError, match="too large"):
        parse_mof(big, "big.yml")
    path = tmp_path / "big.yml"
    path.write_bytes(big)
    with pytest.raises(InputError, match="too large"):
        load_mof(path)
    with pytest.raises(InputError, match="too large"):
        parse_mof(big.decode(), "big.yml")


def test_missing_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read MOF description"):
        load_mof(tmp_path / "nope.yml")


def test_unknown_and_duplicate_components_are_warnings() -> None:
    text = _doc(
        [
            _comp("Tokenizer", "MIT"),
            _comp("Model card", "MIT"),
            _comp("model card", "Proprietary"),
            _comp("model  CARD", "MIT"),
            _comp("9", "MIT"),
        ]
    )
    release = parse_mof(text, "t")
    assert set(release.components) == {13}
    assert release.components[13].licence == "MIT"  # the first entry counts
    joined = "\n".join(release.warnings)
    assert "'Tokenizer' is not a MOF component; skipped" in joined
    assert "listed more than once" in joined
    assert "'9' is not a MOF component" in joined
    assert "'model card' read as the MOF component 'Model card'" in joined
    assert score(release).warnings[: len(release.warnings)] == release.warnings


def test_numeric_and_odd_licence_names() -> None:
    text = (
        "release:\n  name: 2024\n  license:\n    distribution: {name: 2.0}\n    code: MIT\n"
        "    weights: {name: MIT}\n  components:\n"
        "    - {name: Model architecture, license: 1}\n"
        "    - {name: Model card, license: true}\n"
        "    - {name: Data card}\n"
    )
    release = parse_mof(text, "t")
    assert release.name == "2024"
    assert release.global_licences["distribution"] == "2.0"
    assert release.global_licences["code"] == "MIT"  # plain text read as the name
    assert release.components[9].licence == "1"
    assert release.components[13].licence == "true"
    joined = "\n".join(release.warnings)
    assert "release.components[0].license is the int '1'" in joined
    assert "release.license.distribution.name is the float '2.0'" in joined
    assert "release.license.weights: unknown licence type" in joined
    assert "release.name is the int" in joined
    by_id = {c.mof_id: c for c in score(release).components}
    assert by_id[9].status == "invalid"
    assert by_id[14].licence == "2.0"  # document global missing -> distribution "2.0"
    assert by_id[14].status == "invalid"


def test_lenient_shapes_of_the_mot_export() -> None:
    # the MOT's API writes an empty global licence as `license: []`; dates may be YAML dates
    text = "release:\n  name: m\n  date: 2024-06-13\n  license: []\n  components: []\n"
    release = parse_mof(text, "t")
    assert release.date == "2024-06-13"
    assert release.global_licences == dict.fromkeys(mof.GLOBAL_LICENCE_TYPES)
    assert release.components == {}
    assert score(release).classification == 0
    release = parse_mof("release: {name: m, license: Apache-2.0}", "t")
    assert release.global_licences["distribution"] == "Apache-2.0"
    assert any("read as the distribution-wide licence" in w for w in release.warnings)


def test_utf8_bom_and_str_input() -> None:
    text = _doc([_comp("Model card", "MIT")])
    a = parse_mof(b"\xef\xbb\xbf" + text.encode(), "t")
    b = parse_mof(text, "t")
    assert a == b


def test_framework_oddities_are_warnings() -> None:
    text = "framework: {name: Other, version: '2.0'}\nrelease: {name: m}\n"
    release = parse_mof(text, "t")
    joined = "\n".join(release.warnings)
    assert "framework.name is 'Other'" in joined
    assert "framework.version is '2.0'" in joined


# --- property tests --------------------------------------------------------------------------

_PROPERTY_SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
_COMPONENT_NAMES = [c.name for c in components()] + ["Tokenizer", "model card", ""]
_LICENCES = [
    "MIT",
    "Apache-2.0",
    "CC-BY-4.0",
    "CC0-1.0",
    "OpenMDW-1.0",
    "CC-BY-NC-4.0",
    "Llama 3.1 Community License Agreement",
    "unlicensed",
    "Component not included",
    "",
]
_mof_like = st.fixed_dictionaries(
    {
        "release": st.fixed_dictionaries(
            {
                "name": st.one_of(st.text(max_size=10), st.integers(), st.none()),
                "license": st.one_of(
                    st.none(),
                    st.dictionaries(
                        st.sampled_from([*mof.GLOBAL_LICENCE_TYPES, "other"]),
                        st.one_of(
                            st.fixed_dictionaries({"name": st.sampled_from(_LICENCES) | _json}),
                            _json,
                        ),
                        max_size=5,
                    ),
                    _json,
                ),
                "components": st.one_of(
                    st.lists(
                        st.one_of(
                            st.fixed_dictionaries(
                                {"name": st.sampled_from(_COMPONENT_NAMES) | _json},
                                optional={"license": st.sampled_from(_LICENCES) | _json},
                            ),
                            _json,
                        ),
                        max_size=20,
                    ),
                    _json,
                ),
            }
        )
    }
)


def _only_input_error(data: bytes | str) -> None:
    try:
        release = parse_mof(data, "fuzz.yml")
    except InputError:
        return
    result = score(release)
    assert all(0.0 <= p <= 100.0 for p in result.progress.values())


@_PROPERTY_SETTINGS
@given(st.binary(max_size=300))
def test_parse_random_bytes_raises_only_input_error(data: bytes) -> None:
    _only_input_error(data)


@_PROPERTY_SETTINGS
@given(st.text(max_size=300))
def test_parse_random_text_raises_only_input_error(text: str) -> None:
    _only_input_error(text)


@_PROPERTY_SETTINGS
@given(_json)
def test_parse_random_yaml_values_raises_only_input_error(value: Any) -> None:
    _only_input_error(yaml.safe_dump(value))


@_PROPERTY_SETTINGS
@given(_mof_like)
def test_parse_random_mof_like_mappings_raises_only_input_error(value: Any) -> None:
    _only_input_error(yaml.safe_dump(value, allow_unicode=True))


_IDS = [c.id for c in components()]
_OPEN = ["MIT", "CC-BY-4.0", "OpenMDW-1.0"]
_listed = st.dictionaries(
    st.sampled_from(_IDS),
    st.tuples(st.sampled_from([*_LICENCES, None]), st.booleans()),
    max_size=17,
)
_globals = st.fixed_dictionaries(
    {k: st.sampled_from([*_LICENCES, None]) for k in mof.GLOBAL_LICENCE_TYPES}
)


def _release(listed: dict[int, tuple[str | None, bool]], globals_: dict[str, Any]) -> MofRelease:
    comps = {
        cid: MofListed(
            mof_id=cid,
            name=component_spec(cid).name,  # type: ignore[union-attr]
            licence=(licence or None) if given_ else None,
            licence_given=given_,
            description="",
            component_path="",
            license_path="",
        )
        for cid, (licence, given_) in listed.items()
    }
    return MofRelease(
        name="m",
        version="",
        producer="",
        type="",
        architecture="",
        repository="",
        huggingface="",
        date="",
        global_licences={k: v or None for k, v in globals_.items()},
        components=comps,
        warnings=(),
        source="gen",
    )


def _check_consistent(progress: dict[int, float], classification: int) -> None:
    assert all(0.0 <= p <= 100.0 for p in progress.values())
    # cumulative classes: meeting a class means meeting every class below it
    if progress[1] == 100.0:
        assert progress[2] == 100.0
    if progress[2] == 100.0:
        assert progress[3] == 100.0
    reached = [k for k in (1, 2, 3) if progress[k] == 100.0]
    assert classification == (min(reached) if reached else 0)


@_PROPERTY_SETTINGS
@given(
    _listed, _globals, st.sampled_from(_IDS), st.sampled_from(["MIT", "CC-BY-4.0", "OpenMDW-1.0"])
)
def test_score_is_monotone_and_consistent(
    listed: dict[int, tuple[str | None, bool]],
    globals_: dict[str, Any],
    add: int,
    open_licence: str,
) -> None:
    before = score(_release(listed, globals_))
    _check_consistent(before.progress, before.classification)
    after = score(_release({**listed, add: (open_licence, True)}, globals_))
    _check_consistent(after.progress, after.classification)
    for k in (1, 2, 3):
        assert after.progress[k] >= before.progress[k] - 1e-9, (k, add)
    assert after.classification == 0 or (
        before.classification == 0 or after.classification <= before.classification
    )
    by_id = {c.mof_id: c for c in after.components}
    assert by_id[add].status == "included"


@_PROPERTY_SETTINGS
@given(_listed, _globals)
def test_yaml_round_trip_scores_the_same(
    listed: dict[int, tuple[str | None, bool]], globals_: dict[str, Any]
) -> None:
    release = _release(listed, globals_)
    doc = {
        "release": {
            "name": "m",
            "license": {k: {"name": v} for k, v in globals_.items()},
            "components": [
                {"name": c.name, **({"license": c.licence or ""} if c.licence_given else {})}
                for c in release.components.values()
            ],
        }
    }
    parsed = parse_mof(yaml.safe_dump(doc), "gen")
    assert parsed.components == release.components
    assert score(parsed).progress == score(release).progress


def test_rules_are_frozen_and_cached() -> None:
    assert mof.rules() is mof.rules()
    with pytest.raises(dataclasses.FrozenInstanceError):
        mof.rules().version = "2"  # type: ignore[misc]
