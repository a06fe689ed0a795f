"""core.greenbridge: synchronous code that waits on the loop while the loop runs others."""

from __future__ import annotations

import asyncio

import pytest

from printcloud.core import greenbridge


def test_sync_code_waits_while_the_loop_serves_others_and_errors_reach_it() -> None:
    order: list[str] = []

    async def slow(value: int) -> int:
        await asyncio.sleep(0)  # the loop runs the other task meanwhile
        order.append(f"slow {value}")
        return value * 2

    async def failing() -> None:
        raise LookupError("not there")

    def sync_step(value: int) -> tuple[int, str, bool]:
        assert greenbridge.bridged()
        doubled = greenbridge.wait(slow(value))
        try:
            greenbridge.wait(failing())
        except LookupError as exc:  # raised where the sync code waited
            caught = str(exc)
        return doubled, caught, greenbridge.bridged()

    async def other() -> None:
        order.append("other")

    async def scenario() -> tuple[int, str, bool]:
        other_task = asyncio.create_task(other())
        result = await greenbridge.run(sync_step, 21)
        await other_task
        return result

    assert asyncio.run(scenario()) == (42, "not there", True)
    assert order == ["other", "slow 21"]
    assert not greenbridge.bridged()


def test_wait_outside_run_is_refused_and_a_raise_in_the_sync_code_propagates() -> None:
    with pytest.raises(RuntimeError, match=r"outside greenbridge\.run\(\)"):
        greenbridge.wait(asyncio.sleep(0))

    def broken() -> None:
        raise ValueError("bad input")

    with pytest.raises(ValueError, match="bad input"):
        asyncio.run(greenbridge.run(broken))
