"""Awaiting Prefect task runs from the trigger's event loop, without holding a thread each."""

from __future__ import annotations

import asyncio
from typing import Any

from prefect.futures import PrefectFuture


async def failure_of(future: PrefectFuture[Any]) -> BaseException | None:
    """Wait for the task run to end; why it failed for good, or None if it completed.

    A waiting coroutine holds no thread: a trigger of eight tiers waiting in threads took every
    thread of the loop's executor and stalled (docs/design/tier-overlap.md)."""
    loop = asyncio.get_running_loop()
    ended: asyncio.Future[None] = loop.create_future()

    def settle() -> None:
        if not ended.done():
            ended.set_result(None)

    def on_end(done: PrefectFuture[Any]) -> None:  # in a task runner thread, or a Dask callback
        done.wait()  # it has ended: this settles its final state without reading its result
        try:
            loop.call_soon_threadsafe(settle)
        except RuntimeError:
            pass  # the loop has closed: nobody waits

    future.add_done_callback(on_end)
    await ended
    state = future.state
    if not (state.is_failed() or state.is_crashed()):
        return None
    error = await state.aresult(raise_on_failure=False)  # in a loop: the async form
    return error if isinstance(error, BaseException) else RuntimeError(str(error))
