"""The few pieces of Gradio's queue the app reads or acts on, in one place (checked against Gradio 6.x).

Gradio has no public hook for three things a public Space needs, so the app reaches them here:

- whether the visitor behind the running event is still there: when the browser tab closes (or an API
  client drops its connection), Gradio marks the event ``alive = False`` but lets a function already
  running go on to the end (``Queue.clean_events``);
- which event and session a handler is running for (``LocalContext``, the context Gradio's own
  ``gr.Progress`` uses from the worker thread; a stream's later frames carry no event id, only the
  session's);
- ending a stream from the server: what the browser's ``POST /stream/{event_id}/close`` does
  (``event.closed``, then its signal), so that a stream whose visitor sends no frames frees its slot
  before the stream's ``time_limit``.

Every function degrades to "nothing known" (alive, no event) when Gradio's internals differ, so a
Gradio upgrade loses these guards, never a visitor's job; ``tests/test_app_load.py`` fails then.
"""

from __future__ import annotations

import math
from typing import Any

from gradio.context import LocalContext


def current_event_id() -> str | None:
    """The queue event the calling handler runs for (None outside one)."""
    return LocalContext.event_id.get(None)


def _event(event_id: str | None) -> Any:
    blocks = LocalContext.blocks.get(None)
    queue = getattr(blocks, "_queue", None)
    return getattr(queue, "event_ids_to_events", {}).get(event_id) if event_id else None


def visitor_left() -> bool:
    """True once the visitor of the calling handler's event has gone (tab closed, connection lost)."""
    event = _event(current_event_id())
    return event is not None and not getattr(event, "alive", True)


def current_session() -> str | None:
    """The session (browser tab, API client) the calling handler runs for (None outside one)."""
    return getattr(LocalContext.request.get(None), "session_hash", None)


def close_streams(queue: Any, session_hash: str) -> int:
    """End the running streams of ``session_hash`` as the browser's close request does; call it on the
    server's event loop. How many were ended (0: none runs any more)."""
    running = [event for job in getattr(queue, "active_jobs", []) if job for event in job]
    ended = 0
    for event in running:
        if event.session_hash == session_hash and getattr(event, "streaming", False) and not event.closed:
            event.run_time, event.closed = math.inf, True
            event.signal.set()
            ended += 1
    return ended


def current_queue() -> Any:
    """The queue of the app the calling handler runs in (None outside one)."""
    return getattr(LocalContext.blocks.get(None), "_queue", None)


def waiting(concurrency_id: str) -> int:
    """Events waiting in line for the slots of ``concurrency_id`` in the calling handler's app (0 when unknown)."""
    queues = getattr(current_queue(), "event_queue_per_concurrency_id", {})
    return len(getattr(queues.get(concurrency_id), "queue", ()))
