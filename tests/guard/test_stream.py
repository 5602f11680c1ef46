"""The stream scanner: overlapping windows never miss a split match, never leak a blocked one."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelseal.errors import InputError
from modelseal.guard import DEFAULT_GUARDS, Finding, GuardPipeline, Stage, build_pipeline
from modelseal.guard.pipeline import CONTEXT, StreamScanner
from tests.guard.samples import CARDS, IBANS, SECRETS

# the rule guards of the default pipeline (the trained ones have their own tests)
PIPELINE = build_pipeline(DEFAULT_GUARDS[:3])
# everything flagged, nothing blocked: the scanner keeps going, so all findings can be compared
FLAG_ALL = build_pipeline(
    [
        {"type": "secrets", "action": "flag"},
        {"type": "pii", **dict.fromkeys(("card_number", "iban", "ssn", "email", "phone"), "flag")},
    ]
)

BLOCKED_VALUES = [*SECRETS.values(), *CARDS, *IBANS, "123-45-6789"]
FILLER = st.text(alphabet=" abcdefghijklmnopqrstuvwxyz.,\n\u00e9\u4e2d", max_size=300)
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def split(text: str, cuts: list[int]) -> list[str]:
    points = sorted({c % (len(text) + 1) for c in cuts})
    bounds = [0, *points, len(text)]
    return [text[a:b] for a, b in itertools.pairwise(bounds)]


@dataclass
class Run:
    released: str = ""
    blocked_at: int | None = None  # characters fed when the scanner first said blocked
    steps: list[bool] = field(default_factory=list)


def run(scanner: StreamScanner, deltas: list[str]) -> Run:
    out = Run()
    fed = 0
    for delta in deltas:
        fed += len(delta)
        step = scanner.feed(delta)
        out.released += step.release
        if step.blocked and out.blocked_at is None:
            out.blocked_at = fed
        out.steps.append(step.blocked)
    step = scanner.finish()
    out.released += step.release
    if step.blocked and out.blocked_at is None:
        out.blocked_at = fed + 1
    return out


def zero_width_inside(value: str, where: list[int]) -> str:
    chars = list(value)
    for w in sorted({w % (len(value) + 1) for w in where}, reverse=True):
        chars.insert(w, "\u200b")
    return "".join(chars)


@SETTINGS
@given(
    value=st.sampled_from(BLOCKED_VALUES),
    before=FILLER,
    after=FILLER,
    cuts=st.lists(st.integers(min_value=0), max_size=40),
    invisible=st.lists(st.integers(min_value=0), max_size=4),
)
def test_a_split_secret_is_caught_and_nothing_of_it_released(
    value: str, before: str, after: str, cuts: list[int], invisible: list[int]
) -> None:
    value = zero_width_inside(value, invisible)
    text = f"{before} {value} {after}"
    start = len(before) + 1
    assert PIPELINE.check(text, "output").blocked  # the whole text is blocked ...
    result = run(PIPELINE.stream("output"), split(text, cuts))
    # ... and so is the stream, with no character of the value released (buffer mode)
    assert result.blocked_at is not None
    assert text.startswith(result.released)
    assert len(result.released) <= start


@SETTINGS
@given(
    value=st.sampled_from(BLOCKED_VALUES),
    before=st.text(alphabet=" abcdefghijklmnopqrstuvwxyz.,\n", max_size=300),
    after=st.text(alphabet=" abcdefghijklmnopqrstuvwxyz.,\n", min_size=CONTEXT, max_size=300),
    cuts=st.lists(st.integers(min_value=0), max_size=40),
)
def test_stream_mode_learns_of_the_block_soon_after_the_value_ends(
    value: str, before: str, after: str, cuts: list[int]
) -> None:
    text = f"{before} {value} {after}"
    end = len(before) + 1 + len(value)
    deltas = split(text, cuts)
    result = run(PIPELINE.stream("output"), deltas)
    assert result.blocked_at is not None
    # caught by the first delta that brings the stream CONTEXT characters past the value
    fed = 0
    for delta, blocked in zip(deltas, result.steps, strict=True):
        fed += len(delta)
        if fed >= end + CONTEXT:
            assert blocked
            break


@SETTINGS
@given(text=FILLER, cuts=st.lists(st.integers(min_value=0), max_size=60))
def test_clean_text_is_released_completely_and_unchanged(text: str, cuts: list[int]) -> None:
    result = run(PIPELINE.stream("output"), split(text, cuts))
    assert result.blocked_at is None
    assert result.released == text


@SETTINGS
@given(text=FILLER, cuts=st.lists(st.integers(min_value=0), max_size=60))
def test_release_trails_the_stream_by_at_most_the_hold(text: str, cuts: list[int]) -> None:
    scanner = PIPELINE.stream("output")
    released = fed = 0
    for delta in split(text, cuts):
        fed += len(delta)
        released += len(scanner.feed(delta).release)
        assert released == scanner.released
        # ASCII and BMP letters here: every character is visible, so the hold is exact
        assert fed - released <= scanner.hold
    assert released + len(scanner.finish().release) == len(text)


TOKENS = st.one_of(
    st.sampled_from(BLOCKED_VALUES),
    st.sampled_from(["bob@example.com", "(212) 555-1234", "+44 20 7946 0958", "4111 1111"]),
    st.text(alphabet="0123456789 -", min_size=1, max_size=25),
    st.text(alphabet="abcdefABCDEF0123456789_-.=:\"' ", min_size=1, max_size=30),
    st.text(alphabet="DEGBNO0123456789 +()@.-xyz", min_size=1, max_size=30),
    st.sampled_from([" ", "\n", ", ", "\u200b", "\uff21", "key = ", "token: ", "Bearer "]),
    # combining marks, full-width and circled digits, ligatures, long NFKC expansions
    st.sampled_from(["\u0301", "e\u0301", "\uff14", "\u2460", "\u00a0", "\ufb01", "\ufdfa"]),
)


def findings(result_findings: list[Finding]) -> set[tuple[str, int, int]]:
    return {(f.category, f.start, f.end) for f in result_findings}


@SETTINGS
@given(tokens=st.lists(TOKENS, max_size=30), cuts=st.lists(st.integers(min_value=0), max_size=40))
def test_a_stream_finds_exactly_what_the_whole_text_check_finds(
    tokens: list[str], cuts: list[int]
) -> None:
    text = "".join(tokens)
    whole = findings(FLAG_ALL.check(text, "output").findings)
    scanner = FLAG_ALL.stream("output")
    run(scanner, split(text, cuts))
    assert findings(scanner.result.findings) == whole


@SETTINGS
@given(tokens=st.lists(TOKENS, max_size=30), cuts=st.lists(st.integers(min_value=0), max_size=40))
def test_a_stream_blocks_whenever_the_whole_text_is_blocked(
    tokens: list[str], cuts: list[int]
) -> None:
    text = "".join(tokens)
    whole = PIPELINE.check(text, "output")
    result = run(PIPELINE.stream("output"), split(text, cuts))
    assert (result.blocked_at is not None) == whole.blocked
    if whole.blocked:
        first = min(f.start for f in whole.findings if f.action == "block")
        assert len(result.released) <= first


@dataclass
class Recorder:
    """A guard that records what it was asked to check."""

    name: str = "recorder"
    version: str = "0"
    stages: frozenset[str] = frozenset({"output"})
    max_span: int = 40
    checked: int = 0
    calls: int = 0

    def check(self, text: str, stage: Stage) -> list[Finding]:
        self.checked += len(text)
        self.calls += 1
        return []


@pytest.mark.parametrize("delta", [1, 4, 50, 1000])
def test_work_is_linear_in_the_stream_length(delta: int) -> None:
    recorder = Recorder()
    scanner = GuardPipeline([recorder]).stream("output")
    text = "abcdefghij" * 2000
    for i in range(0, len(text), delta):
        scanner.feed(text[i : i + delta])
    scanner.finish()
    # each character is in at most 1 + hold / delta windows
    assert recorder.checked <= len(text) * (1 + scanner.hold / delta) + scanner.hold


def test_min_chunk_batches_tiny_deltas() -> None:
    recorder = Recorder()
    scanner = GuardPipeline([recorder]).stream("output", min_chunk=64)
    released = ""
    for ch in "x" * 1000:
        released += scanner.feed(ch).release
    released += scanner.finish().release
    assert released == "x" * 1000
    assert recorder.calls <= 1000 // 64 + 2
    with pytest.raises(InputError, match="min_chunk"):
        GuardPipeline([recorder]).stream("output", min_chunk=-1)


def test_a_blocked_stream_stays_blocked_and_releases_nothing_more() -> None:
    scanner = PIPELINE.stream("output")
    first = scanner.feed("hello " * 100)
    assert first.release
    assert not first.blocked
    step = scanner.feed(f"my key is {SECRETS['aws_access_key']} and more text after it")
    assert step.blocked
    assert step.release == ""
    assert step.block is not None
    assert step.block.category == "secret.aws_access_key"
    later = scanner.feed("more")
    assert later.blocked
    assert later.release == ""
    assert later.block == step.block
    end = scanner.finish()
    assert end.blocked
    assert end.release == ""
    assert scanner.finish().blocked  # finishing twice is harmless
    # the block's offsets point into the whole stream
    block = scanner.result.block
    assert block is not None
    assert scanner.text[block.start : block.end] == SECRETS["aws_access_key"]


def test_feeding_after_finish_is_an_error() -> None:
    scanner = PIPELINE.stream("output")
    scanner.feed("hi")
    assert scanner.finish().release == "hi"
    with pytest.raises(InputError, match="finished"):
        scanner.feed("more")


def test_flags_do_not_stop_the_stream_and_are_reported_once() -> None:
    scanner = PIPELINE.stream("output")
    text = "write to bob@example.com or call (212) 555-1234 " + "filler " * 50
    released = ""
    for i in range(0, len(text), 3):
        step = scanner.feed(text[i : i + 3])
        assert not step.blocked
        released += step.release
    released += scanner.finish().release
    assert released == text
    cats = [f.category for f in scanner.result.findings]
    assert sorted(cats) == ["pii.email", "pii.phone"]
    assert not scanner.result.blocked


def test_the_size_limit_counts_the_whole_stream() -> None:
    pipeline = build_pipeline([{"type": "size", "max_output_chars": 100}, {"type": "secrets"}])
    scanner = pipeline.stream("output")
    steps = [scanner.feed("x" * 30) for _ in range(4)]
    assert [s.blocked for s in steps] == [False, False, False, True]
    block = steps[-1].block
    assert block is not None
    assert block.category == "size.output"
    assert scanner.result.verdicts[0].blocked
    # the input stage has no size limit in this pipeline
    assert not any(pipeline.stream("input").feed("x" * 500).blocked for _ in range(3))


def test_result_merges_one_verdict_per_guard_with_versions() -> None:
    scanner = PIPELINE.stream("output")
    scanner.feed("nothing to see")
    scanner.finish()
    result = scanner.result
    assert [v.guard for v in result.verdicts] == ["size", "secrets", "pii"]
    assert all(v.version for v in result.verdicts)
    assert all(v.stage == "output" for v in result.verdicts)
    assert not result.blocked
    assert result.block is None
    assert scanner.text == "nothing to see"


def test_empty_stream_and_empty_deltas() -> None:
    scanner = PIPELINE.stream("output")
    assert scanner.feed("").release == ""
    step = scanner.finish()
    assert step.release == ""
    assert not step.blocked


def test_a_key_hidden_by_many_zero_width_spaces_is_held_back() -> None:
    key = SECRETS["aws_access_key"]
    hidden = "\u200b".join(key)  # 39 characters for 20 visible ones
    hidden = hidden[:10] + "\u200b" * 500 + hidden[10:]
    text = "prefix text " * 30 + hidden + " the end"
    start = text.index(key[0] + "\u200b")
    scanner = PIPELINE.stream("output")
    released = ""
    for ch in text:
        step = scanner.feed(ch)
        released += step.release
        if step.blocked:
            break
    assert step.blocked
    assert len(released) <= start


def test_window_guard_overlap_ignores_size_guards() -> None:
    pipeline = build_pipeline([{"type": "size", "max_output_chars": 10}])
    scanner = pipeline.stream("output")
    assert scanner.hold == 0
    assert scanner.feed("abc").release == "abc"
