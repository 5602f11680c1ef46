"""Deny and allow patterns."""

from __future__ import annotations

import pytest

from modelseal.errors import InputError
from modelseal.guard.patterns import PatternGuard


def spans(guard: PatternGuard, text: str) -> list[str]:
    return [text[f.start : f.end] for f in guard.check(text, "input")]


def test_deny_blocks_and_names_the_pattern_by_index_only() -> None:
    guard = PatternGuard(deny=[r"rm -rf /", r"\bdrop\s+table\b"])
    found = guard.check("please DROP TABLE users; then drop table users", "input")
    assert [(f.category, f.action, f.detail) for f in found] == [
        ("pattern.deny", "block", "deny pattern 1")
    ]
    assert "drop" not in found[0].to_dict()["detail"]


def test_case_insensitive_option() -> None:
    guard = PatternGuard(deny=["drop table"], case_insensitive=True)
    assert spans(guard, "DROP TABLE x") == ["DROP TABLE"]


def test_allow_exempts_overlapping_deny_matches_only() -> None:
    guard = PatternGuard(deny=[r"\bkill\b"], allow=[r"kill -9", r"kill a process"])
    assert spans(guard, "use kill -9 1234") == []
    assert spans(guard, "how to kill a process") == []
    assert spans(guard, "kill -9 it, then kill him") == ["kill"]
    assert [f.start for f in guard.check("kill -9 it, then kill him", "input")] == [17]


def test_patterns_see_normalised_text() -> None:
    guard = PatternGuard(deny=["secret plan"])
    text = "the se\u200bcret\u00a0plan"
    assert spans(guard, text) == ["se\u200bcret\u00a0plan"]


def test_zero_width_matches_are_ignored() -> None:
    guard = PatternGuard(deny=[r"^", r"(?=x)", r"a*"])
    assert guard.check("xyz", "input") == []
    assert spans(guard, "baaa") == ["aaa"]


def test_flag_action_stages_and_max_span() -> None:
    guard = PatternGuard(deny=["x"], action="flag", stages=["output"], max_span=10)
    assert guard.stages == frozenset({"output"})
    assert guard.max_span == 10
    assert guard.check("x", "output")[0].action == "flag"


def test_the_version_names_the_rules() -> None:
    a = PatternGuard(deny=["x"])
    b = PatternGuard(deny=["y"])
    assert a.version.startswith("1.0+")
    assert a.version != b.version
    assert PatternGuard(deny=["x"]).version == a.version


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"deny": ["ok", "(unclosed"]}, "deny pattern 1 is not a valid regular expression"),
        ({"deny": ["ok"], "allow": ["[z-a]"]}, "allow pattern 0 is not a valid regular expression"),
        ({"deny": [3]}, "deny pattern 0 must be a string"),
        ({"deny": ["x"], "action": "drop"}, "'action' must be"),
        ({"deny": ["x"], "max_span": 0}, "'max_span' must be"),
    ],
)
def test_bad_patterns_are_input_errors(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InputError, match=message):
        PatternGuard(**kwargs)  # type: ignore[arg-type]
