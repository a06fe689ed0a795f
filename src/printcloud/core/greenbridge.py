"""Synchronous code that waits on the event loop without blocking it.

Authlib's grants and endpoints are synchronous; on PostgreSQL their few reads (a token
by its hash, a card binding) would block the loop for a round trip each, one request
at a time. `run` calls such code in a greenlet on the loop's thread; inside it, `wait`
suspends that greenlet until an awaitable finishes, while the loop serves other
requests. No thread, no GIL hand-off: a switch costs about a microsecond. This is the
bridge SQLAlchemy's asyncio support is built on, written out for our two uses.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar, cast

from greenlet import getcurrent, greenlet

T = TypeVar("T")


class _Bridged(greenlet):  # type: ignore[misc]  # greenlet's class has no type hints
    """A greenlet `run` started: `wait` may suspend it."""


async def run(fn: Callable[..., T], *args: Any) -> T:
    """`fn(*args)` in a greenlet of the running loop; its `wait` calls are awaited here."""
    child = _Bridged(fn, getcurrent())
    # The caller's context variables (the request's), as a plain call would see them.
    child.gr_context = getcurrent().gr_context
    result = child.switch(*args)
    while not child.dead:
        try:
            value = await cast("Awaitable[Any]", result)
        except BaseException as exc:  # handed to the code that waits, as a raise from `wait`
            result = child.throw(exc)
        else:
            result = child.switch(value)
    return cast("T", result)


def bridged() -> bool:
    """Whether the calling code runs under `run` (and so may `wait`)."""
    return isinstance(getcurrent(), _Bridged)


def wait(awaitable: Awaitable[T]) -> T:
    """The result of `awaitable`, awaited by the loop while this greenlet is suspended."""
    current = getcurrent()
    if not isinstance(current, _Bridged):
        if isinstance(awaitable, Coroutine):
            awaitable.close()  # never to be awaited: no "never awaited" warning later
        raise RuntimeError("wait() outside greenbridge.run()")
    return cast("T", current.parent.switch(awaitable))
