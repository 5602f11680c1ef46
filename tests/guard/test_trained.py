"""Trained guards: thresholds, scores in verdicts, windowing, categories, stages and options.

The models here are built in the test: a linear model with positive weight on the hashed
features of a made-up trigger phrase (and on nothing the benign text has), or a constant model
(zero weights) whose probability is its bias, so every expected outcome is known exactly.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from modelseal.errors import InputError
from modelseal.guard import GuardPipeline, build_pipeline
from modelseal.guard.classifier import (
    EnsembleModel,
    Featurizer,
    LinearModel,
    dump_ensemble,
    dump_model,
    prepare,
    windows,
)
from modelseal.guard.trained import MAX_WINDOWS, WINDOW, TrainedGuard, load_guard_file

F = Featurizer(bits=20)
TRIGGER = "zqxj vkwq jzxq"
PARAGRAPH = (
    "The quarterly report shows steady growth in the northern region, with sales up four "
    "percent over the previous quarter. Our team met the delivery targets and the customer "
    "survey came back positive. "
)
BENIGN = (PARAGRAPH * 200)[:20_000]
WEIGHT, BIAS = 5.0, -2.0


def sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


def trigger_model(**metadata: Any) -> LinearModel:
    """Weight on the trigger's features that the benign text does not have; bias -2."""
    weights = np.zeros(F.size, dtype=np.float32)
    hot = np.setdiff1d(np.unique(F.indices(TRIGGER)), np.unique(F.indices(BENIGN)))
    assert len(hot) > 30
    weights[hot] = WEIGHT
    meta = {"name": "trig", "version": "3", "threshold": 0.5, "stage": "input"}
    meta.update({"category": "injection", "title": "Test trigger", **metadata})
    return LinearModel(F, weights, BIAS, metadata=meta)


def constant_model(p: float, **metadata: Any) -> LinearModel:
    """Every non-empty text scores ``sigmoid(logit(p))`` (about ``p``)."""
    f = Featurizer(bits=8)
    meta = {"name": "const", "version": "1", "threshold": 0.5, **metadata}
    return LinearModel(f, np.zeros(f.size, dtype=np.float32), math.log(p / (1 - p)), metadata=meta)


def category_model() -> LinearModel:
    """The trigger model with a category head: TRIGGER is S9, "mmpf ghhb" is S10."""
    cat_bits = 16
    shift = F.bits - cat_bits
    benign = np.unique(F.indices(BENIGN))
    cw = np.zeros((1 << cat_bits, 3), dtype=np.float32)
    weights = np.zeros(F.size, dtype=np.float32)
    for text, cls in ((TRIGGER, 1), ("mmpf ghhb", 2)):
        idx = F.indices(text)
        weights[np.setdiff1d(idx, benign)] = WEIGHT
        cw[np.setdiff1d(idx >> shift, benign >> shift), cls] = 3.0
    return LinearModel(
        F,
        weights,
        BIAS,
        categories=("S1", "S9", "S10"),
        category_bits=cat_bits,
        category_weights=cw,
        category_bias=np.zeros(3, dtype=np.float32),
        metadata={"name": "harmish", "version": "1", "threshold": 0.5},
    )


def model_file(tmp_path: Path, model: LinearModel, name: str = "m.safetensors") -> Path:
    path = tmp_path / name
    path.write_bytes(dump_model(model))
    return path


# ----------------------------------------------------------------------------- thresholds


def test_a_score_at_the_threshold_blocks_and_below_it_does_not() -> None:
    model = constant_model(0.6)
    p = model.score("anything").probability
    assert p == pytest.approx(0.6)
    findings, score = TrainedGuard(model, threshold=p, decode=False).check_scored("hi", "input")
    assert score == p
    [f] = findings
    assert (f.guard, f.category, f.action, f.start, f.end) == ("const", "const", "block", -1, -1)
    assert f.score == round(p, 4)
    findings, score = TrainedGuard(model, threshold=p + 1e-9, decode=False).check_scored(
        "hi", "input"
    )
    assert findings == []
    assert score == p


def test_flag_threshold_flags_between_it_and_the_threshold() -> None:
    model = constant_model(0.6)
    guard = TrainedGuard(model, threshold=0.9, flag_threshold=0.5, decode=False)
    [f] = guard.check("some text", "input")
    assert f.action == "flag"
    assert "0.5" in f.detail
    assert "some text" not in f.detail
    quiet = TrainedGuard(model, threshold=0.9, flag_threshold=0.65, decode=False)
    assert quiet.check("some text", "input") == []
    loud = TrainedGuard(model, threshold=0.55, flag_threshold=0.5, decode=False)
    assert [f.action for f in loud.check("some text", "input")] == ["block"]


def test_action_flag_turns_the_threshold_finding_into_a_flag() -> None:
    guard = TrainedGuard(constant_model(0.8), action="flag", decode=False)
    [f] = guard.check("x", "input")
    assert f.action == "flag"
    result = GuardPipeline([guard]).check("x", "input")
    assert not result.blocked
    assert result.findings == [f]


def test_the_threshold_defaults_to_the_one_in_the_model() -> None:
    model = constant_model(0.6, threshold=0.7)
    assert TrainedGuard(model).threshold == 0.7
    assert TrainedGuard(model, decode=False).check("x", "input") == []
    assert TrainedGuard(model, threshold=0.55, decode=False).check("x", "input") != []
    assert TrainedGuard(constant_model(0.6)).threshold == 0.5


def test_flag_threshold_above_the_threshold_is_refused() -> None:
    with pytest.raises(InputError, match="flag_threshold must not be above threshold"):
        TrainedGuard(constant_model(0.6), threshold=0.5, flag_threshold=0.6)
    with pytest.raises(InputError, match="flag_threshold must not be above threshold"):
        TrainedGuard(constant_model(0.6, threshold=0.4), flag_threshold=0.45)


def test_the_empty_text_scores_zero_without_findings() -> None:
    guard = TrainedGuard(constant_model(0.99), decode=False)
    assert guard.check_scored("", "input") == ([], 0.0)
    assert GuardPipeline([guard]).check("", "input").verdicts[0].score == 0.0


# ----------------------------------------------------------------------------- verdict scores


def test_the_score_is_reported_in_the_verdict_whether_or_not_it_blocks() -> None:
    guard = TrainedGuard(trigger_model(), decode=False)
    pipeline = GuardPipeline([guard])
    clean = pipeline.check("what a nice quarterly report", "input")
    [verdict] = clean.verdicts
    assert not verdict.blocked
    assert verdict.findings == ()
    assert verdict.score == pytest.approx(sigmoid(BIAS))
    assert verdict.to_dict()["score"] == verdict.score
    assert verdict.version == "3"
    hit = pipeline.check(f"please {TRIGGER} now", "input")
    [verdict] = hit.verdicts
    assert verdict.blocked
    assert verdict.score is not None
    assert verdict.score >= 0.5
    assert verdict.findings[0].score == round(verdict.score, 4)
    joined = pipeline.check_messages(["hello there", f"and {TRIGGER}"], "input")
    assert joined.blocked
    assert joined.verdicts[0].score is not None
    assert joined.verdicts[0].score >= 0.5


def test_a_stream_tallies_the_highest_score() -> None:
    guard = TrainedGuard(trigger_model(stage="output"), decode=False)
    pipeline = GuardPipeline([guard])
    scanner = pipeline.stream("output")
    for i in range(0, len(PARAGRAPH) * 3, 7):
        scanner.feed((PARAGRAPH * 3)[i : i + 7])
    scanner.finish()
    [clean] = scanner.result.verdicts
    assert clean.score == pytest.approx(sigmoid(BIAS))
    assert not clean.blocked
    scanner = pipeline.stream("output")
    text = PARAGRAPH + TRIGGER + " " + PARAGRAPH
    blocked_at = None
    for i in range(0, len(text), 5):
        if scanner.feed(text[i : i + 5]).blocked and blocked_at is None:
            blocked_at = i
    scanner.finish()
    [verdict] = scanner.result.verdicts
    assert verdict.blocked
    assert blocked_at is not None
    assert verdict.score is not None
    assert verdict.score >= 0.5
    assert blocked_at < len(PARAGRAPH) + len(TRIGGER) + 10  # caught soon after it was written


# ----------------------------------------------------------------------------- windowing


def test_a_trigger_at_the_end_of_a_long_text_is_not_diluted() -> None:
    model = trigger_model()
    guard = TrainedGuard(model, decode=False)
    assert guard.score(BENIGN)[0] == pytest.approx(sigmoid(BIAS))
    text = BENIGN + " " + TRIGGER
    assert len(text) > 20_000
    # the whole text's features are binary: repeated benign sentences cannot drown the trigger,
    # but the windows must find it too (checked below)
    # windowed: the last window holds it
    p, _ = guard.score(text)
    assert p >= guard.threshold
    [f] = guard.check(text, "input")
    assert f.action == "block"


@pytest.mark.parametrize("at", [0, 1, 255, 256, 511, 9_999, 19_990])
def test_a_trigger_anywhere_in_a_long_text_is_found(at: int) -> None:
    guard = TrainedGuard(trigger_model(), decode=False)
    text = BENIGN[:at] + " " + TRIGGER + " " + BENIGN[at:]
    assert guard.check(text, "input")


def test_very_long_texts_use_a_bounded_number_of_windows_without_gaps(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import modelseal.guard.trained as trained

    calls: list[Sequence[tuple[int, int]]] = []

    def spy(length: int, size: int, stride: int) -> Sequence[tuple[int, int]]:
        spans = windows(length, size, stride)
        calls.append(spans)
        return spans

    monkeypatch.setattr(trained, "windows", spy)
    guard = TrainedGuard(trigger_model(), decode=False)
    long = (PARAGRAPH * 600)[:100_000]
    for at in (50, 33_333, 77_777, 99_990):
        calls.clear()
        assert guard.check(long[:at] + " " + TRIGGER + " " + long[at:], "input"), at
        # the full-size windows cover the text; small ones cover its first and last 4 kB
        assert len(calls) == 3
        for i, spans in enumerate(calls):
            assert len(spans) <= MAX_WINDOWS
            assert all(b[0] <= a[1] for a, b in itertools.pairwise(spans))  # no gaps
            assert all(end - start <= WINDOW for start, end in spans)
            assert spans[0][0] == 0
            want = len(prepare(long[:at] + " " + TRIGGER + " " + long[at:])) if i == 0 else 4096
            assert spans[-1][1] == want


def test_decoded_payloads_are_scored_too() -> None:
    pytest.importorskip("modelseal.guard.decode")
    guard = TrainedGuard(trigger_model())
    blind = TrainedGuard(trigger_model(), decode=False)
    for wrapped in (
        base64.b64encode(TRIGGER.encode()).decode(),
        TRIGGER.encode().hex(),
    ):
        text = f"Please decode this and do what it says: {wrapped}"
        assert blind.check(text, "input") == [], wrapped
        assert guard.check(text, "input"), wrapped


# ----------------------------------------------------------------------------- categories, stages


def test_a_binary_model_reports_its_own_category() -> None:
    [f] = TrainedGuard(trigger_model(), decode=False).check(TRIGGER, "input")
    assert f.category == "injection"
    assert "Test trigger" in f.detail
    assert TRIGGER not in f.detail
    [f] = TrainedGuard(trigger_model(category="x"), category="y", decode=False).check(
        TRIGGER, "input"
    )
    assert f.category == "y"


def test_the_category_head_names_the_top_category() -> None:
    guard = TrainedGuard(category_model(), decode=False)
    p, category = guard.score(f"well {TRIGGER}")
    assert p >= 0.5
    assert category == "S9"
    [f] = guard.check("so mmpf ghhb then", "input")
    assert f.category == "S10"
    # the category of the best window wins in a long text
    [f] = guard.check(BENIGN + " mmpf ghhb", "input")
    assert f.category == "S10"


def test_stages_come_from_the_model_or_the_options() -> None:
    out = TrainedGuard(trigger_model(stage="output"), decode=False)
    assert out.stages == frozenset({"output"})
    pipeline = GuardPipeline([out])
    assert pipeline.check(TRIGGER, "input").verdicts == []
    assert pipeline.check(TRIGGER, "output").blocked
    both = TrainedGuard(trigger_model(), stages=["input", "output"], decode=False)
    assert both.stages == frozenset({"input", "output"})
    assert TrainedGuard(trigger_model()).stages == frozenset({"input"})


# ----------------------------------------------------------------------------- files and options


def test_the_version_is_pinned_to_the_file_digest(tmp_path: Path) -> None:
    path = model_file(tmp_path, trigger_model())
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    guard = load_guard_file(path, decode=False)
    assert guard.digest == digest
    assert guard.version == f"3+{digest[:12]}"
    other = load_guard_file(model_file(tmp_path, trigger_model(title="other"), "n.safetensors"))
    assert other.version.startswith("3+")
    assert other.version != guard.version


def test_build_pipeline_makes_a_trained_guard_from_options(tmp_path: Path) -> None:
    path = model_file(tmp_path, trigger_model())
    pipeline = build_pipeline(
        [
            {
                "type": "injection",
                "model": str(path),
                "threshold": 0.9,
                "flag_threshold": 0.4,
                "action": "flag",
                "stages": ["output"],
                "decode": False,
                "name": "mine",
            }
        ]
    )
    [guard] = pipeline.guards
    assert isinstance(guard, TrainedGuard)
    assert (guard.name, guard.threshold, guard.flag_threshold, guard.action) == (
        "mine", 0.9, 0.4, "flag"
    )  # fmt: skip
    assert guard.stages == frozenset({"output"})
    result = pipeline.check(TRIGGER, "output")
    assert not result.blocked
    assert [f.guard for f in result.findings] == ["mine"]
    # the defaults: the model's threshold, block, its stage
    [plain] = build_pipeline([{"type": "harm", "model": str(path)}]).guards
    assert isinstance(plain, TrainedGuard)
    assert (plain.name, plain.threshold, plain.action) == ("harm", 0.5, "block")
    assert plain.stages == frozenset({"input"})


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"threshold": 1.5}, r"guard 0 \(injection\): option 'threshold' must be a number"),
        ({"threshold": -0.1}, r"option 'threshold' must be a number from 0 to 1"),
        ({"threshold": "high"}, r"option 'threshold' must be a number"),
        ({"threshold": True}, r"option 'threshold' must be a number"),
        ({"flag_threshold": -2}, r"option 'flag_threshold' must be a number"),
        (
            {"threshold": 0.5, "flag_threshold": 0.6},
            r"option 'flag_threshold' must not be above 'threshold'",
        ),
        ({"flag_threshold": 0.9}, r"flag_threshold must not be above threshold"),
        ({"treshold": 0.5}, r"unknown option 'treshold' \(known: .*threshold"),
        ({"action": "drop"}, r"option 'action' must be one of block, flag"),
        ({"stages": ["middle"]}, r"unknown stage 'middle'"),
        ({"decode": "yes"}, r"option 'decode' must be true or false"),
        ({"model": 3}, r"option 'model' must be a string"),
    ],
)
def test_bad_options_are_refused_clearly(
    tmp_path: Path, options: dict[str, Any], message: str
) -> None:
    spec = {"type": "injection", "model": str(model_file(tmp_path, trigger_model())), **options}
    with pytest.raises(InputError, match=message):
        build_pipeline([spec])


def test_a_missing_or_foreign_model_file_is_refused_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nope.safetensors"
    with pytest.raises(InputError, match=r"guard 0 \(harm\): cannot read guard model .*nope"):
        build_pipeline([{"type": "harm", "model": str(missing)}])
    text = tmp_path / "notes.txt"
    text.write_text("not a model")
    with pytest.raises(InputError, match=r"notes.txt: not a valid safetensors file"):
        build_pipeline([{"type": "harm", "model": str(text)}])


@pytest.mark.parametrize(
    "metadata",
    [
        {"threshold": "abc"},
        {"threshold": 7},
        {"window_stride": 0},
        {"window_stride": -5},
        {"window": 0},
        {"window": 10, "window_stride": 50},
        {"stage": "middle"},
    ],
)
def test_unusable_model_metadata_is_refused_at_load(
    tmp_path: Path, metadata: dict[str, Any]
) -> None:
    path = model_file(tmp_path, trigger_model(**metadata))
    with pytest.raises(InputError):
        load_guard_file(path, decode=False)


# ----------------------------------------------------------------------------- ensemble models


def trigger_ensemble() -> EnsembleModel:
    """The trigger model averaged with a network whose one unit fires on the trigger's
    features (category S9) and stays off on the benign text (category S1 there)."""
    linear = trigger_model()
    bits = 16
    shift = F.bits - bits
    emb = np.zeros((1 << bits, 2), dtype=np.float32)
    hot = np.setdiff1d(F.indices(TRIGGER) >> shift, F.indices(BENIGN) >> shift)
    emb[hot, 0] = 1.0
    return EnsembleModel(
        linear=linear,
        ft_bits=bits,
        embedding=emb,
        hidden_w=np.asarray([[8.0, 0.0]], dtype=np.float32),
        hidden_b=np.asarray([0.0], dtype=np.float32),
        out_w=np.asarray([4.0], dtype=np.float32),
        out_b=-2.0,
        categories=("S1", "S9"),
        category_w=np.asarray([[0.0], [1.0]], dtype=np.float32),
        category_b=np.asarray([0.5, 0.0], dtype=np.float32),
        metadata=linear.metadata,
    )


def test_an_ensemble_file_loads_as_a_guard_and_finds_a_buried_trigger(tmp_path: Path) -> None:
    path = tmp_path / "ens.safetensors"
    path.write_bytes(dump_ensemble(trigger_ensemble()))
    guard = load_guard_file(path, decode=False)
    assert isinstance(guard.model, EnsembleModel)
    assert guard.version.startswith("3+")
    p_benign, cat_benign = guard.score(BENIGN)
    assert p_benign < 0.2
    assert cat_benign == "S1"
    buried = BENIGN[:9_000] + " " + TRIGGER + " " + BENIGN[9_000:]
    p, category = guard.score(buried)
    assert p > 0.8
    assert category == "S9"
    [finding] = guard.check(buried, "input")
    assert finding.action == "block"
    assert finding.category == "S9"


def test_windows_of_a_long_text_score_as_if_featurised_alone() -> None:
    """The guard hashes a long text once; each window's score equals scoring it alone."""
    guard = TrainedGuard(trigger_model(), decode=False)
    text = BENIGN[:3_000] + " " + TRIGGER + " " + BENIGN[:1_500]
    prepared = prepare(text)
    best = max(
        guard.model.logit(F.prepared_indices(prepared[a:b])) for a, b in guard._spans(len(prepared))
    )
    assert guard.score(text)[0] == pytest.approx(sigmoid(best))
