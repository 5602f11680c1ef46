"""Token buckets in memory (fake clock) and in the real Redis on this machine."""

from __future__ import annotations

import asyncio
import math
import os
import socket
import time
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelseal.errors import ConfigError, GatewayError
from modelseal.gateway.limits import (
    LimitsUnavailable,
    MemoryLimits,
    RedisLimits,
    Take,
    open_limits,
    redact_url,
)

REDIS_URL = os.environ.get("MODELSEAL_TEST_REDIS", "redis://127.0.0.1:6379/0")


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# -- in memory ---------------------------------------------------------------------------------


def test_memory_bucket_starts_full_and_refuses_when_empty() -> None:
    clock = FakeClock()
    limits = MemoryLimits(clock)

    async def go() -> list[Take]:
        return [await limits.take("k", 1, 3, 0.5) for _ in range(4)]

    takes = asyncio.run(go())
    assert [t.allowed for t in takes] == [True, True, True, False]
    assert [t.remaining for t in takes] == [2, 1, 0, 0]
    assert takes[-1].retry_after_s == pytest.approx(2.0)  # 1 token at 0.5 per second


def test_memory_refill_is_continuous_and_capped() -> None:
    clock = FakeClock()
    limits = MemoryLimits(clock)

    async def go() -> None:
        assert (await limits.take("k", 10, 10, 1)).allowed
        clock.now += 2.5
        assert await limits.level("k", 10, 1) == pytest.approx(2.5)
        refused = await limits.take("k", 4, 10, 1)
        assert not refused.allowed
        assert refused.retry_after_s == pytest.approx(1.5)
        clock.now += 1.5
        assert (await limits.take("k", 4, 10, 1)).allowed
        clock.now += 3600
        assert await limits.level("k", 10, 1) == 10

    asyncio.run(go())


def test_memory_level_does_not_consume_and_buckets_are_independent() -> None:
    limits = MemoryLimits(FakeClock())

    async def go() -> None:
        assert await limits.level("a", 5, 1) == 5
        assert (await limits.take("a", 5, 5, 1)).allowed
        assert await limits.level("a", 5, 1) == 0
        assert await limits.level("a", 5, 1) == 0
        assert (await limits.take("b", 5, 5, 1)).allowed

    asyncio.run(go())


def test_memory_debt_goes_negative_and_must_be_repaid() -> None:
    clock = FakeClock()
    limits = MemoryLimits(clock)

    async def go() -> None:
        assert (await limits.take("t", 8, 10, 1)).remaining == 2
        debt = await limits.take("t", 20, 10, 1, debt=True)
        assert debt.allowed
        assert debt.remaining == -18
        refused = await limits.take("t", 1, 10, 1)
        assert not refused.allowed
        assert refused.retry_after_s == pytest.approx(19)
        clock.now += 19
        assert (await limits.take("t", 1, 10, 1)).allowed
        # a refund (negative debt) never lifts the level over the capacity
        refund = await limits.take("t", -100, 10, 1, debt=True)
        assert refund.remaining == 10

    asyncio.run(go())


def test_memory_sweep_drops_only_full_buckets(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock()
    limits = MemoryLimits(clock)
    monkeypatch.setattr(MemoryLimits, "_SWEEP_AT", 10)

    async def go() -> None:
        await limits.take("keep", 100, 100, 0.001)
        for i in range(10):
            await limits.take(f"idle{i}", 1, 1, 1)
        clock.now += 5  # the idle buckets are full again, "keep" is not
        await limits.take("trigger", 1, 1, 1)
        assert len(limits) <= 2
        assert await limits.level("keep", 100, 0.001) < 1

    asyncio.run(go())


@pytest.mark.parametrize(
    ("amount", "capacity", "rate"),
    [(1, 0, 1), (1, -1, 1), (1, 1, 0), (1, math.inf, 1), (math.nan, 1, 1), (-1, 1, 1)],
)
def test_bad_arguments_are_refused(amount: float, capacity: float, rate: float) -> None:
    with pytest.raises(ConfigError):
        asyncio.run(MemoryLimits().take("k", amount, capacity, rate))


@settings(max_examples=200, deadline=None)
@given(
    capacity=st.floats(1, 100),
    rate=st.floats(0.01, 50),
    steps=st.lists(st.tuples(st.floats(0, 5), st.floats(0, 120)), max_size=40),
)
def test_memory_never_allows_more_than_capacity_plus_refill(
    capacity: float, rate: float, steps: list[tuple[float, float]]
) -> None:
    clock = FakeClock()
    limits = MemoryLimits(clock)
    allowed = 0.0
    elapsed = 0.0

    async def go() -> None:
        nonlocal allowed, elapsed
        for dt, amount in steps:
            clock.now += dt
            elapsed += dt
            take = await limits.take("k", amount, capacity, rate)
            assert take.remaining <= capacity + 1e-9
            if take.allowed:
                allowed += amount
                assert take.remaining >= -1e-9
            else:
                assert take.retry_after_s > 0

    asyncio.run(go())
    assert allowed <= capacity + rate * elapsed + 1e-6


def test_open_limits_choices() -> None:
    assert isinstance(open_limits(None), MemoryLimits)
    assert isinstance(open_limits(""), MemoryLimits)
    assert isinstance(open_limits("memory"), MemoryLimits)
    store = open_limits(REDIS_URL, prefix="x:")
    assert isinstance(store, RedisLimits)
    assert store.prefix == "x:"
    asyncio.run(store.close())
    with pytest.raises(ConfigError, match="unsupported"):
        open_limits("memcached://127.0.0.1:11211")
    with pytest.raises(ConfigError, match=r"\*\*\*"):
        open_limits("postgres://u:hunter2@h/db")


def test_redact_url_masks_passwords_only() -> None:
    assert redact_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
    assert redact_url("redis://user:hunter2@h:6380/1") == "redis://user:***@h:6380/1"
    assert redact_url("rediss://:hunter2@[::1]/0") == "rediss://:***@[::1]/0"
    assert "hunter2" not in redact_url("redis://:hunter2@h")


# -- Redis -------------------------------------------------------------------------------------


def _redis_up() -> bool:
    parts = urlsplit(REDIS_URL)
    try:
        with socket.create_connection((parts.hostname or "", parts.port or 6379), timeout=1):
            return True
    except OSError:
        return False


requires_redis = pytest.mark.skipif(not _redis_up(), reason=f"no Redis at {REDIS_URL}")


@pytest.fixture
def prefix() -> Iterator[str]:
    import redis

    name = f"modelseal-test-{uuid.uuid4().hex}:"
    yield name
    client = redis.Redis.from_url(REDIS_URL)
    try:
        for key in client.scan_iter(match=name + "*"):
            client.delete(key)
    finally:
        client.close()


def _raw(key: str) -> dict[bytes, bytes]:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        return client.hgetall(key)  # type: ignore[return-value]
    finally:
        client.close()


def _server_time() -> float:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        seconds, micros = client.time()
        return seconds + micros / 1e6
    finally:
        client.close()


@requires_redis
def test_redis_concurrent_takes_allow_exactly_the_capacity(prefix: str) -> None:
    async def go() -> list[Take]:
        limits = RedisLimits(REDIS_URL, prefix)
        try:
            return list(await asyncio.gather(*(limits.take("b", 1, 50, 1e-4) for _ in range(200))))
        finally:
            await limits.close()

    takes = asyncio.run(go())
    assert sum(t.allowed for t in takes) == 50
    assert all(t.retry_after_s > 0 for t in takes if not t.allowed)


@requires_redis
def test_redis_two_replicas_share_one_bucket(prefix: str) -> None:
    async def go() -> tuple[list[Take], list[Take], float]:
        first = RedisLimits(REDIS_URL, prefix)
        second = RedisLimits(REDIS_URL, prefix)
        try:
            a, b = await asyncio.gather(
                asyncio.gather(*(first.take("shared", 1, 50, 1e-4) for _ in range(100))),
                asyncio.gather(*(second.take("shared", 1, 50, 1e-4) for _ in range(100))),
            )
            level = await second.level("shared", 50, 1e-4)
            return list(a), list(b), level
        finally:
            await first.close()
            await second.close()

    a, b, level = asyncio.run(go())
    assert sum(t.allowed for t in a) + sum(t.allowed for t in b) == 50
    assert level < 1


@requires_redis
def test_redis_replica_sees_what_the_other_took(prefix: str) -> None:
    async def go() -> list[bool]:
        first = RedisLimits(REDIS_URL, prefix)
        second = RedisLimits(REDIS_URL, prefix)
        try:
            return [
                (await first.take("seq", 30, 50, 1e-4)).allowed,
                (await second.take("seq", 30, 50, 1e-4)).allowed,  # only 20 left
                (await second.take("seq", 20, 50, 1e-4)).allowed,
                (await first.take("seq", 1, 50, 1e-4)).allowed,
            ]
        finally:
            await first.close()
            await second.close()

    assert asyncio.run(go()) == [True, False, True, False]


@requires_redis
def test_redis_refill_follows_server_time(prefix: str) -> None:
    import redis

    async def drain() -> None:
        limits = RedisLimits(REDIS_URL, prefix)
        try:
            assert (await limits.take("r", 10, 10, 1)).allowed
            assert not (await limits.take("r", 5, 10, 1e-6)).allowed
        finally:
            await limits.close()

    asyncio.run(drain())
    state = _raw(prefix + "r")
    # the bucket's clock is Redis TIME, not this process's clock
    assert abs(float(state[b"ts"]) - _server_time()) < 60
    # move the bucket's last update 3 s into the past, as if 3 s had passed on the server
    client = redis.Redis.from_url(REDIS_URL)
    client.hset(prefix + "r", "ts", repr(float(state[b"ts"]) - 3))
    client.close()

    async def after() -> tuple[float, Take, Take]:
        limits = RedisLimits(REDIS_URL, prefix)
        try:
            level = await limits.level("r", 10, 1)
            return level, await limits.take("r", 3, 10, 1), await limits.take("r", 5, 10, 1)
        finally:
            await limits.close()

    level, three, five = asyncio.run(after())
    assert 3 <= level <= 10
    assert three.allowed
    assert not five.allowed
    assert five.retry_after_s > 0


@requires_redis
def test_redis_refill_in_real_time(prefix: str) -> None:
    async def go() -> Take:
        limits = RedisLimits(REDIS_URL, prefix)
        try:
            assert (await limits.take("t", 5, 5, 100)).allowed
            await asyncio.sleep(0.06)  # at least 6 tokens at 100/s: full again
            return await limits.take("t", 5, 5, 100)
        finally:
            await limits.close()

    assert asyncio.run(go()).allowed


@requires_redis
def test_redis_client_clock_does_not_matter(prefix: str, monkeypatch: pytest.MonkeyPatch) -> None:
    async def go() -> list[Take]:
        limits = RedisLimits(REDIS_URL, prefix)
        try:
            await limits.take("skew", 4, 4, 1e-4)
            # this replica's clock is an hour ahead: a bucket that trusted it would be full
            monkeypatch.setattr(time, "time", lambda: 1e10)
            return [await limits.take("skew", 1, 4, 1e-4) for _ in range(2)]
        finally:
            await limits.close()

    assert [t.allowed for t in asyncio.run(go())] == [False, False]


@requires_redis
def test_redis_debt_and_refund(prefix: str) -> None:
    async def go() -> list[Take]:
        limits = RedisLimits(REDIS_URL, prefix)
        try:
            return [
                await limits.take("d", 8, 10, 1e-3),
                await limits.take("d", 20, 10, 1e-3, debt=True),
                await limits.take("d", 1, 10, 1e-3),
                await limits.take("d", -100, 10, 1e-3, debt=True),
            ]
        finally:
            await limits.close()

    first, debt, refused, refund = asyncio.run(go())
    assert first.allowed
    assert first.remaining == pytest.approx(2, abs=0.01)
    assert debt.allowed
    assert debt.remaining == pytest.approx(-18, abs=0.01)
    assert not refused.allowed
    assert refused.retry_after_s == pytest.approx(19 / 1e-3, rel=0.01)
    assert refund.allowed
    assert refund.remaining == 10


@requires_redis
def test_redis_keys_expire_when_the_bucket_would_be_full(prefix: str) -> None:
    import redis

    async def go() -> tuple[float, float]:
        limits = RedisLimits(REDIS_URL, prefix)
        try:
            await limits.take("e", 6, 10, 2)  # 6 tokens short at 2 per s: full in 3 s
            await limits.take("full", 1, 10, 2)
            await limits.take("full", -1, 10, 2, debt=True)  # back to full: no key kept
            return await limits.level("never", 7, 1), await limits.level("e", 10, 2)
        finally:
            await limits.close()

    never, level = asyncio.run(go())
    assert never == 7
    assert level <= 10
    client = redis.Redis.from_url(REDIS_URL)
    try:
        ttl_ms = client.pttl(prefix + "e")
        assert 0 < ttl_ms <= 3000 + 1000
        assert client.exists(prefix + "full") == 0
        assert client.exists(prefix + "never") == 0
    finally:
        client.close()


@requires_redis
def test_redis_and_memory_agree_without_refill(prefix: str) -> None:
    amounts = [3, 3, 5, 1, 7, 2, 2, 9, 1, 1]

    async def go() -> tuple[list[bool], list[bool]]:
        redis_limits = RedisLimits(REDIS_URL, prefix)
        memory = MemoryLimits(FakeClock())
        try:
            shared = [(await redis_limits.take("m", a, 12, 1e-6)).allowed for a in amounts]
            local = [(await memory.take("m", a, 12, 1e-6)).allowed for a in amounts]
            return shared, local
        finally:
            await redis_limits.close()

    shared, local = asyncio.run(go())
    assert shared == local
    assert shared == [True, True, True, True, False, False, False, False, False, False]


def test_unreachable_redis_is_a_clear_error_naming_the_url() -> None:
    url = "redis://user:hunter2@127.0.0.1:1/0"

    async def go() -> None:
        limits = RedisLimits(url, timeout_s=1.0)
        try:
            with pytest.raises(LimitsUnavailable) as info:
                await limits.take("k", 1, 1, 1)
            assert "redis://user:***@127.0.0.1:1/0" in str(info.value)
            assert "hunter2" not in info.value.diagnostics()
            assert isinstance(info.value, GatewayError)
            with pytest.raises(LimitsUnavailable, match=r"127\.0\.0\.1:1"):
                await limits.check()
            with pytest.raises(LimitsUnavailable):
                await limits.level("k", 1, 1)
        finally:
            await limits.close()

    asyncio.run(go())


@requires_redis
def test_check_reaches_a_running_redis() -> None:
    async def go() -> None:
        limits = RedisLimits(REDIS_URL)
        try:
            await limits.check()
        finally:
            await limits.close()

    asyncio.run(go())
