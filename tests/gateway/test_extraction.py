"""The extraction monitor on its own: sketches, request facts, every feature, the score, the
actions' hysteresis, bounded memory, and the ``extraction:`` config section."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelseal.errors import ConfigError
from modelseal.gateway.config import parse_config
from modelseal.gateway.extraction import (
    ALERT,
    DEFAULT_WEIGHTS,
    FEATURES,
    REFUSE,
    STRIP,
    TIGHTEN,
    ExtractionMonitor,
    ExtractionSettings,
    MinHasher,
    action_names,
    client_address,
    mentions_reasoning,
    request_facts,
    subject_address,
)

WORDS = [f"{a}{b}" for a in ("ka", "lo", "mi", "su", "te", "vo", "ra", "ne") for b in range(60)]


class Clock:
    """A settable clock: the monitor judges expiry on it (the machine clock would make these
    tests depend on how long the machine has been up)."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def random_text(rng: random.Random, n: int = 12) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def chat(text: str, *, history: bool = False, **extra: Any) -> dict[str, Any]:
    messages = [{"role": "user", "content": text}]
    if history:
        messages = [
            {"role": "user", "content": "earlier question about something else entirely"},
            {"role": "assistant", "content": "an earlier answer"},
            *messages,
        ]
    return {"model": "m", "messages": messages, **extra}


def feed(
    monitor: ExtractionMonitor,
    n: int,
    *,
    text: Callable[[int], str],
    key: str | None = "k",
    address: str | None = None,
    start: float = 0.0,
    gap: Callable[[int], float] = lambda i: 10.0,
    history: bool = False,
    prompt_tokens: int = 200,
    completion_tokens: int = 200,
    **extra: Any,
) -> float:
    """Feed ``n`` requests; returns the time after the last one."""
    t = start
    for i in range(n):
        monitor.observe(
            key_id=key,
            address=address,
            operation="chat",
            body=chat(text(i), history=history, **extra),
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            at=t,
        )
        t += gap(i)
    return t


def features(monitor: ExtractionMonitor, subject: str = "key:k") -> dict[str, float]:
    report = monitor.subject(subject)
    assert report is not None
    return {name: float(item["value"]) for name, item in report["features"].items()}


def diverse(seed: int = 1) -> Callable[[int], str]:
    rng = random.Random(seed)
    return lambda i: random_text(rng, rng.randint(8, 20))


# --- sketches ------------------------------------------------------------------------------------


def test_identical_texts_have_similarity_one_and_unrelated_texts_near_zero() -> None:
    hasher = MinHasher()
    rng = random.Random(3)
    a = hasher.signature("the quick brown fox jumps over the lazy dog again")
    b = hasher.signature("The quick brown fox jumps over the lazy dog again!")
    assert a is not None
    assert b is not None
    assert MinHasher.similarity(a[0], b[0]) == 1.0
    assert a[1] == b[1]  # same words: same digest
    unrelated = []
    for _ in range(50):
        x = hasher.signature(random_text(rng, 15))
        y = hasher.signature(random_text(rng, 15))
        assert x is not None
        assert y is not None
        unrelated.append(MinHasher.similarity(x[0], y[0]))
    assert float(np.mean(unrelated)) < 0.05  # the b-bit chance agreement is corrected away


def test_similarity_estimates_the_jaccard_index_of_the_shingles() -> None:
    hasher = MinHasher()
    rng = random.Random(4)
    errors = []
    for _ in range(40):
        base = [rng.choice(WORDS) for _ in range(30)]
        changed = list(base)
        for i in rng.sample(range(30), rng.randint(1, 12)):
            changed[i] = rng.choice(WORDS)
        units_a, units_b = hasher.units(" ".join(base)), hasher.units(" ".join(changed))

        def shingles(units: list[str]) -> set[str]:
            return set(units) | {f"{x} {y}" for x, y in itertools.pairwise(units)}

        exact = len(shingles(units_a) & shingles(units_b)) / len(
            shingles(units_a) | shingles(units_b)
        )
        a, b = hasher.signature(" ".join(base)), hasher.signature(" ".join(changed))
        assert a is not None
        assert b is not None
        errors.append(MinHasher.similarity(a[0], b[0]) - exact)
    assert abs(float(np.mean(errors))) < 0.05  # unbiased
    assert float(np.std(errors)) < 0.1  # about 0.06 with 64 hashes


def test_short_chat_is_not_sketched_but_chinese_text_is() -> None:
    hasher = MinHasher()
    assert hasher.signature("thanks!") is None
    assert hasher.signature("shorter please") is None
    assert hasher.signature("") is None
    a = hasher.signature("\u4f60\u597d\uff0c\u8bf7\u95ee\u4eca\u5929\u5929\u6c14\u600e\u4e48\u6837")
    b = hasher.signature("\u4f60\u597d\uff0c\u8bf7\u95ee\u660e\u5929\u5929\u6c14\u600e\u4e48\u6837")
    c = hasher.signature("\u6211\u60f3\u5b66\u4e60\u600e\u4e48\u505a\u996d\u548c\u70e4\u9762\u5305")
    assert a is not None
    assert b is not None
    assert c is not None
    assert MinHasher.similarity(a[0], b[0]) > 0.3 > MinHasher.similarity(a[0], c[0])


def test_a_slot_swap_is_near_identical() -> None:
    hasher = MinHasher()
    a = hasher.signature("What is the capital city of France? Reply with the city name only.")
    b = hasher.signature("What is the capital city of Spain? Reply with the city name only.")
    assert a is not None
    assert b is not None
    assert MinHasher.similarity(a[0], b[0]) >= 0.6
    assert a[1] != b[1]


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=300), st.text(max_size=300))
def test_signatures_are_deterministic_and_similarity_symmetric(x: str, y: str) -> None:
    one, two = MinHasher(), MinHasher()
    a, b = one.signature(x), two.signature(x)
    assert (a is None) == (b is None)
    if a is None or b is None:
        return
    assert np.array_equal(a[0], b[0])
    assert a[1] == b[1]
    c = one.signature(y)
    if c is not None:
        forward, backward = MinHasher.similarity(a[0], c[0]), MinHasher.similarity(c[0], a[0])
        assert forward == backward
        assert 0.0 <= forward <= 1.0
        rows = MinHasher.similarities(a[0], np.stack([c[0], a[0]]))
        assert rows[0] == pytest.approx(forward)
        assert rows[1] == 1.0


# --- request facts -------------------------------------------------------------------------------


def test_request_facts_read_turns_reasoning_logprobs_and_length() -> None:
    facts = request_facts("chat", chat("hello there my friend how are you"))
    assert facts.single_turn
    assert not facts.reasoning
    assert not facts.logprobs
    assert facts.max_tokens is None
    assert facts.prompt == "hello there my friend how are you"
    multi = request_facts("chat", chat("and then?", history=True, max_completion_tokens=300))
    assert not multi.single_turn
    assert multi.prompt == "and then?"
    assert multi.max_tokens == 300
    completion = request_facts("text_completion", {"prompt": ["Once upon a time"], "echo": True})
    assert completion.single_turn
    assert completion.logprobs
    assert completion.prompt == "Once upon a time"
    parts = {
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "describe"}, {"x": 1}]},
        ]
    }
    assert request_facts("chat", parts).prompt == "describe"


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"logprobs": True}, True),
        ({"top_logprobs": 5}, True),
        ({"logit_bias": {"50256": -100}}, True),
        ({"echo": True}, True),
        ({"n": 4}, True),
        ({"best_of": 3}, True),
        ({"logprobs": False}, False),
        ({"logprobs": None, "top_logprobs": 0}, False),
        ({"logit_bias": {}}, False),
        ({"n": 1, "best_of": 1}, False),
        ({"echo": False}, False),
    ],
)
def test_logprob_like_parameters(extra: dict[str, Any], expected: bool) -> None:
    assert request_facts("chat", chat("a question of five words", **extra)).logprobs is expected


@pytest.mark.parametrize(
    "text",
    [
        "Solve this. Think step by step.",
        "Please reason step-by-step before answering",
        "Use chain-of-thought",
        "Show your reasoning and then the answer",
        "show me all your work",
        "Explain your reasoning in detail",
        "I want the full reasoning, not just the result",
        "Let's think about it carefully",
        "give the reasoning trace",
        "<think> first",
        "Erkl\u00e4re es Schritt f\u00fcr Schritt",
        "Expl\u00edcalo paso a paso",
        "\u8bf7\u4e00\u6b65\u4e00\u6b65\u5730\u89e3\u91ca",
    ],
)
def test_reasoning_trace_requests_are_recognised(text: str) -> None:
    assert mentions_reasoning(text)


@pytest.mark.parametrize(
    "text",
    [
        "I work at a bakery and my steps to make bread keep failing",
        "What do you think about Lisbon?",
        "The staircase has twelve steps; how tall is it?",
        "Explain photosynthesis",
        "",
    ],
)
def test_ordinary_text_is_not_a_reasoning_request(text: str) -> None:
    assert not mentions_reasoning(text)


def test_reasoning_parameters_and_system_prompts_count() -> None:
    assert request_facts(
        "chat", chat("five words in this prompt", reasoning_effort="high")
    ).reasoning
    kwargs = {"chat_template_kwargs": {"enable_thinking": True}}
    assert request_facts("chat", chat("five words in this prompt", **kwargs)).reasoning
    body = {
        "messages": [
            {"role": "system", "content": "Always think step by step."},
            {"role": "user", "content": "what is 17 times 23"},
        ]
    }
    assert request_facts("chat", body).reasoning
    assert not request_facts(
        "chat", chat("five words in this prompt", reasoning_effort=None)
    ).reasoning


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)
FIELDS = st.sampled_from(
    (
        "messages prompt logprobs top_logprobs logit_bias echo n best_of max_tokens "
        "reasoning_effort chat_template_kwargs role content"
    ).split()
)
MESSAGE = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "assistant", "system", "tool", 3]), "content": JSON}
)


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(FIELDS, JSON | st.lists(MESSAGE, max_size=4), max_size=6),
    st.sampled_from(["chat", "text_completion"]),
)
def test_any_json_body_is_read_without_error(body: dict[str, Any], operation: str) -> None:
    facts = request_facts(operation, body)
    assert isinstance(facts.prompt, str)
    assert facts.max_tokens is None or facts.max_tokens > 0
    monitor = ExtractionMonitor(clock=Clock())
    monitor.observe(key_id="k", address="::1", operation=operation, body=body, at=1.0)
    assert monitor.subject("key:k") is not None


# --- addresses -----------------------------------------------------------------------------------


def test_client_address_trusts_forwarded_for_only_as_configured() -> None:
    forwarded = ["6.6.6.6, 203.0.113.7", "10.1.1.1"]
    assert client_address("10.0.0.2", forwarded, 0) == "10.0.0.2"  # not trusted
    assert client_address("10.0.0.2", forwarded, 1) == "10.1.1.1"  # what our proxy saw
    assert client_address("10.0.0.2", forwarded, 2) == "203.0.113.7"  # two proxies
    assert client_address("10.0.0.2", forwarded, 4) == "10.0.0.2"  # too few entries
    assert client_address("10.0.0.2", [], 1) == "10.0.0.2"
    assert client_address(None, [], 0) is None


def test_ipv6_clients_count_as_their_64_network() -> None:
    assert subject_address("2001:db8:1:2:aaaa::1") == "2001:db8:1:2::/64"
    assert subject_address("2001:db8:1:2:ffff:1:2:3") == "2001:db8:1:2::/64"
    assert subject_address("[2001:db8:1:3::9]") == "2001:db8:1:3::/64"
    assert subject_address("::ffff:192.0.2.9") == "192.0.2.9"
    assert subject_address("192.0.2.9") == "192.0.2.9"
    assert subject_address("testclient") == "testclient"
    assert len(subject_address("x" * 500)) == 100


# --- features ------------------------------------------------------------------------------------


def test_volume() -> None:
    busy, quiet = ExtractionMonitor(clock=Clock()), ExtractionMonitor(clock=Clock())
    feed(busy, 1300, text=diverse(), gap=lambda i: 2.7)  # 1333 an hour
    feed(quiet, 60, text=diverse(), gap=lambda i: 60.0)
    assert features(busy)["volume"] == 1.0
    assert features(quiet)["volume"] == 0.0


def test_coverage_counts_novel_prompts_at_scale() -> None:
    novel, repeated = ExtractionMonitor(clock=Clock()), ExtractionMonitor(clock=Clock())
    feed(novel, 1000, text=diverse(), gap=lambda i: 3.6)
    feed(repeated, 1000, text=lambda i: "the same question asked yet again", gap=lambda i: 3.6)
    assert features(novel)["coverage"] == 1.0
    assert features(repeated)["coverage"] == 0.0
    assert features(repeated)["volume"] == features(novel)["volume"] > 0.5


def test_output_ratio() -> None:
    long_answers, short_answers = ExtractionMonitor(clock=Clock()), ExtractionMonitor(clock=Clock())
    feed(long_answers, 60, text=diverse(), prompt_tokens=20, completion_tokens=400)
    feed(short_answers, 60, text=diverse(), prompt_tokens=800, completion_tokens=200)
    assert features(long_answers)["output_ratio"] == 1.0
    assert features(short_answers)["output_ratio"] == 0.0


def test_long_outputs() -> None:
    asks, fills, neither = (
        ExtractionMonitor(clock=Clock()),
        ExtractionMonitor(clock=Clock()),
        ExtractionMonitor(clock=Clock()),
    )
    feed(asks, 60, text=diverse(), max_tokens=4096)
    feed(fills, 60, text=diverse(), max_tokens=300, completion_tokens=299)
    feed(neither, 60, text=diverse(), max_tokens=300, completion_tokens=40)
    assert features(asks)["long_outputs"] == 1.0
    assert features(fills)["long_outputs"] == 1.0
    assert features(neither)["long_outputs"] == 0.0


def test_template_reuse() -> None:
    templated, free = ExtractionMonitor(clock=Clock()), ExtractionMonitor(clock=Clock())
    rng = random.Random(5)
    frame = "Please rewrite the following product description for a luxury audience: {}"
    feed(templated, 80, text=lambda i: frame.format(random_text(rng, 4)))
    feed(free, 80, text=diverse())
    assert features(templated)["template_reuse"] == 1.0
    assert features(free)["template_reuse"] == 0.0


def test_sweep_needs_different_near_identical_consecutive_prompts() -> None:
    sweep, repeat, free = (
        ExtractionMonitor(clock=Clock()),
        ExtractionMonitor(clock=Clock()),
        ExtractionMonitor(clock=Clock()),
    )
    feed(sweep, 80, text=lambda i: f"What is the boiling point of compound number {i} in kelvin?")
    feed(repeat, 80, text=lambda i: "What is the boiling point of water in kelvin?")
    feed(free, 80, text=diverse())
    assert features(sweep)["sweep"] == 1.0
    assert features(repeat)["sweep"] == 0.0  # the same prompt again is no sweep ...
    assert features(repeat)["template_reuse"] == 1.0  # ... but reuse
    assert features(free)["sweep"] == 0.0


def test_single_turn_and_follow_ups_are_not_sketched() -> None:
    single, conversation = ExtractionMonitor(clock=Clock()), ExtractionMonitor(clock=Clock())
    feed(single, 60, text=diverse())
    feed(conversation, 60, text=lambda i: "can you give me an example of that", history=True)
    assert features(single)["single_turn"] == 1.0
    assert features(conversation)["single_turn"] == 0.0
    assert features(conversation)["template_reuse"] == 0.0  # follow-ups repeat naturally


def test_reasoning_share() -> None:
    asks, plain = ExtractionMonitor(clock=Clock()), ExtractionMonitor(clock=Clock())
    rng = random.Random(6)
    feed(asks, 60, text=lambda i: random_text(rng) + " Think step by step.")
    feed(plain, 60, text=diverse())
    assert features(asks)["reasoning"] == 1.0
    assert features(plain)["reasoning"] == 0.0


def test_logprobs_share() -> None:
    probing, plain, rare = (
        ExtractionMonitor(clock=Clock()),
        ExtractionMonitor(clock=Clock()),
        ExtractionMonitor(clock=Clock()),
    )
    feed(probing, 60, text=diverse(), logprobs=True, top_logprobs=20)
    feed(plain, 60, text=diverse())
    feed(rare, 60, text=diverse(), logprobs=False)
    feed(rare, 2, text=diverse(), logprobs=True, start=700.0)
    assert features(probing)["logprobs"] == 1.0
    assert features(plain)["logprobs"] == 0.0
    assert features(rare)["logprobs"] < 0.01  # two in sixty-two: under the ramp


def test_regularity_tells_scripts_from_people() -> None:
    script, person = ExtractionMonitor(clock=Clock()), ExtractionMonitor(clock=Clock())
    rng = random.Random(8)
    feed(script, 60, text=diverse(), gap=lambda i: 20.0 * rng.uniform(0.97, 1.03))
    feed(person, 60, text=diverse(), gap=lambda i: rng.lognormvariate(3.0, 1.2))
    assert features(script)["regularity"] == 1.0
    assert features(person)["regularity"] == 0.0
    few = ExtractionMonitor(clock=Clock())
    feed(few, 5, text=diverse(), gap=lambda i: 20.0)
    report = few.subject("key:k")
    assert report is not None
    assert report["features"]["regularity"]["raw"] is None  # too few gaps to judge


def test_keys_per_address_only_for_addresses() -> None:
    monitor = ExtractionMonitor(clock=Clock())
    t = 0.0
    for i in range(60):
        t = feed(monitor, 1, text=diverse(i), key=f"acct-{i % 15}", address="192.0.2.5", start=t)
    assert features(monitor, "addr:192.0.2.5")["keys_per_address"] == 1.0
    assert "keys_per_address" not in features(monitor, "key:acct-1")
    few = ExtractionMonitor(clock=Clock())
    t = 0.0
    for i in range(60):
        t = feed(few, 1, text=diverse(i), key=f"user-{i % 3}", address="192.0.2.6", start=t)
    assert features(few, "addr:192.0.2.6")["keys_per_address"] == 0.0


def test_old_requests_leave_the_window() -> None:
    monitor = ExtractionMonitor(clock=Clock())
    end = feed(monitor, 60, text=diverse(), logprobs=True)
    assert features(monitor)["logprobs"] == 1.0
    feed(monitor, 60, text=diverse(2), start=end + 2 * 3600.0)
    assert features(monitor)["logprobs"] == 0.0


# --- the score -----------------------------------------------------------------------------------


def campaign(monitor: ExtractionMonitor, n: int, key: str = "k", start: float = 0.0) -> float:
    rng = random.Random(9)
    return feed(
        monitor,
        n,
        key=key,
        text=lambda i: random_text(rng) + " Show your reasoning step by step.",
        gap=lambda i: 6.0,
        start=start,
        logprobs=True,
        max_tokens=4096,
        prompt_tokens=20,
        completion_tokens=900,
    )


def test_the_score_is_a_documented_noisy_or_of_the_features() -> None:
    monitor = ExtractionMonitor(clock=Clock())
    campaign(monitor, 80)
    report = monitor.subject("key:k")
    assert report is not None
    keep = 1.0
    for name, item in report["features"].items():
        assert item["weight"] == DEFAULT_WEIGHTS[name]
        assert item["contribution"] == pytest.approx(item["weight"] * item["value"], abs=1e-4)
        keep *= 1.0 - item["weight"] * item["value"]
    assert report["score"] == pytest.approx(report["evidence"] * (1.0 - keep), abs=1e-3)
    assert report["score"] >= 0.85
    assert report["reasons"][0] == "logprobs"  # the largest contribution first
    assert set(report["features"]) == set(FEATURES) - {"keys_per_address"}


def test_few_requests_score_low_whatever_they_look_like() -> None:
    monitor = ExtractionMonitor(clock=Clock())
    campaign(monitor, 10)
    report = monitor.subject("key:k")
    assert report is not None
    assert report["evidence"] == pytest.approx(10 / 50)
    assert report["score"] <= 0.2
    assert monitor.actions("k", None) == 0


def test_weights_can_switch_a_feature_off() -> None:
    default = ExtractionMonitor(clock=Clock())
    muted = ExtractionMonitor(
        ExtractionSettings(weights={"logprobs": 0.0, "reasoning": 0.0}), clock=Clock()
    )
    campaign(default, 80)
    campaign(muted, 80)
    assert muted.top(1)[0]["score"] < default.top(1)[0]["score"] - 0.1
    assert "logprobs" not in muted.top(1)[0]["reasons"]


def test_actions_start_at_their_thresholds_and_stop_below_the_hysteresis_band() -> None:
    # only the logprobs feature counts, so its share sets the score: ramp 0.05 -> 0.5
    weights = dict.fromkeys(FEATURES, 0.0) | {"logprobs": 1.0}
    settings_ = ExtractionSettings(min_requests=1, history=16, weights=weights)
    clock = Clock()  # actions() judges expiry on the monitor's clock: keep it with the requests
    monitor = ExtractionMonitor(settings_, clock=clock)
    changes: list[tuple[str, str]] = []

    def one(t: float, logprobs: bool) -> float:
        clock.now = t
        found = monitor.observe(
            key_id="k",
            address=None,
            operation="chat",
            body=chat("just some ordinary words here", logprobs=logprobs),
            at=t,
        )
        changes.extend((c.action, c.state) for c in found)
        report = monitor.subject("key:k")
        assert report is not None
        return float(report["score"])

    t = 0.0
    for _ in range(10):
        t += 10.0
        one(t, True)
    assert changes == [
        ("alert", "on"),
        ("strip_logprobs", "on"),
        ("tighten", "on"),
        ("refuse", "on"),
    ]
    assert monitor.actions("k", None) == ALERT | STRIP | TIGHTEN | REFUSE
    changes.clear()
    scores = []
    while monitor.actions("k", None) & ALERT:
        t += 10.0
        scores.append(one(t, False))
    # each action stopped only below its threshold minus 0.1, never as soon as it was crossed
    stops = [name for name, state in changes if state == "off"]
    assert stops == ["refuse", "tighten", "strip_logprobs", "alert"]
    assert scores[-1] < 0.4
    assert any(0.4 <= s < 0.5 for s in scores)  # a score between alert - 0.1 and alert kept it
    assert all(state == "off" for _, state in changes)


def test_a_subject_unseen_for_a_window_has_no_actions() -> None:
    clock = Clock()
    monitor = ExtractionMonitor(clock=clock)
    end = campaign(monitor, 80)
    clock.now = end
    assert monitor.actions("k", None) & REFUSE
    clock.now = end + 3601.0
    assert monitor.actions("k", None) == 0
    report = monitor.subject("key:k")
    assert report is not None
    assert report["actions"] == []


def test_address_actions_apply_to_every_key_from_it() -> None:
    clock = Clock()
    monitor = ExtractionMonitor(clock=clock)
    t = 0.0
    rng = random.Random(2)
    for i in range(90):
        body = chat(random_text(rng) + " think step by step", max_tokens=2048)
        monitor.observe(
            key_id=f"acct-{i % 30}", address="2001:db8:5:5::1", operation="chat", body=body, at=t
        )
        t += 30.0
    clock.now = t
    assert monitor.actions("acct-3", "2001:db8:5:5:abcd::9") & ALERT  # same /64
    assert monitor.actions("acct-3", None) == 0  # the key alone is below the evidence rule
    assert monitor.actions("someone-else", "2001:db8:5:5::77") & ALERT


def test_exempt_keys_are_never_scored() -> None:
    monitor = ExtractionMonitor(ExtractionSettings(exempt_keys=("eval-harness",)), clock=Clock())
    campaign(monitor, 80, key="eval-harness")
    assert monitor.subject("key:eval-harness") is None
    assert len(monitor) == 0
    assert monitor.actions("eval-harness", None) == 0


def test_memory_is_bounded_by_history_and_subjects() -> None:
    quiet = {f"{name}_at": None for name in ("alert", "strip_logprobs", "tighten", "refuse")}
    monitor = ExtractionMonitor(
        ExtractionSettings(history=32, max_subjects=5, **quiet), clock=Clock()
    )
    feed(monitor, 200, text=diverse())
    subject = monitor._subjects["key:k"]
    assert subject.sigs.shape == (32, 64)
    assert subject.count == 200
    for i in range(10):
        feed(monitor, 1, key=f"other-{i}", text=diverse(i), start=3000.0 + i)
    assert len(monitor) == 5
    assert monitor.subject("key:k") is None  # the least recently seen went first
    assert monitor.subject("key:other-9") is not None
    assert monitor.memory_used() <= monitor.memory_bound()


def test_eviction_passes_over_subjects_under_an_action() -> None:
    monitor = ExtractionMonitor(ExtractionSettings(max_subjects=3), clock=Clock())
    end = campaign(monitor, 80, key="bad")
    for i in range(5):
        feed(monitor, 1, key=f"other-{i}", text=diverse(i), start=end + i)
    assert monitor.subject("key:bad") is not None
    assert len(monitor) == 3


def test_reset_forgets_a_subject() -> None:
    clock = Clock()
    monitor = ExtractionMonitor(clock=clock)
    clock.now = campaign(monitor, 80)
    assert monitor.actions("k", None)
    assert monitor.reset("key:k")
    assert not monitor.reset("key:k")
    assert monitor.actions("k", None) == 0


def test_report_lists_settings_features_and_cost() -> None:
    monitor = ExtractionMonitor(clock=Clock())
    campaign(monitor, 60)
    report = monitor.report(5)
    assert report["enabled"] is True
    assert [f["name"] for f in report["features"]] == list(FEATURES)
    assert report["settings"]["refuse_at"] == 0.85
    assert report["updates"] == 60
    assert report["update_mean_us"] > 0
    assert report["top"][0]["subject"] == "key:k"
    assert action_names(ALERT | REFUSE) == ["alert", "refuse"]


# --- config --------------------------------------------------------------------------------------


def test_config_defaults_and_a_full_section() -> None:
    assert parse_config({}).extraction == ExtractionSettings()
    config = parse_config(
        {
            "extraction": {
                "enabled": True,
                "window_s": 1800,
                "min_requests": 20,
                "history": 64,
                "max_subjects": 100,
                "trusted_proxies": 1,
                "exempt_keys": ["eval"],
                "hysteresis": 0.05,
                "alert_at": 0.4,
                "strip_logprobs_at": None,
                "tighten_at": 0.6,
                "tighten_factor": 0.5,
                "tighten_requests_per_minute": 30,
                "refuse_at": None,
                "weights": {"sweep": 0.7},
            }
        }
    )
    x = config.extraction
    assert (x.window_s, x.min_requests, x.history, x.max_subjects) == (1800, 20, 64, 100)
    assert x.trusted_proxies == 1
    assert x.exempt_keys == ("eval",)
    assert x.thresholds() == [(ALERT, "alert", 0.4), (TIGHTEN, "tighten", 0.6)]
    assert x.weight_of("sweep") == 0.7
    assert x.weight_of("volume") == DEFAULT_WEIGHTS["volume"]
    assert not parse_config({"extraction": {"enabled": False}}).extraction.enabled


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"alrt_at": 0.5}, "unknown key extraction.alrt_at"),
        ({"alert_at": 1.5}, "extraction.alert_at: must be between 0 and 1"),
        ({"refuse_at": "high"}, "extraction.refuse_at: expected a number"),
        ({"hysteresis": 0.9}, "extraction.hysteresis: must be between 0 and 0.5"),
        ({"tighten_factor": 0}, "extraction.tighten_factor: must be above 0"),
        ({"window_s": 10}, "extraction.window_s: must be at least 60"),
        ({"window_s": float("inf")}, "extraction.window_s: expected a finite number"),
        ({"history": 4}, "extraction.history: must be between 8 and 4096"),
        ({"min_requests": 2.5}, "extraction.min_requests: expected an integer"),
        ({"max_subjects": 0}, "extraction.max_subjects: must be >= 1"),
        ({"trusted_proxies": -1}, "extraction.trusted_proxies: must be between 0 and 16"),
        ({"exempt_keys": "eval"}, "extraction.exempt_keys: expected a list of key ids"),
        ({"enabled": "yes"}, "extraction.enabled: expected true or false"),
        ({"weights": {"sweeep": 0.5}}, "extraction.weights: unknown feature 'sweeep'"),
        ({"weights": {"sweep": 2}}, "extraction.weights.sweep: must be between 0 and 1"),
        ({"weights": [1]}, "extraction.weights: expected a mapping"),
    ],
)
def test_config_errors_name_the_key(section: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config({"extraction": section})
    assert message in str(raised.value)
