"""Live streams that end when their visitor stops sending frames, so an idle one frees its slot.

Gradio holds a stream's concurrency slot until the stream's ``time_limit`` (minutes) unless the
browser closes it: a visitor who sent one frame and then nothing (a tab in the background, a camera
that stalled, a script) kept the only slot from everyone else. :class:`IdleStreams` notes every
frame's time per stream and, on the server's event loop, ends each stream that has had none for
``idle_seconds``, as the browser's own close does (:func:`~talking_head_app.gradio_events.close_stream`).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any

import anyio.from_thread

from talking_head_app.gradio_events import close_stream, current_event_id, current_queue

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
        event_id = current_event_id()
        if event_id is None:  # called outside a served app (the tests' direct calls)
            return
        with self._lock:
            self._last_frame[event_id] = time.monotonic()
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
        """Forget and return the streams with no frame for ``idle_seconds`` (ended ones among them)."""
        cutoff = time.monotonic() - self.idle_seconds
        with self._lock:
            gone = [event_id for event_id, seen in self._last_frame.items() if seen < cutoff]
            for event_id in gone:
                del self._last_frame[event_id]
        return gone

    async def _watch(self, queue: Any) -> None:
        while True:
            await asyncio.sleep(min(1.0, self.idle_seconds / 4))
            for event_id in self.idle():
                if close_stream(queue, event_id):
                    logger.info("ended a live stream idle for %g s", self.idle_seconds)
