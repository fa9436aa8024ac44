"""Live streams that end when their visitor stops sending frames, so an idle one frees its slot.

Gradio holds a stream's concurrency slot until the stream's ``time_limit`` (minutes) unless the
browser closes it: a visitor who sent one frame and then nothing (a tab in the background, a camera
that stalled, a script) kept the only slot from everyone else. :class:`IdleStreams` notes every
frame's time per visitor (a tab streams one webcam) and, on the server's event loop, ends the stream of
each visitor who has sent none for ``idle_seconds``, as the browser's own close does
(:func:`~talking_head_app.gradio_events.close_streams`).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any

import anyio.from_thread

from talking_head_app.gradio_events import close_streams, current_queue, current_session

logger = logging.getLogger(__name__)


class IdleStreams:
    """The running streams' last frames, and the watcher that ends the idle ones."""

    def __init__(self, idle_seconds: float) -> None:
        self.idle_seconds = idle_seconds
        self._last_frame: dict[str, float] = {}
        self._lock = threading.Lock()
        self._watcher: asyncio.Task | None = None

    def saw_frame(self) -> None:
        """Note a frame of the calling stream handler's stream (and start the watcher with the first one)."""
        session = current_session()
        if session is None:  # called outside a served app (the tests' direct calls)
            return
        with self._lock:
            self._last_frame[session] = time.monotonic()
        if self._watcher is None:
            queue = current_queue()
            try:  # the stream handler runs on one of Gradio's worker threads: the loop is one hop away
                self._watcher = anyio.from_thread.run_sync(lambda: asyncio.get_running_loop().create_task(
                    self._watch(queue), name="end-idle-live-streams"))
            except RuntimeError:
                logger.warning("idle live streams cannot be ended: the handler runs outside Gradio's worker threads")

    @property
    def active(self) -> int:
        """Streams that had a frame within ``idle_seconds``."""
        cutoff = time.monotonic() - self.idle_seconds
        with self._lock:
            return sum(seen >= cutoff for seen in self._last_frame.values())

    def idle(self) -> list[str]:
        """Forget and return the visitors who sent no frame for ``idle_seconds`` (those who left among them)."""
        cutoff = time.monotonic() - self.idle_seconds
        with self._lock:
            gone = [session for session, seen in self._last_frame.items() if seen < cutoff]
            for session in gone:
                del self._last_frame[session]
        return gone

    async def _watch(self, queue: Any) -> None:
        while True:
            await asyncio.sleep(min(1.0, self.idle_seconds / 4))
            for session in self.idle():
                if close_streams(queue, session):
                    logger.info("ended a live stream idle for %g s", self.idle_seconds)
