"""The pipeline on whole texts: stages, verdicts, timing fields, messages, size limits."""

from __future__ import annotations

import json
from dataclasses import dataclass

from modelseal.guard import (
    DEFAULT_GUARDS,
    Finding,
    GuardPipeline,
    PipelineResult,
    Stage,
    Verdict,
    build_pipeline,
)
from modelseal.guard.pipeline import MAX_FINDINGS
from modelseal.guard.size import SizeGuard
from tests.guard.samples import CARDS, SECRETS

# the rule guards of the default pipeline (the trained ones have their own tests)
PIPELINE = build_pipeline(DEFAULT_GUARDS[:3])


def test_a_clean_text_passes_every_guard_with_timings_and_versions() -> None:
    result = PIPELINE.check("What is the capital of France?", "input")
    assert not result.blocked
    assert result.block is None
    assert [v.guard for v in result.verdicts] == ["size", "secrets", "pii"]
    for verdict in result.verdicts:
        assert verdict.stage == "input"
        assert not verdict.blocked
        assert verdict.findings == ()
        assert verdict.latency_s >= 0
        assert verdict.version


def test_the_first_blocking_finding_is_the_block() -> None:
    text = f"email bob@example.com, key {SECRETS['aws_access_key']}, card {CARDS[0]}"
    result = PIPELINE.check(text, "output")
    assert result.blocked
    assert result.block is not None
    assert result.block.category == "secret.aws_access_key"
    assert sorted(f.category for f in result.findings) == [
        "pii.card_number",
        "pii.email",
        "secret.aws_access_key",
    ]
    verdicts = {v.guard: v for v in result.verdicts}
    assert verdicts["pii"].blocked
    assert verdicts["pii"].block is not None
    assert verdicts["pii"].block.category == "pii.card_number"


def test_to_dict_is_json_and_never_holds_the_matched_text() -> None:
    text = f"{SECRETS['github_token']} {CARDS[0]} bob@example.com {SECRETS['private_key']}"
    result = PIPELINE.check(text, "output")
    data = result.to_dict()
    dumped = json.dumps(data)
    assert data["blocked"] is True
    assert data["block"]["guard"] == "secrets"
    assert {v["version"] for v in data["verdicts"]} == {"1.0"}
    for piece in ("x7Kp2QmZ9v", "4111", "bob@", "OPENSSH"):
        assert piece not in dumped
        assert piece not in repr(result)


def test_flags_alone_do_not_block() -> None:
    result = PIPELINE.check("write to bob@example.com", "input")
    assert not result.blocked
    assert result.block is None
    assert [f.action for f in result.findings] == ["flag"]


def test_size_limits_per_stage() -> None:
    pipeline = GuardPipeline([SizeGuard(max_input_chars=10, max_output_chars=20)])
    assert not pipeline.check("x" * 10, "input").blocked
    blocked = pipeline.check("x" * 11, "input")
    assert blocked.block is not None
    assert blocked.block.category == "size.input"
    assert "10" in blocked.block.detail
    assert not pipeline.check("x" * 20, "output").blocked
    assert pipeline.check("x" * 21, "output").blocked
    only_input = GuardPipeline([SizeGuard(max_input_chars=10)])
    assert only_input.check("x" * 100, "output").verdicts == []


def test_check_messages_joins_texts_and_sums_lengths() -> None:
    pipeline = build_pipeline([{"type": "size", "max_input_chars": 10}, {"type": "secrets"}])
    assert not pipeline.check_messages(["abcde", "fghij"], "input").blocked
    over = pipeline.check_messages(["abcde", "fghij", "k"], "input")
    assert over.block is not None
    assert over.block.category == "size.input"
    key = SECRETS["aws_access_key"]
    big = build_pipeline([{"type": "secrets"}])
    found = big.check_messages(["hello", f"key {key}"], "input")
    assert found.block is not None
    assert "hello\nkey " + key == "\n".join(["hello", f"key {key}"])
    assert found.block.start == len("hello\nkey ")
    # a key split across two messages is not one key
    assert not big.check_messages([key[:10], key[10:]], "input").blocked
    assert big.check_messages([f"x {key}"], "input").blocked


@dataclass
class Chatty:
    """A guard that finds one flag per character (to test the findings cap)."""

    name: str = "chatty"
    version: str = "0"
    stages: frozenset[str] = frozenset({"input", "output"})
    max_span: int = 1

    def check(self, text: str, stage: Stage) -> list[Finding]:
        found = [Finding(self.name, "x.flag", "flag", "char", i, i + 1) for i in range(len(text))]
        bang = text.find("!")
        if bang >= 0:
            found.append(Finding(self.name, "x.block", "block", "bang", bang, bang + 1))
        return found


def test_findings_are_capped_but_a_block_is_kept() -> None:
    pipeline = GuardPipeline([Chatty()])
    result = pipeline.check("a" * 500, "input")
    assert len(result.findings) == MAX_FINDINGS
    assert not result.blocked
    blocked = pipeline.check("a" * 500 + "!", "input")
    assert len(blocked.findings) == MAX_FINDINGS
    assert blocked.blocked
    assert blocked.block is not None
    assert blocked.block.category == "x.block"
    scanner = pipeline.stream("output")
    scanner.feed("a" * 300)
    step = scanner.feed("b" * 10 + "!" + "c" * 10)
    assert step.blocked
    merged = scanner.result.verdicts[0]
    assert merged.blocked
    assert merged.block is not None
    assert merged.block.category == "x.block"
    assert len(merged.findings) <= MAX_FINDINGS + 1


def test_overlap_is_the_longest_span_of_the_stage() -> None:
    pipeline = build_pipeline(
        [
            {"type": "patterns", "deny": ["x"], "max_span": 500, "stages": ["input"]},
            {"type": "secrets", "stages": ["output"], "ignore": ["jwt"]},
        ]
    )
    assert pipeline.overlap == 500
    assert pipeline.overlap_for("input") == 500
    assert pipeline.overlap_for("output") < 200
    assert pipeline.stream("output").overlap == pipeline.overlap_for("output")


def test_result_and_verdict_dicts() -> None:
    finding = Finding("g", "c.x", "block", "detail", 1, 2, 0.5)
    assert finding.to_dict() == {
        "guard": "g",
        "category": "c.x",
        "action": "block",
        "detail": "detail",
        "start": 1,
        "end": 2,
        "score": 0.5,
    }
    assert finding.shifted(10).start == 11
    assert finding.shifted(10).end == 12
    unplaced = Finding("g", "c.y", "flag", "d")
    assert unplaced.shifted(10) is unplaced
    verdict = Verdict("g", "input", True, (finding,), 0.001, "2.0")
    assert verdict.to_dict()["version"] == "2.0"
    result = PipelineResult([verdict])
    assert result.to_dict()["block"] == finding.to_dict()
    assert PipelineResult([]).to_dict() == {"blocked": False, "block": None, "verdicts": []}
