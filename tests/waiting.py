"""One way for tests to wait for a condition: bounded in time, failing loudly."""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING

import trio

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

__all__ = ["wait_until"]


async def wait_until(
    predicate: Callable[[], bool] | Callable[[], Awaitable[bool]],
    *,
    timeout: float = 10,
    interval: float = 0.01,
    what: str = "",
) -> None:
    """Return once ``predicate()`` (sync or async) is true; poll every ``interval`` s.

    Raises:
        trio.TooSlowError: it did not become true within ``timeout`` seconds (of the
            run's clock: under ``autojump_clock`` the wait costs no real time).
    """
    with trio.move_on_after(timeout) as scope:
        while True:
            outcome = predicate()
            if inspect.isawaitable(outcome):
                outcome = await outcome
            if outcome:
                return
            await trio.sleep(interval)
    if scope.cancelled_caught:
        raise trio.TooSlowError(f"not true after {timeout} s: {what or predicate!r}")
