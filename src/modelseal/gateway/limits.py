"""Token-bucket rate limits, in memory or shared across gateway replicas in Redis.

A bucket holds up to ``capacity`` tokens (the per-minute limit) and refills continuously at
``per_second`` (limit / 60). A new bucket starts full. :meth:`LimitStore.take` removes
``amount`` if the bucket holds that many (``allowed``) and otherwise leaves it alone and says
how long until it would (``retry_after_s``; an amount above the capacity never fits). With
``debt=True`` the amount is always debited, so the level may go negative: the gateway charges
the tokens an answer actually used after the fact, and the key waits until the debt is repaid.
A negative amount with ``debt=True`` is a refund (the level never exceeds the capacity).

:class:`RedisLimits` runs the whole read-refill-take-write step as one Lua script, so it is
atomic across any number of replicas, and it reads the time with Redis ``TIME`` inside the
script, so replicas whose clocks disagree still agree on every bucket. A key expires once its
bucket would be full again (a missing key *is* a full bucket), so idle keys cost no memory.
Redis that cannot be reached raises :class:`LimitsUnavailable` (a GatewayError naming the URL,
password masked): the gateway fails closed.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from modelseal.errors import ConfigError, GatewayError

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = [
    "LimitStore",
    "LimitsUnavailable",
    "MemoryLimits",
    "RedisLimits",
    "Take",
    "open_limits",
    "redact_url",
]


class LimitsUnavailable(GatewayError):
    """The shared rate-limit store (Redis) cannot be reached or answered nonsense."""


@dataclass(frozen=True)
class Take:
    """The result of one take: whether it was allowed, the level after it, and (when refused)
    the seconds until the same take would be allowed."""

    allowed: bool
    remaining: float
    retry_after_s: float


class LimitStore(Protocol):
    async def take(
        self, bucket: str, amount: float, capacity: float, per_second: float, *, debt: bool = False
    ) -> Take: ...

    async def level(self, bucket: str, capacity: float, per_second: float) -> float: ...

    async def close(self) -> None: ...


def _check(amount: float, capacity: float, per_second: float, *, debt: bool) -> None:
    if not (math.isfinite(capacity) and capacity > 0):
        raise ConfigError(f"rate limit capacity must be a positive number, got {capacity!r}")
    if not (math.isfinite(per_second) and per_second > 0):
        raise ConfigError(f"rate limit refill must be a positive number, got {per_second!r}")
    if not math.isfinite(amount) or (amount < 0 and not debt):
        raise ConfigError(f"rate limit amount must be a finite number >= 0, got {amount!r}")


def _step(
    tokens: float, amount: float, capacity: float, per_second: float, debt: bool
) -> tuple[bool, float, float]:
    """One take on a refilled level: (allowed, level after, retry after)."""
    if debt or tokens >= amount:
        return True, min(capacity, tokens - amount), 0.0
    return False, tokens, (amount - tokens) / per_second


class MemoryLimits:
    """Buckets in this process (one gateway). ``clock`` is injectable for tests."""

    # buckets that are full again are dropped once the table grows past this many
    _SWEEP_AT = 4096

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        # bucket -> (level, time of level, capacity, per_second)
        self._buckets: dict[str, tuple[float, float, float, float]] = {}
        self._lock = threading.Lock()

    def _refilled(self, bucket: str, capacity: float, per_second: float, now: float) -> float:
        state = self._buckets.get(bucket)
        if state is None:
            return capacity
        tokens, then, _, _ = state
        if now > then:
            tokens += (now - then) * per_second
        return min(capacity, tokens)

    async def take(
        self, bucket: str, amount: float, capacity: float, per_second: float, *, debt: bool = False
    ) -> Take:
        _check(amount, capacity, per_second, debt=debt)
        with self._lock:
            now = self._clock()
            tokens = self._refilled(bucket, capacity, per_second, now)
            allowed, left, retry = _step(tokens, amount, capacity, per_second, debt)
            self._buckets[bucket] = (left, now, capacity, per_second)
            if len(self._buckets) > self._SWEEP_AT:
                self._sweep(now)
        return Take(allowed, left, retry)

    async def level(self, bucket: str, capacity: float, per_second: float) -> float:
        _check(0.0, capacity, per_second, debt=False)
        with self._lock:
            return self._refilled(bucket, capacity, per_second, self._clock())

    def _sweep(self, now: float) -> None:
        full = [
            name
            for name, (tokens, then, capacity, rate) in self._buckets.items()
            if tokens + max(0.0, now - then) * rate >= capacity
        ]
        for name in full:
            del self._buckets[name]

    async def check(self) -> None:
        """Nothing to reach: always ready."""

    async def close(self) -> None:
        with self._lock:
            self._buckets.clear()

    def __len__(self) -> int:
        return len(self._buckets)


# KEYS[1]: the bucket. ARGV: amount, capacity, per_second, debt ("1"/"0"), mode ("take"/"level").
# Returns {allowed (0/1), level after, retry after} with the numbers as strings (Redis would
# truncate Lua numbers to integers).
_LUA = """
if redis.replicate_commands then pcall(redis.replicate_commands) end
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local amount = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local rate = tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then
  tokens = capacity
  ts = now
end
if now > ts then
  tokens = tokens + (now - ts) * rate
end
if tokens > capacity then tokens = capacity end
if ARGV[5] == 'level' then
  return {0, string.format('%.17g', tokens), '0'}
end
local allowed = 0
local retry = 0
if ARGV[4] == '1' or tokens >= amount then
  tokens = tokens - amount
  if tokens > capacity then tokens = capacity end
  allowed = 1
else
  retry = (amount - tokens) / rate
end
if tokens >= capacity then
  redis.call('DEL', KEYS[1])
else
  redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens),
             'ts', string.format('%.17g', now))
  redis.call('PEXPIRE', KEYS[1], math.ceil((capacity - tokens) / rate * 1000) + 1000)
end
return {allowed, string.format('%.17g', tokens), string.format('%.17g', retry)}
"""


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for error messages and logs)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = f"{user}:***@{host}" + (f":{port}" if port is not None else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


class RedisLimits:
    """Buckets in Redis, shared by every replica that uses the same URL and prefix.

    ``timeout_s`` bounds connecting and each command, so a hung Redis refuses requests quickly
    rather than holding them.
    """

    def __init__(
        self,
        url: str,
        prefix: str = "modelseal:",
        *,
        timeout_s: float = 2.0,
        max_connections: int = 64,
    ) -> None:
        try:
            from redis.asyncio import BlockingConnectionPool, Redis
        except ImportError:  # pragma: no cover - redis is a dependency
            raise ConfigError(
                "--redis needs the 'redis' package", hint="pip install 'redis>=5'"
            ) from None
        self.url = url
        self.prefix = prefix
        self._shown = redact_url(url)
        try:
            # a blocking pool: a burst of requests waits (up to timeout_s) for a connection
            # instead of failing with "too many connections"
            pool = BlockingConnectionPool.from_url(
                url,
                max_connections=max_connections,
                timeout=timeout_s,
                socket_connect_timeout=timeout_s,
                socket_timeout=timeout_s,
                health_check_interval=30,
            )
        except ValueError as exc:
            raise ConfigError(f"bad Redis URL {self._shown}: {exc}") from None
        self._client: Redis = Redis.from_pool(pool)
        self._script = self._client.register_script(_LUA)

    async def _run(self, bucket: str, args: list[str]) -> tuple[bool, float, float]:
        from redis.exceptions import RedisError

        try:
            reply: Any = await self._script(keys=[self.prefix + bucket], args=args)
        except (RedisError, OSError) as exc:
            raise LimitsUnavailable(
                f"cannot use Redis at {self._shown} for rate limits: {exc}",
                hint="check that Redis is running and reachable; the gateway refuses "
                "requests it cannot count",
            ) from None
        try:
            allowed, tokens, retry = reply
            return bool(int(allowed)), float(tokens), float(retry)
        except (TypeError, ValueError):
            raise LimitsUnavailable(
                f"Redis at {self._shown} answered the rate-limit script with {reply!r}"
            ) from None

    async def take(
        self, bucket: str, amount: float, capacity: float, per_second: float, *, debt: bool = False
    ) -> Take:
        _check(amount, capacity, per_second, debt=debt)
        args = [repr(float(amount)), repr(float(capacity)), repr(float(per_second))]
        allowed, tokens, retry = await self._run(bucket, [*args, "1" if debt else "0", "take"])
        return Take(allowed, tokens, retry)

    async def level(self, bucket: str, capacity: float, per_second: float) -> float:
        _check(0.0, capacity, per_second, debt=False)
        args = ["0.0", repr(float(capacity)), repr(float(per_second)), "0", "level"]
        _, tokens, _ = await self._run(bucket, args)
        return tokens

    async def check(self) -> None:
        """Reach Redis now (LimitsUnavailable naming the URL if it cannot be reached)."""
        from redis.exceptions import RedisError

        try:
            await self._client.ping()
        except (RedisError, OSError) as exc:
            raise LimitsUnavailable(
                f"cannot reach Redis at {self._shown}: {exc}",
                hint="start Redis or fix --redis; the gateway shares rate limits through it",
            ) from None

    async def close(self) -> None:
        await self._client.aclose()

    def __repr__(self) -> str:
        return f"RedisLimits({self._shown!r}, prefix={self.prefix!r})"


def open_limits(url: str | None, prefix: str = "modelseal:") -> LimitStore:
    """In memory for ``None``/``""``/``"memory"``; Redis for ``redis://``, ``rediss://`` and
    ``unix://`` URLs (nothing is contacted until the first use or :meth:`RedisLimits.check`)."""
    if url is None or url in ("", "memory", "memory://"):
        return MemoryLimits()
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme not in ("redis", "rediss", "unix"):
        raise ConfigError(
            f"unsupported rate-limit store {redact_url(url)!r}",
            hint="use redis://HOST:PORT/DB, rediss://... or unix:///path/to/redis.sock",
        )
    return RedisLimits(url, prefix)
