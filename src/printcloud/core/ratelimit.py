"""Rate limits and lockouts: fixed-window counters per key.

`Limiter.hit(key)` counts an attempt and raises `RateLimited` once the key has
used up its window; `check(key)` only raises; `reset(key)` clears a key after
a success. Counters live in this process, or in Redis (`PRINTCLOUD_RATE_LIMIT_URL`)
so that every replica sees the same count.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Protocol

from printcloud.core.errors import RateLimited, Unavailable


class Counter(Protocol):
    def incr(self, key: str, window: int) -> tuple[int, float]: ...
    def get(self, key: str) -> tuple[int, float]: ...
    def delete(self, key: str) -> None: ...
    def items(self, prefix: str) -> list[tuple[str, int, float]]: ...


class MemoryCounter:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._data: dict[str, tuple[int, float]] = {}

    def _live(self, key: str, now: float) -> tuple[int, float] | None:
        entry = self._data.get(key)
        if entry and entry[1] <= now:
            del self._data[key]
            return None
        return entry

    def incr(self, key: str, window: int) -> tuple[int, float]:
        now = time.monotonic()
        with self._lock:
            entry = self._live(key, now)
            count, reset_at = entry if entry else (0, now + window)
            self._data[key] = (count + 1, reset_at)
            if len(self._data) > 100_000:
                for k in [k for k, (_, r) in self._data.items() if r <= now]:
                    del self._data[k]
            return count + 1, reset_at - now

    def get(self, key: str) -> tuple[int, float]:
        now = time.monotonic()
        with self._lock:
            entry = self._live(key, now)
            return (entry[0], entry[1] - now) if entry else (0, 0.0)

    def delete(self, key: str) -> None:
        with self._lock:
            self._data.pop(key, None)

    def items(self, prefix: str) -> list[tuple[str, int, float]]:
        now = time.monotonic()
        with self._lock:
            return [
                (k, c, r - now)
                for k, (c, r) in self._data.items()
                if k.startswith(prefix) and r > now
            ]


class RedisCounter:
    def __init__(self, url: str) -> None:
        import redis

        self._redis = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self._errors = (redis.RedisError,)

    def incr(self, key: str, window: int) -> tuple[int, float]:
        try:
            pipe = self._redis.pipeline()
            pipe.incr(f"pc:rl:{key}")
            pipe.expire(f"pc:rl:{key}", window, nx=True)
            pipe.pttl(f"pc:rl:{key}")
            count, _, ttl = pipe.execute()
        except self._errors as exc:
            raise Unavailable("rate-limit store unavailable") from exc
        return int(count), max(0.0, int(ttl) / 1000)

    def get(self, key: str) -> tuple[int, float]:
        try:
            pipe = self._redis.pipeline()
            pipe.get(f"pc:rl:{key}")
            pipe.pttl(f"pc:rl:{key}")
            count, ttl = pipe.execute()
        except self._errors as exc:
            raise Unavailable("rate-limit store unavailable") from exc
        return (int(count), max(0.0, int(ttl) / 1000)) if count else (0, 0.0)

    def delete(self, key: str) -> None:
        try:
            self._redis.delete(f"pc:rl:{key}")
        except self._errors as exc:
            raise Unavailable("rate-limit store unavailable") from exc

    def items(self, prefix: str) -> list[tuple[str, int, float]]:
        out = []
        try:
            for raw in self._redis.scan_iter(match=f"pc:rl:{prefix}*", count=500):
                key = raw.decode()[len("pc:rl:") :]
                count, ttl = self.get(key)
                if count:
                    out.append((key, count, ttl))
        except self._errors as exc:
            raise Unavailable("rate-limit store unavailable") from exc
        return out


def make_counter(url: str | None) -> Counter:
    return RedisCounter(url) if url else MemoryCounter()


@dataclass
class Limiter:
    """At most `limit` attempts per `window` seconds for each key under `name`."""

    counter: Counter
    name: str
    limit: int
    window: int = 60

    def _key(self, key: str) -> str:
        return f"{self.name}:{key}"

    def hit(self, key: str) -> None:
        count, remaining = self.counter.incr(self._key(key), self.window)
        if count > self.limit:
            raise RateLimited(
                f"too many {self.name} attempts; try again later", retry_after=int(remaining) + 1
            )

    def check(self, key: str) -> None:
        count, remaining = self.counter.get(self._key(key))
        if count >= self.limit:
            raise RateLimited(
                f"too many {self.name} attempts; try again later", retry_after=int(remaining) + 1
            )

    def reset(self, key: str) -> None:
        self.counter.delete(self._key(key))

    def locked(self) -> list[tuple[str, int, float]]:
        """Keys at or over the limit: (key, attempts, seconds until unlock)."""
        prefix = f"{self.name}:"
        return [
            (k[len(prefix) :], c, r) for k, c, r in self.counter.items(prefix) if c >= self.limit
        ]
