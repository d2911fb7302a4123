"""The one way a trigger's coroutines make a blocking call (the catalog, a sync Prefect task)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


async def off_loop(call: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """`call(*args, **kwargs)` in a thread, with the caller's context (its Prefect run).

    Every tier of a trigger runs in the trigger's one event loop: a call that blocked it would
    stall every tier's hand-offs and chunk ends meanwhile."""
    return await asyncio.to_thread(call, *args, **kwargs)
