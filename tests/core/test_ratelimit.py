"""Fixed-window rate limits: the in-process counter, the Redis counter, the Limiter."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator

import pytest

from printcloud.core import ratelimit
from printcloud.core.errors import RateLimited, Unavailable
from printcloud.core.ratelimit import Counter, Limiter, MemoryCounter, RedisCounter, make_counter
from tests.conftest import free_port, require_peer

REDIS_URL = "redis://127.0.0.1:6379/15"


class FakeClock:
    """Stands in for the `time` module inside `printcloud.core.ratelimit` only."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(ratelimit, "time", fake)
    return fake


# -- MemoryCounter ---------------------------------------------------------------------


def test_memory_counter_counts_within_a_fixed_window(clock: FakeClock) -> None:
    counter = MemoryCounter()
    assert counter.get("k") == (0, 0.0)
    assert counter.incr("k", 60) == (1, 60.0)
    clock.now += 10
    assert counter.incr("k", 60) == (2, 50.0)  # the window does not slide
    assert counter.get("k") == (2, 50.0)
    assert counter.get("other") == (0, 0.0)


def test_memory_counter_window_expires(clock: FakeClock) -> None:
    counter = MemoryCounter()
    counter.incr("k", 60)
    counter.incr("k", 60)
    clock.now += 59.9
    assert counter.get("k")[0] == 2
    clock.now += 0.1
    assert counter.get("k") == (0, 0.0)
    assert counter.incr("k", 60) == (1, 60.0)  # a fresh window


def test_memory_counter_delete_and_items(clock: FakeClock) -> None:
    counter = MemoryCounter()
    counter.incr("login:a", 60)
    counter.incr("login:a", 60)
    counter.incr("login:b", 10)
    counter.incr("other:c", 60)
    assert sorted((k, c) for k, c, _ in counter.items("login:")) == [("login:a", 2), ("login:b", 1)]
    clock.now += 10
    assert [k for k, _, _ in counter.items("login:")] == ["login:a"]  # expired keys are not listed
    counter.delete("login:a")
    counter.delete("never-there")
    assert counter.items("login:") == []
    assert counter.get("other:c")[0] == 1


def test_make_counter_chooses_by_url() -> None:
    assert isinstance(make_counter(None), MemoryCounter)
    assert isinstance(make_counter(""), MemoryCounter)
    assert isinstance(make_counter(REDIS_URL), RedisCounter)


# -- Limiter ----------------------------------------------------------------------------


def test_limiter_hit_allows_limit_attempts_then_raises(clock: FakeClock) -> None:
    limiter = Limiter(MemoryCounter(), "login", limit=3, window=60)
    for _ in range(3):
        limiter.hit("alice")
    clock.now += 20
    with pytest.raises(RateLimited) as info:
        limiter.hit("alice")
    assert info.value.retry_after == 41  # 40 s left in the window, rounded up
    assert info.value.headers() == {"Retry-After": "41"}
    assert info.value.status_code == 429
    limiter.hit("bob")  # keys are independent


def test_limiter_check_refuses_once_the_limit_is_used_up(clock: FakeClock) -> None:
    limiter = Limiter(MemoryCounter(), "login", limit=2, window=60)
    limiter.check("alice")
    limiter.hit("alice")
    limiter.check("alice")
    limiter.hit("alice")
    with pytest.raises(RateLimited):
        limiter.check("alice")
    clock.now += 60
    limiter.check("alice")  # the window passed


def test_limiter_reset_and_locked(clock: FakeClock) -> None:
    counter = MemoryCounter()
    login = Limiter(counter, "login", limit=2, window=60)
    other = Limiter(counter, "client-auth", limit=1, window=60)
    login.hit("alice")
    login.hit("alice")
    login.hit("bob")
    other.hit("127.0.0.1")
    locked = login.locked()
    assert [(k, c) for k, c, _ in locked] == [("alice", 2)]
    assert 0 < locked[0][2] <= 60
    assert [k for k, _, _ in other.locked()] == ["127.0.0.1"]  # names do not mix
    login.reset("alice")
    assert login.locked() == []
    login.check("alice")


def test_limiter_name_prefixes_keys() -> None:
    counter = MemoryCounter()
    a = Limiter(counter, "a", limit=1)
    b = Limiter(counter, "b", limit=1)
    a.hit("k")
    b.check("k")  # b's key is untouched


# -- RedisCounter against a real Redis ------------------------------------------------------


def _redis_available() -> bool:
    try:
        import redis

        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping())
    except Exception:  # any failure means the peer is missing
        return False


@pytest.fixture
def redis_name() -> Iterator[str]:
    """A limiter name no one else uses; its keys are deleted afterwards."""
    require_peer(_redis_available(), f"Redis at {REDIS_URL} is not reachable")
    import redis

    name = f"test-{secrets.token_hex(6)}"
    yield name
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=f"pc:rl:{name}*"))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.mark.peer("redis")
def test_redis_counter_incr_get_delete_items(redis_name: str) -> None:
    counter: Counter = RedisCounter(REDIS_URL)
    key = f"{redis_name}:alice"
    assert counter.get(key) == (0, 0.0)
    count, remaining = counter.incr(key, 60)
    assert count == 1 and 59 < remaining <= 60
    count, remaining = counter.incr(key, 60)
    assert count == 2 and remaining <= 60
    assert counter.get(key)[0] == 2
    counter.incr(f"{redis_name}:bob", 60)
    assert sorted((k, c) for k, c, _ in counter.items(f"{redis_name}:")) == [
        (f"{redis_name}:alice", 2),
        (f"{redis_name}:bob", 1),
    ]
    counter.delete(key)
    assert counter.get(key) == (0, 0.0)


@pytest.mark.peer("redis")
def test_redis_counter_window_expires_and_is_not_extended(redis_name: str) -> None:
    counter = RedisCounter(REDIS_URL)
    key = f"{redis_name}:k"
    _, first = counter.incr(key, 60)
    # Wait (polling, never a fixed sleep) until the window has visibly run down…
    deadline = time.monotonic() + 60
    while counter.get(key)[1] > first - 0.2:
        assert time.monotonic() < deadline, "the window's expiry did not move"
        time.sleep(0.05)
    count, remaining = counter.incr(key, 60)  # …then a hit must not push it back (EXPIRE NX)
    assert count == 2 and remaining < first - 0.1
    # A short window ends by itself, and the next hit starts a new one.
    short = f"{redis_name}:short"
    counter.incr(short, 1)
    while counter.get(short) != (0, 0.0):
        assert time.monotonic() < deadline + 60, "a 1 s window never expired"
        time.sleep(0.05)
    assert counter.incr(short, 1)[0] == 1


@pytest.mark.peer("redis")
def test_limiters_on_redis_share_counts_across_instances(redis_name: str) -> None:
    one = Limiter(RedisCounter(REDIS_URL), redis_name, limit=2, window=60)
    two = Limiter(RedisCounter(REDIS_URL), redis_name, limit=2, window=60)  # another replica
    one.hit("10.0.0.1")
    two.hit("10.0.0.1")
    with pytest.raises(RateLimited) as info:
        one.check("10.0.0.1")
    assert 1 <= info.value.retry_after <= 61
    with pytest.raises(RateLimited):
        two.hit("10.0.0.1")
    assert [(k, c) for k, c, _ in one.locked()] == [("10.0.0.1", 3)]
    two.reset("10.0.0.1")
    one.check("10.0.0.1")
    assert one.locked() == []


def test_redis_counter_unreachable_is_unavailable() -> None:
    counter = RedisCounter(f"redis://127.0.0.1:{free_port()}/0")
    with pytest.raises(Unavailable):
        counter.incr("k", 60)
    with pytest.raises(Unavailable):
        counter.get("k")
    with pytest.raises(Unavailable):
        counter.delete("k")
    with pytest.raises(Unavailable):
        counter.items("k")
