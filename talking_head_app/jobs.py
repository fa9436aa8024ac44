"""Long jobs that stop when their visitor goes, and hold their queue slot until they have stopped.

Gradio runs a plain function on a worker thread and, when its visitor presses *Stop* (or an API client
cancels), cancels the asyncio task that awaits it: the slot is free at once, but the thread renders
on to the end, writing a result nobody receives. When the visitor closes the tab, Gradio only marks
the event as no longer alive. :func:`stoppable` turns a handler into a coroutine that runs it on a
thread of its own and, when cancelled, asks it to stop and waits until it has before letting the
cancellation through: the slot stays taken while the work still runs, and the next job starts on
free cores.

The handler stops itself between steps: :func:`check_stop` (called by the app's progress reporter after
every photo, fine-tuning step and rendered batch) raises :class:`JobCancelled` once its job was
cancelled or its visitor left, and the handler's own clean-up removes what the job wrote.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar

from talking_head_app.gradio_events import visitor_left

logger = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

_stop: contextvars.ContextVar[threading.Event | None] = contextvars.ContextVar("talking_head_job_stop", default=None)


#: The concurrency group of every expensive event (generate, animate, compare, making the example avatar).
JOBS = "jobs"


def one_queue(limit: int) -> dict[str, Any]:
    """An event listener's options that put it in the jobs' one queue: ``limit`` jobs at once across every button
    (``TALKING_HEAD_CONCURRENCY``), whichever was pressed."""
    return {"concurrency_id": JOBS, "concurrency_limit": limit}


class JobCancelled(Exception):
    """Raised between two steps of a job whose visitor cancelled it or left."""


def check_stop() -> None:
    """Raise :class:`JobCancelled` when the calling job should stop; a no-op outside :func:`stoppable`."""
    stop = _stop.get()
    if stop is not None and (stop.is_set() or visitor_left()):
        raise JobCancelled("the job was cancelled")


def stoppable(handler: Callable[P, R]) -> Callable[P, Awaitable[R]]:
    """``handler`` as a coroutine function Gradio awaits (same signature, so ``gr.Progress`` is still found):
    cancelling it stops the handler at its next :func:`check_stop` and waits for that (see module doc)."""

    @functools.wraps(handler)
    async def run(*args: P.args, **kwargs: P.kwargs) -> R:
        stop = threading.Event()
        context = contextvars.copy_context()  # Gradio's own context (event id, progress) goes along
        context.run(_stop.set, stop)
        work = asyncio.get_running_loop().run_in_executor(
            None, functools.partial(context.run, handler, *args, **kwargs))
        try:
            return await asyncio.shield(work)
        except asyncio.CancelledError:
            stop.set()
            began = time.monotonic()
            while not work.done():  # a second cancel must not free the slot either
                try:
                    await asyncio.wait([work])
                except asyncio.CancelledError:
                    continue
            work.exception()  # retrieved: usually JobCancelled, of no interest once cancelled
            logger.info("a cancelled %s stopped %.1f s after its cancel", handler.__name__, time.monotonic() - began)
            raise

    return run
