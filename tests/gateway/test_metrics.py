"""The gateway's Prometheus registry and the dashboard snapshot.

``render()`` is always read back with prometheus_client's own parser, so the text is checked by
a real consumer of the format rather than by string comparisons alone.
"""

from __future__ import annotations

import itertools
import json
import math
import statistics
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelseal.gateway.metrics import (
    LATENCY_SAMPLES,
    MAX_KEYS,
    MAX_MODELS,
    OTHER,
    SECONDS_BUCKETS,
    TOKEN_BUCKETS,
    TOP_N,
    Metrics,
    escape_label_value,
    percentile,
)

parser = pytest.importorskip("prometheus_client.parser")


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass(frozen=True)
class FakeFinding:
    guard: str
    category: str


def families(text: str) -> dict[str, Any]:
    return {family.name: family for family in parser.text_string_to_metric_families(text)}


def samples(text: str, name: str) -> list[Any]:
    """All samples whose sample name is ``name`` (e.g. ``x_bucket``, ``x_total``)."""
    found: list[Any] = []
    for family in parser.text_string_to_metric_families(text):
        found.extend(s for s in family.samples if s.name == name)
    return found


def request(metrics: Metrics, **overrides: Any) -> None:
    args: dict[str, Any] = {
        "model": "gemma",
        "operation": "chat",
        "status": "ok",
        "duration_s": 0.02,
        "ttft_s": 0.005,
        "input_tokens": 10,
        "output_tokens": 5,
        "key": "team-a",
        "blocked_by": None,
    }
    args.update(overrides)
    metrics.observe_request(**args)


# --- buckets and the text format -------------------------------------------------------------


@pytest.mark.parametrize(
    ("buckets", "first", "last"), [(SECONDS_BUCKETS, 0.0005, 60.0), (TOKEN_BUCKETS, 1.0, 65536.0)]
)
def test_buckets_strictly_increase_over_the_agreed_range(
    buckets: tuple[float, ...], first: float, last: float
) -> None:
    assert buckets[0] == first
    assert buckets[-1] == last
    assert all(a < b for a, b in itertools.pairwise(buckets))


def test_empty_registry_renders_every_family_with_help_and_type() -> None:
    text = Metrics(Clock()).render()
    parsed = families(text)
    expected = {
        "gen_ai_client_operation_duration_seconds": "histogram",
        "gen_ai_client_token_usage": "histogram",
        "gen_ai_server_time_to_first_token_seconds": "histogram",
        "modelseal_guard_latency_seconds": "histogram",
        "modelseal_guard_decisions": "counter",
        "modelseal_ratelimit_rejections": "counter",
        "modelseal_seal_valid": "gauge",
        "modelseal_seal_not_after_timestamp_seconds": "gauge",
        "modelseal_receipts_issued": "counter",
        "modelseal_requests_in_flight": "gauge",
    }
    for name, kind in expected.items():
        assert parsed[name].type == kind, name
    assert text.endswith("\n")
    for line in text.splitlines():
        assert line.startswith(("# HELP ", "# TYPE ")) or " " in line


def test_help_lines_name_the_opentelemetry_instruments() -> None:
    parsed = families(Metrics(Clock()).render())
    assert parsed["gen_ai_client_operation_duration_seconds"].documentation.startswith(
        "gen_ai.client.operation.duration: "
    )
    assert "OpenTelemetry GenAI semantic conventions" in (
        parsed["gen_ai_client_operation_duration_seconds"].documentation
    )
    assert parsed["gen_ai_client_token_usage"].documentation.startswith(
        "gen_ai.client.token.usage: "
    )
    assert parsed["gen_ai_server_time_to_first_token_seconds"].documentation.startswith(
        "gen_ai.server.time_to_first_token: "
    )


def test_histogram_buckets_are_cumulative_and_match_counts_and_sums() -> None:
    metrics = Metrics(Clock())
    durations = [0.0001, 0.0005, 0.0007, 0.02, 0.02, 0.3, 1.0, 59.0, 75.0]
    for d in durations:
        request(metrics, duration_s=d, input_tokens=3, output_tokens=70000)
    text = metrics.render()
    buckets = samples(text, "gen_ai_client_operation_duration_seconds_bucket")
    by_le = {float(s.labels["le"]): s.value for s in buckets}
    assert len(buckets) == len(SECONDS_BUCKETS) + 1
    values = [by_le[b] for b in sorted(by_le)]
    assert values == sorted(values)
    assert by_le[0.0005] == 2  # an observation equal to a bound counts in that bucket
    assert by_le[0.001] == 3
    assert by_le[0.025] == 5
    assert by_le[60.0] == 8
    assert by_le[math.inf] == len(durations)
    [count] = samples(text, "gen_ai_client_operation_duration_seconds_count")
    [total] = samples(text, "gen_ai_client_operation_duration_seconds_sum")
    assert count.value == len(durations)
    assert total.value == pytest.approx(sum(durations))
    assert count.labels == {
        "gen_ai_operation_name": "chat",
        "gen_ai_request_model": "gemma",
        "status": "ok",
        "guard": "none",
    }

    tokens = samples(text, "gen_ai_client_token_usage_bucket")
    output = {
        float(s.labels["le"]): s.value for s in tokens if s.labels["gen_ai_token_type"] == "output"
    }
    assert output[65536.0] == 0  # 70000 tokens overflow into +Inf only
    assert output[math.inf] == len(durations)
    inputs = {
        float(s.labels["le"]): s.value for s in tokens if s.labels["gen_ai_token_type"] == "input"
    }
    assert inputs[1.0] == 0
    assert inputs[4.0] == len(durations)
    sums = {
        s.labels["gen_ai_token_type"]: s.value
        for s in samples(text, "gen_ai_client_token_usage_sum")
    }
    assert sums == {"input": 3 * len(durations), "output": 70000 * len(durations)}


def test_blocked_requests_carry_the_guard_label_and_unknown_tokens_are_not_recorded() -> None:
    metrics = Metrics(Clock())
    request(
        metrics,
        status="blocked",
        blocked_by=FakeFinding("secrets", "secret.aws_access_key"),
        input_tokens=0,
        output_tokens=0,
        ttft_s=None,
    )
    request(metrics, status="blocked", blocked_by=("pii", "pii.card_number"), ttft_s=None)
    text = metrics.render()
    counts = {
        (s.labels["status"], s.labels["guard"]): s.value
        for s in samples(text, "gen_ai_client_operation_duration_seconds_count")
    }
    assert counts == {("blocked", "secrets"): 1, ("blocked", "pii"): 1}
    token_counts = samples(text, "gen_ai_client_token_usage_count")
    assert {s.labels["gen_ai_token_type"]: s.value for s in token_counts} == {
        "input": 1,
        "output": 1,
    }
    assert samples(text, "gen_ai_server_time_to_first_token_seconds_count") == []
    snap = metrics.snapshot()
    assert snap["blocks"] == [
        {"guard": "pii", "category": "pii.card_number", "count": 1},
        {"guard": "secrets", "category": "secret.aws_access_key", "count": 1},
    ]
    assert snap["requests"] == {"total": 2, "by_status": {"blocked": 2}}


def test_guard_decisions_and_latency() -> None:
    metrics = Metrics(Clock())
    metrics.observe_guard(
        guard="secrets", stage="input", blocked=False, category=None, latency_s=1e-5
    )
    metrics.observe_guard(
        guard="secrets", stage="input", blocked=True, category="secret.jwt", latency_s=3e-5
    )
    metrics.observe_guard(
        guard="pii", stage="output", blocked=False, category="pii.email", latency_s=2e-4
    )
    text = metrics.render()
    decisions = {
        (s.labels["guard"], s.labels["stage"], s.labels["action"], s.labels["category"]): s.value
        for s in samples(text, "modelseal_guard_decisions_total")
    }
    assert decisions == {
        ("secrets", "input", "pass", "none"): 1,
        ("secrets", "input", "block", "secret.jwt"): 1,
        ("pii", "output", "flag", "pii.email"): 1,
    }
    latency = {
        (s.labels["guard"], s.labels["stage"]): s.value
        for s in samples(text, "modelseal_guard_latency_seconds_count")
    }
    assert latency == {("secrets", "input"): 2, ("pii", "output"): 1}
    guards = metrics.snapshot()["guards"]
    assert guards[1] == {
        "guard": "secrets",
        "stage": "input",
        "checks": 2,
        "blocked": 1,
        "flagged": 0,
        "latency_mean_s": pytest.approx(2e-5),
    }
    assert guards[0]["flagged"] == 1


def test_seal_gauges_follow_the_latest_seal() -> None:
    metrics = Metrics(Clock())
    metrics.set_seal(
        serial="0a1b",
        model="gemma",
        root="sha256:" + "ab" * 32,
        valid=True,
        not_after="2030-01-02T03:04:05Z",
        checks=[{"name": "bundle", "ok": True}],
    )
    text = metrics.render()
    [valid] = samples(text, "modelseal_seal_valid")
    assert valid.labels == {"model": "gemma", "serial": "0a1b"}
    assert valid.value == 1
    [expiry] = samples(text, "modelseal_seal_not_after_timestamp_seconds")
    assert expiry.value == 1893553445.0

    metrics.set_seal(serial="0c", model="gemma", root=None, valid=False, not_after=None, checks=[])
    text = metrics.render()
    [valid] = samples(text, "modelseal_seal_valid")
    assert (valid.labels["serial"], valid.value) == ("0c", 0)
    assert samples(text, "modelseal_seal_not_after_timestamp_seconds") == []
    seal = metrics.snapshot()["seal"]
    assert seal["valid"] is False
    assert seal["serial"] == "0c"
    assert seal["checks"] == []


def test_in_flight_receipts_and_rate_limits() -> None:
    metrics = Metrics(Clock())
    metrics.in_flight(+1)
    metrics.in_flight(+1)
    metrics.in_flight(-1)
    metrics.receipt_issued()
    metrics.receipt_issued()
    metrics.rate_limited(key="team-a", limit="tokens")
    metrics.rate_limited(key="team-a", limit="tokens")
    metrics.rate_limited(key="team-b", limit="requests")
    text = metrics.render()
    assert samples(text, "modelseal_requests_in_flight")[0].value == 1
    assert samples(text, "modelseal_receipts_issued_total")[0].value == 2
    rejected = {
        (s.labels["key"], s.labels["limit"]): s.value
        for s in samples(text, "modelseal_ratelimit_rejections_total")
    }
    assert rejected == {("team-a", "tokens"): 2, ("team-b", "requests"): 1}
    snap = metrics.snapshot()
    assert snap["in_flight"] == 1
    assert snap["receipts"] == 2
    assert snap["rate_limited"]["total"] == 3
    assert snap["rate_limited"]["by_limit"] == {"tokens": 2, "requests": 1}
    assert snap["rate_limited"]["top"][0] == {"key": "team-a", "limit": "tokens", "count": 2}


def test_key_levels_are_sorted_capped_and_exported() -> None:
    metrics = Metrics(Clock())
    levels = [{"key": f"k{i}", "limit": "requests", "used_fraction": i / 20} for i in range(20)]
    metrics.set_key_levels(levels)
    keys = metrics.snapshot()["keys"]
    assert len(keys) == TOP_N
    assert [k["key"] for k in keys] == [f"k{i}" for i in range(19, 19 - TOP_N, -1)]
    exported = samples(metrics.render(), "modelseal_ratelimit_used_ratio")
    assert len(exported) == 20
    metrics.set_key_levels([{"key": "k1", "limit": "tokens", "used_fraction": math.nan}])
    assert metrics.snapshot()["keys"] == [{"key": "k1", "limit": "tokens", "used_fraction": 0.0}]
    assert len(samples(metrics.render(), "modelseal_ratelimit_used_ratio")) == 1


# --- label escaping --------------------------------------------------------------------------


def test_escape_label_value_handles_backslash_quote_and_newline() -> None:
    assert escape_label_value('a\\b"c\nd') == 'a\\\\b\\"c\\nd'
    assert escape_label_value("plain") == "plain"


label_text = st.text(alphabet=st.characters(exclude_categories=["Cs"]), min_size=0, max_size=40)


@settings(max_examples=150, deadline=None)
@given(model=label_text, key=label_text, guard=label_text, category=label_text, limit=label_text)
def test_any_label_value_round_trips_through_the_parser(
    model: str, key: str, guard: str, category: str, limit: str
) -> None:
    metrics = Metrics(Clock())
    request(metrics, model=model, key=key, status="blocked", blocked_by=(guard, category))
    metrics.observe_guard(guard=guard, stage="input", blocked=True, category=category, latency_s=0)
    metrics.rate_limited(key=key, limit=limit)
    metrics.set_seal(serial=key, model=model, root=None, valid=True, not_after=None, checks=[])
    text = metrics.render()
    [count] = samples(text, "gen_ai_client_operation_duration_seconds_count")
    assert count.labels["gen_ai_request_model"] == model
    assert count.labels["guard"] == guard
    [decision] = samples(text, "modelseal_guard_decisions_total")
    assert decision.labels["guard"] == guard
    assert decision.labels["category"] == (category or "none")
    [rejection] = samples(text, "modelseal_ratelimit_rejections_total")
    assert rejection.labels == {"key": key, "limit": limit}
    [valid] = samples(text, "modelseal_seal_valid")
    assert valid.labels["model"] == model
    assert valid.labels["serial"] == (key or "none")


# --- cardinality -----------------------------------------------------------------------------


def test_key_labels_are_capped_and_the_rest_count_as_other() -> None:
    metrics = Metrics(Clock())
    extra = 7
    for i in range(MAX_KEYS + extra):
        request(metrics, key=f"key-{i}")
    for i in range(MAX_KEYS, MAX_KEYS + 3):
        metrics.rate_limited(key=f"key-{i}", limit="requests")
    metrics.rate_limited(key="key-0", limit="requests")
    text = metrics.render()
    per_key = {s.labels["key"]: s.value for s in samples(text, "modelseal_key_requests_total")}
    assert len(per_key) == MAX_KEYS + 1
    assert per_key[OTHER] == extra
    assert per_key["key-0"] == 1
    assert f"key-{MAX_KEYS}" not in per_key
    rejected = {
        s.labels["key"]: s.value for s in samples(text, "modelseal_ratelimit_rejections_total")
    }
    assert rejected == {OTHER: 3, "key-0": 1}


def test_model_labels_are_capped() -> None:
    metrics = Metrics(Clock())
    for i in range(MAX_MODELS + 5):
        request(metrics, model=f"m{i}")
    text = metrics.render()
    models = {
        s.labels["gen_ai_request_model"]: s.value
        for s in samples(text, "gen_ai_client_operation_duration_seconds_count")
    }
    assert len(models) == MAX_MODELS + 1
    assert models[OTHER] == 5


def test_requests_without_a_key_count_as_anonymous() -> None:
    metrics = Metrics(Clock())
    request(metrics, key=None)
    [sample] = samples(metrics.render(), "modelseal_key_requests_total")
    assert sample.labels == {"key": "anonymous", "status": "ok"}


# --- snapshot --------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_snapshot_percentiles_match_numpy_and_statistics(seed: int) -> None:
    rng = np.random.default_rng(seed)
    values = [float(v) for v in rng.lognormal(mean=-4, sigma=1.2, size=997)]
    clock = Clock()
    metrics = Metrics(clock)
    for i, v in enumerate(values):
        clock.now = 1000.0 + i * 0.01
        request(metrics, duration_s=v, ttft_s=v / 2)
    snap = metrics.snapshot()
    latency = snap["latency"]
    assert latency["samples"] == len(values)
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    for q, name in [(50, "p50"), (95, "p95"), (99, "p99")]:
        assert latency[name] == pytest.approx(float(np.percentile(values, q)), rel=1e-12)
        assert latency[name] == pytest.approx(cuts[q - 1], rel=1e-9)
    assert snap["ttft"]["p50"] == pytest.approx(float(np.percentile(values, 50)) / 2)


@settings(max_examples=200, deadline=None)
@given(
    values=st.lists(st.floats(0, 1e6, allow_nan=False), min_size=1, max_size=50),
    q=st.floats(0, 1),
)
def test_percentile_agrees_with_numpy(values: list[float], q: float) -> None:
    got = percentile(sorted(values), q)
    assert got == pytest.approx(float(np.percentile(values, q * 100)), rel=1e-9, abs=1e-9)


def test_percentiles_only_cover_the_last_minute_and_a_bounded_ring() -> None:
    clock = Clock()
    metrics = Metrics(clock)
    request(metrics, duration_s=5.0)
    clock.now += 30
    request(metrics, duration_s=0.01)
    assert metrics.snapshot()["latency"]["samples"] == 2
    clock.now += 31
    latency = metrics.snapshot()["latency"]
    assert latency["samples"] == 1
    assert latency["p99"] == 0.01
    clock.now += 61
    assert metrics.snapshot()["latency"] == {"p50": None, "p95": None, "p99": None, "samples": 0}
    for _ in range(LATENCY_SAMPLES + 10):
        request(metrics)
    assert metrics.snapshot()["latency"]["samples"] == LATENCY_SAMPLES


def test_rps_and_token_rates_over_a_ten_second_window() -> None:
    clock = Clock(1000.0)
    metrics = Metrics(clock)
    assert metrics.snapshot()["rps"] == 0
    clock.now = 1000.5
    for _ in range(20):
        request(metrics, input_tokens=7, output_tokens=3)
    clock.now = 1002.0  # uptime 2 s: the rate divides by the uptime, not the whole window
    snap = metrics.snapshot()
    assert snap["rps"] == pytest.approx(10.0)
    assert snap["tokens"] == {
        "input": 140,
        "output": 60,
        "input_per_s": pytest.approx(70.0),
        "output_per_s": pytest.approx(30.0),
    }
    clock.now = 1005.5
    for _ in range(10):
        request(metrics)
    clock.now = 1009.0  # window covers seconds 1000..1009, 9 s long
    assert metrics.snapshot()["rps"] == pytest.approx(30 / 9)
    clock.now = 1012.0  # second 1000 left the window
    assert metrics.snapshot()["rps"] == pytest.approx(10 / 9)
    clock.now = 1020.0
    snap = metrics.snapshot()
    assert snap["rps"] == 0
    assert snap["tokens"]["input"] == 140 + 10 * 10  # totals never decay


def test_series_holds_the_last_minute_per_second() -> None:
    clock = Clock(2000.2)
    metrics = Metrics(clock)
    for i in range(3):
        request(metrics, duration_s=0.01 * (i + 1))
    clock.now = 2001.3
    request(metrics, duration_s=0.5)
    clock.now = 2002.0
    series = metrics.snapshot()["series"]
    assert len(series["rps"]) == len(series["latency_s"]) == 60
    assert series["rps"][-2:] == [3.0, 1.0]
    assert series["latency_s"][-2] == pytest.approx(0.02)
    assert series["latency_s"][-1] == pytest.approx(0.5)
    assert series["latency_s"][0] is None
    clock.now = 2000.0 + 64 + 0.5  # the per-second bins wrap around
    request(metrics)
    clock.now += 1
    series = metrics.snapshot()["series"]
    assert sum(series["rps"]) == 1.0


def test_snapshot_is_strict_json_even_for_nonsense_inputs() -> None:
    metrics = Metrics(Clock())
    request(metrics, duration_s=math.nan, ttft_s=math.inf)
    request(metrics, duration_s=-1.0)
    metrics.observe_guard(
        guard="g", stage="input", blocked=False, category=None, latency_s=math.nan
    )
    metrics.set_key_levels([{"key": "k", "limit": "tokens", "used_fraction": math.inf}])
    snap = metrics.snapshot()
    json.dumps(snap, allow_nan=False)
    assert snap["latency"]["p99"] == 0.0
    families(metrics.render())
