"""Request-parameter policy: caps, strip/refuse/allow, stable notes, never another exception."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelseal.errors import ConfigError, InputError, PolicyViolation
from modelseal.gateway.policy import ParamPolicy, apply_policy

CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


def test_default_policy_strips_logprobs_and_echo_and_refuses_logit_bias() -> None:
    body = {**CHAT, "logprobs": True, "top_logprobs": 5, "echo": True}
    out, notes = apply_policy(body, ParamPolicy())
    assert out == CHAT
    assert notes == ["logprobs: stripped", "top_logprobs: stripped", "echo: stripped"]
    with pytest.raises(PolicyViolation) as info:
        apply_policy({**CHAT, "logit_bias": {"50256": -100}}, ParamPolicy())
    assert info.value.param == "logit_bias"
    assert isinstance(info.value, InputError)
    assert info.value.exit_code == 2


def test_no_caps_leaves_lengths_alone() -> None:
    body = {**CHAT, "max_tokens": 100000, "n": 50}
    out, notes = apply_policy(body, ParamPolicy())
    assert out == body
    assert notes == []


def test_max_tokens_capped_and_set_when_absent() -> None:
    policy = ParamPolicy(max_tokens=256)
    out, notes = apply_policy({**CHAT, "max_tokens": 4096}, policy)
    assert out["max_tokens"] == 256
    assert notes == ["max_tokens: capped 4096 -> 256"]
    out, notes = apply_policy(dict(CHAT), policy)
    assert out["max_tokens"] == 256
    assert notes == ["max_tokens: set to 256"]
    out, notes = apply_policy({**CHAT, "max_tokens": 10}, policy)
    assert out["max_tokens"] == 10
    assert notes == []
    out, _ = apply_policy({**CHAT, "max_tokens": None}, policy)
    assert out["max_tokens"] == 256


def test_max_completion_tokens_capped_and_mirrored_into_max_tokens() -> None:
    policy = ParamPolicy(max_tokens=256)
    out, notes = apply_policy({**CHAT, "max_completion_tokens": 9999}, policy)
    assert out["max_completion_tokens"] == 256
    assert out["max_tokens"] == 256
    assert notes == ["max_completion_tokens: capped 9999 -> 256", "max_tokens: set to 256"]
    # a smaller client limit is kept for the upstreams that only read max_tokens
    out, _ = apply_policy({**CHAT, "max_completion_tokens": 40}, policy)
    assert out["max_tokens"] == 40


def test_llama_cpp_n_predict_cannot_bypass_the_cap() -> None:
    policy = ParamPolicy(max_tokens=64)
    out, _ = apply_policy({**CHAT, "n_predict": 100000}, policy)
    assert out["n_predict"] == 64
    with pytest.raises(PolicyViolation) as info:
        apply_policy({**CHAT, "n_predict": -1}, policy)  # -1 means "no limit" to llama.cpp
    assert info.value.param == "n_predict"


@pytest.mark.parametrize("value", [0, -5, "9999", 1.5, True, [10], {"a": 1}, float("inf")])
def test_capped_length_must_be_a_positive_integer(value: Any) -> None:
    with pytest.raises(PolicyViolation) as info:
        apply_policy({**CHAT, "max_tokens": value}, ParamPolicy(max_tokens=100))
    assert info.value.param == "max_tokens"


def test_integral_float_is_accepted_as_integer() -> None:
    out, _ = apply_policy({**CHAT, "max_tokens": 500.0}, ParamPolicy(max_tokens=100))
    assert out["max_tokens"] == 100
    assert type(out["max_tokens"]) is int


def test_n_and_best_of_capped() -> None:
    body = {"model": "m", "prompt": "x", "n": 8, "best_of": 20}
    out, notes = apply_policy(body, ParamPolicy(max_n=2))
    assert (out["n"], out["best_of"]) == (2, 2)
    assert notes == ["n: capped 8 -> 2", "best_of: capped 20 -> 2"]
    out, notes = apply_policy({**body, "n": 1, "best_of": None}, ParamPolicy(max_n=2))
    assert out["n"] == 1
    assert notes == []
    with pytest.raises(PolicyViolation) as info:
        apply_policy({**body, "n": "3"}, ParamPolicy(max_n=2))
    assert info.value.param == "n"


def test_allow_keeps_and_refuse_refuses_each_parameter() -> None:
    values = {"logprobs": 3, "top_logprobs": 2, "logit_bias": {"1": 5}, "echo": True}
    allow = ParamPolicy(logprobs="allow", top_logprobs="allow", logit_bias="allow", echo="allow")
    out, notes = apply_policy({**CHAT, **values}, allow)
    assert out == {**CHAT, **values}
    assert notes == []
    for param, value in values.items():
        policy = ParamPolicy(**{**allow.to_dict(), param: "refuse"})
        with pytest.raises(PolicyViolation) as info:
            apply_policy({**CHAT, param: value}, policy)
        assert info.value.param == param
        assert param in str(info.value)


def test_values_that_ask_for_nothing_are_not_refused() -> None:
    policy = ParamPolicy(logprobs="refuse", logit_bias="refuse", echo="refuse")
    body = {**CHAT, "logprobs": False, "logit_bias": {}, "echo": None}
    out, notes = apply_policy(body, policy)
    assert out == body
    assert notes == []
    # strip removes them silently
    out, notes = apply_policy(body, ParamPolicy(logit_bias="strip"))
    assert "logprobs" not in out
    assert "logit_bias" not in out
    assert "echo" not in out
    assert notes == []


def test_legacy_completions_logprobs_zero_is_a_request() -> None:
    # /v1/completions logprobs=0 still returns the sampled token's log probability
    with pytest.raises(PolicyViolation):
        apply_policy({"prompt": "x", "logprobs": 0}, ParamPolicy(logprobs="refuse"))


def test_stripping_logprobs_strips_top_logprobs_that_needs_it() -> None:
    policy = ParamPolicy(logprobs="strip", top_logprobs="allow")
    out, notes = apply_policy({**CHAT, "logprobs": True, "top_logprobs": 3}, policy)
    assert "top_logprobs" not in out
    assert "logprobs" not in out
    assert notes == ["logprobs: stripped", "top_logprobs: stripped (needs logprobs)"]


def test_refusal_wins_over_caps_and_input_is_not_modified() -> None:
    body = {**CHAT, "max_tokens": 5000, "logprobs": True, "logit_bias": {"1": 1}}
    snapshot = copy.deepcopy(body)
    with pytest.raises(PolicyViolation):
        apply_policy(body, ParamPolicy(max_tokens=10))
    apply_policy({**CHAT, "max_tokens": 5000, "logprobs": True}, ParamPolicy(max_tokens=10))
    assert body == snapshot


def test_body_must_be_an_object() -> None:
    with pytest.raises(PolicyViolation):
        apply_policy([1, 2], ParamPolicy())  # type: ignore[arg-type]


def test_policy_from_dict_round_trip_and_errors() -> None:
    policy = ParamPolicy.from_dict({"max_tokens": 512, "max_n": 1, "logit_bias": "strip"})
    assert policy == ParamPolicy(max_tokens=512, max_n=1, logit_bias="strip")
    assert ParamPolicy.from_dict(policy.to_dict()) == policy
    with pytest.raises(ConfigError, match="max_tokns"):
        ParamPolicy.from_dict({"max_tokns": 5})
    with pytest.raises(ConfigError, match="logprobs"):
        ParamPolicy.from_dict({"logprobs": "drop"})
    with pytest.raises(ConfigError, match="max_tokens"):
        ParamPolicy(max_tokens=0)
    with pytest.raises(ConfigError, match="max_n"):
        ParamPolicy.from_dict({"max_n": True})
    with pytest.raises(ConfigError):
        ParamPolicy.from_dict(["max_n"])  # type: ignore[arg-type]


# -- property: any JSON-like body --------------------------------------------------------------

PARAMS = [
    "max_tokens",
    "max_completion_tokens",
    "n_predict",
    "n",
    "best_of",
    "logprobs",
    "top_logprobs",
    "logit_bias",
    "echo",
    "model",
    "prompt",
]
scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=8,
)
bodies = st.dictionaries(st.sampled_from(PARAMS) | st.text(max_size=6), json_values, max_size=8)
actions = st.sampled_from(["allow", "strip", "refuse"])
policies = st.builds(
    ParamPolicy,
    max_tokens=st.none() | st.integers(1, 10_000),
    max_n=st.none() | st.integers(1, 16),
    logprobs=actions,
    top_logprobs=actions,
    logit_bias=actions,
    echo=actions,
)


def _inactive(value: Any) -> bool:
    return value is None or value is False or (isinstance(value, dict | list | str) and not value)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=bodies, policy=policies)
def test_apply_policy_only_raises_policy_violation_and_result_obeys_policy(
    body: dict[str, Any], policy: ParamPolicy
) -> None:
    snapshot = copy.deepcopy(body)
    try:
        out, notes = apply_policy(body, policy)
    except PolicyViolation as exc:
        violation: PolicyViolation | None = exc
    else:
        violation = None
    if violation is not None:
        assert violation.param in PARAMS
        return
    assert body == snapshot
    assert all(isinstance(note, str) and note.isascii() for note in notes)
    if policy.max_tokens is not None:
        assert "max_tokens" in out
        for param in ("max_tokens", "max_completion_tokens", "n_predict"):
            if out.get(param) is not None:
                value = out[param]
                assert type(value) is int
                assert 1 <= value <= policy.max_tokens
    if policy.max_n is not None:
        for param in ("n", "best_of"):
            if out.get(param) is not None:
                assert type(out[param]) is int
                assert 1 <= out[param] <= policy.max_n
    for param in ("logprobs", "top_logprobs", "logit_bias", "echo"):
        action = getattr(policy, param)
        if action == "strip":
            assert param not in out
        if action == "refuse" and param in out:
            assert _inactive(out[param])
    # applying the policy to its own result changes nothing more
    again, more = apply_policy(out, policy)
    assert more == []
    assert again.keys() == out.keys()
