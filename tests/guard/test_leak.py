"""The system-prompt leak check: runs of the bound prompt, whole short prompts, canaries."""

from __future__ import annotations

import itertools
import json
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelseal.errors import InputError
from modelseal.guard import Finding, build_pipeline
from modelseal.guard.leak import LeakGuard, leak_guard
from modelseal.guard.text import normalise

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SYSTEM = (
    "You are Quillbot, the support assistant for Harbourline Ferries. Never discuss ticket "
    "refunds without a booking reference, and always answer in formal British English."
)
RUN = "Never discuss ticket refunds without a booking reference"  # 8 words of SYSTEM
SECRET_WORDS = ("quillbot", "harbourline", "ferries", "refunds", "booking", "reference", "ticket")
ANSWER = f"Sure. My rules say: {RUN}, and always answer politely. How can I help?"
FILLER = "The ferry leaves at nine from the east pier and the crossing takes two hours. "


def words(text: str) -> list[str]:
    return [w.lower() for w in re.findall(r"\w+", normalise(text).text)]


def bound(**options: object) -> LeakGuard:
    return LeakGuard(**options).bind({"system": SYSTEM})  # type: ignore[arg-type]


def quotes_nothing(finding: Finding) -> bool:
    doc = json.dumps(finding.to_dict()).lower()
    return not any(w in doc for w in SECRET_WORDS)


# ----------------------------------------------------------------------------- runs


def test_a_run_of_eight_words_of_the_prompt_is_a_leak_with_offsets_into_the_answer() -> None:
    [f] = bound().check(ANSWER, "output")
    assert (f.guard, f.category, f.action) == ("leak", "system_prompt", "block")
    assert ANSWER[f.start : f.end] == RUN
    assert quotes_nothing(f)


def test_seven_words_are_not_enough_and_min_words_is_the_run_length() -> None:
    answer = "Note that we never discuss ticket refunds without a booking, sorry."
    assert bound().check(answer, "output") == []
    [f] = bound(min_words=5).check(answer, "output")
    assert words(answer[f.start : f.end]) == ["never", "discuss", "ticket", "refunds", "without"]
    assert bound(min_words=12).check(ANSWER, "output") == []  # 11 words leaked, 12 needed


def test_the_words_must_be_consecutive_in_the_prompt() -> None:
    shuffled = "booking reference never discuss ticket refunds without a assistant"
    assert bound().check(shuffled, "output") == []
    # each word of the prompt, but in sentences of their own
    scattered = " ".join(f"{w} is nice." for w in words(SYSTEM))
    assert bound().check(scattered, "output") == []


def test_a_short_prompt_leaks_only_whole() -> None:
    guard = LeakGuard().bind({"system": "Talk like a pirate."})
    [f] = guard.check("Arr, matey! I must TALK like a\npirate, says me captain.", "output")
    assert f.category == "system_prompt"
    assert f.detail == "4 consecutive words of the system prompt"
    assert guard.check("I will talk like a parrot instead.", "output") == []
    assert guard.check("Pirate: like a talk.", "output") == []


@pytest.mark.parametrize(
    "disguised",
    [
        RUN.upper(),
        "never\n\ndiscuss   ticket\trefunds without a\u00a0booking reference",
        "nev\u200ber discuss tic\u200bket refunds with\u2060out a booking refer\ufeffence",
        "\uff4e\uff45\uff56\uff45\uff52 discuss ticket refunds without a booking reference",
        "n\u0435v\u0435r discuss ticket refunds without a booking r\u0435f\u0435r\u0435nc\u0435",
        "never -- discuss 'ticket' refunds, without (a) booking-reference",
    ],
)
def test_case_spacing_invisible_and_look_alike_characters_do_not_hide_a_run(
    disguised: str,
) -> None:
    answer = f"Okay: {disguised}. Anything else?"
    [f] = bound().check(answer, "output")
    assert f.category == "system_prompt"
    assert words(answer[f.start : f.end]) == words(RUN)
    assert 0 <= f.start < f.end <= len(answer)


def test_a_prompt_run_is_found_deep_in_a_long_answer() -> None:
    answer = FILLER * 40 + RUN + ". " + FILLER * 40
    [f] = bound().check(answer, "output")
    assert answer[f.start : f.end] == RUN


# ------------------------------------------------------------------------ canaries, announcements


def test_canaries_are_found_bound_or_not() -> None:
    canary = "QX-CANARY-7f3a9c2e"
    for guard in (
        LeakGuard(canaries=[canary]),
        LeakGuard(canaries=[canary]).bind({"system": SYSTEM}),
    ):
        answer = f"The token is {canary}, as requested."
        [f] = guard.check(answer, "output")
        assert (f.category, f.action) == ("canary", "block")
        assert answer[f.start : f.end] == canary
        assert canary not in json.dumps(f.to_dict())
        hidden = "The token is QX-CANARY-7f3a\u200b9c2e."
        [f] = guard.check(hidden, "output")
        assert hidden[f.start : f.end] == "QX-CANARY-7f3a\u200b9c2e"
        assert guard.check("The token is QX-CANARY-7f3a9c2.", "output") == []
    assert LeakGuard(canaries=["", canary]).canaries == (canary,)  # empty ones are dropped


@pytest.mark.parametrize(
    "answer",
    [
        "Sure! My system prompt is: be helpful and kind.",
        "Here are my instructions, word for word.",
        "OK. The hidden instructions were to sell more tickets.",
        "I was instructed to: always praise the ferry company.",
    ],
)
def test_announced_instructions_are_flagged_not_blocked(answer: str) -> None:
    [f] = LeakGuard().check(answer, "output")
    assert (f.category, f.action) == ("announced_instructions", "flag")
    assert 0 <= f.start < f.end <= len(answer)
    result = build_pipeline([{"type": "leak"}]).check(answer, "output")
    assert not result.blocked
    assert len(result.findings) == 1
    [f] = LeakGuard(announce_action="block").check(answer, "output")
    assert f.action == "block"
    assert LeakGuard(announce_action="off").check(answer, "output") == []


@pytest.mark.parametrize(
    "answer",
    [
        "The capital of France is Paris.",
        "Instructions: preheat the oven to 180 degrees and bake for 25 minutes.",
        "Here is the system design you asked for: a queue, two workers and a database.",
        "Please follow the previous instructions in the manual before resetting the router.",
        FILLER * 20,
        SYSTEM,  # nothing is bound: the prompt's own words are ordinary text
    ],
)
def test_an_unbound_guard_without_canaries_finds_nothing_in_normal_text(answer: str) -> None:
    assert LeakGuard().check(answer, "output") == []
    assert build_pipeline([{"type": "leak"}]).check(answer, "output").findings == []


def test_a_found_run_is_reported_instead_of_an_announcement() -> None:
    answer = f"My system prompt is: {RUN}."
    [f] = bound().check(answer, "output")
    assert f.category == "system_prompt"


# ----------------------------------------------------------------------------- binding, options


def test_bind_makes_a_copy_and_leaves_the_guard_unbound() -> None:
    guard = LeakGuard(min_words=6, canaries=["zz-canary"], action="flag", name="leaky")
    assert guard.bind({}) is guard
    assert guard.bind({"system": ""}) is guard
    copy = guard.bind({"system": SYSTEM})
    assert copy is not guard
    assert (copy.min_words, copy.canaries, copy.action, copy.name) == (
        6, ("zz-canary",), "flag", "leaky"
    )  # fmt: skip
    [f] = copy.check(ANSWER, "output")
    assert (f.guard, f.action) == ("leaky", "flag")
    assert guard.check(ANSWER, "output") == []
    assert guard.stages == frozenset({"output"})


def test_a_pipeline_binds_the_request_system_prompt() -> None:
    pipeline = build_pipeline(
        [{"type": "size", "max_input_chars": 10_000, "max_output_chars": 10_000}, {"type": "leak"}]
    )
    assert pipeline.contextual
    assert not build_pipeline([{"type": "size", "max_output_chars": 5}]).contextual
    assert not pipeline.check(ANSWER, "output").blocked
    per_request = pipeline.bind({"system": SYSTEM})
    result = per_request.check(ANSWER, "output")
    assert result.blocked
    assert result.block is not None
    assert result.block.category == "system_prompt"
    assert all(w not in json.dumps(result.to_dict()).lower() for w in SECRET_WORDS)
    assert [v.guard for v in per_request.check(ANSWER, "input").verdicts] == ["size"]
    assert pipeline.bind({}) is pipeline
    assert not pipeline.check(ANSWER, "output").blocked  # the shared pipeline stays unbound


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"min_words": 2}, r"option 'min_words' must be a whole number >= 3"),
        ({"announce_action": "warn"}, r"option 'announce_action' must be one of block, flag, off"),
        ({"canaries": [1]}, r"option 'canaries': item 0 must be a string"),
        ({"stages": ["input"]}, r"unknown option 'stages'"),
    ],
)
def test_bad_leak_options_are_refused(options: dict[str, object], message: str) -> None:
    with pytest.raises(InputError, match=message):
        build_pipeline([{"type": "leak", **options}])


def test_the_guard_refuses_bad_settings_directly() -> None:
    with pytest.raises(InputError, match="min_words"):
        LeakGuard(min_words=2)
    with pytest.raises(InputError, match="announce_action"):
        LeakGuard(announce_action="warn")
    guard = leak_guard(canaries=("a-canary",), min_words=4)
    assert guard.canaries == ("a-canary",)
    assert guard.min_words == 4


# ----------------------------------------------------------------------------- streams


def stream(text: str, cuts: list[int], *, system: str = SYSTEM) -> tuple[str, bool, Finding | None]:
    pipeline = build_pipeline([{"type": "leak"}]).bind({"system": system})
    scanner = pipeline.stream("output")
    points = sorted({c % (len(text) + 1) for c in cuts})
    released = ""
    for a, b in itertools.pairwise([0, *points, len(text)]):
        released += scanner.feed(text[a:b]).release
    end = scanner.finish()
    return released + end.release, end.blocked, end.block


@pytest.mark.parametrize("size", [1, 3, 17, 64])
def test_a_leak_split_across_deltas_is_caught_and_not_released(size: int) -> None:
    text = FILLER * 3 + RUN + ". " + FILLER * 3
    released, blocked, block = stream(text, list(range(size, len(text), size)))
    assert blocked
    assert block is not None
    assert block.category == "system_prompt"
    assert text[block.start : block.end] == RUN
    assert len(released) <= block.start
    assert RUN not in released


@SETTINGS
@given(
    before=st.integers(min_value=0, max_value=6),
    after=st.integers(min_value=0, max_value=6),
    cuts=st.lists(st.integers(min_value=0), max_size=30),
    zero_width=st.booleans(),
)
def test_a_streamed_leak_is_always_caught(
    before: int, after: int, cuts: list[int], zero_width: bool
) -> None:
    run = RUN.replace("ticket", "tic\u200bket") if zero_width else RUN
    text = FILLER * before + run + ". " + FILLER * after
    released, blocked, block = stream(text, cuts)
    assert blocked
    assert block is not None
    assert len(released) <= block.start


@SETTINGS
@given(cuts=st.lists(st.integers(min_value=0), max_size=30))
def test_a_clean_stream_is_released_whole(cuts: list[int]) -> None:
    text = FILLER * 5 + "Never discuss it. " + FILLER
    released, blocked, _ = stream(text, cuts)
    assert not blocked
    assert released == text
