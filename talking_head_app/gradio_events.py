"""The few pieces of Gradio's queue the app reads or acts on, in one place (checked against Gradio 6.x).

Gradio has no public hook for three things a public Space needs, so the app reaches them here:

- whether the visitor behind the running event is still there: when the browser tab closes (or an API
  client drops its connection), Gradio marks the event ``alive = False`` but lets a function already
  running go on to the end (``Queue.clean_events``);
- which event a handler is running for (``LocalContext.event_id``, the context Gradio's own
  ``gr.Progress`` uses from the worker thread);
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


def close_stream(queue: Any, event_id: str) -> bool:
    """End the streaming event ``event_id`` as the browser's close request does; call it on the server's
    event loop. False when the event is not (or no longer) there."""
    event = getattr(queue, "event_ids_to_events", {}).get(event_id)
    if event is None:
        return False
    event.run_time, event.closed = math.inf, True
    event.signal.set()
    return True


def current_queue() -> Any:
    """The queue of the app the calling handler runs in (None outside one)."""
    return getattr(LocalContext.blocks.get(None), "_queue", None)


def waiting(concurrency_id: str) -> int:
    """Events waiting in line for the slots of ``concurrency_id`` in the calling handler's app (0 when unknown)."""
    queues = getattr(current_queue(), "event_queue_per_concurrency_id", {})
    return len(getattr(queues.get(concurrency_id), "queue", ()))
