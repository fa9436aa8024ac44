"""Each Live visitor's session, kept by the app and dropped once unused for a while.

A :class:`~talking_head.live.LiveSession` holds an avatar (its generator, some megabytes) and the
visitor's tracking state. Keeping it in a ``gr.State`` would keep it for as long as Gradio keeps the
visitor's session: an hour after the tab closes, and for ever for an API caller that never opened the
page's heartbeat. The app keeps the sessions itself, the visitor's ``gr.State`` holds only a key, and
a session unused for ``ttl_seconds`` (no frame, no *Re-centre*) is dropped: memory returns to its idle
level that long after the visitors leave, and *Start* makes a new one. Dropped sessions' memory is handed
back to the system (:func:`release_memory`): glibc keeps freed blocks in the arena of the worker thread that
allocated them, and an avatar's tensors are allocated on Gradio's many worker threads.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import threading
import time
import uuid

from talking_head.live import LiveSession

logger = logging.getLogger(__name__)

class LiveSessions:
    """Live sessions by key, each dropped ``ttl_seconds`` after its last use (:meth:`sweep`)."""

    def __init__(self, ttl_seconds: float) -> None:
        self.ttl_seconds = ttl_seconds
        self._sessions: dict[str, tuple[LiveSession, float]] = {}
        self._lock = threading.Lock()

    def add(self, session: LiveSession) -> str:
        """Keep ``session``; its key (what the visitor's state holds)."""
        self.sweep()
        key = uuid.uuid4().hex
        with self._lock:
            self._sessions[key] = (session, time.monotonic())
        return key

    def get(self, key: object) -> LiveSession | None:
        """The session of ``key`` (its clock restarted), or None when there is none or it has expired."""
        with self._lock:
            found = self._sessions.get(key) if isinstance(key, str) else None
            if found is None or time.monotonic() - found[1] > self.ttl_seconds:
                return None
            self._sessions[key] = (found[0], time.monotonic())
            return found[0]

    def sweep(self) -> int:
        """Drop the sessions unused for ``ttl_seconds``; how many are left."""
        cutoff = time.monotonic() - self.ttl_seconds
        with self._lock:
            expired = [key for key, (_, used) in self._sessions.items() if used < cutoff]
            for key in expired:
                del self._sessions[key]
            left = len(self._sessions)
        if expired:
            release_memory()
            logger.info("dropped %d live sessions unused for %g s, %d left", len(expired), self.ttl_seconds, left)
        return left

    def __len__(self) -> int:
        with self._lock:
            return len(self._sessions)


def release_memory() -> None:
    """Collect what the dropped sessions held and return glibc's free memory to the system (a no-op where
    the C library has no ``malloc_trim``)."""
    gc.collect()
    library = ctypes.util.find_library("c")
    trim = getattr(ctypes.CDLL(library), "malloc_trim", None) if library else None
    if trim is not None:
        trim(0)
